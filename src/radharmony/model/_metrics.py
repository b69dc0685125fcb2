"""Discrimination and calibration metrics with cluster-bootstrap confidence intervals, and DeLong."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.special import expit, logit

# scipy >= 1.15 takes the bootstrap's generator as ``rng``; older releases as ``random_state``.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"

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
        offset; 0 is ideal). A metric that cannot be computed (one class only) is NaN.
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
) -> pd.DataFrame:
    """Return every metric with a bootstrap confidence interval (:func:`scipy.stats.bootstrap`).

    Resampling is by cluster when ``groups`` is given: whole patients are drawn with
    replacement, so lesions of one patient stay together as they are not independent.

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
        ``"BCa"`` (default), ``"percentile"`` or ``"basic"``. Metrics whose BCa interval is
        undefined (a constant statistic) fall back to the percentile interval.
    random_state : int
        Seed of the resampling.

    Returns
    -------
    pandas.DataFrame
        Index: metric names; columns ``estimate``, ``ci_low``, ``ci_high``.
    """
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    onehot = (np.asarray(y_true)[:, None] == classes[None, :]).astype(float)
    if groups is None:
        clusters = [np.array([i]) for i in range(len(onehot))]
    else:
        codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
        clusters = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]

    def statistic(cluster_index: NDArray[np.int_]) -> NDArray[np.float64]:
        rows = np.concatenate([clusters[c] for c in cluster_index])
        return _metric_vector(onehot[rows], proba[rows], 10)

    def interval(how: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        with warnings.catch_warnings():
            # Degenerate resamples (one class) give NaN for some metrics; scipy warns about them.
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (np.arange(len(clusters)),),
                statistic,
                vectorized=False,
                n_resamples=n_resamples,
                confidence_level=confidence_level,
                method=how,
                **{_RNG_KEYWORD: np.random.default_rng(random_state)},
            )
        ci = result.confidence_interval
        return np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)

    estimate = _metric_vector(onehot, proba, 10)
    low, high = interval(method)
    failed = np.isfinite(estimate) & ~(np.isfinite(low) & np.isfinite(high))
    if failed.any() and method != "percentile":
        # BCa is undefined when every resample gives the same value (e.g. specificity 0);
        # the percentile interval is then the honest (degenerate) answer.
        fallback_low, fallback_high = interval("percentile")
        low, high = np.where(failed, fallback_low, low), np.where(failed, fallback_high, high)
    return pd.DataFrame(
        {"estimate": estimate, "ci_low": low, "ci_high": high},
        index=pd.Index(METRIC_NAMES, name="metric"),
    )


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
    """All metrics, in ``METRIC_NAMES`` order, from one-hot labels and probabilities."""
    n_classes = onehot.shape[1]
    present = onehot.sum(axis=0) > 0
    if present.sum() < 2:
        return np.full(len(METRIC_NAMES), np.nan)
    true_index = onehot.argmax(axis=1)
    pred_index = proba.argmax(axis=1)
    recall = np.array(
        [
            np.mean(pred_index[true_index == k] == k) if present[k] else np.nan
            for k in range(n_classes)
        ]
    )
    specificity = np.array([np.mean(pred_index[true_index != k] != k) for k in range(n_classes)])
    if n_classes == 2:
        positive = onehot[:, 1]
        auc = binary_auc(positive, proba[:, 1])
        sensitivity, spec = recall[1], recall[0]
        brier = float(np.mean((proba[:, 1] - positive) ** 2))
        slope, intercept = _calibration_slope_intercept(positive, proba[:, 1])
        ece = _expected_calibration_error(positive, proba[:, 1], n_bins)
    else:
        auc = float(np.nanmean([binary_auc(onehot[:, k], proba[:, k]) for k in range(n_classes)]))
        sensitivity, spec = np.nanmean(recall), float(np.mean(specificity))
        brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        slopes = np.array(
            [_calibration_slope_intercept(onehot[:, k], proba[:, k]) for k in range(n_classes)]
        )
        slope, intercept = np.nanmean(slopes, axis=0)
        correct = (pred_index == true_index).astype(float)
        ece = _expected_calibration_error(correct, proba.max(axis=1), n_bins)
    balanced_accuracy = float(np.nanmean(recall))
    return np.array(
        [auc, balanced_accuracy, sensitivity, spec, brier, slope, intercept, ece], dtype=float
    )


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
    return _logistic_slope(lp, outcome), _logistic_offset_intercept(lp, outcome)


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
    return float(b) if abs(b) < 1e6 else float("nan")


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
