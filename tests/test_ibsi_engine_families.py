"""The IBSI families pyradiomics lacks, computed through the extraction engine.

Tiny lesions whose values are derived by hand (in the comments) from the IBSI definitions, run
through :func:`compute_lesion_features`: the same processing chain, settings and columns as an
extraction.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radharmony.ibsi import (
    ExtractionSettings,
    compute_lesion_features,
    interpolate_image,
    process_lesion,
)
from radharmony.ibsi._native import n_grey_levels
from radharmony.ibsi.families.local_intensity import PEAK_RADIUS_MM


def _images(
    array: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> tuple[sitk.Image, sitk.Image]:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    mask_image = sitk.GetImageFromArray(mask.astype(np.uint8))
    for item in (image, mask_image):
        item.SetSpacing(spacing)
    return image, mask_image


def _unprocessed(*families: str, **fields: object) -> ExtractionSettings:
    """No resampling; fixed bin size 1 anchored at the ROI minimum keeps integer levels."""
    return ExtractionSettings(
        resampled_spacing=None,
        discretisation="fixed_bin_size",
        bin_width=1.0,
        ivh_discretisation="none",
        feature_classes=families,
        **fields,
    )


def test_statistics_histogram_and_ivh_by_hand() -> None:
    array = np.zeros((3, 4, 4))
    mask = np.zeros(array.shape, dtype=bool)
    mask[1, 1:3, 1:3] = True
    array[1, 1:3, 1:3] = [[1, 1], [2, 4]]
    settings = _unprocessed("statistics", "intensity_histogram", "ivh")
    values = compute_lesion_features(*_images(array, mask), settings)
    # median 1.5: |x - 1.5| = .5, .5, .5, 2.5 -> 1; sd sqrt(1.5) / mean 2; P25 1, P75 2.5
    assert values["stat_medad"] == pytest.approx(1.0)
    assert values["stat_cov"] == pytest.approx(np.sqrt(1.5) / 2)
    assert values["stat_qcod"] == pytest.approx(1.5 / 3.5)
    # grey levels 1, 1, 2, 4: histogram (2, 1, 0, 1), gradient (-1, -1, 0, 1)
    assert (values["ih_mean"], values["ih_mode"], values["ih_range"]) == (2.0, 1.0, 3.0)
    assert (values["ih_max_grad"], values["ih_max_grad_g"]) == (1.0, 4.0)
    assert (values["ih_min_grad"], values["ih_min_grad_g"]) == (-1.0, 1.0)
    # IVH on intensities 1..4 (HU-like, step 1): volume fractions >= i: 1, .5, .25, .25 and
    # intensity fractions (i - 1) / 3. V10 at i = 2, V90 at i = 4; no intensity holds <= 10 %
    # of the volume, so I10 is one step above the maximum; I90 is 2.
    assert values["ivh_v10"] == pytest.approx(0.5)
    assert values["ivh_v90"] == pytest.approx(0.25)
    assert (values["ivh_i10"], values["ivh_i90"]) == (5.0, 2.0)
    assert values["ivh_diff_v10_v90"] == pytest.approx(0.25)
    assert values["ivh_diff_i10_i90"] == pytest.approx(3.0)
    assert not any(c.startswith(("morph_", "dzm_", "loc_")) for c in values)


def test_fixed_bin_size_histogram_spans_the_resegmentation_range() -> None:
    array = np.full((5, 5, 5), -1000.0)
    mask = np.zeros(array.shape, dtype=bool)
    mask[1:4, 1:4, 1:4] = True
    array[mask] = 0.0
    settings = ExtractionSettings(
        resampled_spacing=None,
        resegment_range=(-500.0, 400.0),
        discretisation="fixed_bin_size",
        bin_width=25.0,
        ivh_discretisation="none",
        feature_classes=("intensity_histogram", "ivh"),
    )
    lesion = process_lesion(*_images(array, mask), settings)
    assert n_grey_levels(lesion) == 36  # 900 HU / 25 HU, as IBSI configuration A
    values = compute_lesion_features(*_images(array, mask), settings)
    # all 27 voxels at 0 HU: grey level floor(500 / 25) + 1 = 21 of 36, so the histogram
    # gradient is central on both sides: +27/2 at level 20 and -27/2 at level 22
    assert (values["ih_max_grad"], values["ih_max_grad_g"]) == (13.5, 20.0)
    assert (values["ih_min_grad"], values["ih_min_grad_g"]) == (-13.5, 22.0)
    # IVH over -500..400 HU: every voxel holds >= 10 % of the range (-410 HU), none 90 %
    # (310 HU); the first intensity with at most 10 % (and 90 %) of the volume is 1 HU
    assert (values["ivh_v10"], values["ivh_v90"]) == (1.0, 0.0)
    assert (values["ivh_i10"], values["ivh_i90"]) == (1.0, 1.0)


def test_local_intensity_sphere_reaches_outside_the_roi_and_the_crop() -> None:
    # a single-voxel ROI at 0 inside a shell of 100 between 3 and 5 mm: the 1 cm^3 sphere
    # (radius 6.2 mm) around the ROI voxel holds the whole shell
    z, y, x = np.indices((21, 21, 21)) - 10
    distance = np.sqrt(z**2 + y**2 + x**2)
    array = np.where((distance >= 3) & (distance <= 5), 100.0, 0.0)
    mask = distance == 0
    values = compute_lesion_features(*_images(array, mask), _unprocessed("local_intensity"))
    expected = (
        100.0 * ((distance >= 3) & (distance <= 5)).sum() / (distance <= PEAK_RADIUS_MM).sum()
    )
    assert values["loc_peak_glob"] == pytest.approx(expected)
    assert values["loc_peak_loc"] == pytest.approx(expected)
    assert expected > 30  # a one-voxel crop would have given 0
    lesion = process_lesion(*_images(array, mask), _unprocessed("local_intensity"))
    assert lesion.intensities.shape == (15, 15, 15)  # 7 voxels of margin at 1 mm
    assert process_lesion(*_images(array, mask), _unprocessed("ivh")).intensities.shape == (3, 3, 3)


def test_per_slice_2d_texture_differs_from_merged_2_5d_and_3d() -> None:
    array = np.zeros((4, 4, 4))
    mask = np.zeros(array.shape, dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    array[1, 1:3, 1:3] = [[1, 1], [1, 1]]  # slice 1: one zone of 4
    array[2, 1:3, 1:3] = [[1, 2], [2, 1]]  # slice 2: diagonal pairs, two zones of 2 (8-conn.)
    images = _images(array, mask)
    sze = {
        dimension: compute_lesion_features(*images, _unprocessed("glszm", dimension=dimension))[
            "glszm_SmallAreaEmphasis"
        ]
        for dimension in ("2D", "2.5D", "3D")
    }
    assert sze["2D"] == pytest.approx((1 / 16 + 1 / 4) / 2)  # per slice, then averaged
    assert sze["2.5D"] == pytest.approx((1 / 16 + 1 / 4 + 1 / 4) / 3)  # zones 4, 2, 2 merged
    assert sze["3D"] == pytest.approx((1 / 36 + 1 / 4) / 2)  # zones 6 (level 1) and 2 (level 2)
    glcm_2d = compute_lesion_features(*images, _unprocessed("glcm", dimension="2D"))
    assert "glcm_MCC" not in glcm_2d and "glcm_JointEntropy" in glcm_2d


def test_spatial_autocorrelation_is_opt_in_and_matches_two_voxels() -> None:
    array = np.zeros((3, 3, 4))
    mask = np.zeros(array.shape, dtype=bool)
    mask[1, 1, 1:3] = True
    array[1, 1, 1:3] = [0.0, 10.0]
    images = _images(array, mask)
    # two voxels, deviations +-5, weight 1 / 1 mm: I = 2 / 2w * (-2 w 25) / 50 = -1 and
    # C = 1 / 4w * (2 w 100) / 50 = 1
    values = compute_lesion_features(*images, _unprocessed("spatial_autocorrelation"))
    assert values == pytest.approx({"morph_moran_i": -1.0, "morph_geary_c": 1.0})
    default = ExtractionSettings(resampled_spacing=None)
    assert "morph_moran_i" not in compute_lesion_features(*images, default)


def test_morphology_extras_reuse_the_shape_mesh() -> None:
    rng = np.random.default_rng(5)
    array = rng.normal(50, 10, (12, 12, 12))
    mask = np.zeros(array.shape, dtype=bool)
    mask[3:9, 2:10, 4:8] = True
    images = _images(array, mask, (0.8, 0.8, 2.0))
    alone = compute_lesion_features(*images, _unprocessed("morphology"))
    with_shape = compute_lesion_features(*images, _unprocessed("shape", "morphology"))
    for column, value in alone.items():
        assert with_shape[column] == pytest.approx(value, rel=1e-9), column
    # IBSI identities: asphericity = 1 / sphericity - 1, integrated intensity = V * mean
    assert with_shape["morph_asphericity"] == pytest.approx(1 / with_shape["shape_Sphericity"] - 1)
    volume = with_shape["shape_MeshVolume"]
    assert with_shape["morph_integ_int"] == pytest.approx(volume * array[mask].mean())
    # a box: mesh vertices lie half-way to the outside voxel centres, so its axis-aligned
    # bounding box is the box of the voxels themselves (6 x 8 x 4 voxels)
    extent = np.array([6 * 2.0, 8 * 0.8, 4 * 0.8])
    assert with_shape["morph_vol_dens_aabb"] == pytest.approx(volume / extent.prod())


def test_interpolated_image_is_on_the_centred_ibsi_grid() -> None:
    # 6 voxels of 1 mm resampled to 2 mm: 3 voxels centred on the grid, at 0.5, 2.5, 4.5
    ramp = np.broadcast_to(np.arange(6.0), (2, 2, 6)).copy()
    image = sitk.GetImageFromArray(ramp)
    settings = ExtractionSettings(resampled_spacing=(2.0, None, None))
    assert interpolate_image(image, settings)[0, 0].tolist() == [0.5, 2.5, 4.5]
    rounded = ExtractionSettings(resampled_spacing=(2.0, None, None), round_intensities=True)
    assert interpolate_image(image, rounded)[0, 0].tolist() == [1.0, 3.0, 5.0]
