"""One subject's channels and masks on one voxel grid, and its voxel features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from radharmony.errors import GeometryMismatchError, RadharmonyError
from radharmony.io import check_geometry, read_image


class SubjectError(RadharmonyError, ValueError):
    """A subject cannot be processed; ``stage`` and ``file`` say where (failures table)."""

    def __init__(self, message: str, *, stage: str, file: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.file = file


@dataclass
class Subject:
    """Co-registered channels of one subject, its brain and (optional) reference lesions.

    Attributes
    ----------
    grid : SimpleITK.Image
        The first channel: defines the voxel grid of every output.
    channels : numpy.ndarray of shape (n_channels, z, y, x), float32
    brain : numpy.ndarray of bool, (z, y, x)
    lesion : numpy.ndarray of bool or None
        Non-zero voxels of the subject's ``lesion_mask`` (reference lesions), when given.
    """

    grid: sitk.Image
    channels: NDArray[np.float32]
    brain: NDArray[np.bool_]
    lesion: NDArray[np.bool_] | None

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in array order (mm)."""
        x, y, z = self.grid.GetSpacing()
        return (float(z), float(y), float(x))


def load_subject(
    images: Mapping[str, Any],
    channels: Sequence[str],
    *,
    brain_mask: Any = None,
    lesion_mask: Any = None,
) -> Subject:
    """Read a subject's channels and masks and check that they share the first channel's grid.

    Parameters
    ----------
    images : mapping of channel name to path or image
        Every channel of ``channels``; a missing or empty entry is an error.
    channels : sequence of str
        Channel order; the first defines the grid.
    brain_mask, lesion_mask : path or image, optional
        Non-zero voxels are brain / reference lesion. Without a brain mask the brain is every
        voxel that differs, in every channel, from that channel's background value (the most
        common value on the volume's faces, 0 for skull-stripped images).

    Raises
    ------
    SubjectError
        Naming the stage (``read_image``, ``geometry``, ``brain_mask``, ``lesion_mask``), the
        file and the fix.
    """
    first = channels[0]
    arrays, grid, first_name = [], None, ""
    for channel in channels:
        source = images.get(channel)
        name = _name(source)
        if source is None or (isinstance(source, str) and not source.strip()):
            raise SubjectError(
                f"channel {channel!r} is missing (empty cell in the manifest); every subject "
                f"needs all channels {list(channels)}",
                stage="read_image",
                file="",
            )
        image = _read(source, f"{channel} image", "read_image")
        if grid is None:
            grid, first_name = image, name
        else:
            _check_grid(grid, image, first, first_name, channel, name, "geometry")
        arrays.append(sitk.GetArrayFromImage(image).astype(np.float32, copy=False))
    assert grid is not None
    stack = np.stack(arrays)
    finite = np.all(np.isfinite(stack), axis=0)
    if brain_mask is not None and _name(brain_mask):
        mask = _read(brain_mask, "brain mask", "brain_mask")
        _check_grid(grid, mask, first, first_name, "brain mask", _name(brain_mask), "brain_mask")
        brain = _nonzero(mask) & finite
        if not brain.any():
            raise SubjectError(
                f"brain mask {_name(brain_mask)} is empty (no non-zero voxel with finite values "
                "in every channel); check that the right mask was saved",
                stage="brain_mask",
                file=_name(brain_mask),
            )
    else:
        brain = _foreground(stack) & finite
        if not brain.any():
            raise SubjectError(
                f"no brain voxel found in {first_name}: every voxel equals the background value "
                "in some channel; give a brain_mask column",
                stage="brain_mask",
                file=first_name,
            )
    lesion = None
    if lesion_mask is not None and _name(lesion_mask):
        mask = _read(lesion_mask, "lesion mask", "lesion_mask")
        _check_grid(grid, mask, first, first_name, "lesion mask", _name(lesion_mask), "lesion_mask")
        lesion = _nonzero(mask) & brain
    np.copyto(stack, 0.0, where=~np.isfinite(stack))
    return Subject(grid=grid, channels=stack, brain=brain, lesion=lesion)


