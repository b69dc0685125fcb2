"""Conformal prediction sets from class probabilities (LAC score, marginal or per class)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def conformal_quantile(scores: ArrayLike, level: float) -> float:
    """Return the finite-sample conformal quantile of non-conformity scores.

    The threshold is the ``ceil((n + 1) * level)``-th smallest of the ``n`` calibration scores,
    which guarantees coverage of at least ``level`` for an exchangeable new case. When that rank
    exceeds ``n`` (too few calibration cases for the level) the threshold is ``+inf``: every
    class enters the set.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Non-conformity scores of the calibration cases.
    level : float
        Nominal coverage in (0, 1), e.g. 0.9.

    Returns
    -------
    float
        The threshold.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"conformal level must be in (0, 1), got {level}")
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((scores.size + 1) * level)
    if rank > scores.size:
        return float("inf")
    return float(scores[rank - 1])


def lac_scores(proba: ArrayLike, true_index: ArrayLike) -> NDArray[np.float64]:
    """Return the LAC non-conformity score ``1 - p(true class)`` of each case."""
    proba = np.asarray(proba, dtype=float)
    true_index = np.asarray(true_index, dtype=int)
    return 1.0 - proba[np.arange(len(proba)), true_index]


def conformal_thresholds(
    proba: ArrayLike, true_index: ArrayLike, level: float, *, mondrian: bool = False
) -> NDArray[np.float64]:
    """Return one threshold per class from calibration probabilities and true classes.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
        Probabilities of calibration cases not used to fit the model.
    true_index : array-like of shape (n,)
        Column index of each case's true class.
    level : float
        Nominal coverage.
    mondrian : bool
        If True, thresholds are computed per true class (class-conditional coverage);
        otherwise one marginal threshold is shared by all classes.

    Returns
    -------
    ndarray of shape (n_classes,)
        Threshold of each class.
    """
    proba = np.asarray(proba, dtype=float)
    true_index = np.asarray(true_index, dtype=int)
    scores = lac_scores(proba, true_index)
    n_classes = proba.shape[1]
    if not mondrian:
        return np.full(n_classes, conformal_quantile(scores, level))
    return np.array([conformal_quantile(scores[true_index == k], level) for k in range(n_classes)])


def prediction_sets(proba: ArrayLike, thresholds: ArrayLike) -> NDArray[np.bool_]:
    """Return the conformal set of each case: class ``k`` is in when ``1 - p_k <= threshold_k``."""
    proba = np.asarray(proba, dtype=float)
    return (1.0 - proba) <= np.asarray(thresholds, dtype=float)[None, :]


def coverage_table(
    sets: ArrayLike,
    true_index: ArrayLike,
    classes: ArrayLike,
    *,
    sites: ArrayLike | None = None,
) -> pd.DataFrame:
    """Return empirical coverage, mean set size and refer rate overall, per class and per site.

    Parameters
    ----------
    sets : array-like of bool, shape (n, n_classes)
        Prediction sets.
    true_index : array-like of shape (n,)
        Column index of each case's true class.
    classes : array-like of shape (n_classes,)
        Class labels (used to name the per-class rows).
    sites : array-like of shape (n,), optional
        Site of each case.

    Returns
    -------
    pandas.DataFrame
        Columns ``stratum`` (``"overall"``, ``"class"`` or ``"site"``), ``value``, ``n``,
        ``coverage``, ``mean_set_size``, ``refer_rate`` (share of sets that are not one class).
    """
    sets = np.asarray(sets, dtype=bool)
    true_index = np.asarray(true_index, dtype=int)
    covered = sets[np.arange(len(sets)), true_index]
    size = sets.sum(axis=1)
    strata: list[tuple[str, str, NDArray[np.bool_]]] = [("overall", "all", np.ones_like(covered))]
    strata += [("class", str(c), true_index == k) for k, c in enumerate(np.asarray(classes))]
    if sites is not None:
        sites = np.asarray(sites).astype(str)
        strata += [("site", s, sites == s) for s in sorted(set(sites))]
    rows = [
        {
            "stratum": stratum,
            "value": value,
            "n": int(mask.sum()),
            "coverage": float(covered[mask].mean()) if mask.any() else float("nan"),
            "mean_set_size": float(size[mask].mean()) if mask.any() else float("nan"),
            "refer_rate": float((size[mask] != 1).mean()) if mask.any() else float("nan"),
        }
        for stratum, value, mask in strata
    ]
    return pd.DataFrame(rows)
