"""Filters in the per-lesion extraction: the crop never changes a response; the columns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.ibsi import ExtractionSettings, compute_lesion_features, process_lesion
from radharmony.ibsi.families import statistics_features
from radharmony.ibsi.filters import filter_image
from radharmony.ibsi.filters.dictionary import filtered_feature_dictionary
from radharmony.ibsi.processing import interpolate_image

FILTERS = [
    {"filter": "mean", "support": 5, "dimension": "2D"},
    {"filter": "log", "sigma_mm": 2.0, "dimension": "3D"},
    {"filter": "laws", "kernel": "L5E5E5", "energy_delta": 3, "rotation_invariance": True},
    {
        "filter": "gabor",
        "sigma_mm": 2,
        "lambda_mm": 3,
        "gamma": 0.5,
        "theta_step_deg": 90,
        "dimension": "3D",
    },
    {
        "filter": "wavelet",
        "wavelet": "db3",
        "subband": "HHL",
        "level": 2,
        "rotation_invariance": True,
    },
    {"filter": "wavelet", "wavelet": "haar", "subband": "LH", "boundary": "periodic"},
    {"filter": "simoncelli", "level": 1, "dimension": "2D", "boundary": "periodic"},
    {"filter": "simoncelli", "level": 2, "dimension": "3D"},
    {"filter": "log", "sigma_mm": 2.0, "riesz_order": [0, 1, 0], "boundary": "zero"},
]


def _case() -> tuple[sitk.Image, list[sitk.Image]]:
    """A noisy volume with a lesion touching the image's x edge and one in the middle."""
    rng = np.random.default_rng(11)
    array = rng.normal(40.0, 25.0, (22, 46, 50))
    zz, yy, xx = np.indices(array.shape)
    masks = []
    for centre, radius in (((11, 23, 3), 5), ((11, 24, 27), 4)):
        ball = sum((g - c) ** 2 for g, c in zip((zz, yy, xx), centre, strict=True)) <= radius**2
        array[ball] += 60.0
        mask = sitk.GetImageFromArray(ball.astype(np.uint8))
        mask.SetSpacing((0.8, 0.8, 2.0))
        masks.append(mask)
    image = sitk.GetImageFromArray(np.round(array))
    image.SetSpacing((0.8, 0.8, 2.0))
    return image, masks


def _crop_start(
    image: sitk.Image, lesion_origin: tuple[float, ...], settings: ExtractionSettings
) -> list[int]:
    """Index (z, y, x) of the crop's first voxel on the whole processed grid."""
    index = image.TransformPhysicalPointToContinuousIndex(lesion_origin)[::-1]
    sizes, spacings = image.GetSize()[::-1], image.GetSpacing()[::-1]
    targets = (
        (None,) * 3 if settings.resampled_spacing is None else settings.resampled_spacing[::-1]
    )
    start = []
    for i, n, s, t in zip(index, sizes, spacings, targets, strict=True):
        if t is None:
            start.append(round(i))
            continue
        n_new = int(np.ceil(round(n * s / t, 6)))
        ratio = t / s
        start.append(round((i - ((n - 1) - ratio * (n_new - 1)) / 2) / ratio))
    return start


@pytest.mark.parametrize(
    ("resampled", "n_filters"),
    [(None, 6), ((1.0, 1.0, 1.0), 6), (None, len(FILTERS))],
    ids=["compact filters", "compact filters, resampled", "with Fourier-domain filters"],
)
def test_crop_responses_equal_whole_image_responses(
    resampled: tuple | None, n_filters: int
) -> None:
    """No edge artefact: inside every lesion crop the response is the whole image's.

    Compact filters read a crop as wide as their support around the lesion (the first lesion
    touches the image edge, where the boundary condition applies); Fourier-domain filters
    (Simoncelli, Riesz) read the whole image along the axes they filter.
    """
    image, masks = _case()
    settings = ExtractionSettings(
        resampled_spacing=resampled,
        feature_classes=("statistics",),
        filters=tuple(FILTERS[:n_filters]),
    )
    whole = interpolate_image(image, settings)
    spacing = [float(s) for s in (settings.resampled_spacing or image.GetSpacing())][::-1]
    for mask in masks:
        lesion = process_lesion(image, mask, settings)
        start = _crop_start(image, lesion.origin, settings)
        region = tuple(
            slice(a, a + n) for a, n in zip(start, lesion.intensities.shape, strict=True)
        )
        np.testing.assert_array_equal(whole[region], lesion.intensities)
        if n_filters == 6:  # compact filters keep the crop local
            assert lesion.intensities.shape[2] < whole.shape[2] - 10
        for image_filter in settings.filters:
            expected = image_filter.apply(whole, spacing)[region]
            got = lesion.responses[image_filter.label]
            assert np.abs(got - expected).max() <= 1e-9 * np.ptp(expected), image_filter.label
        # the check can fail: filtering the lesion's crop alone shows edge artefacts
        naive = settings.filters[1].apply(lesion.intensities, spacing)
        assert np.abs(naive - lesion.responses[settings.filters[1].label]).max() > 1.0


