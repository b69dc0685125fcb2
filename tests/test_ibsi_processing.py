"""The IBSI image-processing chain and the engine's corrections, against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage, stats

from radharmony.errors import EmptyMaskError, GeometryMismatchError
from radharmony.ibsi import (
    ExtractionSettings,
    compute_lesion_features,
    process_lesion,
    resampled_size,
)


def _image(array: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((10.0, -5.0, 3.0))
    return image


def _settings(**values: object) -> ExtractionSettings:
    base = {"resampled_spacing": None, "discretisation": "fixed_bin_size", "bin_width": 1.0}
    return ExtractionSettings.from_any({**base, **values})


def test_grid_is_centred_and_rounded_up() -> None:
    # 4 voxels of 1 mm -> ceil(4 * 1 / 2) = 2 voxels of 2 mm at source positions 0.5 and 2.5
    ramp = np.tile(10.0 * np.arange(4), (3, 3, 1))
    image, mask = _image(ramp), _image(np.ones((3, 3, 4), dtype=np.uint8))
    lesion = process_lesion(image, mask, _settings(resampled_spacing=(2.0, None, None)))
    assert resampled_size(image, lesion.settings) == (2, 3, 3)
    np.testing.assert_allclose(lesion.intensities[1, 1, :], [5.0, 25.0])
    assert lesion.spacing == (2.0, 1.0, 1.0)
    assert lesion.origin[0] == pytest.approx(10.0 + 0.5)
    # 5 voxels of 0.977 mm -> ceil(2.4425) = 3 voxels of 2 mm
    assert resampled_size(
        _image(np.zeros((1, 1, 5)), (0.977, 1, 1)), _settings(resampled_spacing=(2.0, None, None))
    ) == (3, 1, 1)


@pytest.mark.parametrize(("interpolator", "order"), [("linear", 1), ("bspline", 3)])
def test_cropped_resampling_equals_whole_image_resampling(interpolator: str, order: int) -> None:
    rng = np.random.default_rng(0)
    array = ndimage.gaussian_filter(rng.normal(0, 100, (30, 40, 40)), 1.5)
    mask_array = np.zeros(array.shape, dtype=np.uint8)
    mask_array[12:19, 15:24, 14:22] = 1
    spacing = (0.8, 0.9, 1.7)
    image, mask = _image(array, spacing), _image(mask_array, spacing)
    settings = _settings(resampled_spacing=(1.3, 1.1, 1.2), image_interpolator=interpolator)
    lesion = process_lesion(image, mask, settings)
    # whole-image reference: IBSI grid in source index units, scipy interpolation
    n_b = resampled_size(image, settings)[::-1]
    axes = []
    for n_a, s_a, s_b, size in zip(array.shape, spacing[::-1], (1.2, 1.1, 1.3), n_b, strict=True):
        ratio = s_b / s_a
        axes.append(((n_a - 1) - ratio * (size - 1)) / 2 + ratio * np.arange(size))
    grid = np.meshgrid(*axes, indexing="ij")
    whole = ndimage.map_coordinates(array, grid, order=order, mode="nearest")
    whole_mask = ndimage.map_coordinates(mask_array.astype(float), grid, order=1) >= 0.5
    assert lesion.morphological_mask.sum() == whole_mask.sum()
    np.testing.assert_allclose(
        np.sort(lesion.intensities[lesion.morphological_mask]),
        np.sort(whole[whole_mask]),
        atol=1e-6,
    )


def test_rounding_is_to_nearest_integer_half_away_from_zero() -> None:
    # linear interpolation half-way between 2 and 3 (and -2, -3) gives exact halves
    array = np.tile(np.array([2.0, 3.0, -2.0, -3.0]), (2, 2, 1))
    image, mask = _image(array), _image(np.ones(array.shape, dtype=np.uint8))
    spacing = (1.0, None, None)
    exact = process_lesion(image, mask, _settings(resampled_spacing=spacing))
    np.testing.assert_allclose(exact.intensities[0, 0], [2, 3, -2, -3])
    settings = _settings(resampled_spacing=(2.0, None, None), round_intensities=True)
    lesion = process_lesion(image, mask, settings)
    # 2 voxels at source positions 0.5 and 2.5: 2.5 -> 3 and -2.5 -> -3
    np.testing.assert_array_equal(lesion.intensities[0, 0], [3.0, -3.0])


def test_fixed_bin_size_is_anchored_at_the_range_lower_bound() -> None:
    values = np.array([-480.0, -476.0, -475.0, 0.0, 400.0]).reshape(1, 1, 5)
    image, mask = _image(values), _image(np.ones(values.shape, dtype=np.uint8))
    settings = _settings(resegment_range=(-500.0, 400.0), bin_width=25.0)
    lesion = process_lesion(image, mask, settings)
    # floor((x + 500) / 25) + 1; pyradiomics (edges at multiples of 25) would give 1, 1, 2, ...
    np.testing.assert_array_equal(lesion.grey_levels[lesion.intensity_mask], [1, 1, 2, 21, 37])
    no_range = process_lesion(image, mask, _settings(bin_width=25.0))
    np.testing.assert_array_equal(no_range.grey_levels[no_range.intensity_mask], [1, 1, 1, 20, 36])


def test_fixed_bin_number_puts_the_maximum_in_the_last_bin() -> None:
    values = np.arange(11, dtype=float).reshape(1, 1, 11)
    image, mask = _image(values), _image(np.ones(values.shape, dtype=np.uint8))
    lesion = process_lesion(image, mask, _settings(discretisation="fixed_bin_number", bin_count=4))
    expected = np.minimum(np.floor(4 * values.ravel() / 10), 3) + 1
    np.testing.assert_array_equal(lesion.grey_levels[lesion.intensity_mask], expected)


def test_resegmentation_applies_the_range_then_sigma_on_what_remains() -> None:
    values = np.array([-1000.0] * 10 + [0.0] * 20 + [10.0] * 20 + [40.0]).reshape(1, 1, -1)
    image, mask = _image(values), _image(np.ones(values.shape, dtype=np.uint8))
    lesion = process_lesion(image, mask, _settings(resegment_range=(-500, None), resegment_sigma=3))
    kept = values.ravel()[values.ravel() > -500]
    mean, sd = kept.mean(), kept.std()
    expected = np.abs(kept - mean) <= 3 * sd
    assert lesion.intensity_mask.sum() == expected.sum() == 40  # 40 HU is beyond 3 sigma
    # sigma on all values would have kept 40 HU (the -1000 voxels inflate the SD)
    assert abs(40 - values.mean()) <= 3 * values.std()
    assert lesion.morphological_mask.sum() == values.size


def test_morphology_uses_mask_before_resegmentation_and_statistics_after() -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(-100, 100, (8, 8, 8)).astype(float)
    array[2, 2, 2] = 5000.0
    mask_array = np.zeros(array.shape, dtype=np.uint8)
    mask_array[1:7, 1:7, 1:7] = 1
    settings = _settings(resegment_range=(-1000, 400))
    values = compute_lesion_features(_image(array), _image(mask_array), settings)
    assert values["shape_VoxelVolume"] == pytest.approx(216.0)
    roi = array[mask_array == 1]
    roi = roi[roi <= 400]
    assert values["firstorder_Maximum"] == pytest.approx(roi.max())
    assert values["firstorder_Mean"] == pytest.approx(roi.mean())
    assert values["firstorder_Kurtosis"] == pytest.approx(stats.kurtosis(roi, fisher=True))


def test_principal_axes_use_the_ibsi_covariance() -> None:
    mask_array = np.zeros((9, 12, 16), dtype=np.uint8)
    mask_array[2:6, 3:8, 2:14] = 1
    spacing = (0.7, 1.0, 2.0)
    values = compute_lesion_features(
        _image(np.ones(mask_array.shape), spacing), _image(mask_array, spacing), _settings()
    )
    coordinates = np.argwhere(mask_array == 1) * np.array(spacing[::-1])
    eigen = np.sort(np.linalg.eigvalsh(np.cov(coordinates.T, ddof=1)))
    assert values["shape_MajorAxisLength"] == pytest.approx(4 * np.sqrt(eigen[2]))
    assert values["shape_MinorAxisLength"] == pytest.approx(4 * np.sqrt(eigen[1]))
    assert values["shape_LeastAxisLength"] == pytest.approx(4 * np.sqrt(eigen[0]))


def test_texture_sees_ibsi_grey_levels_not_renumbered_ones() -> None:
    # all ROI intensities in bin 3 and 4 of a range anchored at 0: pyradiomics' own binning
    # would renumber them 1 and 2
    array = np.where(np.indices((6, 6, 6)).sum(axis=0) % 2 == 0, 55.0, 80.0)
    mask = np.ones(array.shape, dtype=np.uint8)
    settings = _settings(resegment_range=(0, 400), bin_width=25.0)
    values = compute_lesion_features(_image(array), _image(mask), settings)
    levels = np.where(array == 55.0, 3, 4)
    assert values["glcm_JointAverage"] == pytest.approx(levels.mean(), abs=0.05)
    assert values["glszm_HighGrayLevelZoneEmphasis"] == pytest.approx(12.5)  # (9 + 16) / 2


def test_empty_lesions_raise_empty_mask_error() -> None:
    array = np.zeros((4, 4, 4))
    empty = np.zeros(array.shape, dtype=np.uint8)
    with pytest.raises(EmptyMaskError, match="no voxels"):
        compute_lesion_features(_image(array), _image(empty), _settings())
    one = empty.copy()
    one[1, 1, 1] = 1
    with pytest.raises(EmptyMaskError, match="re-segmentation range"):
        compute_lesion_features(_image(array), _image(one), _settings(resegment_range=(10, 20)))


def test_mismatched_grids_raise_geometry_error() -> None:
    image = _image(np.zeros((4, 4, 4)))
    mask = _image(np.ones((4, 4, 5), dtype=np.uint8))
    with pytest.raises(GeometryMismatchError, match="differs from the image grid"):
        process_lesion(image, mask, _settings())


def test_mesh_volume_does_not_depend_on_where_the_lesion_sits(shared_data: Path) -> None:
    cases = shared_data / "pyradiomics_cases"
    image = sitk.ReadImage(str(cases / "brain2_image.nrrd"))
    mask = sitk.Cast(sitk.ReadImage(str(cases / "brain2_label.nrrd")) == 1, sitk.sitkUInt8)
    settings = _settings(feature_classes=["shape"])
    volume = compute_lesion_features(image, mask, settings)["shape_MeshVolume"]
    # pyradiomics' own baseline for this case (baseline/baseline_shape.csv)
    assert volume == pytest.approx(1736.01786296, rel=1e-9)
    padded_image = sitk.ConstantPad(image, (7, 3, 4), (2, 5, 6))
    padded_mask = sitk.ConstantPad(mask, (7, 3, 4), (2, 5, 6))
    moved = compute_lesion_features(padded_image, padded_mask, settings)["shape_MeshVolume"]
    assert moved == pytest.approx(volume, rel=1e-12)
