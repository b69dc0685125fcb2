"""Neighbouring grey level dependence matrix features (IBSI 3.11, ``ngl_*``), 2D/2.5D/3D."""

from __future__ import annotations

import numpy as np

from radharmony.errors import SettingsError
from radharmony.ibsi.families._common import (
    as_levels,
    as_mask,
    check_dimension,
    crop_to_roi,
    neighbour_offsets,
    shifted,
    zone_family_features,
    zone_names,
)

NGL_NAMES = zone_names(
    "ngl",
    [
        "lde",
        "hde",
        "lgce",
        "hgce",
        "ldlge",
        "ldhge",
        "hdlge",
        "hdhge",
        "glnu",
        "glnu_norm",
        "dcnu",
        "dcnu_norm",
        "dc_perc",
        "gl_var",
        "dc_var",
        "dc_entr",
        "dc_energy",
    ],
)


def dependence_counts(
    levels: np.ndarray, mask: np.ndarray, dimension: str, alpha: int = 0
) -> np.ndarray:
    """Dependence count of every voxel: 1 + ROI neighbours within Chebyshev distance 1 whose
    grey level differs by at most ``alpha`` (in-slice neighbours only for 2D)."""
    counts = np.ones(levels.shape, dtype=np.int64)
    for offset in neighbour_offsets(dimension):
        neighbour_in = shifted(mask, offset, False)
        neighbour_level = shifted(levels, offset, 0)
        counts += neighbour_in & (np.abs(neighbour_level - levels) <= alpha)
    return counts


def ngldm_features(
    levels: np.ndarray, intensity_mask: np.ndarray, dimension: str = "3D", alpha: int = 0
) -> dict[str, float]:
    """Neighbouring grey level dependence matrix features (Chebyshev distance 1).

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask; every ROI voxel is a neighbourhood centre, and only ROI
        neighbours can be dependent.
    dimension : {'3D', '2D'}
        '3D' gives ``ngl_*_3D``; '2D' gives ``ngl_*_2D`` (per slice, averaged) and
        ``ngl_*_2_5D`` (slice matrices merged).
    alpha : int
        Coarseness: neighbours are dependent when their grey levels differ by <= alpha.

    Returns
    -------
    dict
        IBSI tag to value for the 17 dependence features, including the dependence count
        energy (``ngl_dc_energy_*``).
    """
    check_dimension(dimension)
    if alpha < 0:
        raise SettingsError(f"NGLDM alpha={alpha} must be a non-negative integer.")
    mask = as_mask(intensity_mask, "intensity_mask")
    mask, grey = crop_to_roi(mask, as_levels(levels, mask))
    counts = dependence_counts(grey, mask, dimension, alpha)
    slices = np.nonzero(mask)[0]
    return zone_family_features(grey[mask], counts[mask], slices, mask, dimension, NGL_NAMES)
