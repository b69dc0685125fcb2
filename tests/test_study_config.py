"""`radharmony run CONFIG.yaml`: the configuration is validated before anything runs, and a small
study runs end to end from it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from radharmony import SettingsError, extract_features, make_cohort
from radharmony.cli import main
from radharmony.study import load_study_config, run_study


def _write(folder: Path, config: dict) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BASE = {"manifest": "cohort/manifest.csv", "out": "out", "target": "lesion_class"}


def test_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    config = load_study_config(_write(tmp_path, {**BASE, "labels": "cohort/labels.csv"}))
    assert config.manifest == tmp_path / "cohort/manifest.csv"
    assert config.labels == tmp_path / "cohort/labels.csv"
    assert config.model == "auto" and config.cv == 5 and config.inner_cv == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"modle": "svm"}, r"unknown study configuration key\(s\) \['modle'\]"),
        ({"model": "deep_net"}, "model must be one of"),
        ({"covariates": ["age", "lesion_class"]}, "leaks the labels"),
        ({"cv": 1}, r"cv must be an integer >= 2, got 1"),
        ({"conformal_level": 1.5}, r"conformal_level must be a number >= 0.5 and < 1"),
        # Each of these was accepted (or crashed with a traceback) before the schema.
        ({"conformal_level": "high"}, r"conformal_level must be a number .* got 'high'"),
        ({"n_bootstrap": -5}, r"n_bootstrap must be an integer >= 100, got -5"),
        ({"seed": "abc"}, r"seed must be an integer >= 0, got 'abc'"),
        ({"n_features": "ten"}, r"n_features must be an integer >= 1, got 'ten'"),
        ({"harmonize": "no"}, r"harmonize must be true or false, got 'no' \(a quoted string"),
        ({"cv": 2.5}, r"cv must be an integer"),
        ({"n_jobs": 0}, r"n_jobs must not be 0"),
        ({"mondrian": "sometimes"}, r"mondrian must be one of 'auto', True, False"),
        ({"connectivity": True}, r"connectivity must be one of 6, 18, 26, got True"),
        ({"covariates": [1, 2]}, r"covariates must be a list of column names"),
        ({"settings": {"bin_widht": 3}}, r"unknown settings key\(s\) \['bin_widht'\]"),
    ],
)
def test_invalid_configurations_are_refused_with_the_reason(
    tmp_path: Path, extra: dict, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_study_config(_write(tmp_path, {**BASE, **extra}))


def test_every_bad_value_is_named_at_once(tmp_path: Path) -> None:
    bad = {**BASE, "seed": "abc", "harmonize": "yes", "inner_cv": 1}
    with pytest.raises(SettingsError) as caught:
        load_study_config(_write(tmp_path, bad))
    message = str(caught.value)
    for key in ("seed", "harmonize", "inner_cv"):
        assert f"{key} must be" in message


def test_yaml_booleans_are_booleans(tmp_path: Path) -> None:
    config = load_study_config(_write(tmp_path, {**BASE, "harmonize": False}))
    assert config.harmonize is False
    path = tmp_path / "study.yaml"
    path.write_text("manifest: m.csv\nout: o\ntarget: t\nharmonize: no\n")
    assert load_study_config(path).harmonize is False  # YAML's unquoted no is a boolean


def test_every_field_is_documented_in_the_schema() -> None:
    import dataclasses

    from radharmony.study._config import FIELDS, StudyConfig

    assert [f.name for f in FIELDS] == [f.name for f in dataclasses.fields(StudyConfig)]
    assert all(f.doc and f.describe() for f in FIELDS)


def _cohort_with_labels(tmp_path: Path) -> tuple[Path, Path]:
    from conftest import write_tiny_cohort

    manifest = write_tiny_cohort(tmp_path / "cohort", n_subjects=4)
    labels = tmp_path / "cohort" / "labels.csv"
    pd.DataFrame({"subject_id": ["sub-00"], "lesion_id": [1], "lesion_class": [0]}).to_csv(
        labels, index=False
    )
    return manifest, labels


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"labels": "cohort/missing.csv"}, r"labels file .*missing\.csv does not exist"),
        ({"labels": "cohort/labels.csv", "target": "grade"}, r"lacks column\(s\) \['grade'\]"),
        ({"target": "grade"}, r"target 'grade' is not a column of the manifest"),
        ({"labels": "cohort/labels.csv", "covariates": ["weight"]}, r"\['weight'\] are not"),
    ],
)
def test_labels_and_target_are_checked_before_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict, message: str
) -> None:
    import radharmony.extract

    _cohort_with_labels(tmp_path)

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("extraction started before the inputs were checked")

    monkeypatch.setattr(radharmony.extract, "extract_features", must_not_run)
    config = _write(tmp_path, {**BASE, **extra})
    with pytest.raises(SettingsError, match=message):
        run_study(load_study_config(config), log=lambda line: None)
    assert not (tmp_path / "out" / "features.parquet").exists()


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"missing required key\(s\) \['target'\]"):
        load_study_config(_write(tmp_path, {"manifest": "m.csv", "out": "o"}))


@pytest.mark.slow
def test_run_executes_a_study_and_resumes_from_its_cache(tmp_path: Path) -> None:
    cohort = make_cohort(30, 2, 3, tmp_path / "cohort")
    cohort.ground_truth[["subject_id", "lesion_id", "lesion_class"]].to_csv(
        tmp_path / "cohort" / "labels.csv", index=False
    )
    config = _write(
        tmp_path,
        {
            **BASE,
            "labels": "cohort/labels.csv",
            "covariates": ["age"],
            "cv": 3,
            "inner_cv": 3,
            "model": "logistic_l2",
            "n_bootstrap": 200,
            "leave_one_scanner_out": False,
            "settings": {"feature_classes": ["shape", "firstorder", "glcm"]},
            "n_jobs": 2,
        },
    )
    assert main(["run", str(config)]) == 0
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())["cross_validation"]
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == len(cohort.ground_truth)
    assert (out / "report.html").is_file()
    first = pd.read_parquet(out / "features.parquet")
    # The study's extraction cache makes a re-run resume: every case comes from the cache.
    again = extract_features(
        tmp_path / "cohort" / "manifest.csv",
        settings={"feature_classes": ["shape", "firstorder", "glcm"]},
        cache_dir=out / "features.parquet.cache",
    )
    assert again.attrs["cached_cases"] == 30
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    provenance = json.loads((out / "features.provenance.json").read_text())
    assert provenance["settings"]["feature_classes"] == ["shape", "firstorder", "glcm"]
