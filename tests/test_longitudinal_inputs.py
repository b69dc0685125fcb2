"""Bad follow-up input: a clear error per subject, and nothing lost for the other subjects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radharmony.datasets import make_longitudinal_cohort
from radharmony.errors import ManifestError
from radharmony.longitudinal import analyse_followups


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return make_longitudinal_cohort(
        2, n_visits=2, seed=8, voxel_mm=3.0, out_dir=tmp_path_factory.mktemp("bad_followups")
    )


def _subject(manifest: pd.DataFrame, source: str, name: str) -> pd.DataFrame:
    rows = manifest[manifest["subject_id"] == source].copy()
    rows["subject_id"] = name
    return rows


def _failure(result, subject: str) -> pd.Series:
    rows = result.failures[result.failures["subject_id"] == subject]
    assert len(rows) == 1, result.failures
    return rows.iloc[0]


def test_each_bad_subject_fails_alone(cohort, tmp_path: Path) -> None:
    manifest = cohort.manifest.copy()
    base = cohort.out_dir
    no_transform = _subject(manifest, "sub-002", "no-transform")
    no_transform.loc[no_transform["timepoint"] == "2", "transform"] = ""
    garbage = base / "garbage.tfm"
    garbage.write_text("#Insight Transform File V1.0\nthis is not a transform\n", encoding="utf-8")
    broken = _subject(manifest, "sub-002", "broken-transform")
    broken.loc[broken["timepoint"] == "2", "transform"] = str(garbage)
    single = _subject(manifest, "sub-002", "single").iloc[:1]
    twice = _subject(manifest, "sub-002", "twice")
    twice["timepoint"] = "1"
    # A follow-up written on the baseline's grid in its own scanner coordinates (not aligned).
    first = sitk.ReadImage(str(base / "sub-002" / "visit1_FLAIR.nii.gz"))
    second = sitk.ReadImage(str(base / "sub-002" / "visit2_FLAIR.nii.gz"))
    unaligned = sitk.Resample(second, first, sitk.Transform(), sitk.sitkLinear, 0.0)
    sitk.WriteImage(unaligned, str(tmp_path / "unaligned.nii.gz"))
    same_grid = _subject(manifest, "sub-002", "same-grid")
    same_grid["transform"] = ""
    same_grid.loc[same_grid["timepoint"] == "2", "image"] = str(tmp_path / "unaligned.nii.gz")
    same_grid["T2"] = same_grid["image"]
    table = pd.concat(
        [
            manifest[manifest["subject_id"] == "sub-001"],
            no_transform,
            broken,
            single,
            twice,
            same_grid,
        ],
        ignore_index=True,
    )
    result = analyse_followups(table, tmp_path, channels=["T2"], base_dir=base)

    message = _failure(result, "no-transform")
    assert message["stage"] == "alignment"
    assert "not on the common grid" in message["message"]
    assert "'transform' column" in message["message"] and "register" in message["message"]
    assert message["file"].endswith("visit2_FLAIR.nii.gz")

    message = _failure(result, "broken-transform")
    assert message["stage"] == "transform"
    assert message["file"] == str(garbage)
    assert "does not parse as an ITK transform" in message["message"]

    message = _failure(result, "single")
    assert message["stage"] == "visits" and "single time point ('1')" in message["message"]

    message = _failure(result, "twice")
    assert message["stage"] == "visits"
    assert "2 rows for the same time point" in message["message"]

    message = _failure(result, "same-grid")
    assert message["stage"] == "alignment"
    assert "on the common grid and has no transform, but it is not aligned" in message["message"]

    # The good subject is complete.
    assert set(result.pairs["subject_id"]) == {"sub-001"}
    assert (tmp_path / "sub-001" / "change_1_2.nii.gz").is_file()
    assert set(result.tracks["subject_id"]) == {"sub-001"}


def test_failed_registration_is_refused_not_used(cohort, tmp_path: Path) -> None:
    manifest = cohort.manifest.copy()
    base = cohort.out_dir
    # A follow-up of other content (smooth random blobs on a coarse grid): registration
    # converges somewhere, and the alignment check refuses it.
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.normal(size=(26, 34, 30)), 1.5) * 1000.0 + 500.0
    block = sitk.GetImageFromArray(blobs.astype(np.float32))
    block.SetSpacing((5.0, 5.0, 5.0))
    block.SetOrigin((-75.0, -85.0, -65.0))
    sitk.WriteImage(block, str(tmp_path / "block.nii.gz"))
    # An empty follow-up: the registration itself fails.
    empty = sitk.Image(list(block.GetSize()), sitk.sitkFloat32)
    empty.CopyInformation(block)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    rows = [manifest[manifest["subject_id"] == "sub-001"]]
    for name in ("block", "empty"):
        bad = _subject(manifest, "sub-002", name)
        bad["transform"] = ""
        bad.loc[bad["timepoint"] == "2", "image"] = str(tmp_path / f"{name}.nii.gz")
        rows.append(bad)
    result = analyse_followups(
        pd.concat(rows, ignore_index=True), tmp_path / "out", register=True, base_dir=base
    )
    message = _failure(result, "block")
    assert message["stage"] == "registration_qc"
    assert "failed the quality check" in message["message"] and "not used" in message["message"]
    assert message["file"].endswith("block.nii.gz")
    message = _failure(result, "empty")
    assert message["stage"] == "registration"
    assert "registration to the baseline failed" in message["message"]
    assert not (tmp_path / "out" / "block").exists()
    assert set(result.pairs["subject_id"]) == {"sub-001"}


def test_missing_and_mismatched_files_are_per_subject(cohort, tmp_path: Path) -> None:
    manifest = cohort.manifest.copy()
    missing = _subject(manifest, "sub-002", "missing-image")
    missing.loc[missing["timepoint"] == "2", "image"] = "nowhere/visit2.nii.gz"
    other_mask = _subject(manifest, "sub-002", "wrong-brain-mask")
    other_mask["brain_mask"] = "sub-002/visit2_FLAIR.nii.gz"  # a visit-2 grid, not the common one
    table = pd.concat(
        [manifest[manifest["subject_id"] == "sub-001"], missing, other_mask], ignore_index=True
    )
    result = analyse_followups(table, tmp_path, base_dir=cohort.out_dir)
    message = _failure(result, "missing-image")
    assert message["stage"] == "read_image" and "does not exist" in message["message"]
    message = _failure(result, "wrong-brain-mask")
    assert message["stage"] == "brain_mask" and "does not match the grid" in message["message"]
    assert set(result.pairs["subject_id"]) == {"sub-001"}


def test_structural_manifest_problems_stop_before_anything_runs(tmp_path: Path) -> None:
    frame = pd.DataFrame({"subject_id": ["a", "a/b"], "timepoint": [1, 2], "image": ["x", "y"]})
    with pytest.raises(ManifestError, match="'a/b' cannot name an output file"):
        analyse_followups(frame, tmp_path, base_dir=tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        analyse_followups(tmp_path / "absent.csv", tmp_path)
