"""IBSI chapter 1 feature families computed directly with numpy/scipy.

These cover the families and aggregations pyradiomics does not produce (intensity histogram,
intensity-volume histogram, local intensity peaks, morphology extras, statistics extras, grey
level distance zone matrix, the full NGLDM, and true per-slice 2D texture aggregation), plus the
texture families needed for the 2D/2.5D/3D IBSI variants. Every function takes already
processed arrays indexed (z, y, x) and returns ``{ibsi_tag: value}`` with tags spelled as in the
IBSI reference tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from radharmony.errors import SettingsError
from radharmony.ibsi.families._common import check_dimension
from radharmony.ibsi.families.dzm import dzm_features
from radharmony.ibsi.families.glcm import glcm_features
from radharmony.ibsi.families.glrlm import glrlm_features
from radharmony.ibsi.families.glszm import szm_features
from radharmony.ibsi.families.intensity_histogram import intensity_histogram_features
from radharmony.ibsi.families.ivh import ivh_features
from radharmony.ibsi.families.local_intensity import local_intensity_features
from radharmony.ibsi.families.morphology import morphology_features
from radharmony.ibsi.families.ngldm import ngldm_features
from radharmony.ibsi.families.ngtdm import ngtdm_features
from radharmony.ibsi.families.statistics import statistics_features

#: Family names accepted by :func:`compute_families`, with their IBSI tag prefix.
FAMILIES: dict[str, str] = {
    "morphology": "morph",
    "local_intensity": "loc",
    "statistics": "stat",
    "intensity_histogram": "ih",
    "ivh": "ivh",
    "glcm": "cm",
    "glrlm": "rlm",
    "glszm": "szm",
    "gldzm": "dzm",
    "ngtdm": "ngt",
    "ngldm": "ngl",
}


def compute_families(
    intensities: np.ndarray,
    levels: np.ndarray,
    intensity_mask: np.ndarray,
    morph_mask: np.ndarray | None = None,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    dimension: str = "3D",
    *,
    image: np.ndarray | None = None,
    n_levels: int | None = None,
    ivh_range: tuple[float | None, float | None] | None = None,
    ivh_bin_width: float | None = None,
    ivh_n_bins: int | None = None,
    mesh: tuple[float, float] | None = None,
    families: Iterable[str] | None = None,
) -> dict[str, float]:
    """Compute every IBSI family of this package for one ROI.

    Parameters
    ----------
    intensities : ndarray of float, shape (z, y, x)
        Processed (interpolated, re-segmented) image intensities, not discretised.
    levels : ndarray of int, same shape
        Discretised grey levels 1..Ng inside ``intensity_mask``.
    intensity_mask : ndarray of bool, same shape
        ROI after re-segmentation.
    morph_mask : ndarray of bool, same shape, optional
        ROI before re-segmentation (morphology, DZM distances). Defaults to ``intensity_mask``.
    spacing : (z, y, x) in mm
    dimension : {'3D', '2D'}
        Texture dimension. '2D' returns the per-slice (``*_2D``, ``*_2D_avg``, ``*_2D_comb``)
        and slice-merged (``*_2_5D*``) texture values; '3D' the volumetric ones. Non-texture
        families are always 3D, as IBSI defines them.
    image : ndarray, optional
        Whole-grid intensities for the local intensity peaks (the sphere may leave the ROI);
        defaults to ``intensities``.
    n_levels : int, optional
        Number of grey levels of the discretisation (histogram range and GLCM size); defaults
        to the highest grey level in the ROI.
    ivh_range, ivh_bin_width, ivh_n_bins
        Intensity-volume histogram discretisation, see :func:`ivh_features`.
    mesh : (area, volume), optional
        Marching-cubes area (mm^2) and volume (mm^3) of the morphological mask when already
        computed (pyradiomics ``shape``: SurfaceArea, MeshVolume); skips re-meshing.
    families : iterable of str, optional
        Subset of :data:`FAMILIES` to compute; all by default.

    Returns
    -------
    dict
        IBSI tag (as in the IBSI reference tables) to value. Undefined values are NaN.
    """
    check_dimension(dimension)
    selected = list(FAMILIES) if families is None else list(families)
    unknown = sorted(set(selected) - set(FAMILIES))
    if unknown:
        raise SettingsError(f"Unknown IBSI families {unknown}; choose among {sorted(FAMILIES)}.")
    morph = intensity_mask if morph_mask is None else morph_mask
    runners: dict[str, Callable[[], dict[str, float]]] = {
        "morphology": lambda: morphology_features(
            intensities, intensity_mask, morph, spacing, mesh
        ),
        "local_intensity": lambda: local_intensity_features(
            intensities if image is None else image, intensity_mask, spacing
        ),
        "statistics": lambda: statistics_features(intensities, intensity_mask),
        "intensity_histogram": lambda: intensity_histogram_features(
            levels, intensity_mask, n_levels
        ),
        "ivh": lambda: ivh_features(
            intensities, intensity_mask, ivh_range, bin_width=ivh_bin_width, n_bins=ivh_n_bins
        ),
        "glcm": lambda: glcm_features(levels, intensity_mask, dimension, n_levels),
        "glrlm": lambda: glrlm_features(levels, intensity_mask, dimension),
        "glszm": lambda: szm_features(levels, intensity_mask, dimension),
        "gldzm": lambda: dzm_features(levels, intensity_mask, morph, dimension),
        "ngtdm": lambda: ngtdm_features(levels, intensity_mask, dimension),
        "ngldm": lambda: ngldm_features(levels, intensity_mask, dimension),
    }
    features: dict[str, float] = {}
    for name in selected:
        features.update(runners[name]())
    return features


__all__ = [
    "FAMILIES",
    "compute_families",
    "dzm_features",
    "glcm_features",
    "glrlm_features",
    "intensity_histogram_features",
    "ivh_features",
    "local_intensity_features",
    "morphology_features",
    "ngldm_features",
    "ngtdm_features",
    "statistics_features",
    "szm_features",
]
