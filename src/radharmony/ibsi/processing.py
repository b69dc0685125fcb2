"""The IBSI image-processing chain of one lesion, on numpy arrays.

Steps, in IBSI order: crop around the lesion, interpolate the image (linear or cubic B-spline)
and the mask (linear, then partial-volume threshold) on a grid aligned on the original grid's
centre, round intensities, re-segment (range, then outlier filtering) and discretise (fixed bin
size anchored at the range's lower bound, or fixed bin number). The result is a
:class:`ProcessedLesion` from which any feature family can be computed without further
processing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radharmony.errors import EmptyMaskError, GeometryMismatchError, ImageReadError
from radharmony.ibsi.filters import ImageFilter
from radharmony.ibsi.settings import ExtractionSettings

# Source voxels kept beyond the interpolation footprint. B-spline prefiltering is a recursive
# filter whose influence decays by a factor ~0.27 per voxel: 12 voxels make a crop boundary
# invisible (< 1e-6 of the intensity range) so results do not depend on the crop.
_LINEAR_MARGIN = 1
_BSPLINE_MARGIN = 12


@dataclass(frozen=True)
class ProcessedLesion:
    """A lesion after the IBSI image-processing chain, ready for feature computation.

    Arrays are in numpy (z, y, x) order on the processed (possibly resampled) grid, cropped
    around the morphological mask with a one-voxel margin (where the image extends that far),
    or with the radius of the local intensity sphere when that family is computed.

    Attributes
    ----------
    intensities : numpy.ndarray of float64
        Processed (interpolated, rounded) intensities; not discretised.
    grey_levels : numpy.ndarray of int64
        Discretised grey levels (1, 2, ...) inside ``intensity_mask``, 0 elsewhere.
    morphological_mask : numpy.ndarray of bool
        ROI after interpolation, before intensity re-segmentation (for morphology).
    intensity_mask : numpy.ndarray of bool
        ROI after re-segmentation (for intensity and texture features); a subset of
        ``morphological_mask``.
    spacing : tuple of float
        Voxel spacing in mm, (x, y, z) order as in SimpleITK.
    origin : tuple of float
        Physical position of voxel (0, 0, 0) of the arrays.
    direction : tuple of float
        Direction cosines (SimpleITK order).
    discretisation_lower_bound : float
        Intensity at the lower edge of grey level 1.
    bin_width : float or None
        Width of each grey level in intensity units (fixed bin size, or fixed bin number where
        it is (max - min) / bins); None for a single-valued ROI.
    settings : ExtractionSettings
        The settings that produced this lesion.
    responses : mapping of str to numpy.ndarray
        Response map of each filter of ``settings.filters`` (by its label) on the same crop,
        computed from the processed (interpolated, rounded) intensities on a crop wide enough
        for the filter's support, so that the crop does not change it.
    """

    intensities: np.ndarray
    grey_levels: np.ndarray
    morphological_mask: np.ndarray
    intensity_mask: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    discretisation_lower_bound: float
    bin_width: float | None
    settings: ExtractionSettings
    responses: Mapping[str, np.ndarray] = field(default_factory=dict)

    def to_image(self, array: np.ndarray) -> sitk.Image:
        """Return ``array`` (z, y, x) as a SimpleITK image on the processed grid."""
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    @property
    def intensity_values(self) -> np.ndarray:
        """Processed intensities of the voxels in the intensity mask (1D)."""
        return self.intensities[self.intensity_mask]


def process_lesion(
    image: sitk.Image, mask: sitk.Image, settings: ExtractionSettings
) -> ProcessedLesion:
    """Apply the IBSI image-processing chain to one lesion.

    Parameters
    ----------
    image : SimpleITK.Image
        Whole 3D intensity image.
    mask : SimpleITK.Image
        Binary mask of the lesion (non-zero inside) on the same grid as ``image``.
    settings : ExtractionSettings
        Processing settings.

    Returns
    -------
    ProcessedLesion

    Raises
    ------
    GeometryMismatchError
        If image and mask are not 3D images on the same grid.
    EmptyMaskError
        If the mask is empty, or becomes empty after interpolation or re-segmentation.
    """
    _check_geometry(image, mask)
    mask_view = sitk.GetArrayViewFromImage(mask)
    bounds = _bounding_box(mask_view != 0)
    if bounds is None:
        raise EmptyMaskError("the lesion mask holds no voxels; check the label value")
    grids = _target_grids(image, settings)
    margins = _crop_margins(grids, settings)
    windows = _filter_windows(grids, bounds, margins, settings)
    source = tuple(slice(w.source_start, w.source_stop) for w in windows)
    intensities = np.asarray(sitk.GetArrayViewFromImage(image)[source], dtype=np.float64)
    mask_values = np.asarray(mask_view[source] != 0, dtype=np.float64)
    order = 3 if settings.image_interpolator == "bspline" else 1
    for axis, window in enumerate(windows):
        if window.positions is not None:
            intensities = _interpolate_axis(intensities, window.positions, axis, order)
            mask_values = _interpolate_axis(mask_values, window.positions, axis, 1)
    if settings.round_intensities:
        intensities = _round_half_away_from_zero(intensities)
    morphological = mask_values >= settings.mask_threshold - 1e-9
    if not morphological.any():
        raise EmptyMaskError(
            f"the lesion vanished after interpolation to {settings.resampled_spacing} mm "
            f"(mask threshold {settings.mask_threshold}); use a finer spacing"
        )
    intensity_mask = _resegment(intensities, morphological, settings)
    lower_bound, bin_width, levels = _discretise(intensities, intensity_mask, settings)
    keep = _crop_slices(morphological, margins)
    spacing_zyx = [g.spacing for g in grids]
    responses = {
        f.label: _filter_response(f, intensities, spacing_zyx, keep) for f in settings.filters
    }
    first_index_zyx = [
        w.first_position + g.ratio * k.start for w, g, k in zip(windows, grids, keep, strict=True)
    ]
    return ProcessedLesion(
        intensities=intensities[keep],
        grey_levels=levels[keep],
        morphological_mask=morphological[keep],
        intensity_mask=intensity_mask[keep],
        spacing=_xyz(spacing_zyx),
        origin=_physical_point(image, first_index_zyx),
        direction=tuple(image.GetDirection()),
        discretisation_lower_bound=lower_bound,
        bin_width=bin_width,
        settings=settings,
        responses=responses,
    )


def interpolate_image(image: sitk.Image, settings: ExtractionSettings) -> np.ndarray:
    """Return the whole image on the IBSI interpolation grid of ``settings`` (z, y, x).

    The same interpolation and rounding as :func:`process_lesion`, applied to every voxel
    (for the IBSI diagnostic features of the interpolated image).

    Parameters
    ----------
    image : SimpleITK.Image
        Whole 3D intensity image.
    settings : ExtractionSettings
        Interpolation settings.

    Returns
    -------
    numpy.ndarray of float64
    """
    values = np.asarray(sitk.GetArrayViewFromImage(image), dtype=np.float64)
    order = 3 if settings.image_interpolator == "bspline" else 1
    for axis, grid in enumerate(_target_grids(image, settings)):
        if grid.resampled:
            positions = grid.offset + grid.ratio * np.arange(grid.size, dtype=np.float64)
            values = _interpolate_axis(values, positions, axis, order)
    return _round_half_away_from_zero(values) if settings.round_intensities else values


def resampled_size(image: sitk.Image, settings: ExtractionSettings) -> tuple[int, int, int]:
    """Size (x, y, z) of the whole image on the IBSI interpolation grid of ``settings``."""
    z, y, x = (grid.size for grid in _target_grids(image, settings))
    return x, y, z


@dataclass(frozen=True)
class _AxisGrid:
    # Target grid along one array axis, in source index units: position(j) = offset + ratio*j.
    size: int
    spacing: float
    ratio: float
    offset: float
    resampled: bool


@dataclass(frozen=True)
class _AxisWindow:
    source_start: int
    source_stop: int
    first_position: float  # source index (continuous) of the first target voxel kept
    positions: np.ndarray | None  # target positions relative to source_start; None = as is


def _check_geometry(image: sitk.Image, mask: sitk.Image) -> None:
    if image.GetDimension() != 3 or mask.GetDimension() != 3:
        raise GeometryMismatchError(
            f"image and mask must be 3D, got {image.GetDimension()}D and {mask.GetDimension()}D"
        )
    same = (
        image.GetSize() == mask.GetSize()
        and np.allclose(image.GetSpacing(), mask.GetSpacing(), rtol=1e-5, atol=1e-6)
        and np.allclose(image.GetOrigin(), mask.GetOrigin(), rtol=1e-5, atol=1e-4)
        and np.allclose(image.GetDirection(), mask.GetDirection(), atol=1e-5)
    )
    if not same:
        raise GeometryMismatchError(
            f"mask grid (size {mask.GetSize()}, spacing {mask.GetSpacing()}, origin "
            f"{mask.GetOrigin()}) differs from the image grid (size {image.GetSize()}, spacing "
            f"{image.GetSpacing()}, origin {image.GetOrigin()}); resample the mask onto the image"
        )


def _bounding_box(inside: np.ndarray) -> list[tuple[int, int]] | None:
    """Inclusive (first, last) index of the non-zero voxels along each array axis."""
    bounds = []
    for axis in range(inside.ndim):
        other = tuple(a for a in range(inside.ndim) if a != axis)
        hits = np.flatnonzero(inside.any(axis=other))
        if hits.size == 0:
            return None
        bounds.append((int(hits[0]), int(hits[-1])))
    return bounds


def _target_grids(image: sitk.Image, settings: ExtractionSettings) -> list[_AxisGrid]:
    """IBSI interpolation grid per array axis (z, y, x): same centre, size rounded up."""
    sizes = image.GetSize()[::-1]
    spacings = image.GetSpacing()[::-1]
    targets = (
        (None, None, None)
        if settings.resampled_spacing is None
        else tuple(settings.resampled_spacing)[::-1]
    )
    grids = []
    for n_a, s_a, s_b in zip(sizes, spacings, targets, strict=True):
        if s_b is None or math.isclose(s_b, s_a, rel_tol=1e-9):
            grids.append(_AxisGrid(n_a, float(s_a), 1.0, 0.0, resampled=False))
            continue
        n_b = math.ceil(round(n_a * s_a / s_b, 6))
        ratio = s_b / s_a
        offset = ((n_a - 1) - ratio * (n_b - 1)) / 2.0
        grids.append(_AxisGrid(n_b, float(s_b), ratio, offset, resampled=True))
    return grids


def _crop_margins(grids: list[_AxisGrid], settings: ExtractionSettings) -> list[int]:
    """Target voxels kept around the lesion per axis: 1, or the local intensity sphere radius.

    Local intensity peaks average the image (not only the ROI) in a 1 cm^3 sphere around ROI
    voxels, so the crop must hold that neighbourhood wherever the image extends that far.
    """
    if "local_intensity" not in settings.feature_classes:
        return [1] * len(grids)
    from radharmony.ibsi.families.local_intensity import PEAK_RADIUS_MM

    return [max(1, math.ceil(PEAK_RADIUS_MM / grid.spacing)) for grid in grids]


def _filter_windows(
    grids: list[_AxisGrid],
    bounds: list[tuple[int, int]],
    margins: list[int],
    settings: ExtractionSettings,
) -> list[_AxisWindow]:
    """Windows of the crop: the lesion with its margins, widened for the filters' support.

    A filter's response inside the lesion then depends only on image voxels, and on its
    boundary condition only where the image itself ends. A periodic boundary wraps around the
    whole image, so an axis along which such a filter reaches the image edge is kept whole;
    filters defined in the Fourier domain on the image grid keep every axis they filter whole.
    """
    widths = list(margins)
    whole = [False] * len(grids)
    for image_filter in settings.filters:
        reach = image_filter.margins([g.spacing for g in grids])
        for axis, (grid, (low, high), width) in enumerate(zip(grids, bounds, reach, strict=True)):
            # the filter must see its reach around every kept voxel, margin included
            widths[axis] = max(widths[axis], margins[axis] + width)
            if width > 0 and image_filter.spans_image():
                whole[axis] = True
            elif image_filter.boundary == "periodic" and width > 0:
                whole[axis] |= _reaches_edge(grid, low, high, margins[axis] + width)
    return [
        _axis_window(
            grid, low, high, settings.image_interpolator, grid.size if whole_axis else width
        )
        for grid, (low, high), width, whole_axis in zip(grids, bounds, widths, whole, strict=True)
    ]


def _filter_response(
    image_filter: ImageFilter,
    intensities: np.ndarray,
    spacing_zyx: list[float],
    keep: tuple[slice, ...],
) -> np.ndarray:
    """Response of one filter on the region ``keep`` of the processed (wide) crop.

    IBSI 2 filters the interpolated and rounded image, before re-segmentation and
    discretisation (which use the unfiltered intensities). Each filter reads only the voxels
    within its own reach of ``keep`` (the crop holds the widest reach of all filters).
    """
    reach = image_filter.margins(spacing_zyx)
    window = []
    for axis, (region, width) in enumerate(zip(keep, reach, strict=True)):
        n = intensities.shape[axis]
        start, stop = max(0, region.start - width), min(n, region.stop + width)
        touches = start == 0 or stop == n
        if width > 0 and (
            image_filter.spans_image() or (image_filter.boundary == "periodic" and touches)
        ):
            start, stop = 0, n  # the crop holds the whole image along this axis
        window.append(slice(start, stop))
    values = intensities[tuple(window)]
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ImageReadError(
            f"the image has {bad} NaN or infinite voxel(s) within the reach of filter "
            f"{image_filter.label} around the lesion (the whole image along the filtered axes "
            "for Fourier-domain filters); replace them (e.g. by the background value) before "
            "extraction"
        )
    response = image_filter.apply(values, spacing_zyx)
    inner = tuple(
        slice(r.start - w.start, r.stop - w.start) for r, w in zip(keep, window, strict=True)
    )
    return response[inner]


def _reaches_edge(grid: _AxisGrid, low: int, high: int, width: int) -> bool:
    """Whether ``width`` target voxels around the lesion [low, high] reach the grid's edge."""
    first = (low - grid.offset) / grid.ratio - width
    last = (high - grid.offset) / grid.ratio + width
    return first <= 0 or last >= grid.size - 1


