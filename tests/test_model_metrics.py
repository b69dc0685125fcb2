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
