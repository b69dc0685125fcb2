"""Tests of the synthetic multi-scanner image cohort, checked against the truth it was built from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage, stats

from radharmony import __version__
from radharmony.datasets import SyntheticCohort, make_cohort
from radharmony.datasets import _phantom as ph
from radharmony.datasets._cohort import GROUND_TRUTH_COLUMNS, MANIFEST_COLUMNS, synthesise_subject
from radharmony.errors import SettingsError

SEED = 11
N_SUBJECTS = 45
N_SCANNERS = 3
N_PREFIX = 12
_CUBE = np.ones((3, 3, 3), dtype=bool)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCohort:
    return make_cohort(N_SUBJECTS, N_SCANNERS, SEED, tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def prefix_cohort(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCohort:
    return make_cohort(N_PREFIX, N_SCANNERS, SEED, tmp_path_factory.mktemp("prefix"))


@pytest.fixture(scope="module")
def lesion_stats(cohort: SyntheticCohort) -> pd.DataFrame:
    """Per-lesion statistics measured on the written images, joined with the ground truth."""
    rows = []
    for row in cohort.manifest.itertuples():
        image, mask = _arrays(cohort, row.subject_id)
        for label in range(1, int(mask.max()) + 1):
            interior = ndimage.binary_erosion(mask == label)
            values = image[interior].astype(float)
            rows.append(
                {
                    "subject_id": row.subject_id,
                    "lesion_id": label,
                    "n_interior": int(interior.sum()),
                    "interior_mean": values.mean(),
                    "interior_sd": values.std(ddof=1),
                }
            )
    return pd.DataFrame(rows).merge(cohort.ground_truth, on=["subject_id", "lesion_id"])


def _read(cohort: SyntheticCohort, subject_id: str) -> tuple[sitk.Image, sitk.Image]:
    row = cohort.manifest.set_index("subject_id").loc[subject_id]
    return (
        sitk.ReadImage(str(cohort.out_dir / row["image"])),
        sitk.ReadImage(str(cohort.out_dir / row["mask"])),
    )


def _arrays(cohort: SyntheticCohort, subject_id: str) -> tuple[np.ndarray, np.ndarray]:
    image, mask = _read(cohort, subject_id)
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask)


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive scores above a negative (Mann-Whitney AUC)."""
    u = stats.mannwhitneyu(positive, negative).statistic
    return float(u / (len(positive) * len(negative)))


def test_written_tables_match_returned_tables_and_contract(cohort: SyntheticCohort) -> None:
    manifest = pd.read_csv(cohort.manifest_path)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == N_SUBJECTS
    assert manifest["subject_id"].tolist()[:2] == ["sub-0001", "sub-0002"]
    assert manifest.loc[0, "image"] == "images/sub-0001.nii.gz"
    assert manifest.loc[0, "mask"] == "masks/sub-0001.nii.gz"
    assert all((cohort.out_dir / p).is_file() for p in [*manifest["image"], *manifest["mask"]])
    pd.testing.assert_frame_equal(manifest, cohort.manifest)

    truth = pd.read_csv(cohort.ground_truth_path)
    assert tuple(truth.columns) == GROUND_TRUTH_COLUMNS
    pd.testing.assert_frame_equal(truth, cohort.ground_truth, check_exact=False, rtol=1e-12)
    assert set(truth["lesion_class"]) == {"benign", "malignant"}
    assert (truth["label"] == (truth["lesion_class"] == "malignant")).all()

    scanners = pd.read_csv(cohort.scanners_path)
    assert scanners["scanner"].tolist() == ["scanner_A", "scanner_B", "scanner_C"]
    # Evenly spread levels: each parameter takes the low, middle and high value of its range.
    assert sorted(scanners["noise_sd_hu"]) == pytest.approx([5.0, 10.0, 15.0])
    assert sorted(scanners["intensity_offset_hu"]) == pytest.approx([-25.0, 0.0, 25.0])
    assert sorted(scanners["malignant_fraction"]) == pytest.approx([0.25, 0.5, 0.75])

    metadata = json.loads(cohort.metadata_path.read_text(encoding="utf-8"))
    assert metadata["arguments"] == {"n_subjects": N_SUBJECTS, "n_scanners": 3, "seed": SEED}
    assert metadata["radharmony_version"] == __version__


