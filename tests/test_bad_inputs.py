"""A generated corpus of bad inputs: every bad case is reported, every good case is kept."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.errors import ImageReadError
from radharmony.extract import extract_features, failures_of
from radharmony.io import read_image

SETTINGS = {"feature_classes": ["shape", "firstorder", "glcm"]}


def _write(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> str:
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path.name


def _lesion_image(rng: np.random.Generator, shape=(16, 20, 20)) -> tuple[np.ndarray, np.ndarray]:
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:11, 6:14, 6:14] = 1
    image[mask == 1] += 40.0
    return image, mask


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Write good and bad cases; return the manifest and, per bad case, the expected stage."""
    folder = tmp_path_factory.mktemp("bad_corpus")
    rng = np.random.default_rng(1)
    rows, expected = [], {}

    def add(case: str, image: str, mask: str, stage: str | None) -> None:
        rows.append({"subject_id": case, "image": image, "mask": mask, "scanner": "A"})
        if stage:
            expected[case] = stage

    for k in range(3):
        image, mask = _lesion_image(rng)
        add(
            f"good{k}",
            _write(folder / f"good{k}.nii.gz", image),
            _write(folder / f"good{k}_m.nii.gz", mask),
            None,
        )
    image, mask = _lesion_image(rng)
    good_mask = _write(folder / "shared_m.nii.gz", mask)

    data = (folder / "good0.nii.gz").read_bytes()
    (folder / "trunc.nii.gz").write_bytes(data[: len(data) // 2])
    add("truncated_nifti", "trunc.nii.gz", good_mask, "read_image")
    _write(folder / "full.nrrd", image)
    data = (folder / "full.nrrd").read_bytes()
    (folder / "trunc.nrrd").write_bytes(data[: len(data) // 2])
    add("truncated_nrrd", "trunc.nrrd", good_mask, "read_image")
    (folder / "garbage.nii.gz").write_bytes(gzip.compress(b"not an image at all" * 20))
    add("garbage", "garbage.nii.gz", good_mask, "read_image")
    add("missing_file", "does_not_exist.nii.gz", good_mask, "read_image")
    add(
        "size_mismatch",
        _write(folder / "big.nii.gz", np.zeros((16, 20, 21), np.float32)),
        good_mask,
        "geometry",
    )
    add(
        "spacing_mismatch",
        _write(folder / "sp.nii.gz", image, spacing=(1.0, 1.0, 2.0)),
        good_mask,
        "geometry",
    )
    add(
        "origin_mismatch",
        _write(folder / "or.nii.gz", image, origin=(5.0, 0.0, 0.0)),
        good_mask,
        "geometry",
    )
    flipped = sitk.GetImageFromArray(image)
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(flipped, str(folder / "dir.nii.gz"))
    add("direction_mismatch", "dir.nii.gz", good_mask, "geometry")
    add(
        "empty_mask",
        _write(folder / "e.nii.gz", image),
        _write(folder / "e_m.nii.gz", np.zeros_like(mask)),
        "lesions",
    )
    prob = mask.astype(np.float32) * 0.6
    add(
        "probability_mask",
        _write(folder / "p.nii.gz", image),
        _write(folder / "p_m.nii.gz", prob),
        "read_mask",
    )
    nan_image = image.copy()
    nan_image[7, 8, 8] = np.nan
    add("nan_in_lesion", _write(folder / "nan.nii.gz", nan_image), good_mask, "image_values")
    inf_image = image.copy()
    inf_image[0, 0, 0] = np.inf  # far from the lesion: harmless, the case must succeed
    add("inf_far_away", _write(folder / "inf.nii.gz", inf_image), good_mask, None)
    add("image_2d", _write(folder / "flat.nii.gz", image[0]), good_mask, "read_image")
    import nibabel as nib

    nib.save(
        nib.Nifti1Image(np.zeros((20, 20, 16, 2), np.float32), np.eye(4)), folder / "four.nii.gz"
    )
    add("image_4d", "four.nii.gz", good_mask, "read_image")
    nib.save(
        nib.Nifti1Image(np.zeros((20, 20, 16, 2), np.int16), np.eye(4)), folder / "four_i.nii.gz"
    )
    add("image_4d_int", "four_i.nii.gz", good_mask, "read_image")
    constant = np.full(image.shape, 50.0, np.float32)
    add("constant_lesion", _write(folder / "const.nii.gz", constant), good_mask, None)
    speck = np.zeros_like(mask)
    speck[8, 10, 10] = 1
    add(
        "one_voxel_lesion",
        _write(folder / "speck.nii.gz", image),
        _write(folder / "speck_m.nii.gz", speck),
        None,
    )
    odd_labels = mask.astype(np.uint8) * 255
    add(
        "label_255",
        _write(folder / "odd.nii.gz", image),
        _write(folder / "odd_m.nii.gz", odd_labels),
        None,
    )

    manifest = folder / "manifest.csv"
    table = pd.DataFrame(rows)
    table["site_note"] = "extra columns are carried through"
    table.to_csv(manifest, index=False)
    return manifest, expected


@pytest.fixture(scope="module")
def corpus_result(corpus: tuple[Path, dict[str, str]]) -> pd.DataFrame:
    manifest, _ = corpus
    return extract_features(manifest, settings=SETTINGS, n_jobs=2)


def test_every_bad_case_is_reported_at_its_stage(
    corpus: tuple[Path, dict[str, str]], corpus_result: pd.DataFrame
) -> None:
    _, expected = corpus
    failures = failures_of(corpus_result)
    reported = dict(zip(failures["case_id"], failures["stage"], strict=True))
    # A one-voxel lesion may vanish on the 1 mm grid: then it must be reported, not lost.
    reported.pop("one_voxel_lesion", None)
    assert reported == expected
    assert (failures["message"].str.len() > 30).all()
    assert failures["file"].str.len().gt(0).all()


def test_every_good_case_is_kept(
    corpus: tuple[Path, dict[str, str]], corpus_result: pd.DataFrame
) -> None:
    _, expected = corpus
    failures = failures_of(corpus_result)
    kept = set(corpus_result["case_id"])
    for case in ("good0", "good1", "good2", "inf_far_away", "constant_lesion", "label_255"):
        assert case in kept, case
    # Every case is either in the table or in the failures: nothing disappears.
    manifest, _ = corpus
    assert set(pd.read_csv(manifest)["subject_id"]) == kept | set(failures["case_id"])
    assert (corpus_result["site_note"] == "extra columns are carried through").all()


def test_messages_say_what_to_fix(corpus_result: pd.DataFrame) -> None:
    messages = failures_of(corpus_result).set_index("case_id")["message"]
    assert "does not exist" in messages["missing_file"]
    assert "truncated or corrupt" in messages["truncated_nifti"]
    assert "is 2D" in messages["image_2d"]
    assert "is 4D" in messages["image_4d"]
    assert "is 4D" in messages["image_4d_int"]
    assert "NaN or infinite voxel(s) in or next to lesion 1" in messages["nan_in_lesion"]
    assert "threshold it" in messages["probability_mask"]
    assert "is empty" in messages["empty_mask"]
    assert "direction" in messages["direction_mismatch"]


def test_huge_declared_size_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "huge.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: float\ndimension: 3\nsizes: 100000 100000 100000\n"
        b"encoding: raw\nendian: little\n\n" + b"\x00" * 64
    )
    with pytest.raises(ImageReadError, match="declares 1e\\+15 voxels"):
        read_image(path)
