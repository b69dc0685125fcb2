"""Behaviour that depends on the installed dependency versions, checked at both supported ends."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sklearn
from scipy import stats

from radharmony.errors import ModelError
from radharmony.model import build_pipeline
from radharmony.model._metrics import _RNG_KEYWORD, bootstrap_metrics


def _sklearn() -> tuple[int, int]:
    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int(minor)


def test_temperature_calibration_needs_scikit_learn_1_8() -> None:
    if _sklearn() >= (1, 8):
        pipeline = build_pipeline("logistic_l2", harmonize=False, calibration="temperature")
        assert pipeline.named_steps["clf"].method == "temperature"
    else:
        with pytest.raises(ModelError, match=r"needs scikit-learn 1\.8.*calibration='sigmoid'"):
            build_pipeline("logistic_l2", harmonize=False, calibration="temperature")


def test_bootstrap_seed_reaches_scipy_under_its_name() -> None:
    assert _RNG_KEYWORD in inspect.signature(stats.bootstrap).parameters
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    proba = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, y.size), 0.01, 0.99)
    proba = np.column_stack([1 - proba, proba])
    first = bootstrap_metrics(y, proba, [0, 1], n_resamples=200, random_state=3)
    second = bootstrap_metrics(y, proba, [0, 1], n_resamples=200, random_state=3)
    assert first.equals(second)
    auc = first.loc["roc_auc"]
    assert auc["ci_low"] < auc["estimate"] < auc["ci_high"]
