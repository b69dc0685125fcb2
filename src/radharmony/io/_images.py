"""Reading images and masks into SimpleITK, and checking that they share one voxel grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radharmony.errors import GeometryMismatchError, ImageReadError

ImageLike = str | Path | sitk.Image | Any  # Any: a nibabel spatial image
_SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_image(source: ImageLike, *, role: str = "image") -> sitk.Image:
    """Read an image or mask as a SimpleITK image.

    Parameters
    ----------
    source : str, Path, SimpleITK.Image or nibabel image
        A NIfTI (.nii/.nii.gz), NRRD, MetaImage (.mha/.mhd) file, a folder holding one DICOM
        series, or an in-memory SimpleITK or nibabel image.
    role : str
        ``"image"`` or ``"mask"``; only used in error messages.

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    ImageReadError
        When the file is missing, unreadable, of an unsupported format or not 3D.
    """
    if isinstance(source, sitk.Image):
        image = source
    elif _is_nibabel_image(source):
        image = _nibabel_to_sitk(source)
    else:
        image = _read_path(Path(source), role)
    return _as_3d(image, source, role)


def _read_path(path: Path, role: str) -> sitk.Image:
    if not path.exists():
        raise ImageReadError(f"{role} file {path} does not exist; check the path in the manifest")
    if path.is_dir():
        return _read_dicom_series(path, role)
    if not path.name.lower().endswith(_SUPPORTED_SUFFIXES):
        raise ImageReadError(
            f"{role} file {path} has an unsupported extension; use one of "
            f"{', '.join(_SUPPORTED_SUFFIXES)} or a DICOM series folder"
        )
    try:
        _check_declared_size(path, role)
        if _is_float_nifti(path):
            return _read_float_nifti(path, role)
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise ImageReadError(
            f"{role} file {path} could not be read (truncated or corrupt?): {reason}. "
            "Re-export or re-download the file."
        ) from err
    if path.name.lower().endswith(".nii.gz"):
        _check_gzip_nifti_complete(path, image, role)
    return image


def _is_float_nifti(path: Path) -> bool:
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return False
    import nibabel as nib

    try:
        header: Any = nib.load(path).header
    except Exception:  # noqa: BLE001 - let the ITK reader produce the error message
        return False
    return header.get_data_dtype().kind == "f"


def _read_float_nifti(path: Path, role: str) -> sitk.Image:
    # ITK's NIfTI reader turns NaN voxels into 0 without a word; nibabel keeps them. The voxel
    # array therefore comes from nibabel and the geometry from ITK (same voxel order on disk).
    import nibabel as nib

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    try:
        loaded: Any = nib.load(path)
        data = np.asanyarray(loaded.dataobj)
    except Exception as err:  # noqa: BLE001 - any decoding failure means a damaged file
        raise ImageReadError(
            f"{role} file {path} is truncated or corrupt ({type(err).__name__}: {err}). "
            "Re-export or re-download the file."
        ) from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageReadError(
            f"{role} file {path} is {data.ndim}D with shape {data.shape}; radharmony needs a 3D "
            "volume (split 4D series into 3D volumes; stack 2D slices into a volume)"
        )
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T), isVector=False)
    image.SetSpacing(reader.GetSpacing()[:3])
    image.SetOrigin(reader.GetOrigin()[:3])
    n = reader.GetDimension()
    direction = np.asarray(reader.GetDirection()).reshape(n, n)[:3, :3]
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    return image


# A header may declare a size no scanner produces (corrupt or hostile file); refuse it before
# the reader tries to allocate it. 2**31 voxels is a 1300^3 volume, far above clinical images.
MAX_VOXELS = 2**31


def _check_declared_size(path: Path, role: str) -> None:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()
    n_voxels = int(np.prod(np.asarray(size, dtype=np.float64)))
    if n_voxels > MAX_VOXELS:
        raise ImageReadError(
            f"{role} file {path} declares {n_voxels:.3g} voxels (size {size}), more than the "
            f"{MAX_VOXELS:.3g} radharmony accepts; the header is probably corrupt"
        )


def _check_gzip_nifti_complete(path: Path, image: sitk.Image, role: str) -> None:
    # ITK fills a truncated .nii.gz with zeros instead of failing. The gzip trailer stores the
    # uncompressed size (mod 2**32): compare it with the size the NIfTI header implies.
    import gzip
    import struct

    try:
        with gzip.open(path, "rb") as handle:
            header = handle.read(352)
    except (OSError, EOFError) as err:
        raise ImageReadError(
            f"{role} file {path} is truncated or corrupt ({err}). Re-export or re-download it."
        ) from err
    sizeof_hdr = struct.unpack("<i", header[:4])[0]
    endian = "<" if sizeof_hdr in (348, 540) else ">"
    if struct.unpack(f"{endian}i", header[:4])[0] == 540:
        return  # NIfTI-2: rare; ITK's own checks apply
    vox_offset = int(struct.unpack(f"{endian}f", header[108:112])[0])
    bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
    expected = max(vox_offset, 352) + image.GetNumberOfPixels() * max(bitpix, 8) // 8
    with open(path, "rb") as raw:
        raw.seek(-4, 2)
        stored = struct.unpack("<I", raw.read(4))[0]
    if stored != expected % 2**32:
        raise ImageReadError(
            f"{role} file {path} is truncated or corrupt: the compressed stream does not hold "
            f"the {expected} bytes its header announces. Re-export or re-download the file."
        )


def _read_dicom_series(folder: Path, role: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise ImageReadError(f"{role} folder {folder} holds no DICOM series")
    if len(series_ids) > 1:
        raise ImageReadError(
            f"{role} folder {folder} holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); "
            "put each series in its own folder"
        )
    files = reader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(f"DICOM series in {folder} could not be read: {err}") from err


def _is_nibabel_image(obj: Any) -> bool:
    return hasattr(obj, "affine") and hasattr(obj, "get_fdata") and hasattr(obj, "dataobj")


def _nibabel_to_sitk(img: Any) -> sitk.Image:
    # nibabel uses RAS+ world coordinates, ITK uses LPS+: flip the first two axes of the affine.
    data = np.asanyarray(img.dataobj)
    if data.ndim != 3:
        raise ImageReadError(f"nibabel image must be 3D, got shape {data.shape}")
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(img.affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in affine[:3, 3]))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    return image


def _as_3d(image: sitk.Image, source: Any, role: str) -> sitk.Image:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{role} {_describe(source)} has {image.GetNumberOfComponentsPerPixel()} components "
            "per voxel; give a scalar (grey-level) image"
        )
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        raise ImageReadError(
            f"{role} {_describe(source)} is {dim}D with size {image.GetSize()}; radharmony needs "
            "a 3D volume (split 4D series into 3D volumes; stack 2D slices into a volume)"
        )
    return image


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, str | Path) else f"<{type(source).__name__}>"


def check_geometry(
    image: sitk.Image,
    mask: sitk.Image,
    *,
    tolerance: float = 1e-3,
    image_name: str = "image",
    mask_name: str = "mask",
) -> None:
    """Raise if an image and its mask do not share the same voxel grid.

    Parameters
    ----------
    image, mask : SimpleITK.Image
        The intensity image and its mask.
    tolerance : float
        Allowed difference in spacing and origin (relative to the spacing) and in direction
        cosines.
    image_name, mask_name : str
        Names (e.g. file paths) used in the error message.

    Raises
    ------
    GeometryMismatchError
        Naming each property that differs, with both values.
    """
    problems = []
    if image.GetSize() != mask.GetSize():
        problems.append(f"size {image.GetSize()} vs {mask.GetSize()}")
    spacing = np.asarray(image.GetSpacing())
    if not np.allclose(spacing, mask.GetSpacing(), rtol=tolerance, atol=0):
        problems.append(f"spacing {_fmt(image.GetSpacing())} vs {_fmt(mask.GetSpacing())}")
    origin_gap = np.abs(np.asarray(image.GetOrigin()) - np.asarray(mask.GetOrigin()))
    if np.any(origin_gap > tolerance * spacing.max()):
        problems.append(f"origin {_fmt(image.GetOrigin())} vs {_fmt(mask.GetOrigin())}")
    if not np.allclose(image.GetDirection(), mask.GetDirection(), atol=tolerance):
        problems.append(f"direction {_fmt(image.GetDirection())} vs {_fmt(mask.GetDirection())}")
    if problems:
        raise GeometryMismatchError(
            f"{mask_name} does not match the grid of {image_name}: {'; '.join(problems)}. "
            "The mask must be drawn on (or resampled to) the image it belongs to; check that "
            "both files come from the same series."
        )


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
