"""Intensity-based statistical features (IBSI 3.3, ``stat_*``), computed in 3D on the ROI."""

from __future__ import annotations

import numpy as np

from radharmony.ibsi.families._common import as_mask, check_same_grid


def distribution_features(values: np.ndarray) -> dict[str, float]:
    """Return the moments, percentiles and dispersion measures shared by ``stat_*`` and ``ih_*``.

    Parameters
    ----------
    values : ndarray
        One value per ROI voxel (raw intensities or discretised grey levels).

    Returns
    -------
    dict
        Keys ``mean, var, skew, kurt, median, min, p10, p90, max, iqr, range, mad, rmad, medad,
        cov, qcod``. Variance, skewness and kurtosis use the population (1/N) moments; excess
        kurtosis is reported. Skewness and kurtosis are 0 for a constant ROI, as IBSI specifies.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    mean = float(x.mean())
    centred = x - mean
    var = float(np.mean(centred**2))
    if var > 0:
        skew = float(np.mean(centred**3) / var**1.5)
        kurt = float(np.mean(centred**4) / var**2 - 3.0)
    else:
        skew = kurt = 0.0
    p10, p25, median, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    return {
        "mean": mean,
        "var": var,
        "skew": skew,
        "kurt": kurt,
        "median": float(median),
        "min": float(x.min()),
        "p10": float(p10),
        "p90": float(p90),
        "max": float(x.max()),
        "iqr": float(p75 - p25),
        "range": float(x.max() - x.min()),
        "mad": float(np.mean(np.abs(centred))),
        # no value lies between P10 and P90 of two-valued tiny ROIs: undefined, not a warning
        "rmad": float(np.mean(np.abs(robust - robust.mean()))) if robust.size else float("nan"),
        "medad": float(np.mean(np.abs(x - median))),
        "cov": float(np.sqrt(var) / mean) if mean != 0 else float("nan"),
        "qcod": float((p75 - p25) / (p75 + p25)) if (p75 + p25) != 0 else float("nan"),
    }


def statistics_features(intensities: np.ndarray, intensity_mask: np.ndarray) -> dict[str, float]:
    """Intensity-based statistical features of the ROI (``stat_*``).

    Parameters
    ----------
    intensities : ndarray of shape (z, y, x)
        Re-segmented image intensities (not discretised).
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask (after re-segmentation).

    Returns
    -------
    dict
        ``stat_mean, stat_var, stat_skew, stat_kurt, stat_median, stat_min, stat_p10, stat_p90,
        stat_max, stat_iqr, stat_range, stat_mad, stat_rmad, stat_medad, stat_cov, stat_qcod,
        stat_energy, stat_rms``.
    """
    mask = as_mask(intensity_mask, "intensity_mask")
    intensities = np.asarray(intensities)
    check_same_grid(mask, intensities, ("intensity_mask", "intensities"))
    x = intensities[mask].astype(float)
    features = {f"stat_{k}": v for k, v in distribution_features(x).items()}
    features["stat_energy"] = float(np.sum(x**2))
    features["stat_rms"] = float(np.sqrt(np.mean(x**2)))
    return features
