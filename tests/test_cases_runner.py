"""The per-case machinery shared by the stages: failures survive pandas operations, and missing
files get the documented per-file messages whatever the cache setting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from radharmony import failures_of
from radharmony.extract import extract_features, read_features, write_features

FAST = {"feature_classes": ["shape", "firstorder"], "resampled_spacing": None}


@pytest.fixture(scope="module")
def broken_cohort(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cohort plus one case whose image is missing and one whose mask is missing."""
    folder = tmp_path_factory.mktemp("broken") / "cohort"
    shutil.copytree(tiny_cohort.parent, folder)
    manifest = pd.read_csv(folder / "manifest.csv").iloc[:2]
    extra = pd.DataFrame(
        [
            {**manifest.iloc[0].to_dict(), "subject_id": "no_image", "image": "images/gone.nii.gz"},
            {**manifest.iloc[1].to_dict(), "subject_id": "no_mask", "mask": "masks/gone.nii.gz"},
        ]
    )
    pd.concat([manifest, extra]).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


@pytest.mark.parametrize("cached", [False, True], ids=["no_cache", "cache"])
def test_missing_files_get_the_documented_message_whatever_the_cache(
    broken_cohort: Path, tmp_path: Path, cached: bool
) -> None:
    features = extract_features(
        broken_cohort, settings=FAST, cache_dir=tmp_path / "cache" if cached else None
    )
    assert sorted(features["subject_id"].unique()) == ["sub-00", "sub-01"]
    failures = failures_of(features).set_index("case_id")
    folder = broken_cohort.parent
    image = failures.loc["no_image"]
    assert image["stage"] == "read_image"
    assert image["file"] == str(folder / "images/gone.nii.gz")
    assert image["message"] == (
        f"image file {folder / 'images/gone.nii.gz'} does not exist; check the path in the manifest"
    )
    mask = failures.loc["no_mask"]
    assert mask["stage"] == "read_mask"
    assert mask["file"] == str(folder / "masks/gone.nii.gz")  # the mask, not the image
    assert mask["message"] == (
        f"mask file {folder / 'masks/gone.nii.gz'} does not exist; check the path in the manifest"
    )


def test_extraction_results_concatenate_and_keep_their_failures(
    broken_cohort: Path, tiny_cohort: Path, tmp_path: Path
) -> None:
    with_failures = extract_features(broken_cohort, settings=FAST)
    clean = extract_features(tiny_cohort, settings=FAST)
    assert isinstance(with_failures.attrs["failures"], list)  # plain records, never a DataFrame
    both = pd.concat([with_failures, clean], ignore_index=True)
    assert len(both) == len(with_failures) + len(clean)
    same = pd.concat([with_failures, with_failures.copy()], ignore_index=True)
    # Equal attrs are kept by pandas, different ones dropped: never an ambiguous truth value.
    assert len(failures_of(same)) == 2
    assert failures_of(both).empty
    assert len(failures_of(with_failures.iloc[:1])) == 2  # slices keep them too
    # The failures survive a write / read round trip as records with the same content.
    back = read_features(write_features(with_failures, tmp_path / "f.parquet")["features"])
    pd.testing.assert_frame_equal(failures_of(back), failures_of(with_failures))
    assert back.attrs["failures"] == with_failures.attrs["failures"]
