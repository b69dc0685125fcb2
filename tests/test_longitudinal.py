"""Follow-up analysis on the synthetic cohort with known lesion changes: outputs, truth, backends."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.metrics import average_precision_score

from radharmony.cli import main
from radharmony.datasets import make_longitudinal_cohort
from radharmony.longitudinal import (
    LongitudinalResult,
    analyse_followups,
    calibrate_change,
    delta_radiomics,
    write_longitudinal,
)

SETTINGS = {"feature_classes": ["shape", "firstorder"], "resampled_spacing": None}


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Parallel test workers share one cohort and one cache: the first builds them.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _analyse(cohort: SimpleNamespace) -> LongitudinalResult:
    out = cohort.out_dir.parent / "followup_out"
    return analyse_followups(
        cohort.manifest_path, out, channels=["T2"], fdr=0.2, cache_dir=out / "cache"
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    folder = _session_folder(tmp_path_factory) / "followup_shared"
    done = folder / "done"
    try:
        folder.mkdir()
    except FileExistsError:
        for _ in range(600):
            if done.exists():
                break
            time.sleep(0.5)
        return _written(folder / "c")
    make_longitudinal_cohort(3, n_visits=2, seed=5, voxel_mm=3.0, out_dir=folder / "c")
    cohort = _written(folder / "c")
    _analyse(cohort)  # fills the cache the other workers read
    done.touch()
    return cohort


def _written(out: Path) -> SimpleNamespace:
    """The cohort as written on disk (what every worker sees)."""
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(out / "lesion_truth.csv", dtype={"subject_id": str, "timepoint": str})
    masks = {s: {("1", "2"): out / s / "change_1_2.nii.gz"} for s in manifest["subject_id"]}
    return SimpleNamespace(
        out_dir=out,
        manifest_path=out / "manifest.csv",
        manifest=manifest,
        truth=truth,
        change_masks=masks,
    )


@pytest.fixture(scope="module")
def analysed(cohort):
    return _analyse(cohort)


def test_lesion_tracks_recover_the_designed_changes(cohort, analysed) -> None:
    assert analysed.failures.empty
    truth = cohort.truth[cohort.truth["timepoint"] == "2"]
    tracks = analysed.tracks[analysed.tracks["timepoint"] == "2"]
    hits = []
    for row in truth.itertuples():
        if row.status == "disappeared":
            found = tracks[
                (tracks["subject_id"] == row.subject_id)
                & tracks["lesion_id"].isna()
                & (tracks["matched_lesion_ids"] == str(row.lesion_track_id))
            ]
        else:  # masks are labelled with the designed track id
            found = tracks[
                (tracks["subject_id"] == row.subject_id)
                & (tracks["lesion_id"] == row.lesion_track_id)
            ]
        hits.append(found["status"].tolist() == [row.status])
    # Measured: 20 of 22 (two small enlarging/shrinking lesions stay within the volume error of
    # 3 mm voxels); every new and disappeared lesion is right.
    assert np.mean(hits) >= 0.85
    for status in ("new", "disappeared"):
        chosen = truth["status"].to_numpy() == status
        assert np.all(np.asarray(hits)[chosen]), status


def test_change_maps_separate_real_change(cohort, analysed) -> None:
    precision = []
    for pair in analysed.pairs.itertuples():
        score = sitk.GetArrayFromImage(sitk.ReadImage(pair.change_map))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(pair.new_lesion_map))
        truth = sitk.GetArrayFromImage(
            sitk.ReadImage(str(cohort.change_masks[pair.subject_id][("1", "2")]))
        )
        inside = score != 0
        assert average_precision_score(truth[inside] > 0, np.abs(score[inside])) > 0.5
        # Appearance is positive, disappearance negative.
        assert np.median(score[truth == 1]) > 2.0
        assert np.median(score[truth == 2]) < -2.0
        grown = np.isin(truth, [1])
        for label in range(1, int(labels.max()) + 1):
            precision.append(bool(np.any(grown[labels == label])))
        assert np.isfinite(pair.threshold_growth)
    assert len(precision) >= 3 and np.mean(precision) == 1.0


def test_outputs_tables_and_cache(cohort, analysed, tmp_path: Path) -> None:
    for pair in analysed.pairs.itertuples():
        folder = analysed.out_dir / pair.subject_id
        assert (folder / "change_1_2.nii.gz").is_file()
        assert (folder / "new_lesions_1_2.nii.gz").is_file()
        change = sitk.ReadImage(str(folder / "change_1_2.nii.gz"))
        brain = sitk.ReadImage(str(cohort.out_dir / pair.subject_id / "brain_mask.nii.gz"))
        assert change.GetSize() == brain.GetSize()  # the common grid: the first visit's
    registration = analysed.registration
    assert set(registration["alignment"]) == {"given"}
    assert registration["qc_pass"].dropna().astype(bool).all()
    paths = write_longitudinal(analysed, tmp_path)
    assert {"lesion_tracks", "lesion_load", "change_pairs", "failures"} <= set(paths)
    dictionary = Path(__file__).resolve().parents[1] / "data_dictionary"
    for name in ("lesion_tracks", "lesion_load", "change_pairs", "new_lesions", "registration"):
        written = pd.read_csv(paths[name]).columns
        described = set(pd.read_csv(dictionary / f"{name}.csv")["name"])
        assert set(written) <= described, (name, sorted(set(written) - described))
    again = analyse_followups(
        cohort.manifest_path,
        analysed.out_dir,
        channels=["T2"],
        fdr=0.2,
        cache_dir=analysed.out_dir / "cache",
    )
    assert again.provenance["cached_subjects"] == 3
    pd.testing.assert_frame_equal(again.tracks, analysed.tracks)
    pd.testing.assert_frame_equal(again.pairs, analysed.pairs)


@pytest.mark.slow
def test_dask_backend_gives_the_local_result(cohort, analysed, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    one = cohort.manifest[cohort.manifest["subject_id"] == "sub-003"]
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = analyse_followups(
            one,
            analysed.out_dir,
            channels=["T2"],
            fdr=0.2,
            backend="dask",
            scheduler=client,
            base_dir=cohort.out_dir,
        )
    local = analysed.tracks[analysed.tracks["subject_id"] == "sub-003"].reset_index(drop=True)
    pd.testing.assert_frame_equal(remote.tracks, local)
    pairs = analysed.pairs[analysed.pairs["subject_id"] == "sub-003"].reset_index(drop=True)
    pd.testing.assert_frame_equal(remote.pairs, pairs)


@pytest.mark.slow
def test_registration_replaces_a_missing_transform(cohort, analysed, tmp_path: Path) -> None:
    manifest = cohort.manifest.copy()
    manifest = manifest[manifest["subject_id"] == "sub-002"].copy()
    manifest["transform"] = ""
    result = analyse_followups(
        manifest, tmp_path, channels=["T2"], fdr=0.2, register=True, base_dir=cohort.out_dir
    )
    assert result.failures.empty
    follow = result.registration[result.registration["timepoint"] == "2"].iloc[0]
    assert follow["alignment"] == "registered" and bool(follow["qc_pass"])
    given = analysed.tracks[analysed.tracks["subject_id"] == "sub-002"]
    same = np.asarray(result.tracks["status"]) == np.asarray(given["status"])
    # A lesion at the edge of the volume-error bound may change status with a sub-voxel
    # difference of alignment; every other lesion gets the same status.
    assert same.sum() >= len(same) - 1


def test_reference_calibration_and_delta_radiomics(cohort, analysed, tmp_path: Path) -> None:
    reference = cohort.manifest[cohort.manifest["subject_id"] != "sub-003"].copy()
    reference["change_mask"] = [
        "" if t == "1" else f"{s}/change_1_2.nii.gz"
        for s, t in zip(reference["subject_id"], reference["timepoint"], strict=True)
    ]
    calibration = calibrate_change(
        reference, target="false_lesions", level=1.0, channels=["T2"], base_dir=cohort.out_dir
    )
    assert calibration.method == "reference_rate" and calibration.n_reference_subjects == 2
    assert np.isfinite(calibration.rate_thresholds).all()
    held_out = calibration.held_out.set_index("subject_id")
    assert held_out.loc["all", "target"] == 1.0
    delta = delta_radiomics(cohort.manifest_path, analysed.tracks, SETTINGS)
    one_to_one = delta.dropna(subset=["delta_lesion_volume_mm3"])
    assert len(one_to_one) >= 8
    for row in one_to_one.itertuples():
        earlier = delta[
            (delta["subject_id"] == row.subject_id)
            & (delta["lesion_track_id"] == row.lesion_track_id)
            & (delta["timepoint"] == "1")
        ]
        change = row.firstorder_Mean - earlier["firstorder_Mean"].iloc[0]
        assert row.delta_firstorder_Mean == pytest.approx(change)
    first = delta[delta["timepoint"] == "1"]
    assert first.filter(like="delta_").isna().all().all()


def test_command_line_writes_every_output(cohort, tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "feature_classes: [shape, firstorder]\nresampled_spacing: null\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    manifest = tmp_path / "one_subject.csv"
    one = cohort.manifest[cohort.manifest["subject_id"] == "sub-001"].copy()
    for column in ("image", "T2", "mask", "transform", "brain_mask"):
        one[column] = [str(cohort.out_dir / p) for p in one[column]]
    one.to_csv(manifest, index=False)
    code = main(
        [
            "longitudinal",
            str(manifest),
            "--out",
            str(out),
            "--channels",
            "T2",
            "--level",
            "0.2",
            "--settings",
            str(settings),
        ]
    )
    assert code == 0
    for name in ("lesion_tracks.csv", "lesion_load.csv", "delta_features.parquet", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "sub-001" / "change_1_2.nii.gz").is_file()
    assert (out / "sub-001" / "new_lesions_1_2.nii.gz").is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Lesion load over time" in html and "Registration quality control" in html
    delta = pd.read_parquet(out / "delta_features.parquet")
    assert {"subject_id", "lesion_track_id", "timepoint"} <= set(delta.columns)
    assert any(c.startswith("delta_") for c in delta.columns)
