"""Grey level co-occurrence matrix features (IBSI 3.6, ``cm_*``) with all IBSI aggregations.

Matrices are symmetric, at Chebyshev distance 1, one per direction (4 in-slice directions for
2D, 13 for 3D) and per axial slice. Aggregations, as tagged in the IBSI reference tables:

- ``2D_avg``: features per slice and direction, averaged (IBSI BTW3);
- ``2D_comb``: directions merged per slice, features averaged over slices (SUJT);
- ``2_5D_avg``: slices merged per direction, features averaged over directions (JJUI);
- ``2_5D_comb``: all 2D matrices merged (ZW7Z);
- ``3D_avg``: features per 3D direction, averaged (ITBB);
- ``3D_comb``: all 3D directional matrices merged (IAZD).
"""

from __future__ import annotations

import numpy as np

from radharmony.ibsi.families._common import (
    as_levels,
    as_mask,
    check_dimension,
    crop_to_roi,
    n_grey_levels,
    nan_mean,
    safe_log2,
    shifted,
    suffixed,
    unique_directions,
)

CM_TAGS = (
    "cm_joint_max",
    "cm_joint_avg",
    "cm_joint_var",
    "cm_joint_entr",
    "cm_diff_avg",
    "cm_diff_var",
    "cm_diff_entr",
    "cm_sum_avg",
    "cm_sum_var",
    "cm_sum_entr",
    "cm_energy",
    "cm_contrast",
    "cm_dissimilarity",
    "cm_inv_diff",
    "cm_inv_diff_norm",
    "cm_inv_diff_mom",
    "cm_inv_diff_mom_norm",
    "cm_inv_var",
    "cm_corr",
    "cm_auto_corr",
    "cm_clust_tend",
    "cm_clust_shade",
    "cm_clust_prom",
    "cm_info_corr1",
    "cm_info_corr2",
)


def cooccurrence_counts(
    levels: np.ndarray, mask: np.ndarray, direction: np.ndarray, ng: int
) -> np.ndarray:
    """Symmetric co-occurrence counts per axial slice, shape (n_slices, ng, ng).

    A pair is attributed to the slice of its first voxel (only matters across slices in 3D,
    where the slice matrices are always summed).
    """
    partner_in = shifted(mask, direction, False)
    partner = shifted(levels, direction, 0)
    valid = mask & partner_in
    z = np.nonzero(valid)[0]
    index = (z * ng + (levels[valid] - 1)) * ng + (partner[valid] - 1)
    counts = np.bincount(index, minlength=levels.shape[0] * ng * ng).reshape(-1, ng, ng)
    return counts + counts.transpose(0, 2, 1)


def _entropy(p: np.ndarray) -> float:
    return float(-(p * safe_log2(p)).sum())


