"""Per-feature batch-effect tests that never return NaN for a degenerate feature.

A Kruskal-Wallis test is undefined when every value is tied, and numerically degenerate when
the rank sums are identical across batches (H comes out as -1e-14 and scipy returns p = NaN).
Both mean "no evidence of a batch difference": H is reported as 0 and p as 1. Features that
cannot be tested at all (constant) are left out of the false-discovery correction, so the
selection of the others does not depend on how many such columns a table holds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats


def kruskal_per_feature(values: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the Kruskal-Wallis H and p-value of each column across batches.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
    batch : ndarray of shape (n_samples,)

    Returns
    -------
    h, p : ndarray of shape (n_features,)
        H is NaN (and p is 1) for a constant column; a degenerate H is 0 with p = 1.
    """
    levels = pd.unique(batch)
    groups = [values[batch == level] for level in levels]
    h, p = np.full(values.shape[1], np.nan), np.ones(values.shape[1])
    if len(levels) < 2:
        return h, p
    for j in np.flatnonzero(np.ptp(values, axis=0) > 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            statistic, p_value = stats.kruskal(*[g[:, j] for g in groups])
        if not np.isfinite(statistic) or statistic <= 0 or not np.isfinite(p_value):
            h[j], p[j] = 0.0, 1.0
        else:
            h[j], p[j] = float(statistic), float(p_value)
    return h, p


def bh_q_values(p: np.ndarray, tested: np.ndarray) -> np.ndarray:
    """Return Benjamini-Hochberg q-values over the tested features (1 for the others).

    Parameters
    ----------
    p : ndarray of shape (n_features,)
        P-values; entries outside ``tested`` are ignored.
    tested : ndarray of bool, shape (n_features,)

    Returns
    -------
    ndarray of shape (n_features,)
    """
    q = np.ones(p.shape[0])
    usable = tested & np.isfinite(p)
    if usable.any():
        q[usable] = stats.false_discovery_control(np.clip(p[usable], 0.0, 1.0), method="bh")
    return q
