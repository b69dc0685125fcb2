"""Nested CV on simulated cohorts with known truth: AUC, coverage, calibration, leakage, volume."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radharmony.datasets import make_feature_table
from radharmony.errors import ModelError
from radharmony.model import EvaluationResult, VolumeConfoundWarning, build_pipeline, evaluate

# One model family and three members keep these tests quick; the default search is measured
# in benchmarks/bench_model_default.py.
CHEAP = {"model": "logistic_l2", "inner_cv": 3}


def _features(table: pd.DataFrame) -> pd.DataFrame:
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    # The truth in attrs holds DataFrames, which pandas cannot compare when concatenating.
    features.attrs = {}
    return features


@pytest.fixture(scope="module")
def clean_cohort() -> pd.DataFrame:
    # No scanner effects: the Bayes AUC is then the ceiling for any honest estimate.
    return make_feature_table(400, scanner_shift=0.0, scanner_scale=0.0, seed=0)


@pytest.fixture(scope="module")
def clean_result(clean_cohort: pd.DataFrame) -> EvaluationResult:
    return evaluate(
        _features(clean_cohort),
        clean_cohort["label"],
        sites=clean_cohort["scanner"],
        volume=clean_cohort["lesion_volume_mm3"],
        n_bootstrap=300,
        **CHEAP,
    )


@pytest.mark.slow
def test_nested_cv_auc_is_close_to_the_bayes_auc(
    clean_cohort: pd.DataFrame, clean_result: EvaluationResult
) -> None:
    bayes = clean_cohort.attrs["truth"]["bayes_auc"]
    auc = clean_result.metrics.loc["roc_auc"]
    assert auc["estimate"] == pytest.approx(bayes, abs=0.03)
    assert auc["ci_low"] < bayes + 0.01 and auc["ci_high"] > bayes - 0.03
    # The out-of-fold table reproduces the headline AUC.
    oof = clean_result.predictions
    assert auc["estimate"] == pytest.approx(roc_auc_score(oof["y_true"], oof["proba_1"]))


@pytest.mark.slow
def test_conformal_coverage_and_calibration(clean_result: EvaluationResult) -> None:
    coverage = clean_result.coverage.set_index(["stratum", "value"])["coverage"]
    assert coverage[("overall", "all")] == pytest.approx(0.9, abs=0.03)
    assert set(coverage.loc["site"].index) == {"scanner_A", "scanner_B", "scanner_C"}
    assert set(coverage.loc["class"].index) == {"0", "1"}
    oof = clean_result.predictions
    referred = (oof["set_size"] != 1) | oof["domain_shift"]
    assert clean_result.refer_rate == pytest.approx(np.mean(referred))
    assert oof["covered"].mean() == pytest.approx(coverage[("overall", "all")])
    assert clean_result.metrics.loc["ece", "estimate"] < 0.07
    assert clean_result.metrics.loc["calibration_slope", "ci_low"] < 1.0
    assert clean_result.metrics.loc["calibration_slope", "ci_high"] > 1.0
    summary = clean_result.summary()
    assert summary["conformal_coverage"] == pytest.approx(coverage[("overall", "all")])
    assert summary["per_site"]["scanner_A"]["n"] == int((oof["site"] == "scanner_A").sum())


@pytest.mark.slow
def test_volume_check_passes_when_the_signal_is_not_volume(
    clean_result: EvaluationResult,
) -> None:
    check = clean_result.volume_check
    assert check is not None and check.beats_volume
    assert check.volume_auc == pytest.approx(0.5, abs=0.08)
    assert check.p_value < 1e-6


@pytest.mark.slow
def test_volume_check_fires_when_only_volume_carries_signal() -> None:
    table = make_feature_table(300, volume_only=True, scanner_shift=0.0, scanner_scale=0.0, seed=3)
    features = _features(table).assign(lesion_volume_mm3=table["lesion_volume_mm3"])
    with pytest.warns(VolumeConfoundWarning, match="does not beat a volume-only model"):
        result = evaluate(features, table["label"], n_bootstrap=100, **CHEAP)
    check = result.volume_check
    assert check is not None and check.volume_column == "lesion_volume_mm3"
    assert not check.beats_volume and check.volume_auc > 0.65
    # The most volume-correlated features the models used are those that follow volume.
    truth = set(table.attrs["truth"]["volume_features"]) | {"lesion_volume_mm3"}
    top = check.correlations.head(2).index
    assert set(top) <= truth
    assert result.summary()["volume_only_roc_auc"] == pytest.approx(check.volume_auc)


@pytest.mark.slow
def test_leaky_analysis_is_optimistic_relative_to_nested_cv() -> None:
    # No feature carries signal (Bayes AUC 0.5) and features outnumber cases.
    table = make_feature_table(
        100, n_features=200, n_informative=0, scanner_shift=0.0, scanner_scale=0.0, seed=5
    )
    X, y = _features(table), table["label"].to_numpy()
    assert table.attrs["truth"]["bayes_auc"] == 0.5
    honest = evaluate(X, y, volume=None, n_bootstrap=100, **CHEAP).metrics
    honest = honest.loc["roc_auc", "estimate"]
    # The leaky analysis selects features on all rows, then cross-validates the classifier.
    selected = SelectKBest(f_classif, k=10).fit_transform(X, y)
    leaky_proba = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression()),
        selected,
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    leaky = roc_auc_score(y, leaky_proba)
    assert honest == pytest.approx(0.5, abs=0.13)
    assert leaky > 0.75
    assert leaky - honest > 0.15


@pytest.mark.slow
def test_harmonised_leaky_analysis_is_optimistic() -> None:
    harmonize = pytest.importorskip("radharmony.harmonize")
    table = make_feature_table(120, n_features=100, n_informative=0, seed=6)
    X, y, batch = _features(table), table["label"].to_numpy(), table["scanner"].to_numpy()
    honest = evaluate(
        X, y, batch=batch, harmonize=harmonize.ComBat(), volume=None, n_bootstrap=100, **CHEAP
    )
    assert honest.settings["harmonize"] is True
    member = honest.model.estimators_[0].pipeline_
    assert type(member.named_steps["harmonize"]).__name__ == "ComBat"
    # Leaky: ComBat and selection fitted on all rows (the target as a preserved covariate too).
    covariate = pd.DataFrame({"label": y})
    combat = harmonize.ComBat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        harmonised = combat.fit_transform(X.to_numpy(), batch=batch, covariates=covariate)
    selected = SelectKBest(f_classif, k=10).fit_transform(harmonised, y)
    leaky_proba = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression()),
        selected,
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    leaky = roc_auc_score(y, leaky_proba)
    honest_auc = honest.metrics.loc["roc_auc", "estimate"]
    assert honest_auc == pytest.approx(0.5, abs=0.15)
    assert leaky - honest_auc > 0.15


def test_patients_never_straddle_folds() -> None:
    table = make_feature_table(120, scanner_shift=0.0, scanner_scale=0.0, seed=7)
    # Two lesions per patient: the second is the first plus small noise.
    rng = np.random.default_rng(0)
    second = _features(table) + rng.normal(0, 0.1, _features(table).shape)
    X = pd.concat([_features(table), second], ignore_index=True)
    y = np.concatenate([table["label"], table["label"]])
    groups = np.concatenate([table["subject_id"], table["subject_id"]])
    result = evaluate(X, y, groups=groups, volume=None, n_bootstrap=50, cv=4, **CHEAP)
    folds_per_patient = result.predictions.groupby("group")["fold"].nunique()
    assert folds_per_patient.max() == 1
    assert result.summary()["n_groups"] == 120
    for train, test in result.splits:
        assert not set(groups[train]) & set(groups[test])


def test_leave_one_site_out_holds_out_each_scanner() -> None:
    table = make_feature_table(150, scanner_shift=0.0, scanner_scale=0.0, seed=8)
    result = evaluate(
        _features(table),
        table["label"],
        batch=table["scanner"],
        cv="leave-one-site-out",
        volume=None,
        n_bootstrap=50,
        **CHEAP,
    )
    assert result.settings["harmonize"] is False  # ComBat cannot adjust an unseen scanner
    sites_per_fold = result.predictions.groupby("fold")["site"].agg(lambda s: set(s))
    assert [len(s) for s in sites_per_fold] == [1, 1, 1]
    assert set().union(*sites_per_fold) == {"scanner_A", "scanner_B", "scanner_C"}
    assert result.per_site is not None and result.per_site["n"].sum() == 150


def test_multiclass_target() -> None:
    table = make_feature_table(240, scanner_shift=0.0, scanner_scale=0.0, seed=9)
    # Third class: shift two non-informative features for a random third of the cases.
    rng = np.random.default_rng(1)
    y = table["label"].to_numpy().copy()
    third = rng.random(len(y)) < 0.33
    X = _features(table).copy()
    X.loc[third, ["f10", "f11"]] += 2.0
    y[third] = 2
    result = evaluate(X, y, volume=None, n_bootstrap=50, cv=3, **CHEAP)
    oof = result.predictions
    proba = oof[["proba_0", "proba_1", "proba_2"]].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0)
    auc = result.metrics.loc["roc_auc", "estimate"]
    assert auc == pytest.approx(roc_auc_score(oof["y_true"], proba, multi_class="ovr"))
    assert auc > 0.8
    assert {"f10", "f11"} <= set(result.final_features)


def test_target_as_covariate_is_refused() -> None:
    table = make_feature_table(60, seed=10)
    covariates = table[["age", "label"]].rename(columns={"label": "diagnosis"})
    with pytest.raises(ModelError, match="is the prediction target"):
        evaluate(
            _features(table),
            table["label"],
            batch=table["scanner"],
            covariates=covariates,
            volume=None,
        )


def test_bad_inputs_name_the_problem() -> None:
    table = make_feature_table(40, seed=11)
    with pytest.raises(ModelError, match="single class"):
        evaluate(_features(table), np.zeros(40), volume=None)
    with pytest.raises(ModelError, match="numeric"):
        evaluate(table[["scanner", "f00"]], table["label"], volume=None)
    with pytest.raises(ModelError, match="one value per feature row"):
        evaluate(_features(table), table["label"], groups=np.arange(10), volume=None)
    with pytest.raises(ModelError, match="unknown model"):
        evaluate(_features(table), table["label"], model="deep_net", volume=None)


def test_user_pipeline_and_grid_are_used_as_given() -> None:
    table = make_feature_table(100, scanner_shift=0.0, scanner_scale=0.0, seed=12)
    pipeline = build_pipeline("logistic_l1", selection="l1", calibration="isotonic")
    result = evaluate(
        _features(table),
        table["label"],
        model=pipeline,
        param_grid={"clf__C": [0.5]},
        volume=None,
        n_bootstrap=50,
        cv=3,
        inner_cv=3,
    )
    assert result.best_params == [[{"clf__C": 0.5}] * 3] * 3
    member = result.model.estimators_[0]
    assert member.calibrator_.method == "isotonic"
    assert member.pipeline_.named_steps["clf"].C == 0.5
    assert pipeline.pipeline.named_steps["clf"].C == 1.0  # the caller's object is untouched
