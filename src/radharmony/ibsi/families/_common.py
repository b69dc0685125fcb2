"""Shared helpers of the IBSI feature families: input checks, neighbourhoods, matrix features.

Arrays are indexed (z, y, x) and spacings are given in the same order, in millimetres.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from radharmony.errors import EmptyMaskError, GeometryMismatchError, SettingsError

DIMENSIONS = ("2D", "3D")


def check_dimension(dimension: str) -> str:
    """Return ``dimension`` after checking it names a supported texture dimension."""
    if dimension not in DIMENSIONS:
        raise SettingsError(
            f"dimension={dimension!r} is not supported; use '2D' (per axial slice, also gives "
            "the IBSI 2.5D merged values) or '3D'."
        )
    return dimension


def as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Return ``mask`` as a 3D boolean array, raising when it is not 3D or holds no voxel."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise GeometryMismatchError(
            f"{name} has {mask.ndim} dimensions; pass a 3D array indexed (z, y, x) "
            "(add a leading axis of length 1 for a single slice)."
        )
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise EmptyMaskError(f"{name} holds no voxel; check the segmentation and re-segmentation.")
    return mask


def check_same_grid(reference: np.ndarray, other: np.ndarray, names: tuple[str, str]) -> None:
    """Raise when two arrays do not share the same voxel grid."""
    if reference.shape != other.shape:
        raise GeometryMismatchError(
            f"{names[0]} has shape {reference.shape} but {names[1]} has shape {other.shape}; "
            "resample both onto the same grid before computing features."
        )


def as_spacing(spacing: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """Return the voxel spacing as a float array of three positive values (z, y, x) in mm."""
    spacing_arr = np.asarray(spacing, dtype=float).reshape(-1)
    if spacing_arr.size != 3 or np.any(spacing_arr <= 0) or not np.all(np.isfinite(spacing_arr)):
        raise SettingsError(
            f"spacing={tuple(spacing_arr)} is invalid; give three positive (z, y, x) spacings in mm."
        )
    return spacing_arr


def as_levels(levels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return discretised grey levels as int64, checking they are >= 1 inside ``mask``."""
    levels = np.asarray(levels)
    check_same_grid(mask, levels, ("intensity_mask", "levels"))
    inside = levels[mask]
    if not np.all(np.isfinite(inside)) or np.any(inside != np.round(inside)) or inside.min() < 1:
        raise SettingsError(
            "levels must hold integer grey levels >= 1 inside the intensity mask; discretise the "
            "image (fixed bin size or fixed bin number) before computing texture features."
        )
    out = np.zeros(levels.shape, dtype=np.int64)
    out[mask] = inside.astype(np.int64)
    return out


def n_grey_levels(levels: np.ndarray, mask: np.ndarray, n_levels: int | None) -> int:
    """Return the number of grey levels: ``n_levels`` when given, else the largest level present."""
    highest = int(levels[mask].max())
    if n_levels is None:
        return highest
    if n_levels < highest:
        raise SettingsError(
            f"n_levels={n_levels} is smaller than the highest grey level {highest} in the ROI; "
            "pass the number of bins of the discretisation (or leave it unset)."
        )
    return int(n_levels)


def neighbour_offsets(dimension: str) -> np.ndarray:
    """Return all offsets at Chebyshev distance 1 (8 in-plane for 2D, 26 for 3D), as (n, 3)."""
    dz_values = (0,) if dimension == "2D" else (-1, 0, 1)
    offsets = [
        (dz, dy, dx)
        for dz, dy, dx in itertools.product(dz_values, (-1, 0, 1), (-1, 0, 1))
        if (dz, dy, dx) != (0, 0, 0)
    ]
    return np.array(offsets, dtype=np.int64)


def unique_directions(dimension: str) -> np.ndarray:
    """Return one of each pair of opposite offsets (4 for 2D, 13 for 3D), as (n, 3)."""
    offsets = neighbour_offsets(dimension)
    keep = [tuple(o) > (0, 0, 0) for o in offsets.tolist()]
    return offsets[np.array(keep)]


def shifted(array: np.ndarray, offset: np.ndarray, fill: float | bool = 0) -> np.ndarray:
    """Return ``out`` with ``out[p] = array[p + offset]`` and ``fill`` where ``p + offset`` is off-grid."""
    out = np.full(array.shape, fill, dtype=array.dtype)
    src = []
    dst = []
    for size, step in zip(array.shape, offset, strict=True):
        step = int(step)
        if abs(step) >= size:
            return out
        src.append(slice(max(step, 0), size + min(step, 0)))
        dst.append(slice(max(-step, 0), size - max(step, 0)))
    out[tuple(dst)] = array[tuple(src)]
    return out


def nan_mean(values: list[dict[str, float]]) -> dict[str, float]:
    """Average feature dictionaries key by key, ignoring undefined (NaN) values."""
    if not values:
        return {}
    keys = values[0].keys()
    table = np.array([[v[k] for k in keys] for v in values], dtype=float)
    means = np.full(table.shape[1], np.nan)
    defined = np.isfinite(table).any(axis=0)
    means[defined] = np.nanmean(table[:, defined], axis=0)
    return dict(zip(keys, means.tolist(), strict=True))


def suffixed(features: Mapping[str, float], suffix: str) -> dict[str, float]:
    """Append the IBSI aggregation suffix (e.g. ``_2D_avg``) to every feature name."""
    return {f"{name}_{suffix}": float(value) for name, value in features.items()}