def test_prefix_of_larger_cohort_is_identical(
    cohort: SyntheticCohort, prefix_cohort: SyntheticCohort
) -> None:
    """Same seed gives identical arrays, and n=12 is exactly the first 12 subjects of n=45."""
    for subject_id in prefix_cohort.manifest["subject_id"]:
        for small, large in zip(
            _read(prefix_cohort, subject_id), _read(cohort, subject_id), strict=True
        ):
            assert np.array_equal(sitk.GetArrayFromImage(small), sitk.GetArrayFromImage(large))
            assert small.GetSpacing() == large.GetSpacing()
    head = cohort.ground_truth[
        cohort.ground_truth["subject_id"].isin(prefix_cohort.manifest["subject_id"])
    ]
    pd.testing.assert_frame_equal(prefix_cohort.ground_truth, head.reset_index(drop=True))
    pd.testing.assert_frame_equal(prefix_cohort.manifest, cohort.manifest.head(N_PREFIX))


def test_same_seed_same_bytes_other_seed_differs() -> None:
    scanner = ph.make_scanners(2, np.random.default_rng(0))[1]
    image_a, mask_a, subject_a, lesions_a = synthesise_subject(5, 3, scanner)
    image_b, mask_b, subject_b, lesions_b = synthesise_subject(5, 3, scanner)
    assert image_a.tobytes() == image_b.tobytes()
    assert mask_a.tobytes() == mask_b.tobytes()
    assert (subject_a, lesions_a) == (subject_b, lesions_b)
    image_c, _, _, _ = synthesise_subject(6, 3, scanner)
    assert image_c.shape == image_a.shape
    assert np.mean(image_c != image_a) > 0.9


def test_image_and_mask_share_the_scanner_grid(cohort: SyntheticCohort) -> None:
    scanners = cohort.scanners.set_index("scanner")
    for row in cohort.manifest.itertuples():
        image, mask = _read(cohort, row.subject_id)
        assert image.GetPixelID() == sitk.sitkInt16
        assert mask.GetPixelID() == sitk.sitkUInt8
        assert image.GetSize() == mask.GetSize()
        assert image.GetSpacing() == mask.GetSpacing()
        assert image.GetOrigin() == mask.GetOrigin()
        assert image.GetDirection() == mask.GetDirection()
        protocol = scanners.loc[row.scanner]
        expected = (protocol["spacing_x_mm"], protocol["spacing_y_mm"], protocol["spacing_z_mm"])
        assert image.GetSpacing() == pytest.approx(expected, abs=1e-6)
        assert image.GetSize() == (protocol["size_x"], protocol["size_y"], protocol["size_z"])
        # The grid is centred on the origin: first and last voxel centres are symmetric.
        last = image.TransformIndexToPhysicalPoint([n - 1 for n in image.GetSize()])
        assert np.add(image.GetOrigin(), last) == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def test_one_to_three_labelled_lesions_that_never_touch(cohort: SyntheticCohort) -> None:
    truth = cohort.ground_truth
    counts = truth.groupby("subject_id").size()
    assert counts.between(1, 3).all()
    assert set(counts) == {1, 2, 3}
    for subject_id in cohort.manifest["subject_id"]:
        _, mask = _arrays(cohort, subject_id)
        labels = truth.loc[truth["subject_id"] == subject_id, "lesion_id"].tolist()
        assert (
            sorted(np.unique(mask[mask > 0]).tolist()) == labels == list(range(1, len(labels) + 1))
        )
        expected_voxels = truth.loc[truth["subject_id"] == subject_id, "n_voxels"].tolist()
        assert [int((mask == k).sum()) for k in labels] == expected_voxels
        for k in labels:
            grown = ndimage.binary_dilation(mask == k, structure=_CUBE)
            assert not np.any(grown & (mask > 0) & (mask != k)), f"{subject_id} lesion {k} touches"


def test_mask_volume_matches_true_volume(cohort: SyntheticCohort) -> None:
    truth = cohort.ground_truth
    voxel_mm3 = truth["spacing_x_mm"] * truth["spacing_y_mm"] * truth["spacing_z_mm"]
    assert truth["mask_volume_mm3"].to_numpy() == pytest.approx(truth["n_voxels"] * voxel_mm3)
    relative_error = truth["mask_volume_mm3"] / truth["true_volume_mm3"] - 1.0
    assert relative_error.abs().max() < 0.15
    assert relative_error.abs().median() < 0.05
    assert truth["true_volume_mm3"].between(*ph.VOLUME_RANGE_MM3).all()


