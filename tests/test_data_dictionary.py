"""Every column the package writes is described in data_dictionary/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radharmony.extract import FAILURE_COLUMNS, extract_features

HEADER = ["name", "type", "unit", "family", "description", "ibsi_tag", "ibsi_code", "notes"]


def _dictionary(project_root: Path) -> dict[str, pd.DataFrame]:
    folder = project_root / "data_dictionary"
    return {p.stem: pd.read_csv(p, dtype=str) for p in sorted(folder.glob("*.csv"))}


def test_every_dictionary_file_has_the_common_header(project_root: Path) -> None:
    tables = _dictionary(project_root)
    assert {"lesions", "failures"} <= set(tables)
    for name, table in tables.items():
        assert list(table.columns) == HEADER, name
        assert not table["name"].duplicated().any(), f"{name}.csv lists a column twice"
        assert table["description"].notna().all(), f"{name}.csv has an undescribed column"


@pytest.mark.parametrize("preset", ["default", "ct", "mr"])
def test_every_extracted_column_is_described(
    tiny_cohort: Path, project_root: Path, preset: str
) -> None:
    features = extract_features(tiny_cohort, settings=preset)
    tables = _dictionary(project_root)
    manifest_covariates = {"age", "sex"}
    described = set(tables["lesions"]["name"]) | set(
        tables.get("features", pd.DataFrame(columns=["name"]))["name"]
    )
    missing = sorted(set(features.columns) - described - manifest_covariates)
    assert not missing, f"columns missing from data_dictionary/features.csv: {missing}"
    assert set(FAILURE_COLUMNS) == set(tables["failures"]["name"])


def test_every_followup_column_is_described(project_root: Path) -> None:
    from radharmony.datasets._longitudinal import (
        LONGITUDINAL_MANIFEST_COLUMNS,
        LONGITUDINAL_TRUTH_COLUMNS,
    )
    from radharmony.longitudinal._delta import IDENTITY_COLUMNS
    from radharmony.longitudinal._matching import TRACK_COLUMNS
    from radharmony.longitudinal._subject import (
        LOAD_TABLE_COLUMNS,
        NEW_LESION_COLUMNS,
        PAIR_COLUMNS,
        REGISTRATION_COLUMNS,
    )

    tables = _dictionary(project_root)
    expected = {
        "lesion_tracks": TRACK_COLUMNS,
        "lesion_load": LOAD_TABLE_COLUMNS,
        "change_pairs": PAIR_COLUMNS,
        "new_lesions": NEW_LESION_COLUMNS,
        "registration": REGISTRATION_COLUMNS,
        "delta_features": (
            *IDENTITY_COLUMNS,
            "<feature>",
            "delta_<feature>",
            "delta_rel_<feature>",
        ),
        "longitudinal_manifest": LONGITUDINAL_MANIFEST_COLUMNS,
        "longitudinal_truth": LONGITUDINAL_TRUTH_COLUMNS,
    }
    for name, columns in expected.items():
        missing = sorted(set(columns) - set(tables[name]["name"]))
        assert not missing, f"data_dictionary/{name}.csv lacks {missing}"


def test_detection_and_brain_cohort_tables_are_described(project_root: Path) -> None:
    from radharmony.datasets._brain import BRAIN_GROUND_TRUTH_COLUMNS, BRAIN_MANIFEST_COLUMNS
    from radharmony.detect import LESION_TABLE_COLUMNS, SUBJECT_COLUMNS, rate_check

    tables = _dictionary(project_root)
    expected = {
        "detected_lesions": list(LESION_TABLE_COLUMNS),
        "detection_subjects": list(SUBJECT_COLUMNS),
        "detection_calibration": list(rate_check([0, 1], 1.0).columns),
        "brain_manifest": list(BRAIN_MANIFEST_COLUMNS),
        "brain_ground_truth": list(BRAIN_GROUND_TRUTH_COLUMNS),
    }
    for name, columns in expected.items():
        assert tables[name]["name"].tolist() == columns, name
    assert "reference_dice" in set(tables["lesions"]["name"])