def _axis_window(
    grid: _AxisGrid, low: int, high: int, interpolator: str, margin: int = 1
) -> _AxisWindow:
    """Target voxels within ``margin`` of the lesion [low, high], and the source voxels needed."""
    if not grid.resampled:
        start, stop = max(0, low - margin), min(grid.size, high + margin + 1)
        return _AxisWindow(start, stop, float(start), None)
    # A linearly interpolated mask is non-zero only within one source voxel of the lesion;
    # a wider margin adds whole target voxels on both sides.
    extra = margin if margin > 1 else 0
    j_first = max(0, math.floor((low - 1 - grid.offset) / grid.ratio) - extra)
    j_last = min(grid.size - 1, math.ceil((high + 1 - grid.offset) / grid.ratio) + extra)
    positions = grid.offset + grid.ratio * np.arange(j_first, j_last + 1, dtype=np.float64)
    margin = _BSPLINE_MARGIN if interpolator == "bspline" else _LINEAR_MARGIN
    start = max(0, math.floor(positions[0]) - margin)
    stop = math.ceil(positions[-1]) + margin + 1
    return _AxisWindow(start, stop, float(positions[0]), positions - start)


def _interpolate_axis(
    values: np.ndarray, positions: np.ndarray, axis: int, order: int
) -> np.ndarray:
    """Sample ``values`` along ``axis`` at fractional ``positions`` (nearest-value padding).

    Linear and cubic B-spline interpolation are tensor products of 1D interpolations, so
    resampling one axis at a time is exact and keeps memory proportional to the output.
    """
    n = values.shape[axis]
    if order == 3:
        coefficients = ndimage.spline_filter1d(
            values, order=3, axis=axis, mode="nearest", output=np.float64
        )
        base = np.floor(positions).astype(np.int64)
        t = positions - base
        weights = _cubic_bspline_weights(t)
        out = np.zeros(_shape_with(values.shape, axis, positions.size), dtype=np.float64)
        for tap in range(4):
            index = np.clip(base + tap - 1, 0, n - 1)
            out += np.take(coefficients, index, axis=axis) * _along(weights[tap], axis, out.ndim)
        return out
    base = np.clip(np.floor(positions).astype(np.int64), 0, n - 1)
    upper = np.clip(base + 1, 0, n - 1)
    t = np.clip(positions - base, 0.0, 1.0) if n > 1 else np.zeros_like(positions)
    w = _along(t, axis, values.ndim)
    return np.take(values, base, axis=axis) * (1.0 - w) + np.take(values, upper, axis=axis) * w


