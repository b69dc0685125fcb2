"""Detection against a model of healthy tissue, on a synthetic brain cohort with known lesions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.cli import main
from radharmony.datasets import make_brain_cohort
from radharmony.detect import (
    LESION_TABLE_COLUMNS,
    SUBJECT_COLUMNS,
    DetectionResult,
    HealthyTissueDetector,
    load_detector,
    save_detector,
)
from radharmony.extract import read_features
from radharmony.report import HTMLReport, detection_section_body
from radharmony.study import load_study_config
from radharmony.study._detection import run_detection

CHANNELS = ["FLAIR", "T1", "T2"]
N_REFERENCE = 6


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    # 9 healthy subjects (6 references, 3 held out) and 3 patients with a tumour each.
    return make_brain_cohort(
        9,
        3,
        n_scanners=3,
        seed=0,
        out_dir=tmp_path_factory.mktemp("brain"),
        voxel_mm=2.5,
        tumour_fraction=1.0,
    )


@pytest.fixture(scope="module")
def detector(cohort) -> HealthyTissueDetector:
    reference = cohort.manifest[cohort.manifest["group"] == "healthy"].iloc[:N_REFERENCE]
    return HealthyTissueDetector(CHANNELS, samples_per_subject=3000, n_folds=3).fit(
        reference, base_dir=cohort.out_dir
    )


@pytest.fixture(scope="module")
def examined(cohort) -> pd.DataFrame:
    return cohort.manifest.iloc[N_REFERENCE:].reset_index(drop=True)


@pytest.fixture(scope="module")
def result(detector, cohort, examined, tmp_path_factory) -> DetectionResult:
    out = tmp_path_factory.mktemp("detected")
    return detector.detect(examined, out, base_dir=cohort.out_dir, cache_dir=out / "cache")


def test_tumours_are_found_and_delineated(result: DetectionResult, cohort) -> None:
    patients = result.subjects[
        result.subjects["subject_id"].isin(cohort.ground_truth["subject_id"])
    ]
    assert len(patients) == 3 and (patients["status"] == "ok").all()
    assert (patients["lesion_recall"] == 1.0).all()  # every tumour overlaps a detection
    for subject, lesions in result.lesions.groupby("subject_id"):
        if subject not in set(patients["subject_id"]):
            continue
        largest = lesions.loc[lesions["voxels"].idxmax()]
        assert largest["reference_dice"] > 0.6, subject
        # A tumour is more abnormal than nearly every false lesion of held-out references.
        assert largest["p_value"] <= 0.01, subject
    assert patients["voxel_dice"].mean() > 0.6


def test_false_lesions_on_held_out_healthy_subjects_match_the_target(
    result: DetectionResult, detector, cohort
) -> None:
    healthy = result.subjects[
        ~result.subjects["subject_id"].isin(cohort.ground_truth["subject_id"])
    ]
    assert len(healthy) == 3
    # Target: 1 false lesion per healthy subject in expectation; 3 subjects cannot pin the rate
    # down, but 7 or more (P < 0.002 for a Poisson rate of 1 per subject) would refute it.
    assert healthy["n_lesions"].sum() <= 6
    check = result.calibration.set_index("subject_id")
    assert list(check.index[:-1]) == detector.calibration_.subjects
    summary = check.loc["all"]
    assert summary["ci_low"] <= summary["false_events"] <= summary["ci_high"]
    assert summary["false_events"] <= 2.0
    assert detector.calibration_.cross_fitted
    assert set(detector.references_["fold"]) == {0, 1, 2}


def test_lesion_table_matches_the_written_maps(result: DetectionResult, cohort, examined) -> None:
    assert list(result.lesions.columns) == list(LESION_TABLE_COLUMNS)
    assert list(result.subjects.columns) == list(SUBJECT_COLUMNS)
    assert result.lesions["p_value"].between(0, 1, inclusive="right").all()
    row = result.subjects.loc[result.subjects["n_lesions"].idxmax()]
    flair = sitk.ReadImage(
        str(cohort.out_dir / examined.set_index("subject_id").loc[row["subject_id"], "FLAIR"])
    )
    labels_image = sitk.ReadImage(row["lesions"])
    score_image = sitk.ReadImage(row["abnormality"])
    for image in (labels_image, score_image):
        assert image.GetSize() == flair.GetSize()
        assert np.allclose(image.GetSpacing(), flair.GetSpacing())
        assert np.allclose(image.GetOrigin(), flair.GetOrigin())
    labels = sitk.GetArrayFromImage(labels_image)
    score = sitk.GetArrayFromImage(score_image)
    table = result.lesions[result.lesions["subject_id"] == row["subject_id"]]
    assert sorted(np.unique(labels[labels > 0])) == table["lesion_id"].tolist()
    for lesion in table.itertuples():
        inside = labels == lesion.lesion_id
        assert inside.sum() == lesion.voxels
        # Peak and mass count the voxels deeper than the edge margin only.
        assert score[inside].max() >= lesion.max_abnormality
        assert score[inside].mean() == pytest.approx(lesion.mean_abnormality, rel=1e-5)
        extent = result.detector.calibration_.extent_threshold
        assert (score[inside] - extent).sum() >= lesion.abnormality_mass - 1e-3
        assert lesion.abnormality_mass >= result.detector.calibration_.threshold


def test_bad_subjects_are_reported_and_the_others_processed(
    detector, cohort, examined, tmp_path: Path
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(cohort.out_dir, folder)
    good = examined.iloc[0].to_dict()
    other_grid = cohort.manifest.iloc[1]  # another scanner: another grid
    empty = sitk.Image(sitk.ReadImage(str(folder / good["brain_mask"])))
    empty *= 0
    sitk.WriteImage(empty, str(folder / "empty_brain.nii.gz"))
    rows = [
        good,
        {**good, "subject_id": "no_t2", "T2": ""},
        {**good, "subject_id": "moved", "FLAIR": "nowhere/FLAIR.nii.gz"},
        {**good, "subject_id": "other_grid", "T1": other_grid["T1"]},
        {**good, "subject_id": "no_brain", "brain_mask": "empty_brain.nii.gz"},
    ]
    result = detector.detect(pd.DataFrame(rows), tmp_path / "out", base_dir=folder)
    assert result.subjects.set_index("subject_id").loc[good["subject_id"], "status"] == "ok"
    failures = result.failures.set_index("subject_id")
    assert set(failures.index) == {"no_t2", "moved", "other_grid", "no_brain"}
    assert failures.loc["no_t2", "stage"] == "read_image"
    assert "channel 'T2' is missing" in failures.loc["no_t2", "message"]
    assert failures.loc["moved", "message"].endswith(
        "does not exist; check the path in the manifest"
    )
    assert failures.loc["moved", "file"] == str(folder / "nowhere/FLAIR.nii.gz")
    assert failures.loc["other_grid", "stage"] == "geometry"
    assert "co-register" in failures.loc["other_grid", "message"]
    assert failures.loc["no_brain", "stage"] == "brain_mask"
    assert "is empty" in failures.loc["no_brain", "message"]
    written = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert set(written["subject_id"]) == set(failures.index)


def test_a_cached_run_resumes_with_identical_tables(result, detector, cohort, examined) -> None:
    out = Path(result.files["lesions"]).parent
    (out / examined["subject_id"].iloc[0] / "lesions.nii.gz").unlink()  # recomputed, not reused
    again = detector.detect(examined, out, base_dir=cohort.out_dir, cache_dir=out / "cache")
    pd.testing.assert_frame_equal(again.lesions, result.lesions, check_exact=True)
    pd.testing.assert_frame_equal(again.subjects, result.subjects, check_exact=True)
    assert (out / examined["subject_id"].iloc[0] / "lesions.nii.gz").is_file()


def test_saved_detector_gives_the_same_detections(detector, cohort, examined, tmp_path) -> None:
    path = save_detector(detector, tmp_path / "detector.skops")
    loaded = load_detector(path)
    assert loaded.digest() == detector.digest()
    row = examined.iloc[-1]
    images = {c: cohort.out_dir / row[c] for c in CHANNELS}
    first = detector.score_subject(images, brain_mask=cohort.out_dir / row["brain_mask"])
    second = loaded.score_subject(images, brain_mask=cohort.out_dir / row["brain_mask"])
    pd.testing.assert_frame_equal(first.lesions, second.lesions, check_exact=True)
    assert np.array_equal(
        sitk.GetArrayFromImage(first.abnormality), sitk.GetArrayFromImage(second.abnormality)
    )
    pickled = tmp_path / "detector.pkl"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 32)
    with pytest.raises(ValueError, match="pickle"):
        load_detector(pickled)


def test_cli_detect_then_extract_carries_each_lesions_dice(
    detector, result, cohort, examined, tmp_path: Path
) -> None:
    saved = save_detector(detector, tmp_path / "detector.skops")
    subjects = tmp_path / "subjects.csv"
    table = examined.copy()
    for column in [*CHANNELS, "T1c", "brain_mask", "lesion_mask"]:
        table[column] = [str(cohort.out_dir / v) if v else "" for v in table[column]]
    table[table["group"] == "patient"].to_csv(subjects, index=False)
    out = tmp_path / "detected"
    code = main(
        [
            "detect",
            str(subjects),
            "--detector",
            str(saved),
            "--channels",
            ",".join(CHANNELS),
            "--out",
            str(out),
            "--no-cache",
        ]
    )
    assert code == 0
    lesions = pd.read_csv(out / "lesions.csv")
    expected = result.lesions[result.lesions["subject_id"].isin(lesions["subject_id"])]
    pd.testing.assert_frame_equal(lesions, expected.reset_index(drop=True), check_dtype=False)
    features_path = tmp_path / "features.parquet"
    settings = tmp_path / "settings.yaml"
    settings.write_text("feature_classes: [shape, firstorder]\n", encoding="utf-8")
    assert (
        main(
            [
                "extract",
                str(out / "manifest.csv"),
                "--out",
                str(features_path),
                "--settings",
                str(settings),
                "--no-cache",
            ]
        )
        == 0
    )
    features = read_features(features_path)
    merged = features.merge(lesions, on=["subject_id", "lesion_id"], suffixes=("", "_detect"))
    assert len(merged) == len(lesions) == len(features)
    np.testing.assert_allclose(merged["reference_dice"], merged["reference_dice_detect"])
    assert (merged["lesion_voxels"] == merged["voxels"]).all()
    assert "reference_mask" not in features.columns
    assert list(features.columns).index("reference_dice") < list(features.columns).index(
        "lesion_voxels"
    )  # never taken for a radiomic feature


@pytest.mark.slow
def test_dask_backend_gives_the_local_result(detector, result, cohort, examined, tmp_path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    subjects = examined.iloc[-2:]  # two subjects keep the cluster's start-up the main cost
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = detector.detect(
            subjects, tmp_path / "out", base_dir=cohort.out_dir, backend="dask", scheduler=client
        )
    local = result.lesions[result.lesions["subject_id"].isin(subjects["subject_id"])]
    pd.testing.assert_frame_equal(remote.lesions, local.reset_index(drop=True), check_exact=True)
    subject = examined["subject_id"].iloc[-1]
    local_map = Path(result.files["lesions"]).parent / subject / "abnormality.nii.gz"
    assert np.array_equal(
        sitk.GetArrayFromImage(
            sitk.ReadImage(str(tmp_path / "out" / subject / "abnormality.nii.gz"))
        ),
        sitk.GetArrayFromImage(sitk.ReadImage(str(local_map))),
    )


def test_study_detection_step_writes_the_extraction_manifest(detector, cohort, tmp_path) -> None:
    saved = save_detector(detector, tmp_path / "detector.skops")
    config = load_study_config(
        {
            "out": str(tmp_path / "out"),
            "target": "diagnosis",
            "detect": {
                "subjects": str(cohort.patients_path),
                "detector": str(saved),
                "channels": CHANNELS,
            },
        }
    )
    lines: list[str] = []
    detected = run_detection(config.detect, config.out, n_jobs=1, log=lines.append)
    assert detected.files["manifest"] == config.manifest.resolve()
    manifest = pd.read_csv(config.manifest)
    assert set(manifest.columns) >= {"subject_id", "image", "mask", "scanner", "diagnosis"}
    assert (manifest["diagnosis"] == "tumour").all()
    assert "lesion(s) in 3 subject(s), 0 failure(s)" in lines[0]


def test_report_section_shows_calibration_counts_and_overlays(result: DetectionResult) -> None:
    body = detection_section_body(result)
    assert "False lesions per reference subject" in body
    assert "histogram-standardised" in body  # the methods paragraph
    assert body.count("data:image/png;base64,") == 1  # one overlay figure (up to 12 subjects)
    for subject in result.lesions["subject_id"].unique():
        assert subject in body
    report = HTMLReport(title="detection")
    report.add_section("detection", "Lesion detection", body)
    assert '<section id="detection">' in report.get_html()
