"""Filtering a whole image (the response maps of the IBSI 2 phase-1 tests, exploration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import SimpleITK as sitk

from radharmony.ibsi.filters._base import ImageFilter
from radharmony.ibsi.filters._parse import filter_from_mapping


@overload
def filter_image(
    image: sitk.Image,
    image_filter: ImageFilter | Mapping[str, Any],
    spacing: Sequence[float] | None = None,
) -> sitk.Image: ...


@overload
def filter_image(
    image: np.ndarray,
    image_filter: ImageFilter | Mapping[str, Any],
    spacing: Sequence[float] | None = None,
) -> np.ndarray: ...


def filter_image(
    image: sitk.Image | np.ndarray,
    image_filter: ImageFilter | Mapping[str, Any],
    spacing: Sequence[float] | None = None,
) -> sitk.Image | np.ndarray:
    """Return the response map of a whole image.

    The image's true edge is extended with the filter's boundary condition. To filter images
    for feature extraction, put the filter in the ``filters`` of the extraction settings
    instead: the response is then computed per lesion, after interpolation and rounding.

    Parameters
    ----------
    image : SimpleITK.Image or numpy.ndarray
        A 3D image, or a numpy array in (z, y, x) order as ``SimpleITK.GetArrayFromImage``
        returns it (x is the first axis of the NIfTI/nibabel array).
    image_filter : ImageFilter or mapping
        A filter object or its settings mapping, e.g. ``{"filter": "log", "sigma_mm": 1.5}``.
        A filter whose ``dimension`` is not given runs in 3D (Laws kernels and wavelet
        sub-bands in the dimension of their letters).
    spacing : sequence of 3 floats, optional
        Voxel spacing in mm, in (z, y, x) order, for a numpy array (default 1 mm); a SimpleITK
        image carries its own.

    Returns
    -------
    SimpleITK.Image or numpy.ndarray
        float64 response map on the image's grid (same type as ``image``).
    """
    if not isinstance(image_filter, ImageFilter):
        image_filter = filter_from_mapping(image_filter)
    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3:
            raise ValueError(f"filter_image needs a 3D image, got {image.GetDimension()}D")
        values = sitk.GetArrayFromImage(image).astype(np.float64)
        response = image_filter.apply(values, tuple(float(s) for s in image.GetSpacing()[::-1]))
        out = sitk.GetImageFromArray(response)
        out.CopyInformation(image)
        return out
    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"filter_image needs a 3D (z, y, x) array, got shape {values.shape}")
    zyx = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(zyx) != 3 or not all(s > 0 for s in zyx):
        raise ValueError(f"spacing must be 3 positive numbers (z, y, x) in mm, got {spacing!r}")
    return image_filter.apply(values, zyx)