def _cubic_bspline_weights(t: np.ndarray) -> np.ndarray:
    """Weights of the 4 coefficients at offsets -1, 0, 1, 2 for fractional position ``t``."""
    s = 1.0 - t
    return np.stack(
        [
            s**3 / 6.0,
            (3.0 * t**3 - 6.0 * t**2 + 4.0) / 6.0,
            (3.0 * s**3 - 6.0 * s**2 + 4.0) / 6.0,
            t**3 / 6.0,
        ]
    )


def _shape_with(shape: tuple[int, ...], axis: int, size: int) -> tuple[int, ...]:
    return tuple(size if a == axis else n for a, n in enumerate(shape))


def _along(vector: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = vector.size
    return vector.reshape(shape)


def _round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    # numpy.rint rounds halves to even; "nearest integer" in IBSI practice rounds them away
    # from zero, and interpolating integers at a midpoint produces exact halves.
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _resegment(
    intensities: np.ndarray, roi: np.ndarray, settings: ExtractionSettings
) -> np.ndarray:
    """Intensity mask: the range first, then outlier filtering on what the range kept."""
    kept = roi.copy()
    if settings.resegment_range is not None:
        low, high = settings.resegment_range
        if low is not None:
            kept &= intensities >= low
        if high is not None:
            kept &= intensities <= high
        if not kept.any():
            raise EmptyMaskError(
                f"no lesion voxel has an intensity in the re-segmentation range {low}..{high}; "
                "check the image units or widen resegment_range"
            )
    if settings.resegment_sigma is not None:
        values = intensities[kept]
        mean, sd = float(values.mean()), float(values.std())
        half_width = settings.resegment_sigma * sd
        kept &= (intensities >= mean - half_width) & (intensities <= mean + half_width)
    return kept


def _discretise(
    intensities: np.ndarray, roi: np.ndarray, settings: ExtractionSettings
) -> tuple[float, float | None, np.ndarray]:
    """Grey levels (1-based) inside ``roi``; returns (lower bound, bin width, levels)."""
    values = intensities[roi]
    levels = np.zeros(intensities.shape, dtype=np.int64)
    low_value, high_value = float(values.min()), float(values.max())
    if settings.discretisation == "fixed_bin_size":
        anchor = low_value
        if settings.resegment_range is not None and settings.resegment_range[0] is not None:
            anchor = float(settings.resegment_range[0])
        width = float(settings.bin_width)
        # Rounding the quotient first keeps values on a bin edge (e.g. 0.3 / 0.1) in that bin.
        quotient = np.round((values - anchor) / width, 9)
        levels[roi] = np.floor(quotient).astype(np.int64) + 1
        return anchor, width, levels
    n_bins = int(settings.bin_count)
    if high_value == low_value:
        levels[roi] = 1
        return low_value, None, levels
    scaled = np.floor(n_bins * (values - low_value) / (high_value - low_value)).astype(np.int64)
    levels[roi] = np.minimum(scaled, n_bins - 1) + 1
    return low_value, (high_value - low_value) / n_bins, levels


def _crop_slices(mask: np.ndarray, margins: list[int]) -> tuple[slice, ...]:
    bounds = _bounding_box(mask)
    assert bounds is not None  # the caller checked that the mask is not empty
    return tuple(
        slice(max(0, low - margin), min(n, high + margin + 1))
        for (low, high), n, margin in zip(bounds, mask.shape, margins, strict=True)
    )


def _physical_point(image: sitk.Image, index_zyx: list[float]) -> tuple[float, float, float]:
    """Physical position of a continuous source index given in (z, y, x) order."""
    index_xyz = [float(i) for i in index_zyx[::-1]]
    x, y, z = image.TransformContinuousIndexToPhysicalPoint(index_xyz)
    return float(x), float(y), float(z)


def _xyz(values_zyx: Sequence[float]) -> tuple[float, float, float]:
    """A (z, y, x) triple as floats in (x, y, z) order."""
    z, y, x = values_zyx
    return float(x), float(y), float(z)
