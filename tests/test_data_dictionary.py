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


def test_harmonisation_tables_are_described(project_root: Path) -> None:
    from radharmony.datasets import make_feature_table
    from radharmony.harmonize import (
        NormativeModel,
        ShrinkageComBat,
        scanner_predictability,
        summarise_predictability,
    )
    from radharmony.harmonize._diagnostics import normative_calibration

    table = make_feature_table(60, n_features=4, n_informative=2, n_scanners=2, seed=3)
    X, batch = table.filter(regex=r"^f\d+$"), table["scanner"].to_numpy()
    normative = NormativeModel().fit(X, batch=batch)
    heldout = scanner_predictability(X, batch, {"default": ShrinkageComBat()}, n_splits=1)
    written = {
        "harmonization_corrections": ShrinkageComBat().fit(X, batch=batch).correction_table(),
        "harmonization_heldout_splits": heldout,
        "harmonization_heldout_summary": summarise_predictability(heldout),
        "normative_sites": normative.site_table(),
        "normative_deviations": normative.deviation_table(X.iloc[:3], batch=batch[:3]),
        "normative_calibration": normative_calibration(
            X,
            batch,
            NormativeModel(),
            covariates=None,
            reference=None,
            n_splits=1,
            random_state=0,
        ),
    }
    tables = _dictionary(project_root)
    for name, frame in written.items():
        assert list(frame.columns) == tables[name]["name"].tolist(), name
