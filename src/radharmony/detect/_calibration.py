"""Calibrated decisions from abnormality scores: conformal p-values, FDR, false-lesion rates.

These functions know nothing about images: they turn scores of new data and scores of held-out
reference (healthy) data into p-values and thresholds, so that detection and follow-up change
detection make their decisions the same way.

References
----------
Vovk V, Gammerman A, Shafer G. Algorithmic Learning in a Random World. Springer, 2005.
Bates S, Candès E, Lei L, Romano Y, Sesia M. Testing for outliers with conformal p-values.
Ann Stat 2023;51:149-178.
Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat Soc B 1995;57:289-300.
Angelopoulos AN, Bates S, Fisch A, Lei L, Schuster T. Conformal risk control. ICLR 2024.
Garwood F. Fiducial limits for the Poisson distribution. Biometrika 1936;28:437-442.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def conformal_pvalues(scores: ArrayLike, calibration_scores: ArrayLike) -> NDArray[np.float64]:
    """Return the conformal p-value of each score against held-out reference scores.

    ``p = (1 + #{calibration scores >= score}) / (n + 1)``. If a new score and the ``n``
    calibration scores are exchangeable (the new case comes from the reference population and the
    scores were computed by a model that saw none of them), ``P(p <= a) <= a`` for every ``a``:
    a valid p-value for the null hypothesis "this case is like the reference data". Higher
    scores mean more abnormal. The smallest attainable value is ``1 / (n + 1)``.

    Parameters
    ----------
    scores : array-like
        Scores of the cases to test (any shape).
    calibration_scores : array-like of shape (n,)
        Scores of held-out reference cases (e.g. healthy voxels of reference subjects not used to
        fit the model).

    Returns
    -------
    numpy.ndarray
        P-values, same shape as ``scores``.
    """
    reference = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    if reference.size == 0:
        raise ValueError("conformal p-values need at least one calibration score")
    values = np.asarray(scores, dtype=np.float64)
    at_least = reference.size - np.searchsorted(reference, values, side="left")
    return np.asarray((1.0 + at_least) / (reference.size + 1.0), dtype=np.float64)


def benjamini_hochberg(pvalues: ArrayLike, level: float) -> tuple[NDArray[np.bool_], float]:
    """Return which p-values the Benjamini-Hochberg procedure rejects at FDR ``level``.

    With conformal p-values sharing one calibration set (which are positively dependent in the
    PRDS sense, Bates et al. 2023) the expected share of false rejections among rejections is at
    most ``level`` times the share of true nulls, under the exchangeability of every null case
    with the calibration cases.

    Parameters
    ----------
    pvalues : array-like
        P-values (any shape).
    level : float
        Target false discovery rate in (0, 1).

    Returns
    -------
    (rejected, cutoff)
        A boolean array of the shape of ``pvalues`` and the largest rejected p-value (0 when
        nothing is rejected).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"FDR level must be in (0, 1), got {level}")
    values = np.asarray(pvalues, dtype=np.float64)
    flat = np.sort(values.ravel())
    m = flat.size
    if m == 0:
        return np.zeros(values.shape, dtype=bool), 0.0
    passing = np.nonzero(flat <= level * np.arange(1, m + 1) / m)[0]
    if passing.size == 0:
        return np.zeros(values.shape, dtype=bool), 0.0
    cutoff = float(flat[passing[-1]])
    return values <= cutoff, cutoff


