"""Inputs of detection: channel manifests and the synthetic brain cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.datasets import make_brain_cohort
from radharmony.errors import ManifestError, SettingsError
from radharmony.io import read_channel_manifest


def _write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_channel_manifest_resolves_paths_and_keeps_covariates(tmp_path: Path) -> None:
    manifest = _write(
        tmp_path / "subjects.csv",
        [
            {
                "subject_id": "s1",
                "FLAIR": "a/f.nii.gz",
                "T1": "/abs/t1.nii.gz",
                "age": 50,
                "brain_mask": "a/b.nii.gz",
                "lesion_mask": "",
            },
            {
                "subject_id": "s2",
                "FLAIR": "b/f.nii.gz",
                "T1": "",
                "age": 61,
                "brain_mask": "",
                "lesion_mask": "b/l.nii.gz",
            },
        ],
    )
    table = read_channel_manifest(manifest, ["FLAIR", "T1"])
    assert table["FLAIR"].tolist() == [str(tmp_path / "a/f.nii.gz"), str(tmp_path / "b/f.nii.gz")]
    assert table["T1"].tolist() == ["/abs/t1.nii.gz", ""]  # empty: reported per subject later
    assert table["lesion_mask"].tolist() == ["", str(tmp_path / "b/l.nii.gz")]
    assert table["age"].tolist() == [50, 61]
    assert table.attrs["channels"] == ["FLAIR", "T1"]


def test_channel_manifest_lists_every_structural_problem(tmp_path: Path) -> None:
    missing = _write(tmp_path / "m.csv", [{"subject_id": "s1", "FLAIR": "f.nii.gz"}])
    with pytest.raises(ManifestError, match=r"missing required column\(s\) \['T2'\]"):
        read_channel_manifest(missing, ["FLAIR", "T2"])
    bad = _write(
        tmp_path / "bad.csv",
        [
            {"subject_id": "s1", "FLAIR": "f1"},
            {"subject_id": "s1", "FLAIR": "f2"},
            {"subject_id": "../up", "FLAIR": "f3"},
            {"subject_id": "", "FLAIR": "f4"},
        ],
    )
    with pytest.raises(ManifestError, match=r"row 5, column 'subject_id': empty value"):
        read_channel_manifest(bad, ["FLAIR"])
    bad = _write(tmp_path / "bad2.csv", pd.read_csv(bad).iloc[:3].to_dict("records"))
    with pytest.raises(ManifestError) as error:
        read_channel_manifest(bad, ["FLAIR"])
    assert "row 2, row 3: duplicate subject_id='s1'" in str(error.value)
    assert "row 4, column 'subject_id': '../up' cannot name an output folder" in str(error.value)
    with pytest.raises(ValueError, match="reserved"):
        read_channel_manifest(bad, ["FLAIR", "brain_mask"])


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory: pytest.TempPathFactory):
    return make_brain_cohort(
        2, 2, n_scanners=2, seed=7, out_dir=tmp_path_factory.mktemp("c"), voxel_mm=3.0
    )


def test_brain_cohort_writes_consistent_subjects(small_cohort) -> None:
    manifest = small_cohort.manifest
    assert manifest["group"].tolist() == ["healthy", "healthy", "patient", "patient"]
    assert (manifest.loc[manifest["group"] == "healthy", "lesion_mask"] == "").all()
    root = small_cohort.out_dir
    for row in manifest.itertuples():
        grids = {
            c: sitk.ReadImage(str(root / getattr(row, c)))
            for c in ("FLAIR", "T1", "T2", "T1c", "brain_mask")
        }
        sizes = {image.GetSize() for image in grids.values()}
        assert len(sizes) == 1, row.subject_id  # channels co-registered
        brain = sitk.GetArrayFromImage(grids["brain_mask"]) > 0
        flair = sitk.GetArrayFromImage(grids["FLAIR"])
        assert (flair[~brain] == 0).all()  # skull-stripped
        if row.group == "patient":
            labels = sitk.GetArrayFromImage(sitk.ReadImage(str(root / row.lesion_mask)))
            truth = small_cohort.ground_truth[
                small_cohort.ground_truth["subject_id"] == row.subject_id
            ]
            assert sorted(np.unique(labels[labels > 0])) == truth["lesion_id"].tolist()
            for lesion in truth.itertuples():
                assert int((labels == lesion.lesion_id).sum()) == lesion.n_voxels
                # Lesions are FLAIR-hyperintense relative to the brain's median.
                inside = flair[labels == lesion.lesion_id]
                assert np.median(inside) > np.median(flair[brain]), lesion


def test_brain_cohort_is_deterministic_and_scanners_differ(small_cohort, tmp_path: Path) -> None:
    again = make_brain_cohort(2, 2, n_scanners=2, seed=7, out_dir=tmp_path, voxel_mm=3.0)
    pd.testing.assert_frame_equal(again.ground_truth, small_cohort.ground_truth)
    first = sitk.GetArrayFromImage(
        sitk.ReadImage(str(small_cohort.out_dir / "sub-0003/FLAIR.nii.gz"))
    )
    second = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sub-0003/FLAIR.nii.gz")))
    assert np.array_equal(first, second)
    scanners = small_cohort.scanners.set_index("scanner")
    assert scanners["scale_FLAIR"].nunique() == 2 and scanners["spacing_z_mm"].nunique() == 2


def test_brain_cohort_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least one subject"):
        make_brain_cohort(0, 0, out_dir=tmp_path)
    with pytest.raises(SettingsError, match="voxel_mm"):
        make_brain_cohort(1, 0, out_dir=tmp_path, voxel_mm=10.0)
