"""SHAP explanations: additivity against the model's own output, real feature names, figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.special import logit  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from radharmony.datasets import make_feature_table  # noqa: E402
from radharmony.explain import (  # noqa: E402
    explain,
    explain_out_of_fold,
    global_importance,
    plot_bar,
    plot_beeswarm,
    plot_waterfall,
    top_contributions,
)
from radharmony.model import build_pipeline, evaluate, selected_features  # noqa: E402


@pytest.fixture(autouse=True)
def _single_thread():
    # Gradient boosting's OpenMP threads thrash on a shared machine; the fits are tiny.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, np.ndarray, dict]:
    table = make_feature_table(150, scanner_shift=0.0, scanner_scale=0.0, seed=0)
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    features.attrs = {}
    return features, table["label"].to_numpy(), table.attrs["truth"]


@pytest.mark.parametrize("model", ["logistic_l2", "random_forest", "gradient_boosting", "svm"])
def test_shap_values_add_up_to_the_calibrated_log_odds(cohort, model: str) -> None:
    X, y, _ = cohort
    pipeline = build_pipeline(model, n_features=5).fit(X, y)
    case_rows = X.iloc[:40]
    explanation = explain(pipeline, case_rows, background=X)
    total = explanation.values.sum(axis=1) + explanation.base_values
    expected = logit(pipeline.predict_proba(case_rows)[:, 1])
    np.testing.assert_allclose(total, expected, atol=1e-8)
    assert explanation.output_names == "calibrated log-odds of class 1"
    # Features the pipeline did not use get exactly zero.
    used = selected_features(pipeline, list(X.columns))
    unused = [i for i, name in enumerate(X.columns) if name not in used]
    assert len(used) == 5 and np.all(explanation.values[:, unused] == 0.0)
    np.testing.assert_array_equal(explanation.data, case_rows.to_numpy())


def test_linear_shap_is_coefficient_times_centred_value(cohort) -> None:
    X, y, _ = cohort
    pipeline = build_pipeline("logistic_l2", calibration=None, n_features=5).fit(X, y)
    explanation = explain(pipeline, X, max_background=len(X))
    used = selected_features(pipeline, list(X.columns))
    # Hand computation: standardised value minus its background mean, times the coefficient.
    Z = pipeline[:-1].transform(X)
    coef = pipeline.named_steps["clf"].coef_[0]
    expected = (Z - Z.mean(axis=0)) * coef
    columns = [list(X.columns).index(n) for n in used]
    np.testing.assert_allclose(explanation.values[:, columns], expected, atol=1e-10)
    decision = pipeline.decision_function(X)
    np.testing.assert_allclose(
        explanation.values.sum(axis=1) + explanation.base_values, decision, atol=1e-10
    )


def test_global_importance_names_the_informative_features(cohort) -> None:
    X, y, truth = cohort
    pipeline = build_pipeline("logistic_l2").fit(X, y)
    importance = global_importance(explain(pipeline, X))
    informative = set(truth["informative_features"])
    assert len(set(importance.index[:5]) & informative) >= 4
    assert informative <= set(importance.index[:8])
    assert importance["share"].sum() == pytest.approx(1.0)


def test_multiclass_explanation_is_additive_per_class(cohort) -> None:
    X, y, _ = cohort
    y3 = y.copy()
    y3[np.arange(len(y)) % 3 == 0] = 2
    pipeline = build_pipeline("logistic_l2", calibration=None).fit(X, y3)
    explanation = explain(pipeline, X)
    assert explanation.values.shape == (len(X), X.shape[1], 3)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, pipeline.decision_function(X), atol=1e-8)
    table = top_contributions(explanation, n=2)
    assert list(table.columns[:3]) == ["shap_base_value", "top1_feature", "top1_value"]


def test_top_contributions_are_the_largest_absolute_values(cohort) -> None:
    X, y, _ = cohort
    pipeline = build_pipeline("logistic_l2").fit(X, y)
    explanation = explain(pipeline, X.iloc[:10], background=X)
    table = top_contributions(explanation, n=3, index=X.index[:10])
    for i in range(10):
        values = explanation.values[i]
        order = np.argsort(-np.abs(values))[:3]
        assert table.iloc[i]["top1_feature"] == X.columns[order[0]]
        assert table.iloc[i]["top2_shap"] == pytest.approx(values[order[1]])
        assert table.iloc[i]["top3_value"] == pytest.approx(X.iloc[i, order[2]])


def test_figures_show_the_top_features(cohort) -> None:
    X, y, _ = cohort
    pipeline = build_pipeline("logistic_l2").fit(X, y)
    explanation = explain(pipeline, X)
    top = global_importance(explanation).index[0]
    for figure in (plot_beeswarm(explanation), plot_bar(explanation)):
        labels = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
        assert top in labels
        plt.close(figure)
    figure = plot_waterfall(explanation, 0, max_display=5)
    labels = " ".join(t.get_text() for ax in figure.axes for t in ax.get_yticklabels())
    assert top_contributions(explanation).iloc[0]["top1_feature"] in labels
    plt.close(figure)


def test_out_of_fold_explanations_use_each_fold_model(cohort) -> None:
    X, y, _ = cohort
    result = evaluate(X, y, volume=None, n_bootstrap=50, cv=3, model="logistic_l2", inner_cv=3)
    explanation = explain_out_of_fold(result, X)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, logit(result.predictions["proba_1"].to_numpy()), atol=1e-8)
