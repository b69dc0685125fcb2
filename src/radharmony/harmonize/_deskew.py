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
