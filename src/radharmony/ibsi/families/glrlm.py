"""Grey level run length matrix features (IBSI 3.7, ``rlm_*``) with all IBSI aggregations.

Runs are found without per-voxel loops: for a direction ``d`` every ROI voxel ``p`` is given a
line key ``p - t d`` (constant along the line) and a position ``t`` on it; after sorting by
(line, position) a run is a maximal stretch of consecutive positions with the same grey level.
Aggregation suffixes follow :mod:`radharmony.ibsi.families.glcm` (``2D_avg``, ``2D_comb``,
``2_5D_avg``, ``2_5D_comb``, ``3D_avg``, ``3D_comb``); when matrices are merged the voxel count
used by the run percentage is summed likewise.
"""

from __future__ import annotations

import numpy as np

from radharmony.ibsi.families._common import (
    as_levels,
    as_mask,
    check_dimension,
    crop_to_roi,
    nan_mean,
    slice_groups,
    suffixed,
    unique_directions,
    zone_matrix_features,
    zone_names,
)

RLM_NAMES = zone_names(
    "rlm",
    [
        "sre",
        "lre",
        "lgre",
        "hgre",
        "srlge",
        "srhge",
        "lrlge",
        "lrhge",
        "glnu",
        "glnu_norm",
        "rlnu",
        "rlnu_norm",
        "r_perc",
        "gl_var",
        "rl_var",
        "rl_entr",
    ],
)


def runs(levels: np.ndarray, mask: np.ndarray, direction: np.ndarray) -> dict[str, np.ndarray]:
    """Runs of equal grey level along ``direction`` inside ``mask``.

    Returns
    -------
    dict
        ``grey``, ``length`` and ``slice`` (axial index of the run's first voxel) per run.
    """
    coords = np.argwhere(mask)
    grey = levels[mask]
    axis = int(np.flatnonzero(direction)[0])
    position = coords[:, axis] * direction[axis]
    line = coords - position[:, None] * direction[None, :]
    order = np.lexsort((position, line[:, 2], line[:, 1], line[:, 0]))
    line, position, grey, start_z = line[order], position[order], grey[order], coords[order, 0]
    new_run = np.ones(len(grey), dtype=bool)
    new_run[1:] = (
        np.any(line[1:] != line[:-1], axis=1)
        | (position[1:] != position[:-1] + 1)
        | (grey[1:] != grey[:-1])
    )
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, len(grey)))
    return {"grey": grey[starts], "length": lengths, "slice": start_z[starts]}


def _features(found: list[dict[str, np.ndarray]], n_voxels: float) -> dict[str, float]:
    """Features of the matrix merging the runs of ``found`` (one entry per merged matrix)."""
    grey = np.concatenate([f["grey"] for f in found])
    length = np.concatenate([f["length"] for f in found])
    return zone_matrix_features(grey, length, n_voxels * len(found), RLM_NAMES)


def _select(found: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[index] for key, value in found.items()}


def glrlm_features(
    levels: np.ndarray, intensity_mask: np.ndarray, dimension: str = "3D"
) -> dict[str, float]:
    """Grey level run length matrix features.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask; runs stop at the ROI edge.
    dimension : {'3D', '2D'}
        '3D' gives ``rlm_*_3D_avg`` and ``rlm_*_3D_comb`` (13 directions); '2D' gives
        ``rlm_*_2D_avg``, ``rlm_*_2D_comb``, ``rlm_*_2_5D_avg`` and ``rlm_*_2_5D_comb``
        (4 in-slice directions).

    Returns
    -------
    dict
        IBSI tag to value for the 16 run length features per aggregation.
    """
    check_dimension(dimension)
    mask = as_mask(intensity_mask, "intensity_mask")
    mask, grey = crop_to_roi(mask, as_levels(levels, mask))
    n_voxels = float(mask.sum())
    per_direction = [runs(grey, mask, d) for d in unique_directions(dimension)]
    by_direction = nan_mean([_features([f], n_voxels) for f in per_direction])
    merged = _features(per_direction, n_voxels)
    if dimension == "3D":
        return {**suffixed(by_direction, "3D_avg"), **suffixed(merged, "3D_comb")}
    voxels_per_slice = mask.sum(axis=(1, 2)).astype(float)
    per_slice: dict[int, list[dict[str, np.ndarray]]] = {}
    for found in per_direction:
        for index in slice_groups(found["slice"]):
            per_slice.setdefault(int(found["slice"][index[0]]), []).append(_select(found, index))
    slice_direction = nan_mean(
        [_features([f], voxels_per_slice[z]) for z, group in per_slice.items() for f in group]
    )
    slice_merged = nan_mean(
        [_features(group, voxels_per_slice[z]) for z, group in per_slice.items()]
    )
    return {
        **suffixed(slice_direction, "2D_avg"),
        **suffixed(slice_merged, "2D_comb"),
        **suffixed(by_direction, "2_5D_avg"),
        **suffixed(merged, "2_5D_comb"),
    }
