"""De-skewing of heavy-tailed features, fitted on training rows and applied to any rows.

ComBat's location/scale model assumes roughly symmetric noise; radiomic features such as
volumes, energies and run-length emphases are often strongly right-skewed. Skewed columns are
robust-scaled (median, interquartile range) and Yeo-Johnson transformed with the transform
learned on the training rows.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.preprocessing import PowerTransformer


def skewness(values: np.ndarray) -> np.ndarray:
    """Return the sample skewness of each column (0 for constant columns)."""
    # Near-constant columns make scipy warn about precision loss; their skewness is irrelevant.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skew = stats.skew(values, axis=0, bias=False)
    return np.nan_to_num(np.asarray(skew, dtype=float))


def fit_deskew(
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, PowerTransformer | None]:
    """Fit the robust scaling and Yeo-Johnson transform of the given (skewed) columns."""
    if values.shape[1] == 0:
        return np.zeros(0), np.ones(0), None
    center = np.median(values, axis=0)
    q75, q25 = np.percentile(values, [75, 25], axis=0)
    scale = q75 - q25
    # Yeo-Johnson is not scale invariant; a robust scale keeps the lambda search well posed for
    # features measured in thousands (volumes, energies).
    fallback = np.std(values, axis=0)
    scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))
    power = PowerTransformer(method="yeo-johnson", standardize=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Nearly constant columns make the lambda search warn; the fit is still usable.
        warnings.simplefilter("ignore", RuntimeWarning)
        power.fit((values - center) / scale)
    return center, scale, power


def apply_deskew(
    values: np.ndarray,
    skewed: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    power: PowerTransformer | None,
) -> np.ndarray:
    """Return ``values`` with the skewed columns robust-scaled and Yeo-Johnson transformed."""
    out = values.copy()
    if power is not None:
        scaled = (values[:, skewed] - center) / scale
        out[:, skewed] = power.transform(scaled)
    return out


#: At most this many landmarks (distinct training values) are kept per column.
_MAX_LANDMARKS = 1000
#: Beyond the training range, normal scores continue along the secant through the outermost
#: landmark and the landmark this fraction of the way inwards.
_TAIL_FRACTION = 0.05


def fit_normal_scores(values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit, per column, the map from training values to their rank-based normal scores.

    Each distinct training value gets ``Phi^-1`` of its mid-rank cumulative share (tied values
    share one score), so the training column becomes normal whatever its tails.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)

    Returns
    -------
    list of (landmarks, scores)
        Increasing training values and their normal scores, per column.
    """
    n = values.shape[0]
    maps = []
    for j in range(values.shape[1]):
        unique, counts = np.unique(values[:, j], return_counts=True)
        share = (np.cumsum(counts) - counts / 2.0) / n
        scores = stats.norm.ppf(share)
        if unique.size > _MAX_LANDMARKS:
            keep = np.unique(np.linspace(0, unique.size - 1, _MAX_LANDMARKS).round().astype(int))
            unique, scores = unique[keep], scores[keep]
        maps.append((unique.astype(float), scores.astype(float)))
    return maps


def apply_normal_scores(
    values: np.ndarray, columns: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Return ``values`` with the given columns replaced by their normal scores.

    Values between training values are interpolated linearly; values outside the training
    range continue linearly (so new extreme rows stay ordered instead of being clipped).
    """
    out = values.copy()
    for j, (landmarks, scores) in zip(np.flatnonzero(columns), maps, strict=True):
        out[:, j] = _interpolate(values[:, j], landmarks, scores)
    return out


def _interpolate(x: np.ndarray, landmarks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if landmarks.size == 1:
        return np.zeros_like(x)
    z = np.interp(x, landmarks, scores)
    k = max(1, int(round(_TAIL_FRACTION * (landmarks.size - 1))))
    low_slope = (scores[k] - scores[0]) / (landmarks[k] - landmarks[0])
    high_slope = (scores[-1] - scores[-1 - k]) / (landmarks[-1] - landmarks[-1 - k])
    below, above = x < landmarks[0], x > landmarks[-1]
    z[below] = scores[0] + low_slope * (x[below] - landmarks[0])
    z[above] = scores[-1] + high_slope * (x[above] - landmarks[-1])
    return z


def invert_normal_scores(
    scores: np.ndarray, columns: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Return ``scores`` with the given columns mapped back to the training units.

    The exact inverse of :func:`apply_normal_scores` (both maps are piecewise linear and
    increasing, with the same linear continuation beyond the training range).
    """
    out = scores.copy()
    for j, (landmarks, normal) in zip(np.flatnonzero(columns), maps, strict=True):
        if landmarks.size == 1:
            out[:, j] = landmarks[0]
            continue
        out[:, j] = _interpolate(scores[:, j], normal, landmarks)
    return out
