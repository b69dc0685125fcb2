"""Turning a mask into lesions: one per label value, or one per connected component."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radharmony.errors import EmptyMaskError, ImageReadError

_STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}


@dataclass(frozen=True)
class Lesion:
    """One lesion of a mask.

    Attributes
    ----------
    lesion_id : int
        The label value (multi-label mask) or the component number in raster order
        (binary mask), starting at 1.
    voxels : int
        Number of voxels.
    volume_mm3 : float
        Voxel count times voxel volume.
    centroid_mm : tuple of float
        Centre of mass of the voxels in world (LPS) coordinates, mm.
    bbox : tuple of slice
        Bounding box in array (z, y, x) index order.
    """

    lesion_id: int
    voxels: int
    volume_mm3: float
    centroid_mm: tuple[float, float, float]
    bbox: tuple[slice, slice, slice]


@dataclass(frozen=True)
class LesionSet:
    """The lesions of one mask and what was set aside.

    Attributes
    ----------
    labels : numpy.ndarray
        Integer array (z, y, x) where voxels of lesion ``k`` hold ``k`` (dropped specks are 0).
    lesions : list of Lesion
        Kept lesions, ordered by ``lesion_id``.
    dropped : int
        Number of lesions below the minimum size that were dropped.
    mode : {"multi_label", "components"}
        How lesions were defined.
    """

    labels: np.ndarray
    lesions: list[Lesion]
    dropped: int
    mode: str

    def mask_of(self, lesion: Lesion, reference: sitk.Image) -> sitk.Image:
        """Return the binary uint8 mask of one lesion on the grid of ``reference``."""
        binary = sitk.GetImageFromArray((self.labels == lesion.lesion_id).astype(np.uint8))
        binary.CopyInformation(reference)
        return binary


def split_lesions(
    mask: sitk.Image,
    *,
    connectivity: int = 26,
    min_voxels: int = 1,
    name: str = "mask",
    multi_label: bool | None = None,
) -> LesionSet:
    """Split a mask into lesions.

    A mask whose non-zero voxels all hold one value is binary: each connected component is a
    lesion. A mask with several non-zero values is multi-label: each value is one lesion,
    whether or not its voxels are connected. ``multi_label=True`` reads every mask as
    multi-label (one lesion per value, even when there is one value), as for DICOM ROIs.

    Parameters
    ----------
    mask : SimpleITK.Image
        A 3D mask with non-negative integer values.
    connectivity : {6, 18, 26}
        Neighbourhood that connects voxels of a binary mask into one component.
    min_voxels : int
        Lesions with fewer voxels are dropped (and counted in ``dropped``).
    multi_label : bool, optional
        True: one lesion per label value whatever their number. None: decided by the number of
        values, as above.
    name : str
        Name of the mask (file path) for error messages.

    Returns
    -------
    LesionSet

    Raises
    ------
    EmptyMaskError
        When the mask has no lesion voxels, or none left after dropping small lesions.
    ImageReadError
        When the mask holds negative or non-integer values.
    """
    if connectivity not in _STRUCTURE_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if min_voxels < 1:
        raise ValueError(f"min_voxels must be at least 1, got {min_voxels}")
    values = _integer_mask_array(mask, name)
    present = np.unique(values)
    present = present[present != 0]
    if present.size == 0:
        raise EmptyMaskError(
            f"{name} is empty (no non-zero voxel); check that the segmentation was saved"
        )
    if present.size == 1 and not multi_label:
        structure = ndimage.generate_binary_structure(3, _STRUCTURE_RANK[connectivity])
        labels, _count = ndimage.label(values != 0, structure=structure)
        mode = "components"
    else:
        labels = values.astype(np.int64, copy=False)
        mode = "multi_label"
    lesions, dropped = _measure(labels, mask, min_voxels)
    if not lesions:
        raise EmptyMaskError(
            f"{name}: all {dropped} lesion(s) are smaller than min_lesion_voxels={min_voxels}; "
            "lower the minimum lesion size or check the segmentation"
        )
    if dropped:
        keep = np.isin(labels, [lesion.lesion_id for lesion in lesions])
        labels = np.where(keep, labels, 0)
    return LesionSet(labels=labels, lesions=lesions, dropped=dropped, mode=mode)


def _integer_mask_array(mask: sitk.Image, name: str) -> np.ndarray:
    values = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise ImageReadError(f"{name} holds NaN or infinite values; a mask must be integers")
        if not np.array_equal(values, np.round(values)):
            raise ImageReadError(
                f"{name} holds non-integer values (e.g. a probability map); threshold it into "
                "an integer label mask first"
            )
        values = values.astype(np.int64)
    if values.min() < 0:
        raise ImageReadError(f"{name} holds negative values; label values must be >= 0")
    return np.asarray(values)


def _measure(
    labels: np.ndarray, reference: sitk.Image, min_voxels: int
) -> tuple[list[Lesion], int]:
    ids = np.unique(labels)
    ids = ids[ids != 0]
    counts = ndimage.sum_labels(np.ones_like(labels, dtype=np.int64), labels, index=ids)
    centres = ndimage.center_of_mass(np.ones_like(labels, dtype=np.float64), labels, index=ids)
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False))
    voxel_volume = float(np.prod(reference.GetSpacing()))
    lesions, dropped = [], 0
    for lesion_id, count, centre in zip(ids, counts, centres, strict=True):
        if count < min_voxels:
            dropped += 1
            continue
        z, y, x = centre
        world = reference.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
        lesions.append(
            Lesion(
                lesion_id=int(lesion_id),
                voxels=int(count),
                volume_mm3=float(count) * voxel_volume,
                centroid_mm=(float(world[0]), float(world[1]), float(world[2])),
                bbox=boxes[int(lesion_id) - 1],
            )
        )
    return lesions, dropped
