"""``radharmony detect`` then ``radharmony extract`` on real glioma cases (BraTS 2013)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radharmony.cli import main
from radharmony.extract import read_features


def _manifest(folder: Path, names: list[str], path: Path) -> Path:
    pd.DataFrame(
        {
            "subject_id": names,
            "FLAIR": [str(folder / n / "Flair_subtrMeanDivStd.nii.gz") for n in names],
            "T1c": [str(folder / n / "T1c_subtrMeanDivStd.nii.gz") for n in names],
            "brain_mask": [str(folder / n / "brainmask.nii.gz") for n in names],
            "lesion_mask": [str(folder / n / "OTMultiClass.nii.gz") for n in names],
            "scanner": "BraTS2013",
        }
    ).to_csv(path, index=False)
    return path


@pytest.mark.shared
@pytest.mark.slow
def test_detect_then_extract_on_real_gliomas(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "brain_mr" / "brats2013"
    if not folder.is_dir():
        pytest.skip("BraTS 2013 cases not in the shared data")
    reference = _manifest(folder, ["pat0001", "pat0003"], tmp_path / "reference.csv")
    subjects = _manifest(folder, ["pat0002"], tmp_path / "subjects.csv")
    out = tmp_path / "detected"
    code = main(
        ["detect", str(subjects), "--reference", str(reference), "--channels", "FLAIR,T1c",
         "--out", str(out), "--no-cache", "--strict"]
    )
    assert code == 0
    lesions = pd.read_csv(out / "lesions.csv")
    summary = pd.read_csv(out / "subjects.csv").iloc[0]
    # The glioma is found and delineated (whole tumour, labels 1-4 of OTMultiClass).
    assert summary["lesion_recall"] == 1.0
    assert lesions["reference_dice"].max() > 0.7
    settings = tmp_path / "settings.yaml"
    settings.write_text("feature_classes: [shape, firstorder]\n", encoding="utf-8")
    features_path = tmp_path / "features.parquet"
    assert main(["extract", str(out / "manifest.csv"), "--out", str(features_path),
                 "--settings", str(settings), "--no-cache", "--strict"]) == 0
    features = read_features(features_path)
    merged = features.merge(lesions, on=["subject_id", "lesion_id"], suffixes=("", "_detect"))
    assert len(merged) == len(lesions)
    np.testing.assert_allclose(merged["reference_dice"], merged["reference_dice_detect"])
    assert (merged["lesion_voxels"] == merged["voxels"]).all()
