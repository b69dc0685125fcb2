"""Lesion splitting: multi-label values, connected components, minimum size."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radharmony.errors import EmptyMaskError, ImageReadError
from radharmony.lesions import split_lesions


def _mask(array: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def test_diagonal_neighbours_join_at_26_but_not_at_6_connectivity() -> None:
    array = np.zeros((3, 3, 3), dtype=np.uint8)
    array[0, 0, 0] = array[1, 1, 1] = 1  # touching only at a corner
    assert len(split_lesions(_mask(array), connectivity=26).lesions) == 1
    assert len(split_lesions(_mask(array), connectivity=18).lesions) == 2
    assert len(split_lesions(_mask(array), connectivity=6).lesions) == 2


def test_multi_label_gives_one_lesion_per_value_even_if_disconnected() -> None:
    array = np.zeros((1, 5, 7), dtype=np.uint8)
    array[0, 0, 0] = array[0, 4, 6] = 2  # label 2 in two far pieces
    array[0, 2, 2:4] = 5
    result = split_lesions(_mask(array))
    assert result.mode == "multi_label"
    assert [(les.lesion_id, les.voxels) for les in result.lesions] == [(2, 2), (5, 2)]


def test_volume_and_centroid_use_spacing_and_origin() -> None:
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[1:3, 1:3, 2:4] = 1  # 8 voxels, centre at index (x=2.5, y=1.5, z=1.5)
    mask = _mask(array, spacing=(0.5, 1.0, 2.0))
    mask.SetOrigin((10.0, 20.0, 30.0))
    (lesion,) = split_lesions(mask).lesions
    assert lesion.voxels == 8
    assert lesion.volume_mm3 == pytest.approx(8 * 0.5 * 1.0 * 2.0)
    assert lesion.centroid_mm == pytest.approx((10.0 + 2.5 * 0.5, 20.0 + 1.5, 30.0 + 1.5 * 2.0))


def test_small_lesions_are_dropped_and_counted() -> None:
    array = np.zeros((10, 10, 10), dtype=np.uint8)
    array[0, 0, 0] = 1  # a one-voxel speck
    array[5:8, 5:8, 5:8] = 1  # 27 voxels
    result = split_lesions(_mask(array), min_voxels=5)
    assert result.dropped == 1
    assert [les.voxels for les in result.lesions] == [27]
    assert result.labels[0, 0, 0] == 0
    mask = result.mask_of(result.lesions[0], _mask(array))
    assert int(sitk.GetArrayViewFromImage(mask).sum()) == 27


def test_empty_mask_is_a_clear_error() -> None:
    with pytest.raises(EmptyMaskError, match="case7.nii.gz is empty"):
        split_lesions(_mask(np.zeros((3, 3, 3), dtype=np.uint8)), name="case7.nii.gz")


def test_all_lesions_below_minimum_is_a_clear_error() -> None:
    array = np.zeros((3, 3, 3), dtype=np.uint8)
    array[1, 1, 1] = 1
    with pytest.raises(EmptyMaskError, match="smaller than min_lesion_voxels=2"):
        split_lesions(_mask(array), min_voxels=2)


def test_probability_map_is_rejected() -> None:
    array = np.zeros((3, 3, 3), dtype=np.float32)
    array[1, 1, 1] = 0.7
    with pytest.raises(ImageReadError, match="non-integer values"):
        split_lesions(_mask(array))
