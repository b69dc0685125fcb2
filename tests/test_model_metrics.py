"""Metrics, bootstrap intervals, DeLong and conformal quantiles against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, roc_auc_score

from radharmony.model import (
    binary_auc,
    bootstrap_metrics,
    classification_metrics,
    conformal_quantile,
    conformal_thresholds,
    coverage_table,
    delong_test,
    prediction_sets,
)


def _binary_case(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = expit(1.5 * (y - 0.5) + rng.normal(0, 1, n))
    return y, np.column_stack([1 - p, p])


def test_binary_auc_matches_sklearn_with_ties() -> None:
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.4, 0.4, 0.8, 0.4, 0.9, 0.2, 0.3])
    # Hand count: 16 positive/negative pairs, 11 wins and 2 ties -> (11 + 1) / 16.
    assert binary_auc(y, score) == pytest.approx(0.75)
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score))


def test_classification_metrics_match_sklearn_and_hand_values() -> None:
    y, proba = _binary_case()
    m = classification_metrics(y, proba, [0, 1])
    pred = proba.argmax(axis=1)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(np.mean(pred[y == 1] == 1))
    assert m["specificity"] == pytest.approx(np.mean(pred[y == 0] == 0))
    assert m["brier"] == pytest.approx(brier_score_loss(y, proba[:, 1]))
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    reference.fit(logit(proba[:, [1]]), y)
    assert m["calibration_slope"] == pytest.approx(reference.coef_[0, 0], abs=1e-4)


def test_calibration_of_perfect_probabilities_is_ideal() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.98, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    m = classification_metrics(y, np.column_stack([1 - p, p]), [0, 1])
    assert m["calibration_slope"] == pytest.approx(1.0, abs=0.05)
    assert m["calibration_intercept"] == pytest.approx(0.0, abs=0.05)
    assert m["ece"] < 0.015


def test_ece_hand_computed() -> None:
    # Bin [0.1, 0.2): p=0.1,0.1 observed 0,1 -> |1 - 0.2| = 0.8; bin [0.9, 1]: p=0.9,0.9
    # observed 1,1 -> |2 - 1.8| = 0.2. ECE = (0.8 + 0.2) / 4.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    m = classification_metrics(y, np.column_stack([1 - p, p]), [0, 1])
    assert m["ece"] == pytest.approx(0.25)


def test_multiclass_auc_is_one_vs_rest_macro() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(0, 1, (200, 3))
    logits[np.arange(200), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, [0, 1, 2])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, proba.argmax(1)))


def test_bootstrap_interval_brackets_estimate_and_widens_with_clusters() -> None:
    y, proba = _binary_case(150)
    table = bootstrap_metrics(y, proba, [0, 1], n_resamples=300)
    auc = table.loc["roc_auc"]
    assert auc["ci_low"] < auc["estimate"] < auc["ci_high"]
    # Duplicating every row (two lesions per patient) must not shrink the interval when the
    # patients are resampled, but does when rows are (wrongly) treated as independent.
    y2, proba2 = np.repeat(y, 2), np.repeat(proba, 2, axis=0)
    groups = np.repeat(np.arange(len(y)), 2)
    grouped = bootstrap_metrics(y2, proba2, [0, 1], groups=groups, n_resamples=300)
    naive = bootstrap_metrics(y2, proba2, [0, 1], n_resamples=300)
    width = lambda t: t.loc["roc_auc", "ci_high"] - t.loc["roc_auc", "ci_low"]  # noqa: E731
    assert width(grouped) == pytest.approx(width(table), rel=0.2)
    assert width(naive) < 0.85 * width(grouped)


def test_delong_matches_bootstrap_standard_error() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a = y + rng.normal(0, 1.0, 400)
    b = y + rng.normal(0, 1.5, 400) + 0.3 * a
    result = delong_test(y, a, b)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, b))
    diffs = []
    for _ in range(1500):
        i = rng.integers(0, 400, 400)
        diffs.append(binary_auc(y[i], a[i]) - binary_auc(y[i], b[i]))
    assert result["se"] == pytest.approx(np.std(diffs), rel=0.1)
    same = delong_test(y, a, a)
    assert same["difference"] == 0.0 and same["p_greater"] == pytest.approx(0.5)


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    scores = np.arange(1.0, 11.0)[::-1]
    assert conformal_quantile(scores, 0.8) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(scores, 0.5) == 6.0  # ceil(5.5) = 6th smallest
    assert conformal_quantile(scores, 0.95) == np.inf  # rank 11 > n: every class enters


def test_conformal_sets_coverage_on_exchangeable_data() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cal, test = slice(0, 2000), slice(2000, n)
    for mondrian in (False, True):
        thresholds = conformal_thresholds(proba[cal], y[cal], 0.9, mondrian=mondrian)
        sets = prediction_sets(proba[test], thresholds)
        table = coverage_table(sets, y[test], [0, 1, 2])
        assert table.iloc[0]["coverage"] == pytest.approx(0.9, abs=0.02)
        assert table.iloc[0]["refer_rate"] == pytest.approx(np.mean(sets.sum(1) != 1))
        if mondrian:
            per_class = table[table["stratum"] == "class"]["coverage"]
            assert np.all(np.abs(per_class - 0.9) < 0.035)


def test_bootstrap_with_few_positives_never_returns_nan() -> None:
    # 6 positives in 60 patients (cv=5 accepts it): plain patient resampling draws resamples
    # without a positive, and the intervals used to be NaN for every metric.
    rng = np.random.default_rng(5)
    y = np.zeros(60, dtype=int)
    y[:6] = 1
    p = expit(1.2 * (y - 0.3) + rng.normal(0, 1, 60))
    table = bootstrap_metrics(y, np.column_stack([1 - p, p]), [0, 1], n_resamples=400)
    for name in ("roc_auc", "balanced_accuracy", "sensitivity", "brier", "ece"):
        row = table.loc[name]
        assert np.isfinite([row["estimate"], row["ci_low"], row["ci_high"]]).all(), name
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert row["n_resamples_used"] == 400
    # Class-stratified: every resample holds exactly 6 positives, so sensitivity moves in
    # steps of 1/6.
    assert (table.loc["sensitivity", ["ci_low", "ci_high"]] * 6).round(9).mod(1).eq(0).all()


def test_separation_gives_no_fake_calibration_slope() -> None:
    y = np.array([0] * 20 + [1] * 20)
    p = np.concatenate([np.linspace(0.01, 0.45, 20), np.linspace(0.55, 0.99, 20)])
    metrics = classification_metrics(y, np.column_stack([1 - p, p]), [0, 1])
    assert np.isnan(metrics["calibration_slope"])  # not 73 or 110
    assert np.isfinite(metrics["calibration_intercept"])
    table = bootstrap_metrics(y, np.column_stack([1 - p, p]), [0, 1], n_resamples=50)
    assert "separate the classes perfectly" in table.loc["calibration_slope", "note"]
    assert np.isnan(table.loc["calibration_slope", "ci_low"])


def test_one_class_still_gives_the_metrics_that_need_one_class() -> None:
    y = np.zeros(30, dtype=int)
    p = np.linspace(0.05, 0.6, 30)
    metrics = classification_metrics(y, np.column_stack([1 - p, p]), [0, 1])
    assert np.isnan(metrics["roc_auc"]) and np.isnan(metrics["sensitivity"])
    assert metrics["brier"] == pytest.approx(np.mean(p**2))
    assert metrics["specificity"] == pytest.approx(np.mean(p < 0.5))
    assert np.isfinite(metrics["ece"])


def test_bootstrap_does_not_depend_on_n_jobs() -> None:
    from joblib import parallel_config

    y, proba = _binary_case(120, seed=9)
    groups = np.repeat(np.arange(60), 2)
    with parallel_config(backend="threading"):
        one = bootstrap_metrics(y, proba, [0, 1], groups=groups, n_resamples=200, n_jobs=1)
        two = bootstrap_metrics(y, proba, [0, 1], groups=groups, n_resamples=200, n_jobs=2)
    import pandas as pd

    pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_volume_check_counts_patients_not_duplicated_lesions() -> None:
    from radharmony.model._volume import compare_with_volume

    rng = np.random.default_rng(11)
    n = 120
    y = rng.integers(0, 2, n)
    signature = expit(0.9 * (y - 0.5) * 2 + rng.normal(0, 1.2, n))
    volume = expit(0.7 * (y - 0.5) * 2 + rng.normal(0, 1.2, n))
    sig, vol = np.column_stack([1 - signature, signature]), np.column_stack([1 - volume, volume])
    _, _, p_once, test_once = compare_with_volume(y, sig, vol, [0, 1])
    # Every patient three times (no new information): the p-value must not shrink.
    rows = np.repeat(np.arange(n), 3)
    groups = rows
    _, _, p_three, test_three = compare_with_volume(
        y[rows], sig[rows], vol[rows], [0, 1], groups=groups, n_resamples=2000
    )
    _, _, p_naive, _ = compare_with_volume(y[rows], sig[rows], vol[rows], [0, 1])
    assert (test_once, test_three) == ("delong", "patient_bootstrap")
    assert 0.005 < p_once < 0.2
    assert p_three == pytest.approx(p_once, rel=0.3)
    assert p_naive < p_once / 20  # what DeLong on duplicated rows wrongly reports


def test_volume_imputation_uses_training_rows_only() -> None:
    from radharmony.model._volume import volume_only_oof

    volume = np.array([10.0, 20, 30, 40, 50, 60, 1000, 2000, np.nan, 45.0])
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 0])
    train, test = np.arange(6), np.arange(6, 10)
    proba = volume_only_oof(volume, y, [(train, test)], [0, 1])
    filled = volume.copy()
    filled[8] = np.median(volume[train])  # 35: the training median, not the all-rows median
    expected = volume_only_oof(filled, y, [(train, test)], [0, 1])
    np.testing.assert_allclose(proba, expected)


def test_volume_check_warns_when_it_cannot_run() -> None:
    from radharmony.datasets import make_feature_table
    from radharmony.model import VolumeCheckSkippedWarning, evaluate

    table = make_feature_table(60, n_features=6, scanner_shift=0.0, scanner_scale=0.0, seed=2)
    X = table[[c for c in table.columns if c.startswith("f")]].copy()
    X.attrs = {}
    with pytest.warns(VolumeCheckSkippedWarning, match="no lesion volume column was found"):
        result = evaluate(X, table["label"], model="logistic_l2", inner_cv=3, cv=3, n_bootstrap=20)
    assert result.volume_check is None
