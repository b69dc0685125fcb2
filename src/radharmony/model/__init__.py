"""Explainable classifiers with validated confidence.

Leak-free pipelines (every fitted step inside the training folds), whole-pipeline calibration,
a cross-fitted ensemble with CV+ conformal prediction sets and a "refer" flag, a domain check
on every prediction, nested patient-grouped cross-validation with class-stratified patient
bootstrap intervals, an always-on volume-confound check, predictions on new patients, and safe
persistence.
"""

from __future__ import annotations

from radharmony.model._calibration import CalibratedPipeline, ScoreCalibrator
from radharmony.model._conformal import (
    choose_mondrian,
    conformal_quantile,
    conformal_thresholds,
    coverage_table,
    cv_plus_sets,
    patient_units,
    prediction_sets,
)
from radharmony.model._domain import DomainCheck
from radharmony.model._ensemble import ConformalEnsemble
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
from radharmony.model._predict import predict_cases, reader_agreement
from radharmony.model._result import EvaluationResult
from radharmony.model._transformers import (
    DropCorrelated,
    DropNearConstant,
    L1Selector,
    MRMRSelector,
    UnivariateSelector,
)
from radharmony.model._volume import (
    VolumeCheck,
    VolumeCheckSkippedWarning,
    VolumeConfoundWarning,
    find_volume_column,
)

__all__ = [
    "METRIC_NAMES",
    "MODELS",
    "SELECTIONS",
    "CalibratedPipeline",
    "ConformalEnsemble",
    "DomainCheck",
    "DropCorrelated",
    "DropNearConstant",
    "EvaluationResult",
    "L1Selector",
    "MRMRSelector",
    "ScoreCalibrator",
    "UnivariateSelector",
    "VolumeCheck",
    "VolumeCheckSkippedWarning",
    "VolumeConfoundWarning",
    "binary_auc",
    "bootstrap_metrics",
    "build_pipeline",
    "choose_mondrian",
    "classification_metrics",
    "conformal_quantile",
    "conformal_thresholds",
    "coverage_table",
    "cv_plus_sets",
    "data_provenance",
    "default_param_grid",
    "delong_test",
    "evaluate",
    "find_volume_column",
    "load_model",
    "patient_units",
    "predict_cases",
    "prediction_sets",
    "reader_agreement",
    "save_model",
    "selected_features",
    "set_pipeline_params",
]