def test_volume_alone_does_not_reveal_the_class(cohort: SyntheticCohort) -> None:
    truth = cohort.ground_truth
    malignant = truth["label"] == 1
    for column in ("true_volume_mm3", "mask_volume_mm3"):
        auc = _auc(truth.loc[malignant, column], truth.loc[~malignant, column])
        assert 0.35 < auc < 0.65, (column, auc)


def test_class_mix_differs_between_scanners_as_designed(cohort: SyntheticCohort) -> None:
    truth = cohort.ground_truth.merge(
        cohort.scanners[["scanner", "malignant_fraction"]], on="scanner"
    )
    observed = truth.groupby("scanner").agg(
        fraction=("label", "mean"), n=("label", "size"), design=("malignant_fraction", "first")
    )
    standard_error = np.sqrt(observed["design"] * (1 - observed["design"]) / observed["n"])
    assert ((observed["fraction"] - observed["design"]).abs() < 3 * standard_error).all()
    lowest = observed["fraction"][observed["design"].idxmin()]
    highest = observed["fraction"][observed["design"].idxmax()]
    assert highest - lowest > 0.25
    table = pd.crosstab(truth["scanner"], truth["label"])
    assert stats.chi2_contingency(table).pvalue < 0.01


def test_lesion_texture_separates_classes_within_each_scanner(lesion_stats: pd.DataFrame) -> None:
    measured = lesion_stats[lesion_stats["n_interior"] >= 20]
    assert len(measured) > 0.9 * len(lesion_stats)
    for scanner, group in measured.groupby("scanner"):
        malignant = group.loc[group["label"] == 1, "interior_sd"]
        benign = group.loc[group["label"] == 0, "interior_sd"]
        assert malignant.mean() > benign.mean(), scanner
        assert _auc(malignant, benign) > 0.75, scanner
        rho = stats.spearmanr(group["interior_sd"], group["texture_sd_hu"]).statistic
        assert rho > 0.6, (scanner, rho)


def test_texture_and_margin_truth_differ_by_class_but_overlap(cohort: SyntheticCohort) -> None:
    truth = cohort.ground_truth
    malignant, benign = truth[truth["label"] == 1], truth[truth["label"] == 0]
    for column in ("texture_sd_hu", "irregularity"):
        assert malignant[column].median() > 2 * benign[column].median()
        assert malignant[column].min() < benign[column].max(), column


def test_scanner_shifts_background_mean_and_noise_as_specified(cohort: SyntheticCohort) -> None:
    scanners = cohort.scanners.set_index("scanner")
    tissue = cohort.ground_truth.groupby("subject_id")["tissue_mean_hu"].first()
    background_means: dict[str, list[float]] = {name: [] for name in scanners.index}
    for row in cohort.manifest.itertuples():
        image, mask = _arrays(cohort, row.subject_id)
        protocol = scanners.loc[row.scanner]
        background = ~ndimage.binary_dilation(mask > 0, structure=_CUBE, iterations=4)
        mean = float(image[background].mean())
        expected = (
            protocol["intensity_scale"] * tissue[row.subject_id] + protocol["intensity_offset_hu"]
        )
        assert mean == pytest.approx(expected, abs=2.0), row.subject_id
        background_means[row.scanner].append(mean)
        # Noise is white and added after the blur: neighbour differences along x measure it.
        differences = np.diff(image.astype(float), axis=2)[
            background[:, :, 1:] & background[:, :, :-1]
        ]
        assert differences.std() / np.sqrt(2.0) == pytest.approx(protocol["noise_sd_hu"], rel=0.15)
    per_scanner = {name: np.mean(values) for name, values in background_means.items()}
    assert max(per_scanner.values()) - min(per_scanner.values()) > 30.0


