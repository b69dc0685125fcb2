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


def test_filtered_feature_grammar_is_the_generated_one(project_root: Path) -> None:
    from radharmony.ibsi.filters.dictionary import filtered_feature_dictionary

    written = pd.read_csv(project_root / "data_dictionary" / "filtered_features.csv", dtype=str)
    generated = filtered_feature_dictionary().astype(str)
    pd.testing.assert_frame_equal(written.fillna(""), generated.replace("nan", ""))


def test_bids_manifest_columns_are_described(project_root: Path, tmp_path: Path) -> None:
    import json

    from radharmony.io import read_bids

    anat = tmp_path / "sub-1" / "anat"
    masks = tmp_path / "derivatives" / "m" / "sub-1" / "anat"
    for folder, name in ((anat, "sub-1_T1w.nii.gz"), (masks, "sub-1_desc-x_mask.nii.gz")):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"")
    (tmp_path / "dataset_description.json").write_text(json.dumps({"Name": "x"}))
    (tmp_path / "T1w.json").write_text(json.dumps({"Manufacturer": "Acme"}))
    table = read_bids(tmp_path)
    described = set(_dictionary(project_root)["bids_manifest"]["name"])
    assert set(table.columns) == described


def test_modelling_tables_are_described(project_root: Path) -> None:
    from radharmony.datasets import make_feature_table
    from radharmony.model import evaluate

    table = make_feature_table(60, n_features=6, seed=1)
    X = table[[c for c in table.columns if c.startswith("f")]].copy()
    X.attrs = {}
    result = evaluate(
        X,
        table["label"],
        sites=table["scanner"],
        volume=None,
        model="logistic_l2",
        cv=3,
        inner_cv=3,
        n_bootstrap=20,
    )
    tables = _dictionary(project_root)
    outputs = {
        "metrics": result.metrics.reset_index(),
        "conformal_coverage": result.coverage,
        "model_search": result.search,
        "per_site": result.per_site.reset_index(),
    }
    for name, frame in outputs.items():
        missing = set(frame.columns) - set(tables[name]["name"])
        assert not missing, f"{name}: {sorted(missing)} not in data_dictionary/{name}.csv"
    described = set(tables["predictions"]["name"])
    for column in result.predictions.columns:
        name = "proba_<class>" if column.startswith("proba_") else column
        assert name in described, column


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
