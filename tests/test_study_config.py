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
from radharmony.study import load_study_config


def _write(folder: Path, config: dict) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BASE = {"manifest": "cohort/manifest.csv", "out": "out", "target": "lesion_class"}


def test_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    config = load_study_config(_write(tmp_path, {**BASE, "labels": "cohort/labels.csv"}))
    assert config.manifest == tmp_path / "cohort/manifest.csv"
    assert config.labels == tmp_path / "cohort/labels.csv"
    assert config.model == "logistic_l2" and config.cv == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"modle": "svm"}, r"unknown study configuration key\(s\) \['modle'\]"),
        ({"model": "deep_net"}, "model must be one of"),
        ({"covariates": ["age", "lesion_class"]}, "leaks the labels"),
        ({"cv": 1}, "cv must be an integer >= 2"),
        ({"conformal_level": 1.5}, "conformal_level must be in"),
        ({"settings": {"bin_widht": 3}}, r"unknown settings key\(s\) \['bin_widht'\]"),
    ],
)
def test_invalid_configurations_are_refused_with_the_reason(
    tmp_path: Path, extra: dict, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_study_config(_write(tmp_path, {**BASE, **extra}))


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
