"""Behaviour that depends on the installed dependency versions, checked at both supported ends."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn

from radharmony.errors import ModelError
from radharmony.model import build_pipeline
from radharmony.model._metrics import bootstrap_metrics


def _sklearn() -> tuple[int, int]:
    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int(minor)


def test_temperature_calibration_works_on_every_supported_scikit_learn() -> None:
    # Temperature scaling is our own one-parameter fit, so it must not depend on
    # scikit-learn 1.8's CalibratedClassifierCV(method="temperature").
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + rng.normal(0, 0.5, 80) > 0).astype(int)
    pipeline = build_pipeline("logistic_l2", harmonize=False, calibration="temperature")
    assert pipeline.method == "temperature"
    proba = pipeline.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.corrcoef(proba[:, 1], X[:, 0])[0, 1] > 0.8
    with pytest.raises(ModelError):
        build_pipeline("logistic_l2", harmonize=False, calibration="platypus")


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    proba = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, y.size), 0.01, 0.99)
    proba = np.column_stack([1 - proba, proba])
    first = bootstrap_metrics(y, proba, [0, 1], n_resamples=200, random_state=3)
    second = bootstrap_metrics(y, proba, [0, 1], n_resamples=200, random_state=3)
    assert first.equals(second)
    auc = first.loc["roc_auc"]
    assert auc["ci_low"] < auc["estimate"] < auc["ci_high"]
