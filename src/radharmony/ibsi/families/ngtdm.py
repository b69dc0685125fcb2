"""Neighbourhood grey tone difference matrix features (IBSI 3.10, ``ngt_*``), 2D/2.5D/3D."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radharmony.ibsi.families._common import (
    as_levels,
    as_mask,
    check_dimension,
    crop_to_roi,
    nan_mean,
    slice_groups,
    suffixed,
)

NGT_TAGS = ("ngt_coarseness", "ngt_contrast", "ngt_busyness", "ngt_complexity", "ngt_strength")


def _neighbour_means(
    levels: np.ndarray, mask: np.ndarray, dimension: str
) -> tuple[np.ndarray, np.ndarray]:
    """Mean grey level of the ROI neighbours (Chebyshev distance 1) and their number, per voxel."""
    kernel = np.ones((3, 3, 3))
    kernel[1, 1, 1] = 0.0
    if dimension == "2D":
        kernel[0] = kernel[2] = 0.0
    inside = mask.astype(float)
    sums = ndimage.correlate(levels * inside, kernel, mode="constant", cval=0.0)
    counts = np.rint(ndimage.correlate(inside, kernel, mode="constant", cval=0.0))
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return means, counts


def ngtdm_matrix_features(n: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """NGTDM features from the voxel counts ``n_i`` and grey tone differences ``s_i``.

    Parameters
    ----------
    n, s : ndarray of shape (Ng,)
        For grey level ``i + 1``: number of voxels with at least one ROI neighbour, and the sum
        of their absolute differences to the neighbourhood mean.

    Returns
    -------
    dict
        ``ngt_coarseness, ngt_contrast, ngt_busyness, ngt_complexity, ngt_strength`` (IBSI
        definitions; a zero denominator gives NaN except coarseness, which IBSI caps at 1e6).
    """
    n_valid = float(n.sum())
    if n_valid == 0:
        return dict.fromkeys(NGT_TAGS, float("nan"))
    present = n > 0
    i = np.arange(1, n.size + 1, dtype=float)[present]
    p = n[present] / n_valid
    s = s[present].astype(float)
    n_gp = int(present.sum())
    ps = p * s
    di = i[:, None] - i[None, :]
    pi, pj = p[:, None], p[None, :]
    sum_ps = float(ps.sum())
    sum_s = float(s.sum())
    coarseness = 1.0 / sum_ps if sum_ps > 0 else 1e6
    contrast = (
        float((pi * pj * di**2).sum()) / (n_gp * (n_gp - 1)) * sum_s / n_valid if n_gp > 1 else 0.0
    )
    busy_den = float(np.abs(i[:, None] * pi - i[None, :] * pj).sum())
    busyness = sum_ps / busy_den if busy_den > 0 else 0.0
    complexity = float((np.abs(di) * (ps[:, None] + ps[None, :]) / (pi + pj)).sum()) / n_valid
    strength = float(((pi + pj) * di**2).sum()) / sum_s if sum_s > 0 else 0.0
    return dict(zip(NGT_TAGS, (coarseness, contrast, busyness, complexity, strength), strict=True))


def ngtdm_features(
    levels: np.ndarray, intensity_mask: np.ndarray, dimension: str = "3D"
) -> dict[str, float]:
    """Neighbourhood grey tone difference matrix features (Chebyshev distance 1).

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask; neighbourhood means use ROI voxels only and voxels without any ROI
        neighbour are left out.
    dimension : {'3D', '2D'}
        '3D' gives ``ngt_*_3D``; '2D' gives ``ngt_*_2D`` (per slice, averaged) and
        ``ngt_*_2_5D`` (slice matrices merged by summing ``n_i`` and ``s_i``).

    Returns
    -------
    dict
        IBSI tag to value for the 5 NGTDM features.
    """
    check_dimension(dimension)
    mask = as_mask(intensity_mask, "intensity_mask")
    mask, grey = crop_to_roi(mask, as_levels(levels, mask))
    means, counts = _neighbour_means(grey.astype(float), mask, dimension)
    valid = mask & (counts > 0)
    g = grey[valid]
    diff = np.abs(g - means[valid])
    ng = int(grey[mask].max())
    n_all = np.bincount(g - 1, minlength=ng)
    s_all = np.bincount(g - 1, weights=diff, minlength=ng)
    if dimension == "3D":
        return suffixed(ngtdm_matrix_features(n_all, s_all), "3D")
    slices = np.nonzero(valid)[0]
    per_slice = [
        ngtdm_matrix_features(
            np.bincount(g[idx] - 1, minlength=ng),
            np.bincount(g[idx] - 1, weights=diff[idx], minlength=ng),
        )
        for idx in slice_groups(slices)
    ]
    return {
        **suffixed(nan_mean(per_slice), "2D"),
        **suffixed(ngtdm_matrix_features(n_all, s_all), "2_5D"),
    }