def test_age_raises_lesion_attenuation_by_the_documented_slope(
    lesion_stats: pd.DataFrame,
) -> None:
    age = lesion_stats["age"]
    expected_effect = ph.AGE_SLOPE_HU_PER_YEAR * (age - ph.AGE_REF_YEARS)
    assert lesion_stats["age_effect_hu"].to_numpy() == pytest.approx(expected_effect.to_numpy())
    # Apart from the age effect the true lesion mean is 80 HU plus noise unrelated to age.
    rest = lesion_stats["lesion_mean_hu"] - lesion_stats["age_effect_hu"]
    fit = stats.linregress(age, rest)
    assert abs(fit.slope) < 3 * fit.stderr
    assert rest.mean() == pytest.approx(
        ph.LESION_HU_AT_REF_AGE, abs=3 * rest.std() / len(rest) ** 0.5
    )
    # On the images, once each scanner's scale and offset are undone, the interior mean tracks the
    # true lesion mean, its departure from the truth does not depend on age (so the images carry
    # the age effect unchanged), and the age slope is clearly positive.
    corrected = (
        lesion_stats["interior_mean"] - lesion_stats["intensity_offset_hu"]
    ) / lesion_stats["intensity_scale"]
    assert stats.spearmanr(corrected, lesion_stats["lesion_mean_hu"]).statistic > 0.9
    departure = stats.linregress(age, corrected - lesion_stats["lesion_mean_hu"])
    assert abs(departure.slope) < 3 * departure.stderr
    fit = stats.linregress(age, corrected)
    assert fit.slope > 3 * fit.stderr


@pytest.mark.slow
def test_pyradiomics_sphericity_follows_margin_irregularity(cohort: SyntheticCohort) -> None:
    """Lobulated (malignant) lesions are less spherical than smooth ones on every scanner grid."""
    import logging

    import radiomics
    from radiomics import shape

    radiomics.setVerbosity(logging.ERROR)
    truth = cohort.ground_truth.copy()
    sphericity = []
    for row in truth.itertuples():
        image, mask = _read(cohort, row.subject_id)
        features = shape.RadiomicsShape(image, mask, label=int(row.lesion_id))
        sphericity.append(float(features.getSphericityFeatureValue()))
    truth["sphericity"] = sphericity
    for scanner, group in truth.groupby("scanner"):
        smooth = group.loc[group["label"] == 0, "sphericity"]
        lobulated = group.loc[group["label"] == 1, "sphericity"]
        assert _auc(smooth, lobulated) > 0.8, scanner
        rho = stats.spearmanr(group["sphericity"], group["irregularity"]).statistic
        # Thick slices (up to 3 mm) blunt the measured shape, hence a moderate bound.
        assert rho < -0.45, (scanner, rho)


def test_single_scanner_takes_the_middle_of_every_range(tmp_path: Path) -> None:
    result = make_cohort(2, 1, 0, tmp_path)
    protocol = result.scanners.iloc[0]
    assert protocol["noise_sd_hu"] == pytest.approx(10.0)
    assert protocol["intensity_scale"] == pytest.approx(1.0)
    assert protocol["intensity_offset_hu"] == pytest.approx(0.0)
    assert protocol["spacing_z_mm"] == pytest.approx(2.0)
    assert result.manifest["scanner"].tolist() == ["scanner_A", "scanner_A"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_scanners": 0}, "n_scanners"),
        ({"n_scanners": 27}, "at most 26"),
        ({"seed": -1}, "seed"),
        ({"n_subjects": 2.5}, "n_subjects"),
    ],
)
def test_invalid_arguments_raise_settings_error(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments = {"n_subjects": 2, "n_scanners": 2, "seed": 0, "out_dir": tmp_path, **kwargs}
    with pytest.raises(SettingsError, match=message):
        make_cohort(**arguments)


def test_out_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "not_a_folder"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(SettingsError, match="existing file"):
        make_cohort(1, 1, 0, path)


@pytest.mark.parametrize(
    ("table", "columns"), [("manifest", MANIFEST_COLUMNS), ("ground_truth", GROUND_TRUTH_COLUMNS)]
)
def test_data_dictionary_describes_every_written_column(
    project_root: Path, table: str, columns: tuple[str, ...]
) -> None:
    dictionary = pd.read_csv(
        project_root / "data_dictionary" / f"{table}.csv", keep_default_na=False
    )
    assert list(dictionary.columns) == [
        "name", "type", "unit", "family", "description", "ibsi_tag", "ibsi_code", "notes"
    ]  # fmt: skip
    assert tuple(dictionary["name"]) == columns
    assert (dictionary["description"].str.len() > 10).all()
