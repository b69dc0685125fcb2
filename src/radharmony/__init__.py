"""radharmony: IBSI-compliant radiomics, leak-free ComBat harmonisation and explainable models.

The data flow is one-way: images -> lesions -> features -> harmonised features -> model ->
explanations -> report. Each stage is a module; the public API is re-exported here.

The extraction stages are imported eagerly. Harmonisation, modelling, explanations, reports and
the synthetic data sets pull in scikit-learn, SHAP and matplotlib, so they are imported on first
use: worker processes of a parallel extraction and the command line then start quickly.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from radharmony._version import __version__
from radharmony.errors import (
    EmptyMaskError,
    GeometryMismatchError,
    HarmonizationError,
    ImageReadError,
    ManifestError,
    ModelError,
    RadharmonyError,
    SettingsError,
)
from radharmony.extract import extract_features, failures_of, read_features, write_features
from radharmony.ibsi import (
    IBSI_CONFIGURATIONS,
    PRESETS,
    ExtractionSettings,
    ProcessedLesion,
    check_compliance,
    compute_lesion_features,
    process_lesion,
)
from radharmony.io import (
    check_geometry,
    read_bids,
    read_dicom_mask,
    read_image,
    read_manifest,
    write_bids_derivatives,
)
from radharmony.lesions import split_lesions

# Log records go to the "radharmony" logger; what is shown is the application's choice (the
# command line attaches a handler), so the library only prevents "no handler" fallbacks.
logging.getLogger("radharmony").addHandler(logging.NullHandler())

# Public names provided on first access, and the module that defines each.
_LAZY_NAMES: dict[str, str] = {
    "SyntheticCohort": "radharmony.datasets",
    "make_cohort": "radharmony.datasets",
    "SyntheticBrainCohort": "radharmony.datasets",
    "make_brain_cohort": "radharmony.datasets",
    "HealthyTissueDetector": "radharmony.detect",
    "DetectionResult": "radharmony.detect",
    "detect_lesions": "radharmony.detect",
    "load_detector": "radharmony.detect",
    "save_detector": "radharmony.detect",
    "make_feature_table": "radharmony.datasets",
    "make_longitudinal_feature_table": "radharmony.datasets",
    "make_longitudinal_cohort": "radharmony.datasets",
    "analyse_followups": "radharmony.longitudinal",
    "ComBat": "radharmony.harmonize",
    "HarmonizationReport": "radharmony.harmonize",
    "LongitudinalComBat": "radharmony.harmonize",
    "SelectiveComBat": "radharmony.harmonize",
    "batch_scorer": "radharmony.harmonize",
    "default_harmonizer": "radharmony.harmonize",
    "harmonization_report": "radharmony.harmonize",
    "NormativeModel": "radharmony.harmonize",
    "ShrinkageComBat": "radharmony.harmonize",
    "scanner_predictability": "radharmony.harmonize",
    "EvaluationResult": "radharmony.model",
    "VolumeConfoundWarning": "radharmony.model",
    "build_pipeline": "radharmony.model",
    "evaluate": "radharmony.model",
    "load_model": "radharmony.model",
    "save_model": "radharmony.model",
    "filter_image": "radharmony.ibsi.filters",
    "ConformalEnsemble": "radharmony.model",
    "predict": "radharmony.explain",
}
# Stage modules reachable as attributes (``radharmony.explain`` is callable: see its docs).
_LAZY_MODULES = (
    "datasets",
    "detect",
    "explain",
    "harmonize",
    "longitudinal",
    "model",
    "report",
    "study",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return importlib.import_module(f"radharmony.{name}")
    raise AttributeError(f"module 'radharmony' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | set(_LAZY_MODULES))


__all__ = [
    "IBSI_CONFIGURATIONS",
    "PRESETS",
    "ComBat",
    "ConformalEnsemble",
    "DetectionResult",
    "EmptyMaskError",
    "EvaluationResult",
    "ExtractionSettings",
    "GeometryMismatchError",
    "HarmonizationError",
    "HarmonizationReport",
    "HealthyTissueDetector",
    "ImageReadError",
    "LongitudinalComBat",
    "ManifestError",
    "ModelError",
    "NormativeModel",
    "ProcessedLesion",
    "RadharmonyError",
    "SelectiveComBat",
    "SettingsError",
    "SyntheticBrainCohort",
    "ShrinkageComBat",
    "SyntheticCohort",
    "VolumeConfoundWarning",
    "__version__",
    "analyse_followups",
    "batch_scorer",
    "build_pipeline",
    "check_compliance",
    "check_geometry",
    "compute_lesion_features",
    "datasets",
    "default_harmonizer",
    "detect",
    "detect_lesions",
    "evaluate",
    "explain",
    "extract_features",
    "filter_image",
    "failures_of",
    "harmonization_report",
    "load_detector",
    "load_model",
    "make_brain_cohort",
    "make_cohort",
    "make_feature_table",
    "predict",
    "longitudinal",
    "make_longitudinal_cohort",
    "make_longitudinal_feature_table",
    "process_lesion",
    "read_bids",
    "read_dicom_mask",
    "read_features",
    "read_image",
    "read_manifest",
    "save_detector",
    "save_model",
    "scanner_predictability",
    "split_lesions",
    "write_bids_derivatives",
    "write_features",
]
