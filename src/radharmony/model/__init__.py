"""Explainable classifiers with validated confidence.

Leak-free pipelines (every fitted step inside the training folds), nested patient-grouped
cross-validation with bootstrap confidence intervals, calibrated probabilities, conformal
prediction sets with a "refer" flag, an always-on volume-confound check, and safe persistence.
"""

from __future__ import annotations

from radharmony.model._conformal import (
    conformal_quantile,
    conformal_thresholds,
    coverage_table,
    prediction_sets,
)
from radharmony.model._evaluate import evaluate
from radharmony.model._metrics import (
    METRIC_NAMES,
    binary_auc,
    bootstrap_metrics,
    classification_metrics,
    delong_test,
)
from radharmony.model._persist import data_provenance, load_model, save_model
from radharmony.model._pipeline import (
    MODELS,
    SELECTIONS,
    build_pipeline,
    default_param_grid,
    selected_features,
    set_pipeline_params,
)
from radharmony.model._result import EvaluationResult
from radharmony.model._transformers import (
    DropCorrelated,
    DropNearConstant,
    L1Selector,
    MRMRSelector,
    UnivariateSelector,
)
from radharmony.model._volume import VolumeCheck, VolumeConfoundWarning, find_volume_column

__all__ = [
    "METRIC_NAMES",
    "MODELS",
    "SELECTIONS",
    "DropCorrelated",
    "DropNearConstant",
    "EvaluationResult",
    "L1Selector",
    "MRMRSelector",
    "UnivariateSelector",
    "VolumeCheck",
    "VolumeConfoundWarning",
    "binary_auc",
    "bootstrap_metrics",
    "build_pipeline",
    "classification_metrics",
    "conformal_quantile",
    "conformal_thresholds",
    "coverage_table",
    "data_provenance",
    "default_param_grid",
    "delong_test",
    "evaluate",
    "find_volume_column",
    "load_model",
    "prediction_sets",
    "save_model",
    "selected_features",
    "set_pipeline_params",
]
