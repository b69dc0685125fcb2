"""Grey level size zone matrix features (IBSI 3.8, ``szm_*``), 2D, 2.5D and 3D."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radharmony.ibsi.families._common import (
    as_levels,
    as_mask,
    check_dimension,
    crop_to_roi,
    zone_family_features,
    zone_names,
)

SZM_NAMES = zone_names(
    "szm",
    [
        "sze",
        "lze",
        "lgze",
        "hgze",
        "szlge",
        "szhge",
        "lzlge",
        "lzhge",
        "glnu",
        "glnu_norm",
        "zsnu",
        "zsnu_norm",
        "z_perc",
        "gl_var",
        "zs_var",
        "zs_entr",
    ],
)


def zone_structure(dimension: str) -> np.ndarray:
    """Connectivity of zones: 26-connected in 3D, 8-connected within a slice in 2D."""
    structure = np.ones((3, 3, 3), dtype=bool)
    if dimension == "2D":
        structure[0] = structure[2] = False
    return structure


def zones(
    levels: np.ndarray, mask: np.ndarray, dimension: str, distance: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Connected zones of equal grey level inside ``mask``.

    Returns
    -------
    dict
        ``grey``, ``size`` and ``slice`` (axial index of the zone's first voxel; a 2D zone lies
        in one slice) per zone, plus ``distance`` (minimum of ``distance`` over the zone) when
        a distance map is given.
    """
    structure = zone_structure(dimension)
    out: dict[str, list[np.ndarray]] = {"grey": [], "size": [], "slice": [], "distance": []}
    for grey in np.unique(levels[mask]):
        labels, n_zones = ndimage.label(mask & (levels == grey), structure=structure)
        # labelled counts, bounding boxes and minima run in C, without sorting the grid
        out["grey"].append(np.full(n_zones, grey, dtype=np.int64))
        out["size"].append(np.bincount(labels.ravel(), minlength=n_zones + 1)[1:])
        # the first voxel of a zone in (z, y, x) order lies in its lowest slice
        out["slice"].append(
            np.array([box[0].start for box in ndimage.find_objects(labels)], dtype=np.int64)
        )
        if distance is not None:
            flat = labels.ravel()
            inside = flat > 0
            closest = np.full(n_zones + 1, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(closest, flat[inside], distance.ravel()[inside].astype(np.int64))
            out["distance"].append(closest[1:])
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if distance is None:
        result.pop("distance", None)
    return result


def szm_features(
    levels: np.ndarray, intensity_mask: np.ndarray, dimension: str = "3D"
) -> dict[str, float]:
    """Grey level size zone matrix features.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Discretised grey levels (1..Ng) inside the intensity mask.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask.
    dimension : {'3D', '2D'}
        '3D' gives ``szm_*_3D`` (26-connected zones). '2D' gives ``szm_*_2D`` (8-connected
        zones per axial slice, features averaged over slices) and ``szm_*_2_5D`` (slice
        matrices merged).

    Returns
    -------
    dict
        IBSI tag to value for the 16 size zone features.
    """
    check_dimension(dimension)
    mask = as_mask(intensity_mask, "intensity_mask")
    mask, grey = crop_to_roi(mask, as_levels(levels, mask))
    found = zones(grey, mask, dimension)
    return zone_family_features(
        found["grey"], found["size"], found["slice"], mask, dimension, SZM_NAMES
    )
