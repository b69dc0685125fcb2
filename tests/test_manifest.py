"""Manifest validation: every problem is reported with its row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radharmony.errors import ManifestError
from radharmony.io import read_manifest


def _write(folder: Path, rows: list[dict], touch: bool = True) -> Path:
    if touch:
        for row in rows:
            for key in ("image", "mask"):
                value = row.get(key)
                if isinstance(value, str) and value:
                    (folder / value).parent.mkdir(parents=True, exist_ok=True)
                    (folder / value).write_bytes(b"x")
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _row(i: int, **overrides: object) -> dict:
    row = {
        "subject_id": f"s{i}",
        "image": f"img/s{i}.nii.gz",
        "mask": f"msk/s{i}.nii.gz",
        "scanner": "A",
        "age": 40 + i,
    }
    row.update(overrides)
    return row


def test_valid_manifest_resolves_paths_relative_to_its_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1), _row(2)])
    table = read_manifest(path)
    assert list(table["case_id"]) == ["s1", "s2"]
    assert Path(table.loc[0, "image"]) == tmp_path / "img/s1.nii.gz"
    assert list(table["age"]) == [41, 42]  # covariates carried through untouched


def test_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in _row(1).items() if k != "scanner"}]
    with pytest.raises(ManifestError, match=r"missing required column\(s\) \['scanner'\]"):
        read_manifest(_write(tmp_path, rows))


def test_missing_file_names_row_column_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1), _row(2)])
    (tmp_path / "msk/s2.nii.gz").unlink()
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert "row 3, column 'mask'" in message
    assert "msk/s2.nii.gz does not exist" in message
    assert "1 problem(s)" in message


def test_duplicate_subject_and_image_lists_both_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1), _row(2), _row(1, age=99)])
    with pytest.raises(ManifestError, match=r"row 2, row 4: duplicate subject_id 's1'"):
        read_manifest(path)


def test_empty_values_are_each_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1, scanner=""), _row(2, subject_id=None)], touch=True)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert "row 2, column 'scanner': empty value" in message
    assert "row 3, column 'subject_id': empty value" in message


def test_subject_with_two_images_gets_distinct_case_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1), _row(1, image="img/s1_followup.nii.gz")])
    table = read_manifest(path)
    assert list(table["case_id"]) == ["s1/s1", "s1/s1_followup"]


def test_dataframe_manifest_uses_base_dir(tmp_path: Path) -> None:
    _write(tmp_path, [_row(1)])
    table = read_manifest(pd.DataFrame([_row(1)]), base_dir=tmp_path)
    assert Path(table.loc[0, "mask"]) == tmp_path / "msk/s1.nii.gz"


def test_reserved_output_column_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="'lesion_id' is reserved"):
        read_manifest(_write(tmp_path, [_row(1, lesion_id=3)]))


def test_non_utf8_manifest_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes("subject_id,image,mask,scanner\nJos\xe9,a,b,c\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(path)
