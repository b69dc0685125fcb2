"""``radharmony train`` end to end: outputs consistent with each other and described."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from radharmony.cli import main
from radharmony.datasets import make_feature_table
from radharmony.model import load_model

REQUIRED_KEYS = {
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "balanced_accuracy",
    "brier",
    "ece",
    "conformal_level",
    "conformal_coverage",
    "refer_rate",
    "volume_only_roc_auc",
}


def _described(project_root: Path, table: str) -> set[str]:
    return set(pd.read_csv(project_root / "data_dictionary" / f"{table}.csv")["name"])


def _check_dictionary(out: Path, project_root: Path, id_column: str) -> None:
    predictions = pd.read_csv(out / "predictions.csv")
    described = _described(project_root, "predictions")
    for column in predictions.columns:
        name = "<id>" if column == id_column else column
        name = "proba_<class>" if name.startswith("proba_") else name
        assert name in described, f"predictions column {column} is not in the data dictionary"
    for table in (
        "metrics",
        "conformal_coverage",
        "shap_importance",
        "volume_correlations",
        "model_search",
        "per_site",
    ):
        columns = pd.read_csv(out / f"{table}.csv").columns
        assert set(columns) <= _described(project_root, table), table


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("train")
    table = make_feature_table(120, seed=2)
    table.attrs = {}
    table.to_csv(folder / "cohort.csv", index=False)
    out = folder / "out"
    code = main(
        [
            "train",
            str(folder / "cohort.csv"),
            "--target",
            "label",
            "--id",
            "subject_id",
            "--batch",
            "scanner",
            "--drop",
            "lesion_id,age",
            "--n-bootstrap",
            "100",
            "--cv",
            "3",
            "--inner-cv",
            "3",
            "--model",
            "logistic_l2",
            "--jobs",
            "1",
            "--out",
            str(out),
        ]
    )
    # Every output, the model file included, must be written: 1 would mean it was not.
    assert code == 0
    assert (out / "model.skops").exists()
    return out, table


@pytest.mark.slow
def test_train_writes_consistent_outputs(trained, project_root: Path) -> None:
    out, table = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_KEYS
    predictions = pd.read_csv(out / "predictions.csv", index_col="subject_id")
    assert len(predictions) == len(table)
    assert metrics["roc_auc"] == pytest.approx(
        roc_auc_score(predictions["y_true"], predictions["proba_1"])
    )
    assert metrics["roc_auc_ci_low"] < metrics["roc_auc"] < metrics["roc_auc_ci_high"]
    assert metrics["refer_rate"] == pytest.approx(predictions["refer"].mean())
    assert metrics["conformal_coverage"] == pytest.approx(predictions["covered"].mean())
    assert metrics["settings"]["harmonize"] is True  # --batch turns ComBat on
    assert metrics["volume_column"] == "lesion_volume_mm3"
    # Per-case explanations add up to each case's calibrated log-odds (base + all values) and
    # the top-3 contributions are the named, real feature columns.
    assert set(predictions["top1_feature"]) <= set(table.columns)
    assert np.all(np.abs(predictions["top1_shap"]) >= np.abs(predictions["top2_shap"]))
    for name in ("shap_beeswarm.png", "shap_bar.png"):
        assert (out / name).stat().st_size > 1000
    assert list(out.glob("shap_waterfall_most_confident_*.png"))
    _check_dictionary(out, project_root, "subject_id")


@pytest.mark.slow
def test_saved_model_reproduces_the_final_model(trained) -> None:
    out, _ = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "model.skops").exists()
    model, provenance = load_model(out / "model.skops")
    assert provenance["target"] == "label"
    assert provenance["final_features"] == metrics["final_features"]
    assert provenance["conformal_level"] == 0.9
    assert type(model).__name__ == "ConformalEnsemble"
    assert len(model.estimators_) == 3


def test_missing_column_is_a_clear_error(tmp_path: Path, capsys) -> None:
    table = make_feature_table(30, seed=0)
    table.attrs = {}
    table.to_csv(tmp_path / "t.csv", index=False)
    code = main(["train", str(tmp_path / "t.csv"), "--target", "outcome", "--out", str(tmp_path)])
    assert code == 2
    assert "outcome" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared
def test_radmlbench_kits_runs_with_sensible_numbers(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "radmlbench" / "C4KC-KiTS.gz"
    code = main(
        [
            "train",
            str(source),
            "--target",
            "Target",
            "--id",
            "ID",
            "--n-bootstrap",
            "200",
            "--cv",
            "3",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_cases"] == 70
    assert 0.0 <= metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    assert metrics["volume_column"] == "noncontrast_original_shape_VoxelVolume"
    assert abs(metrics["conformal_coverage"] - 0.9) < 0.1
    # The default search compared the three families in every outer fold.
    search = pd.read_csv(tmp_path / "model_search.csv")
    families = {c.split(",")[0] for c in search["candidate"]}
    assert {"RandomForestClassifier", "SVC"} <= families and search["fold"].nunique() == 3
