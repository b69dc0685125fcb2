"""Predictions on new patients: library and CLI, unseen scanners, reader agreement, n_jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from scipy.special import logit

import radharmony
from radharmony.cli import main
from radharmony.datasets import make_feature_table
from radharmony.errors import ModelError
from radharmony.model import evaluate, reader_agreement, save_model

FEATURES = [f"f{j:02d}" for j in range(10)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    harmonize = pytest.importorskip("radharmony.harmonize")
    table = make_feature_table(150, n_features=10, seed=21)
    table.attrs = {}
    train, new = table.iloc[:110].reset_index(drop=True), table.iloc[110:].reset_index(drop=True)
    result = evaluate(
        train[FEATURES],
        train["label"],
        batch=train["scanner"],
        covariates=train[["age"]],
        harmonize=harmonize.ComBat(),
        model="logistic_l2",
        inner_cv=3,
        cv=3,
        n_bootstrap=50,
        volume=None,
    )
    folder = tmp_path_factory.mktemp("predict")
    path = save_model(result.model, folder / "model.skops")
    return result, new, path


def test_predictions_match_the_model_and_explanations_add_up(trained) -> None:
    result, new, _ = trained
    reader = np.where(np.arange(len(new)) % 4 == 0, "", new["label"].astype(str))
    table, explanation = radharmony.predict(
        result.model,
        new,
        batch=new["scanner"],
        covariates=new[["age"]],
        reader=reader,
        return_explanation=True,
    )
    proba = result.model.predict_proba(new[FEATURES], batch=new["scanner"], covariates=new[["age"]])
    np.testing.assert_allclose(table[["proba_0", "proba_1"]].to_numpy(), proba)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, logit(proba[:, 1]), atol=1e-8)
    sets = result.model.conformal_sets(new[FEATURES], batch=new["scanner"], covariates=new[["age"]])
    np.testing.assert_array_equal(table["set_size"], sets.sum(axis=1))
    assert (table["refer"] == ((table["set_size"] != 1) | table["domain_shift"])).all()
    # Second look: the reading is outside the conformal set.
    read = reader != ""
    inside = np.array(
        [str(r) in s.split("|") for r, s in zip(reader, table["conformal_set"], strict=True)]
    )
    np.testing.assert_array_equal(table["second_look"], read & ~inside)
    summary = reader_agreement(table).set_index("quantity")["value"]
    assert summary["n_read"] == read.sum()
    assert summary["agreement_with_model"] == pytest.approx(
        np.mean(reader[read] == table["y_pred"].astype(str).to_numpy()[read])
    )
    assert summary["n_second_look"] == int((read & ~inside).sum())


def test_an_unseen_scanner_is_an_error_naming_the_options(trained) -> None:
    result, new, _ = trained
    with pytest.raises(ModelError, match=r"\['scanner_Q'\] were not in the training data.*Options"):
        radharmony.predict(
            result.model, new, batch=["scanner_Q"] * len(new), covariates=new[["age"]]
        )


def test_a_case_far_from_the_training_data_is_flagged(trained) -> None:
    result, new, _ = trained
    far = new.copy()
    far.loc[0, FEATURES] = far.loc[0, FEATURES] + 8.0
    table = radharmony.predict(result.model, far, batch=far["scanner"], covariates=far[["age"]])
    assert table.loc[0, "domain_shift"] and table.loc[0, "refer"]
    assert table["domain_shift"].iloc[1:].mean() < 0.1


def test_predict_command_writes_cases_and_reader_agreement(
    trained, tmp_path: Path, project_root: Path
) -> None:
    _, new, path = trained
    new = new.assign(reading=new["label"].astype(str))
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(path),
            str(tmp_path / "new.csv"),
            "--out",
            str(out),
            "--id",
            "subject_id",
            "--batch",
            "scanner",
            "--covariates",
            "age",
            "--reader",
            "reading",
        ]
    )
    assert code == 0
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == len(new)
    described = set(pd.read_csv(project_root / "data_dictionary" / "new_predictions.csv")["name"])
    for column in predictions.columns:
        name = "<id>" if column == "subject_id" else column
        name = "proba_<class>" if name.startswith("proba_") else name
        assert name in described, column
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_refer"] == int(predictions["refer"].sum())
    assert summary["reader"]["n_read"] == len(new)
    page = (out / "cases.html").read_text(encoding="utf-8")
    assert page.count("class='card ") == len(new)
    assert set(pd.read_csv(out / "reader_agreement.csv").columns) == {"quantity", "value"}


def test_results_do_not_depend_on_n_jobs() -> None:
    table = make_feature_table(90, n_features=8, scanner_shift=0.0, scanner_scale=0.0, seed=6)
    X = table[[f"f{j:02d}" for j in range(8)]]
    runs = []
    with parallel_config(backend="threading"):
        for n_jobs in (1, 2):
            runs.append(
                evaluate(
                    X,
                    table["label"],
                    model="logistic_l2",
                    inner_cv=3,
                    cv=3,
                    n_bootstrap=40,
                    volume=None,
                    n_jobs=n_jobs,
                )
            )
    pd.testing.assert_frame_equal(runs[0].predictions, runs[1].predictions, check_exact=True)
    pd.testing.assert_frame_equal(runs[0].metrics, runs[1].metrics, check_exact=True)
    pd.testing.assert_frame_equal(runs[0].search, runs[1].search, check_exact=True)


def test_l1_selection_handles_several_classes() -> None:
    from radharmony.model import L1Selector

    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 6))
    y = np.digitize(X[:, 2] + 0.3 * rng.normal(size=150), [-0.5, 0.5])
    selector = L1Selector(k=2).fit(X, y)  # crashed with liblinear on three classes
    assert set(np.unique(y)) == {0, 1, 2}
    assert selector.get_support()[2]
