"""Intensity histogram features (IBSI 3.4, ``ih_*``) on the discretised ROI."""

from __future__ import annotations

import numpy as np

from radharmony.ibsi.families._common import as_levels, as_mask, n_grey_levels, safe_log2
from radharmony.ibsi.families.statistics import distribution_features


def _histogram_mode(counts: np.ndarray, mean: float) -> float:
    """Most frequent grey level; ties go to the level closest to the mean, then the lower one."""
    levels = np.arange(1, counts.size + 1, dtype=float)
    candidates = levels[counts == counts.max()]
    distance = np.abs(candidates - mean)
    return float(candidates[np.argmin(distance)])


def _histogram_gradient(counts: np.ndarray) -> np.ndarray:
    """Gradient of the (non-sparse) histogram: one-sided at both ends, central inside."""
    counts = counts.astype(float)
    if counts.size == 1:
        return np.zeros(1)
    return np.gradient(counts)


def intensity_histogram_features(
    levels: np.ndarray, intensity_mask: np.ndarray, n_levels: int | None = None
) -> dict[str, float]:
    """Intensity histogram features of the discretised ROI (``ih_*``).

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask (after re-segmentation).
    n_levels : int, optional
        Number of bins Ng of the discretisation; the histogram (and its gradient) spans 1..Ng
        including empty bins. Defaults to the highest grey level in the ROI.

    Returns
    -------
    dict
        The 16 distribution features of :func:`distribution_features` as ``ih_*``, plus
        ``ih_mode, ih_entropy, ih_uniformity, ih_max_grad, ih_max_grad_g, ih_min_grad,
        ih_min_grad_g``. Gradient positions are grey levels (the first one on ties).
    """
    mask = as_mask(intensity_mask, "intensity_mask")
    grey = as_levels(levels, mask)
    ng = n_grey_levels(grey, mask, n_levels)
    x = grey[mask]
    features = {f"ih_{k}": v for k, v in distribution_features(x).items()}
    counts = np.bincount(x - 1, minlength=ng)
    p = counts / counts.sum()
    gradient = _histogram_gradient(counts)
    features["ih_mode"] = _histogram_mode(counts, features["ih_mean"])
    features["ih_entropy"] = float(-(p * safe_log2(p)).sum())
    features["ih_uniformity"] = float((p**2).sum())
    features["ih_max_grad"] = float(gradient.max())
    features["ih_max_grad_g"] = float(np.argmax(gradient) + 1)
    features["ih_min_grad"] = float(gradient.min())
    features["ih_min_grad_g"] = float(np.argmin(gradient) + 1)
    return features