def _name(source: Any) -> str:
    if source is None:
        return ""
    if isinstance(source, float) and np.isnan(source):
        return ""
    return (
        str(source)
        if isinstance(source, str | bytes) or hasattr(source, "__fspath__")
        else (f"<{type(source).__name__}>")
    )


def _read(source: Any, role: str, stage: str) -> sitk.Image:
    try:
        return read_image(source, role=role)
    except RadharmonyError as err:
        raise SubjectError(str(err), stage=stage, file=_name(source)) from err


def _check_grid(
    grid: sitk.Image,
    image: sitk.Image,
    first: str,
    first_name: str,
    role: str,
    name: str,
    stage: str,
) -> None:
    try:
        check_geometry(
            grid, image, image_name=f"{first} image {first_name}", mask_name=f"{role} {name}"
        )
    except GeometryMismatchError as err:
        raise SubjectError(
            f"{err} For detection every channel and mask of a subject must be on the grid of its "
            f"first channel ({first}): co-register and resample them first.",
            stage=stage,
            file=name,
        ) from err


def _nonzero(mask: sitk.Image) -> NDArray[np.bool_]:
    values = sitk.GetArrayViewFromImage(mask)
    return np.asarray((values != 0) & np.isfinite(values))


def _foreground(stack: NDArray[np.float32]) -> NDArray[np.bool_]:
    inside = np.ones(stack.shape[1:], dtype=bool)
    for channel in stack:
        faces = np.concatenate(
            [channel[[0, -1]].ravel(), channel[:, [0, -1]].ravel(), channel[:, :, [0, -1]].ravel()]
        )
        values, counts = np.unique(faces, return_counts=True)
        inside &= channel != values[np.argmax(counts)]
    return inside


def exclusion_zone(
    lesion: NDArray[np.bool_] | None,
    spacing_zyx: tuple[float, float, float],
    margin_mm: float = 2.0,
) -> NDArray[np.bool_] | None:
    """Reference lesions grown by ``margin_mm`` (at least one voxel): not healthy tissue.

    The partial-volume rim of a lesion and the neighbourhood features next to it carry the
    lesion's signal, so neither the healthy model nor the count of false lesions uses them.
    """
    if lesion is None or not lesion.any():
        return lesion
    radius = [max(1, int(np.ceil(margin_mm / s))) for s in spacing_zyx]
    zz, yy, xx = np.ogrid[
        -radius[0] : radius[0] + 1, -radius[1] : radius[1] + 1, -radius[2] : radius[2] + 1
    ]
    ball = (zz / radius[0]) ** 2 + (yy / radius[1]) ** 2 + (xx / radius[2]) ** 2 <= 1.0
    return ndimage.binary_dilation(lesion, structure=ball)


def local_means(
    channels: NDArray[np.float32],
    brain: NDArray[np.bool_],
    spacing_zyx: tuple[float, float, float],
    sigma_mm: float,
) -> NDArray[np.float32]:
    """Gaussian-weighted mean of each channel over the brain around every voxel.

    Normalised convolution (smoothed values over smoothed mask), so voxels next to the brain's
    edge average brain voxels only. Computed on the brain's bounding box.
    """
    box = _bounding_box(brain, margin=int(np.ceil(3 * sigma_mm / min(spacing_zyx))) + 1)
    weight = brain[box].astype(np.float32)
    sigma = [sigma_mm / s for s in spacing_zyx]
    norm = ndimage.gaussian_filter(weight, sigma, truncate=3.0)
    out = np.zeros_like(channels)
    for k, channel in enumerate(channels):
        smoothed = ndimage.gaussian_filter(channel[box] * weight, sigma, truncate=3.0)
        out[(k, *box)] = np.where(norm > 1e-6, smoothed / np.maximum(norm, 1e-6), 0.0)
    return out


def _bounding_box(mask: NDArray[np.bool_], margin: int) -> tuple[slice, slice, slice]:
    slices = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        low = max(0, int(present[0]) - margin) if present.size else 0
        high = min(mask.shape[axis], int(present[-1]) + margin + 1) if present.size else 0
        slices.append(slice(low, high))
    return tuple(slices)  # type: ignore[return-value]