def safe_log2(p: np.ndarray) -> np.ndarray:
    """Return log2 of ``p`` with 0 where ``p`` is 0, so that 0 * log 0 counts as 0."""
    out = np.zeros_like(p, dtype=float)
    positive = p > 0
    out[positive] = np.log2(p[positive])
    return out


def zone_matrix_features(
    grey: np.ndarray, column: np.ndarray, n_voxels: float, names: Mapping[str, str]
) -> dict[str, float]:
    """Features shared by run-length, size-zone, distance-zone and dependence matrices.

    The matrix is given sparsely as one entry per counted entity (run, zone or neighbourhood),
    which keeps memory bounded when zone sizes reach the number of ROI voxels.

    Parameters
    ----------
    grey : ndarray of int
        Grey level ``i`` (>= 1) of every entity.
    column : ndarray of int
        Run length, zone size, zone distance or dependence count ``j`` (>= 1) of every entity.
    n_voxels : float
        Number of voxels behind the matrix (summed when matrices were merged).
    names : mapping
        Generic feature key (see :func:`zone_names`) to the family's IBSI tag.

    Returns
    -------
    dict
        IBSI tag to value; NaN everywhere when there is no entity.
    """
    total = float(grey.size)
    if total == 0:
        return {tag: float("nan") for tag in names.values()}
    i = grey.astype(float)
    j = column.astype(float)
    row = np.bincount(grey.astype(np.int64)).astype(float)
    col = np.bincount(column.astype(np.int64)).astype(float)
    mu_i = i.mean()
    mu_j = j.mean()
    key = grey.astype(np.int64) * (int(column.max()) + 1) + column.astype(np.int64)
    p_cell = np.unique(key, return_counts=True)[1] / total
    values = {
        "short": np.mean(1.0 / j**2),
        "long": np.mean(j**2),
        "lgl": np.mean(1.0 / i**2),
        "hgl": np.mean(i**2),
        "s_lgl": np.mean(1.0 / (i**2 * j**2)),
        "s_hgl": np.mean(i**2 / j**2),
        "l_lgl": np.mean(j**2 / i**2),
        "l_hgl": np.mean(i**2 * j**2),
        "glnu": (row**2).sum() / total,
        "glnu_norm": (row**2).sum() / total**2,
        "jnu": (col**2).sum() / total,
        "jnu_norm": (col**2).sum() / total**2,
        "perc": total / n_voxels,
        "gl_var": np.mean((i - mu_i) ** 2),
        "j_var": np.mean((j - mu_j) ** 2),
        "entr": -(p_cell * np.log2(p_cell)).sum(),
        "energy": (p_cell**2).sum(),
    }
    return {tag: float(values[key_]) for key_, tag in names.items()}


def zone_names(prefix: str, short: list[str]) -> dict[str, str]:
    """Map generic zone-matrix feature keys to IBSI tags ``prefix_<short name>``."""
    keys = [
        "short",
        "long",
        "lgl",
        "hgl",
        "s_lgl",
        "s_hgl",
        "l_lgl",
        "l_hgl",
        "glnu",
        "glnu_norm",
        "jnu",
        "jnu_norm",
        "perc",
        "gl_var",
        "j_var",
        "entr",
        "energy",
    ]
    return {key: f"{prefix}_{name}" for key, name in zip(keys, short, strict=False)}


def crop_to_roi(mask: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Crop ``mask`` and ``arrays`` to the bounding box of ``mask`` (texture needs no margin)."""
    where = np.argwhere(mask)
    box = tuple(
        slice(lo, hi + 1) for lo, hi in zip(where.min(axis=0), where.max(axis=0), strict=True)
    )
    return (mask[box], *(a[box] for a in arrays))


def slice_groups(slice_ids: np.ndarray) -> list[np.ndarray]:
    """Indices of the entities of each axial slice, one array per slice that has entities."""
    order = np.argsort(slice_ids, kind="stable")
    _, starts = np.unique(slice_ids[order], return_index=True)
    return np.split(order, starts[1:])


def zone_family_features(
    grey: np.ndarray,
    column: np.ndarray,
    slices: np.ndarray,
    mask: np.ndarray,
    dimension: str,
    names: Mapping[str, str],
) -> dict[str, float]:
    """Aggregate a direction-free zone-type matrix (SZM, DZM, NGLDM) the IBSI ways.

    For ``dimension='3D'`` the entities come from 3D neighbourhoods and one 3D matrix gives
    ``*_3D``. For ``'2D'`` they come from in-slice neighbourhoods: features of each slice's
    matrix are averaged over slices (``*_2D``) and the merged matrix of all slices gives
    ``*_2_5D`` (voxel counts summed likewise).
    """
    if dimension == "3D":
        return suffixed(zone_matrix_features(grey, column, float(mask.sum()), names), "3D")
    voxels_per_slice = mask.sum(axis=(1, 2))
    per_slice = [
        zone_matrix_features(grey[idx], column[idx], float(voxels_per_slice[slices[idx[0]]]), names)
        for idx in slice_groups(slices)
    ]
    merged = zone_matrix_features(grey, column, float(mask.sum()), names)
    return {**suffixed(nan_mean(per_slice), "2D"), **suffixed(merged, "2_5D")}
