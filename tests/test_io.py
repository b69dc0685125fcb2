"""Reading images from files and objects, and checking image/mask geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from radharmony.errors import GeometryMismatchError, ImageReadError
from radharmony.io import check_geometry, read_image


def _image(shape: tuple[int, int, int] = (4, 5, 6)) -> sitk.Image:
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-10.0, 5.0, 3.0))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(_image(), str(path))
    back = read_image(path)
    assert back.GetSize() == (6, 5, 4)
    assert back.GetSpacing() == pytest.approx((0.7, 0.8, 2.5))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(_image()))


def test_nibabel_image_matches_the_file_read_by_simpleitk(tmp_path: Path) -> None:
    path = tmp_path / "img.nii.gz"
    sitk.WriteImage(_image(), str(path))
    from_nib = read_image(nib.load(path))
    from_file = read_image(path)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(from_nib), sitk.GetArrayFromImage(from_file)
    )
    assert from_nib.GetSpacing() == pytest.approx(from_file.GetSpacing())
    assert from_nib.GetOrigin() == pytest.approx(from_file.GetOrigin(), abs=1e-5)
    assert from_nib.GetDirection() == pytest.approx(from_file.GetDirection(), abs=1e-6)


def test_dicom_series_folder(tmp_path: Path) -> None:
    image = sitk.Cast(_image(), sitk.sitkInt16)
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        slice_ = image[:, :, z]
        origin = image.TransformIndexToPhysicalPoint((0, 0, z))
        slice_.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        slice_.SetMetaData("0020|0032", "\\".join(f"{v:f}" for v in origin))
        slice_.SetMetaData("0020|0013", str(z))
        slice_.SetMetaData("0028|0030", "0.8\\0.7")
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(slice_)
    back = read_image(folder)
    assert back.GetSize() == image.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_truncated_file_is_a_clear_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(_image((20, 20, 20)), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match=r"truncated or corrupt"):
        read_image(path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(ImageReadError, match="unsupported extension"):
        read_image(path)


def test_2d_image_is_rejected_with_advice() -> None:
    with pytest.raises(ImageReadError, match="is 2D"):
        read_image(sitk.Image(5, 5, sitk.sitkFloat32))


def test_geometry_match_passes_and_each_mismatch_is_named() -> None:
    image, mask = _image(), _image()
    check_geometry(image, mask)
    mask.SetOrigin((-10.0, 5.0, 4.0))
    mask.SetSpacing((0.7, 0.8, 3.0))
    with pytest.raises(GeometryMismatchError) as info:
        check_geometry(image, mask, image_name="ct.nii.gz", mask_name="seg.nii.gz")
    message = str(info.value)
    assert message.startswith("seg.nii.gz does not match the grid of ct.nii.gz")
    assert "spacing (0.7, 0.8, 2.5) vs (0.7, 0.8, 3)" in message
    assert "origin" in message
    assert "size" not in message


def test_size_mismatch() -> None:
    with pytest.raises(GeometryMismatchError, match=r"size \(6, 5, 4\) vs \(6, 5, 3\)"):
        check_geometry(_image(), _image((3, 5, 6)))


def test_float_nifti_keeps_nan_and_matches_itk_geometry(tmp_path: Path) -> None:
    # ITK's own NIfTI reader silently turns NaN into 0; radharmony must not.
    array = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
    array[1, 2, 3] = np.nan
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-10.0, 5.0, 3.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(image, str(path))
    back = read_image(path)
    itk = sitk.ReadImage(str(path))
    got = sitk.GetArrayFromImage(back)
    assert np.isnan(got[1, 2, 3]) and np.isnan(got).sum() == 1
    np.testing.assert_array_equal(np.nan_to_num(got), sitk.GetArrayFromImage(itk))
    assert back.GetSpacing() == pytest.approx(itk.GetSpacing())
    assert back.GetOrigin() == pytest.approx(itk.GetOrigin())
    assert back.GetDirection() == pytest.approx(itk.GetDirection())