def test_filtered_columns_are_the_features_of_the_response_in_the_resegmented_roi() -> None:
    image, masks = _case()
    settings = ExtractionSettings(
        resampled_spacing=None,
        resegment_range=(0.0, 150.0),
        feature_classes=("statistics",),
        bin_count=16,
        filters=(
            {
                "filter": "log",
                "sigma_mm": 1.6,
                "features": ["statistics", "glcm", "intensity_histogram"],
            },
            {"filter": "mean", "support": 3, "dimension": "2D"},
        ),
    )
    values = compute_lesion_features(image, masks[1], settings)
    log, mean = settings.filters
    response = sitk.GetArrayFromImage(filter_image(image, log))
    roi = sitk.GetArrayFromImage(masks[1]).astype(bool)
    intensities = sitk.GetArrayFromImage(image)
    roi &= (intensities >= 0) & (intensities <= 150)  # re-segmented on unfiltered intensities
    expected = statistics_features(response, roi)
    for tag, value in expected.items():
        assert values[f"{log.label}__{tag}"] == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert f"{log.label}__cm_joint_max_3D_avg" in values
    assert not any(c.endswith(("_3D_comb", "_2D_avg", "_2_5D_avg")) for c in values)
    assert f"{log.label}__ih_mean" in values
    assert values[f"{log.label}__ih_max"] == 16  # fixed bin number over the response
    assert f"{mean.label}__stat_mean" in values and f"{mean.label}__ih_mean" not in values
    filtered = [c for c in values if "__" in c]
    described = filtered_feature_dictionary(settings)
    assert sorted(described["name"]) == sorted(filtered)
    assert described["description"].str.contains("IBSI L6PA|IBSI S60F").all()


def test_extraction_with_filters_writes_described_columns(
    tiny_cohort: Path, project_root: Path
) -> None:
    from radharmony.extract import extract_features

    settings = dataclasses.replace(
        ExtractionSettings.from_any("default"),
        feature_classes=("statistics",),
        filters=(
            {
                "filter": "wavelet",
                "wavelet": "db2",
                "subband": "LLH",
                "features": ["statistics", "gldzm"],
            },
        ),
    )
    features = extract_features(tiny_cohort, settings=settings)
    filtered = [c for c in features.columns if "__" in c]
    assert filtered and features[filtered].notna().all().all()
    assert features.attrs["provenance"]["settings"]["filters"][0]["filter"] == "wavelet"
    grammar = pd.read_csv(project_root / "data_dictionary" / "filtered_features.csv")
    patterns = set(grammar["name"])
    for column in filtered:
        label, tag = column.split("__")
        assert label == settings.filters[0].label
        generic = tag.replace("_3D", "_<D>")
        assert f"<filter>__{generic}" in patterns, column


def test_report_lists_the_filters_in_ibsi_terms() -> None:
    from radharmony.report._extraction import settings_table

    settings = ExtractionSettings(filters=({"filter": "log", "sigma_mm": 1.5},))
    table = settings_table(settings.to_dict(), {}).set_index("item")["value"]
    assert table["Convolutional filters (IBSI 2)"] == (
        "Laplacian-of-Gaussian filter, IBSI L6PA: sigma 1.5 mm, kernel truncated at 4 sigma; "
        "3D, boundary mirror"
    )
    assert (
        "Convolutional filters (IBSI 2)"
        not in settings_table(ExtractionSettings().to_dict(), {}).set_index("item").index
    )


def test_non_finite_voxels_within_a_filters_reach_are_named() -> None:
    from radharmony.errors import ImageReadError

    image, masks = _case()
    array = sitk.GetArrayFromImage(image)
    array[11, 24, 40] = np.nan  # 9 voxels (7 mm) from the central lesion's edge
    holed = sitk.GetImageFromArray(array)
    holed.CopyInformation(image)
    common = {"resampled_spacing": None, "feature_classes": ("statistics",)}
    near = ExtractionSettings(**common, filters=({"filter": "mean", "support": 3},))
    assert np.isfinite(list(compute_lesion_features(holed, masks[1], near).values())).all()
    far = ExtractionSettings(**common, filters=({"filter": "log", "sigma_mm": 3},))
    with pytest.raises(ImageReadError, match="1 NaN or infinite voxel.*log_sigma3mm_3D"):
        compute_lesion_features(holed, masks[1], far)
