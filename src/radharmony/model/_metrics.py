"""Discrimination and calibration metrics with cluster-bootstrap confidence intervals, and DeLong."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.special import expit, logit

from radharmony._progress import progress_bar

#: Metric names in the order :func:`classification_metrics` returns them.
METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "ece",
)
_EPS = 1e-6


def classification_metrics(
    y_true: ArrayLike, proba: ArrayLike, classes: ArrayLike, *, n_bins: int = 10
) -> dict[str, float]:
    """Return discrimination and calibration metrics of predicted probabilities.

    Binary targets use ``classes[1]`` as the positive class. Multi-class targets use
    one-vs-rest macro averages (ROC AUC, sensitivity = mean per-class recall, specificity,
    calibration slope and intercept), the multi-class Brier score (sum over classes of the
    squared error, mean over cases) and the top-label expected calibration error.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels, each one of ``classes``.
    proba : array-like of shape (n, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : array-like of shape (n_classes,)
        Class labels.
    n_bins : int
        Number of equal-width probability bins of the expected calibration error.

    Returns
    -------
    dict
        Keys of ``METRIC_NAMES``. ``calibration_slope`` is the slope of a logistic regression of
        the outcome on the logit of the prediction (1 is ideal, < 1 means over-confident);
        ``calibration_intercept`` is calibration-in-the-large (intercept with the logit as an
        offset; 0 is ideal). The slope is NaN when the predictions separate the classes
        perfectly (its maximum likelihood estimate is then infinite). With one class present
        the AUC, slope and intercept are NaN; the other metrics are still computed.
    """
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    onehot = (np.asarray(y_true)[:, None] == classes[None, :]).astype(float)
    return dict(zip(METRIC_NAMES, _metric_vector(onehot, proba, n_bins), strict=True))


def bootstrap_metrics(
    y_true: ArrayLike,
    proba: ArrayLike,
    classes: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 1000,
    method: str = "BCa",
    random_state: int = 0,
    n_jobs: int | None = None,
    verbose: bool | int | None = None,
) -> pd.DataFrame:
    """Return every metric with a class-stratified patient bootstrap confidence interval.

    Patients are resampled with replacement *within strata of the classes they hold* (for one
    lesion per patient: within each class), so every resample keeps the sample's number of
    patients of each class and no resample lacks a class. Lesions of one patient stay together.
    A resample where a metric is still undefined (a calibration slope under perfect separation)
    is dropped for that metric and counted in ``n_resamples_used``; nothing is silently NaN:
    ``note`` says why an estimate or interval is missing.

    Parameters
    ----------
    y_true, proba, classes
        As in :func:`classification_metrics`.
    groups : array-like of shape (n,), optional
        Patient (cluster) of each row.
    confidence_level : float
        Confidence level of the intervals.
    n_resamples : int
        Number of bootstrap resamples.
    method : str
        ``"BCa"`` (default; bias-corrected and accelerated, acceleration from the patient
        jackknife) or ``"percentile"``. A metric whose BCa correction is undefined (every
        resample on one side of the estimate) falls back to the percentile interval.
    random_state : int
        Seed of the resampling (all resamples are drawn before any is evaluated, so the
        result does not depend on ``n_jobs``).
    n_jobs : int, optional
        Parallel evaluation of the resamples (joblib).
    verbose : int or bool, optional
        0: silent; otherwise (default) a progress bar over the resamples.

    Returns
    -------
    pandas.DataFrame
        Index: metric names; columns ``estimate``, ``ci_low``, ``ci_high``,
        ``n_resamples_used`` and ``note``.
    """
    from joblib import Parallel, delayed

    if method not in ("BCa", "percentile"):
        raise ValueError(f"method must be 'BCa' or 'percentile', got {method!r}")
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    onehot = (np.asarray(y_true)[:, None] == classes[None, :]).astype(float)
    clusters, strata = _clusters_and_strata(onehot, groups)
    rng = np.random.default_rng(random_state)
    draws = np.empty((n_resamples, len(clusters)), dtype=np.int64)
    for b in range(n_resamples):
        for members in strata:
            draws[b, members] = members[rng.integers(0, members.size, members.size)]
    chunks = np.array_split(np.arange(n_resamples), max(1, min(n_resamples, 8)))
    stream = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_resample_metrics)(onehot, proba, clusters, draws[chunk]) for chunk in chunks
    )
    parts = list(progress_bar(stream, total=len(chunks), description="bootstrap", verbose=verbose))
    replicates = np.vstack(parts) if parts else np.zeros((0, len(METRIC_NAMES)))
    estimate = _metric_vector(onehot, proba, 10)
    alpha = (1.0 - confidence_level) / 2.0
    jackknife = (
        np.array(
            [
                _metric_vector(
                    *_rows_of(onehot, proba, clusters, np.delete(np.arange(len(clusters)), c)), 10
                )
                for c in range(len(clusters))
            ]
        )
        if method == "BCa"
        else None
    )
    low, high, used, notes = [], [], [], []
    for m, name in enumerate(METRIC_NAMES):
        values = replicates[:, m]
        finite = values[np.isfinite(values)]
        used.append(int(finite.size))
        note = _undefined_reason(name, onehot, proba) if not np.isfinite(estimate[m]) else ""
        if not np.isfinite(estimate[m]) or finite.size < 2:
            low.append(np.nan)
            high.append(np.nan)
            notes.append(note or "too few resamples where the metric is defined")
            continue
        lo_q, hi_q = alpha, 1.0 - alpha
        if jackknife is not None:
            adjusted = _bca_levels(finite, estimate[m], jackknife[:, m], alpha)
            if adjusted is not None:
                lo_q, hi_q = adjusted
        low.append(float(np.quantile(finite, lo_q)))
        high.append(float(np.quantile(finite, hi_q)))
        dropped = n_resamples - finite.size
        notes.append(
            f"{dropped} of {n_resamples} resamples dropped (metric undefined there)"
            if dropped
            else ""
        )
    return pd.DataFrame(
        {
            "estimate": estimate,
            "ci_low": low,
            "ci_high": high,
            "n_resamples_used": used,
            "note": notes,
        },
        index=pd.Index(METRIC_NAMES, name="metric"),
    )


def _clusters_and_strata(
    onehot: NDArray[np.float64], groups: ArrayLike | None
) -> tuple[list[NDArray[np.int_]], list[NDArray[np.int_]]]:
    """Rows of each patient, and the patients of each stratum (set of classes they hold)."""
    n = len(onehot)
    codes = np.arange(n) if groups is None else pd.factorize(pd.Series(np.asarray(groups)))[0]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    clusters = np.split(order, bounds) if n else []
    keys = [
        tuple(int(k) for k in np.flatnonzero(onehot[rows].sum(axis=0) > 0)) for rows in clusters
    ]
    strata: dict[tuple[int, ...], list[int]] = {}
    for c, key in enumerate(keys):
        strata.setdefault(key, []).append(c)
    return clusters, [np.asarray(v) for _, v in sorted(strata.items())]


def _rows_of(
    onehot: NDArray[np.float64],
    proba: NDArray[np.float64],
    clusters: list[NDArray[np.int_]],
    chosen: NDArray[np.int_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rows = np.concatenate([clusters[c] for c in chosen])
    return onehot[rows], proba[rows]


def _resample_metrics(
    onehot: NDArray[np.float64],
    proba: NDArray[np.float64],
    clusters: list[NDArray[np.int_]],
    draws: NDArray[np.int_],
) -> NDArray[np.float64]:
    return np.array(
        [_metric_vector(*_rows_of(onehot, proba, clusters, draw), 10) for draw in draws]
    ).reshape(len(draws), len(METRIC_NAMES))


def _bca_levels(
    replicates: NDArray[np.float64], estimate: float, jackknife: NDArray[np.float64], alpha: float
) -> tuple[float, float] | None:
    """BCa-adjusted quantile levels, or None when the correction is undefined."""
    below = np.mean(replicates < estimate) + 0.5 * np.mean(replicates == estimate)
    if not 0.0 < below < 1.0:
        return None
    z0 = stats.norm.ppf(below)
    jack = jackknife[np.isfinite(jackknife)]
    if jack.size < 3:
        return None
    deviation = jack.mean() - jack
    denominator = 6.0 * np.sum(deviation**2) ** 1.5
    acceleration = float(np.sum(deviation**3) / denominator) if denominator > 0 else 0.0
    levels = []
    for z in (stats.norm.ppf(alpha), stats.norm.ppf(1.0 - alpha)):
        shifted = z0 + z
        levels.append(float(stats.norm.cdf(z0 + shifted / (1.0 - acceleration * shifted))))
    if not all(np.isfinite(levels)):
        return None
    return levels[0], levels[1]


def _undefined_reason(name: str, onehot: NDArray[np.float64], proba: NDArray[np.float64]) -> str:
    present = onehot.sum(axis=0) > 0
    if present.sum() < 2 and name in ("roc_auc", "calibration_slope", "calibration_intercept"):
        return "undefined: the cases hold a single class"
    if name == "calibration_slope":
        return (
            "undefined: the predictions separate the classes perfectly, so the maximum "
            "likelihood slope is infinite"
        )
    if name in ("sensitivity", "specificity"):
        return "undefined: no case of the class it is computed on"
    return "undefined for these cases"


def binary_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Return the ROC AUC (Mann-Whitney statistic, ties counted one half) of a 0/1 outcome."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(np.asarray(score, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def delong_test(y: ArrayLike, score_a: ArrayLike, score_b: ArrayLike) -> dict[str, float]:
    """Compare two correlated ROC AUCs on the same cases with DeLong's test.

    Uses the structural-components formulation (DeLong, DeLong & Clarke-Pearson 1988).

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary outcome (0/1 or bool).
    score_a, score_b : array-like of shape (n,)
        Scores of the two models; larger means more likely positive.

    Returns
    -------
    dict
        ``auc_a``, ``auc_b``, ``difference`` (a - b), ``se`` of the difference, ``z``,
        ``p_two_sided`` and ``p_greater`` (one-sided p-value of "a is better than b").
    """
    y = np.asarray(y, dtype=bool)
    components = [_delong_components(y, np.asarray(s, dtype=float)) for s in (score_a, score_b)]
    auc = np.array([c[0] for c in components])
    v10 = np.vstack([c[1] for c in components])
    v01 = np.vstack([c[2] for c in components])
    cov = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    difference = float(auc[0] - auc[1])
    se = float(np.sqrt(max(var, 0.0)))
    z = difference / se if se > 0 else (0.0 if difference == 0 else np.sign(difference) * np.inf)
    return {
        "auc_a": float(auc[0]),
        "auc_b": float(auc[1]),
        "difference": difference,
        "se": se,
        "z": float(z),
        "p_two_sided": float(2.0 * stats.norm.sf(abs(z))),
        "p_greater": float(stats.norm.sf(z)),
    }


def _delong_components(
    y: NDArray[np.bool_], score: NDArray[np.float64]
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """AUC and its placement values over positives (V10) and negatives (V01)."""
    pos, neg = score[y], score[~y]
    # psi(x, z) = 1 if x > z, 1/2 if tie, 0 otherwise, computed with sorted searches.
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, side="left")
    at_most = np.searchsorted(neg_sorted, pos, side="right")
    v10 = (below + 0.5 * (at_most - below)) / neg.size
    above = pos.size - np.searchsorted(pos_sorted, neg, side="right")
    at_least = pos.size - np.searchsorted(pos_sorted, neg, side="left")
    v01 = (above + 0.5 * (at_least - above)) / pos.size
    return float(v10.mean()), v10, v01


def _metric_vector(
    onehot: NDArray[np.float64], proba: NDArray[np.float64], n_bins: int
) -> NDArray[np.float64]:
    """All metrics, in ``METRIC_NAMES`` order, from one-hot labels and probabilities.

    Every metric that is defined for the cases is computed: with a single class present the
    Brier score, the expected calibration error and the recall of the present class remain
    defined; the AUC and the calibration slope and intercept are NaN.
    """
    n_classes = onehot.shape[1]
    if len(onehot) == 0:
        return np.full(len(METRIC_NAMES), np.nan)
    present = onehot.sum(axis=0) > 0
    true_index = onehot.argmax(axis=1)
    pred_index = proba.argmax(axis=1)
    recall = np.array(
        [
            np.mean(pred_index[true_index == k] == k) if present[k] else np.nan
            for k in range(n_classes)
        ]
    )
    specificity = np.array(
        [
            np.mean(pred_index[true_index != k] != k) if (true_index != k).any() else np.nan
            for k in range(n_classes)
        ]
    )
    two_classes = present.sum() >= 2
    if n_classes == 2:
        positive = onehot[:, 1]
        auc = binary_auc(positive, proba[:, 1]) if two_classes else np.nan
        sensitivity, spec = recall[1], recall[0]
        brier = float(np.mean((proba[:, 1] - positive) ** 2))
        slope, intercept = _calibration_slope_intercept(positive, proba[:, 1])
        ece = _expected_calibration_error(positive, proba[:, 1], n_bins)
    else:
        per_class = [binary_auc(onehot[:, k], proba[:, k]) for k in range(n_classes)]
        auc = _nanmean(per_class) if two_classes else np.nan
        sensitivity, spec = _nanmean(recall), _nanmean(specificity)
        brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        slopes = np.array(
            [_calibration_slope_intercept(onehot[:, k], proba[:, k]) for k in range(n_classes)]
        )
        slope, intercept = _nanmean(slopes[:, 0]), _nanmean(slopes[:, 1])
        correct = (pred_index == true_index).astype(float)
        ece = _expected_calibration_error(correct, proba.max(axis=1), n_bins)
    balanced_accuracy = _nanmean(recall)
    return np.array(
        [auc, balanced_accuracy, sensitivity, spec, brier, slope, intercept, ece], dtype=float
    )


def _nanmean(values: ArrayLike) -> float:
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    return float(finite.mean()) if finite.size else float("nan")


def _expected_calibration_error(
    outcome: NDArray[np.float64], prob: NDArray[np.float64], n_bins: int
) -> float:
    """Expected calibration error over equal-width bins (bin-size-weighted |observed - mean p|)."""
    bins = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    observed = np.bincount(bins, weights=outcome, minlength=n_bins)
    predicted = np.bincount(bins, weights=prob, minlength=n_bins)
    return float(np.sum(np.abs(observed - predicted)) / len(prob))


def _calibration_slope_intercept(
    outcome: NDArray[np.float64], prob: NDArray[np.float64]
) -> tuple[float, float]:
    """Calibration slope and calibration-in-the-large of probabilities for a 0/1 outcome."""
    if outcome.min() == outcome.max():
        return float("nan"), float("nan")
    lp = logit(np.clip(prob, _EPS, 1.0 - _EPS))
    intercept = _logistic_offset_intercept(lp, outcome)
    if lp[outcome == 1].min() >= lp[outcome == 0].max():
        # (Quasi-)complete separation: the likelihood grows without bound with the slope, so
        # any finite "slope" printed here would be an artefact of when the iterations stopped.
        return float("nan"), intercept
    return _logistic_slope(lp, outcome), intercept


def _logistic_slope(
    lp: NDArray[np.float64], outcome: NDArray[np.float64], n_iter: int = 50
) -> float:
    """Slope of ``logit P(outcome) = a + b * lp`` by Newton-Raphson (NaN if it diverges)."""
    a = b = 0.0
    for _ in range(n_iter):
        mu = expit(a + b * lp)
        w = mu * (1.0 - mu)
        r = outcome - mu
        h00, h01, h11 = w.sum(), (w * lp).sum(), (w * lp * lp).sum()
        g0, g1 = r.sum(), (r * lp).sum()
        det = h00 * h11 - h01 * h01
        if not det > 0:
            return float("nan")
        da, db = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        a, b = a + da, b + db
        if max(abs(da), abs(db)) < 1e-10:
            return float(b)
    return float("nan")


def _logistic_offset_intercept(
    lp: NDArray[np.float64], outcome: NDArray[np.float64], n_iter: int = 50
) -> float:
    """Intercept of ``logit P(outcome) = a + lp`` (``lp`` as offset) by Newton-Raphson."""
    a = 0.0
    for _ in range(n_iter):
        mu = expit(a + lp)
        hessian = float((mu * (1.0 - mu)).sum())
        if not hessian > 0:
            return float("nan")
        step = float((outcome - mu).sum()) / hessian
        a += step
        if abs(step) < 1e-10:
            break
    return float(a)