def rate_threshold(peaks: Sequence[ArrayLike], rate: float) -> float:
    """Return the lowest threshold at which reference subjects show at most ``rate`` false events.

    Each reference subject contributes the scores (e.g. the peak abnormality) of its false
    events (e.g. candidate lesions in healthy tissue); an event counts at threshold ``t`` when
    its score is ``>= t``, so the count ``N_i(t)`` never increases with ``t``. The threshold is
    the smallest ``t`` with

        ``(N_1(t) + ... + N_n(t) + max_i N_i(t)) / (n + 1) <= rate``,

    the conformal-risk-control rule (Angelopoulos et al. 2024) in which the bound on the new
    subject's count is the largest count a reference subject had. For counts that never exceed
    that bound it guarantees ``E[N_new(t)] <= rate`` for a new subject exchangeable with the
    references; in general it is a slightly conservative estimate, which
    :func:`held_out_rates` measures.

    Parameters
    ----------
    peaks : sequence of array-like
        One array per reference subject with the scores of its false events (may be empty).
    rate : float
        Target expected number of false events per subject (> 0).

    Returns
    -------
    float
        The threshold (``inf`` when no reference subject is given).
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    arrays = [np.sort(np.asarray(p, dtype=np.float64).ravel()) for p in peaks]
    n = len(arrays)
    if n == 0:
        return float("inf")
    candidates = np.unique(np.concatenate([*arrays, [np.inf]]))
    # counts[i, j]: events of subject i with score >= candidates[j] (non-increasing in j).
    counts = np.stack([a.size - np.searchsorted(a, candidates, side="left") for a in arrays])
    risk = (counts.sum(axis=0) + counts.max(axis=0)) / (n + 1.0)
    return float(candidates[np.argmax(risk <= rate)])


def held_out_rates(peaks: Sequence[ArrayLike], rate: float) -> NDArray[np.int64]:
    """Return each reference subject's false-event count at a threshold chosen without it.

    For subject ``i`` the threshold is :func:`rate_threshold` of the other subjects; its count
    at that threshold is an honest, held-out measurement of the rate the rule achieves
    (leave-one-subject-out). Needs at least two subjects.

    Parameters
    ----------
    peaks : sequence of array-like
        As for :func:`rate_threshold`.
    rate : float
        Target expected number of false events per subject.

    Returns
    -------
    numpy.ndarray of int
        One count per subject.
    """
    arrays = [np.asarray(p, dtype=np.float64).ravel() for p in peaks]
    if len(arrays) < 2:
        raise ValueError("a held-out rate needs at least two reference subjects")
    counts = []
    for i, own in enumerate(arrays):
        threshold = rate_threshold(arrays[:i] + arrays[i + 1 :], rate)
        counts.append(int(np.count_nonzero(own >= threshold)))
    return np.asarray(counts, dtype=np.int64)


def poisson_rate_interval(total: int, n_subjects: int, level: float = 0.95) -> tuple[float, float]:
    """Return the exact (Garwood) confidence interval of a Poisson rate per subject.

    Parameters
    ----------
    total : int
        Events counted over all subjects.
    n_subjects : int
        Number of subjects.
    level : float
        Confidence level.

    Returns
    -------
    (low, high)
        Interval of the expected number of events per subject; it assumes the total is Poisson
        (over-dispersed counts make it too narrow).
    """
    from scipy import stats

    if n_subjects < 1:
        raise ValueError("n_subjects must be at least 1")
    alpha = 1.0 - level
    low = 0.0 if total == 0 else stats.chi2.ppf(alpha / 2, 2 * total) / 2
    high = stats.chi2.ppf(1 - alpha / 2, 2 * total + 2) / 2
    return float(low / n_subjects), float(high / n_subjects)


def rate_check(
    counts: ArrayLike, rate: float, *, subjects: Sequence[str] | None = None, level: float = 0.95
) -> pd.DataFrame:
    """Summarise held-out false-event counts against the target rate.

    Parameters
    ----------
    counts : array-like of int
        One held-out count per subject (see :func:`held_out_rates`).
    rate : float
        The target.
    subjects : sequence of str, optional
        Subject identifiers, for the per-subject rows.
    level : float
        Confidence level of the interval.

    Returns
    -------
    pandas.DataFrame
        One row per subject (``subject_id``, ``false_events``) and a last row ``all`` with the
        mean, its Garwood interval (``ci_low``, ``ci_high``), the ``target`` and ``holds`` (the
        target lies at or above the interval's lower bound, i.e. the data do not show the
        rate exceeds the target).
    """
    values = np.asarray(counts, dtype=np.int64)
    names = list(subjects) if subjects is not None else [str(i) for i in range(values.size)]
    low, high = poisson_rate_interval(int(values.sum()), max(values.size, 1), level)
    table = pd.DataFrame({"subject_id": names, "false_events": values.astype(float)})
    summary = pd.DataFrame(
        {
            "subject_id": ["all"],
            "false_events": [float(values.mean()) if values.size else np.nan],
            "ci_low": [low],
            "ci_high": [high],
            "target": [rate],
            "holds": [bool(low <= rate)],
        }
    )
    return pd.concat([table, summary], ignore_index=True)
