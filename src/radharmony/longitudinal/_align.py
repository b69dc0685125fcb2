"""Bringing every visit into the subject's common space: given transforms or registration.

A transform maps points of the common space to points of a visit's image (the convention of
``SimpleITK.Resample(image, reference_grid, transform)``). Given transforms are used as they
are. Otherwise the visit is registered to the baseline with SimpleITK: a rigid (Euler) stage,
then an affine stage, both maximising Mattes mutual information (inside the brain mask dilated
by 5 mm, up to 100,000 random samples, up to three resolutions).

Alignment quality is measured the same way for both, with the mean local normalised
cross-correlation (LNCC, Gaussian windows of ``QC_WINDOW_MM``) between the baseline and the
aligned visit inside the brain, on an isotropic ``QC_GRID_MM`` grid. LNCC is insensitive to
smooth intensity differences (bias field, scanner gain, contrast) and falls when structures do
not overlap. Its absolute value depends on resolution, noise and anatomy, so the check is
relative: the alignment is perturbed by +/-``QC_SHIFT_MM`` along each axis and
+/-``QC_ROTATION_DEG`` about each axis (12 perturbations), and it passes when it beats every
perturbation (``qc_margin`` = LNCC minus the best perturbed LNCC > 0) and its LNCC is at least
``QC_MIN_LNCC`` (the images share structure at all). A visit misaligned by about 2 mm or
2 degrees or more then fails and a well-aligned one passes (measured on simulated and real
visits in ``benchmarks/``). A registration that fails
is refused, never used; a given transform that fails is used as given and flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from radharmony.errors import RadharmonyError

QC_WINDOW_MM = 5.0
# The quality check resamples both images on an isotropic grid of this spacing (cropped to the
# brain), so that its cost and its scale do not depend on the acquisition.
QC_GRID_MM = 2.5
# An alignment passes when it is a local optimum of the local correlation at the scale of this
# shift and rotation: no perturbation by +/-2 mm along an axis or +/-2 degrees about one
# improves it. No threshold is fitted to data.
QC_SHIFT_MM = 2.0
QC_ROTATION_DEG = 2.0
# ... and when the aligned images share structure at all: a local correlation of at least 0.5.
# Aligned visits score 0.70-0.92 in the simulated and real checks of benchmarks/ (across
# scanners and resolutions); an image of other content scores near 0 wherever it is put.
QC_MIN_LNCC = 0.5
_MASK_MARGIN_MM = 5.0
_METRIC_SAMPLES = 100_000


class AlignmentError(RadharmonyError, ValueError):
    """A visit cannot be brought into the common space (bad transform, grid, registration)."""


@dataclass(frozen=True)
class Alignment:
    """How one visit was brought into the common space.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Common space to visit.
    method : {"identity", "given", "registered"}
        Same grid as the common space, transform from the manifest, or registration.
    metric : float or None
        Final Mattes mutual information (negative: better) of a registration.
    """

    transform: sitk.Transform
    method: str
    metric: float | None = None


def read_transform(path: str | Path, what: str) -> sitk.Transform:
    """Read an ITK transform file, or raise naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"{what}: transform file {path} does not exist; check the path")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise AlignmentError(
            f"{what}: transform file {path} does not parse as an ITK transform ({reason}). "
            "Write it with SimpleITK.WriteTransform / ITK (.tfm, .txt, .h5), or leave the "
            "cell empty and register the visit instead"
        ) from err
    if transform.GetDimension() != 3:
        raise AlignmentError(
            f"{what}: transform file {path} holds a {transform.GetDimension()}D transform; a 3D "
            "transform is needed"
        )
    return transform


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-3) -> bool:
    """Return whether two images share size, spacing, origin and direction."""
    spacing = np.asarray(a.GetSpacing())
    return bool(
        a.GetSize() == b.GetSize()
        and np.allclose(spacing, b.GetSpacing(), rtol=tolerance, atol=0)
        and np.all(np.abs(np.subtract(a.GetOrigin(), b.GetOrigin())) <= tolerance * spacing.max())
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def describe_grid(image: sitk.Image) -> str:
    """Return size, spacing and origin as short text for error messages."""

    def fmt(values: Sequence[float]) -> str:
        return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

    return f"size {image.GetSize()}, spacing {fmt(image.GetSpacing())}, origin {fmt(image.GetOrigin())}"


def resample(
    image: sitk.Image,
    grid: sitk.Image,
    transform: sitk.Transform,
    *,
    labels: bool = False,
) -> NDArray:
    """Return ``image`` resampled on ``grid`` as an array; NaN (or 0 for labels) outside it."""
    if labels:
        out = sitk.Resample(image, grid, transform, sitk.sitkNearestNeighbor, 0, image.GetPixelID())
        return sitk.GetArrayFromImage(out)
    floating = sitk.Cast(image, sitk.sitkFloat32)
    out = sitk.Resample(floating, grid, transform, sitk.sitkLinear, float("nan"), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None = None,
    *,
    seed: int = 20_200_117,
) -> Alignment:
    """Register ``moving`` to ``fixed``: rigid, then affine, Mattes mutual information.

    Parameters
    ----------
    fixed : SimpleITK.Image
        The baseline on the common grid.
    moving : SimpleITK.Image
        The visit to align, on its own grid.
    fixed_mask : SimpleITK.Image, optional
        Region of the fixed image where the metric is evaluated (the brain).
    seed : int
        Seed of the metric's random sampling (results are reproducible for a seed; 0 would
        mean a seed from the clock in SimpleITK, so it is refused).

    Returns
    -------
    Alignment
        The transform maps common-space points to the moving image.

    Raises
    ------
    AlignmentError
        When the optimiser fails (e.g. images that do not overlap).
    """
    if seed == 0:
        raise ValueError("seed=0 makes SimpleITK draw a seed from the clock; give another seed")
    fixed_f = sitk.Cast(fixed, sitk.sitkFloat32)
    moving_f = sitk.Cast(moving, sitk.sitkFloat32)
    if fixed_mask is not None:
        fixed_mask = _metric_region(fixed_mask)
    # ITK's multi-threaded metric sums in a thread-dependent order: with one thread the result
    # is identical on every run (cases already run one per core). Restored afterwards.
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        initial = sitk.CenteredTransformInitializer(
            fixed_f,
            moving_f,
            sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
        rigid_result, _ = _optimise(fixed_f, moving_f, fixed_mask, initial, seed, 2.0)
        rigid = sitk.Euler3DTransform(rigid_result)
        affine = sitk.AffineTransform(3)
        affine.SetMatrix(rigid.GetMatrix())
        affine.SetTranslation(rigid.GetTranslation())
        affine.SetCenter(rigid.GetCenter())
        final, metric = _optimise(fixed_f, moving_f, fixed_mask, affine, seed, 1.0)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise AlignmentError(
            f"registration to the baseline failed ({reason}); check that the image holds this "
            "subject's brain, or give a transform in the manifest"
        ) from err
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return Alignment(final, "registered", metric)


def _metric_region(mask: sitk.Image) -> sitk.Image:
    # The brain outline carries much of the alignment information: keep a margin around it.
    binary = sitk.Cast(mask != 0, sitk.sitkUInt8)
    radius = [max(1, int(round(_MASK_MARGIN_MM / s))) for s in mask.GetSpacing()]
    return sitk.BinaryDilate(binary, radius)


def _shrink_factors(image: sitk.Image) -> list[int]:
    # The coarsest level keeps at least 16 voxels along the shortest axis.
    factor = 1
    while factor < 4 and min(image.GetSize()) / (2 * factor) >= 16:
        factor *= 2
    return [factor // 2**k for k in range(int(np.log2(factor)) + 1)]


def _optimise(
    fixed: sitk.Image,
    moving: sitk.Image,
    mask: sitk.Image | None,
    initial: sitk.Transform,
    seed: int,
    learning_rate: float,
) -> tuple[sitk.Transform, float]:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    region = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) if mask is not None else 0
    voxels = region or fixed.GetNumberOfPixels()
    method.SetMetricSamplingPercentage(min(0.2, _METRIC_SAMPLES / voxels), seed)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate,
        minStep=1e-4,
        numberOfIterations=200,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    shrink = _shrink_factors(fixed)
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel([f - 1.0 for f in shrink])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(fixed, moving)
    # Execute returns a composite holding the optimised copy of the initial transform.
    if isinstance(result, sitk.CompositeTransform) and result.GetNumberOfTransforms() == 1:
        result = result.GetNthTransform(0)
    result = result.Downcast() if hasattr(result, "Downcast") else result
    return result, float(method.GetMetricValue())


def local_ncc(
    fixed: NDArray, moving: NDArray, mask: NDArray[np.bool_], spacing: Sequence[float]
) -> float:
    """Return the mean local normalised cross-correlation of two aligned images in ``mask``."""
    if not np.any(mask):
        return float("nan")
    sigma = [QC_WINDOW_MM / float(s) for s in spacing[::-1]]
    weight = mask.astype(np.float64)

    def smooth(x: NDArray) -> NDArray:
        return ndimage.gaussian_filter(x, sigma)

    total = np.maximum(smooth(weight), 1e-9)
    f = np.where(mask, fixed, 0.0).astype(np.float64)
    m = np.where(mask, moving, 0.0).astype(np.float64)
    mean_f, mean_m = smooth(f) / total, smooth(m) / total
    var_f = smooth(f * f) / total - mean_f**2
    var_m = smooth(m * m) / total - mean_m**2
    cov = smooth(f * m) / total - mean_f * mean_m
    floor = 1e-6 * max(float(np.median(var_f[mask])), float(np.median(var_m[mask])), 1e-12)
    valid = mask & (var_f > floor) & (var_m > floor)
    if not np.any(valid):
        return float("nan")
    ncc = cov[valid] / np.sqrt(var_f[valid] * var_m[valid])
    return float(np.mean(np.clip(ncc, -1.0, 1.0)))


def alignment_quality(
    baseline: NDArray, aligned: NDArray, mask: NDArray[np.bool_], grid: sitk.Image
) -> tuple[float, float]:
    """Return ``(lncc, margin)`` of an aligned visit against the baseline (see module docs).

    Parameters
    ----------
    baseline, aligned : ndarray
        Primary channel of the baseline and of the aligned visit on the common grid.
    mask : ndarray of bool
        Brain voxels seen at both visits.
    grid : SimpleITK.Image
        The common grid.

    Returns
    -------
    (float, float)
        The LNCC on the quality-check grid, and how much it exceeds the best of the 12
        perturbed alignments (> 0: the alignment passes).
    """
    if not np.any(mask):
        return float("nan"), float("nan")
    reference = _qc_grid(grid, mask)
    fixed = _on(reference, baseline, grid)
    region = _on(reference, mask.astype(np.float32), grid) > 0.5
    moving = _image(np.where(mask, aligned, 0.0), grid)
    centre = grid.TransformContinuousIndexToPhysicalPoint(
        [float(c) for c in np.argwhere(mask).mean(axis=0)[::-1]]
    )
    spacing = (QC_GRID_MM,) * 3
    values = []
    for rotation, shift in _perturbations():
        euler = sitk.Euler3DTransform()
        euler.SetCenter(centre)
        euler.SetRotation(*rotation)
        euler.SetTranslation(shift)
        moved = sitk.GetArrayFromImage(
            sitk.Resample(moving, reference, euler, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        )
        values.append(local_ncc(fixed, moved, region & (moved != 0), spacing))
    return values[0], values[0] - max(values[1:])


def _perturbations() -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    angle = float(np.deg2rad(QC_ROTATION_DEG))
    out = [((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))]
    for axis in range(3):
        for sign in (-1.0, 1.0):
            step = [0.0, 0.0, 0.0]
            step[axis] = sign * QC_SHIFT_MM
            turn = [0.0, 0.0, 0.0]
            turn[axis] = sign * angle
            out.append(((0.0, 0.0, 0.0), (step[0], step[1], step[2])))
            out.append(((turn[0], turn[1], turn[2]), (0.0, 0.0, 0.0)))
    return out


def _image(array: NDArray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.nan_to_num(array, nan=0.0).astype(np.float32))
    image.CopyInformation(grid)
    return image


def _on(reference: sitk.Image, array: NDArray, grid: sitk.Image) -> NDArray:
    image = _image(array, grid)
    out = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _qc_grid(grid: sitk.Image, mask: NDArray[np.bool_]) -> sitk.Image:
    """Return an isotropic grid covering the mask's bounding box plus a margin."""
    where = np.argwhere(mask)
    low, high = where.min(axis=0)[::-1], where.max(axis=0)[::-1]
    corners = [
        grid.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
        for corner in np.array(np.meshgrid(*zip(low, high, strict=True))).T.reshape(-1, 3)
    ]
    direction = np.asarray(grid.GetDirection()).reshape(3, 3)
    local = np.asarray(corners) @ direction  # coordinates along the grid's axes
    margin = 2.0 * QC_SHIFT_MM + QC_WINDOW_MM
    start, stop = local.min(axis=0) - margin, local.max(axis=0) + margin
    size = [int(np.ceil((b - a) / QC_GRID_MM)) + 1 for a, b in zip(start, stop, strict=True)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing((QC_GRID_MM,) * 3)
    reference.SetDirection(grid.GetDirection())
    reference.SetOrigin(tuple(float(v) for v in direction @ start))
    return reference