def glcm_matrix_features(counts: np.ndarray) -> dict[str, float]:
    """The 25 IBSI co-occurrence features of one (possibly merged) matrix ``counts`` (ng, ng).

    ``Ng`` in the normalised inverse differences is the matrix size, i.e. the number of grey
    levels of the discretisation.
    """
    total = float(counts.sum())
    if total == 0:
        return dict.fromkeys(CM_TAGS, float("nan"))
    ng = counts.shape[0]
    p = counts / total
    levels = np.arange(1, ng + 1, dtype=float)
    i, j = levels[:, None], levels[None, :]
    px = p.sum(axis=1)
    mu = float((levels * px).sum())
    var = float(((levels - mu) ** 2 * px).sum())
    k = np.abs(i - j).astype(int)
    p_diff = np.bincount(k.ravel(), weights=p.ravel(), minlength=ng)
    k_sum = (i + j).astype(int)
    p_sum = np.bincount(k_sum.ravel(), weights=p.ravel(), minlength=2 * ng + 1)
    d_vals = np.arange(ng, dtype=float)
    s_vals = np.arange(2 * ng + 1, dtype=float)
    diff_avg = float((d_vals * p_diff).sum())
    sum_avg = float((s_vals * p_sum).sum())
    hxy = _entropy(p)
    hx = _entropy(px)
    outer = px[:, None] * px[None, :]
    hxy1 = float(-(p * safe_log2(outer)).sum())
    hxy2 = _entropy(outer)
    centred = i + j - 2 * mu
    inv_var_terms = np.divide(p_diff[1:], d_vals[1:] ** 2)
    return {
        "cm_joint_max": float(p.max()),
        "cm_joint_avg": float((i * p).sum()),
        "cm_joint_var": float(((i - mu) ** 2 * p).sum()),
        "cm_joint_entr": hxy,
        "cm_diff_avg": diff_avg,
        "cm_diff_var": float(((d_vals - diff_avg) ** 2 * p_diff).sum()),
        "cm_diff_entr": _entropy(p_diff),
        "cm_sum_avg": sum_avg,
        "cm_sum_var": float(((s_vals - sum_avg) ** 2 * p_sum).sum()),
        "cm_sum_entr": _entropy(p_sum),
        "cm_energy": float((p**2).sum()),
        "cm_contrast": float(((i - j) ** 2 * p).sum()),
        "cm_dissimilarity": float((np.abs(i - j) * p).sum()),
        "cm_inv_diff": float((p / (1 + np.abs(i - j))).sum()),
        "cm_inv_diff_norm": float((p / (1 + np.abs(i - j) / ng)).sum()),
        "cm_inv_diff_mom": float((p / (1 + (i - j) ** 2)).sum()),
        "cm_inv_diff_mom_norm": float((p / (1 + (i - j) ** 2 / ng**2)).sum()),
        "cm_inv_var": float(inv_var_terms.sum()),
        "cm_corr": float(((i - mu) * (j - mu) * p).sum() / var) if var > 0 else float("nan"),
        "cm_auto_corr": float((i * j * p).sum()),
        "cm_clust_tend": float((centred**2 * p).sum()),
        "cm_clust_shade": float((centred**3 * p).sum()),
        "cm_clust_prom": float((centred**4 * p).sum()),
        "cm_info_corr1": (hxy - hxy1) / hx if hx > 0 else float("nan"),
        "cm_info_corr2": float(np.sqrt(max(1.0 - np.exp(-2.0 * (hxy2 - hxy)), 0.0))),
    }


def glcm_features(
    levels: np.ndarray,
    intensity_mask: np.ndarray,
    dimension: str = "3D",
    n_levels: int | None = None,
) -> dict[str, float]:
    """Grey level co-occurrence matrix features.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask; only pairs of ROI voxels co-occur.
    dimension : {'3D', '2D'}
        '3D' gives ``cm_*_3D_avg`` and ``cm_*_3D_comb``; '2D' gives ``cm_*_2D_avg``,
        ``cm_*_2D_comb``, ``cm_*_2_5D_avg`` and ``cm_*_2_5D_comb`` (see module docstring).
    n_levels : int, optional
        Number of grey levels Ng of the discretisation (matrix size). Defaults to the highest
        grey level in the ROI.

    Returns
    -------
    dict
        IBSI tag to value for the 25 co-occurrence features per aggregation.
    """
    check_dimension(dimension)
    mask = as_mask(intensity_mask, "intensity_mask")
    grey_full = as_levels(levels, mask)
    ng = n_grey_levels(grey_full, mask, n_levels)
    mask, grey = crop_to_roi(mask, grey_full)
    per_direction = [cooccurrence_counts(grey, mask, d, ng) for d in unique_directions(dimension)]
    merged_slices = [c.sum(axis=0) for c in per_direction]
    by_direction = nan_mean([glcm_matrix_features(c) for c in merged_slices])
    fully_merged = glcm_matrix_features(np.sum(merged_slices, axis=0))
    if dimension == "3D":
        return {**suffixed(by_direction, "3D_avg"), **suffixed(fully_merged, "3D_comb")}
    stack = np.stack(per_direction)  # (direction, slice, ng, ng)
    occupied = np.flatnonzero(mask.any(axis=(1, 2)))
    per_slice_direction = nan_mean(
        [glcm_matrix_features(stack[d, z]) for z in occupied for d in range(stack.shape[0])]
    )
    per_slice = nan_mean([glcm_matrix_features(stack[:, z].sum(axis=0)) for z in occupied])
    return {
        **suffixed(per_slice_direction, "2D_avg"),
        **suffixed(per_slice, "2D_comb"),
        **suffixed(by_direction, "2_5D_avg"),
        **suffixed(fully_merged, "2_5D_comb"),
    }
