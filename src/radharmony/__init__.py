"""radharmony: IBSI-compliant radiomics, leak-free ComBat harmonisation and explainable models.

The data flow is one-way: images -> lesions -> features -> harmonised features -> model ->
explanations -> report. Each stage is a module; the public API is re-exported here.

The extraction stages are imported eagerly. Harmonisation, modelling, explanations, reports and
the synthetic data sets pull in scikit-learn, SHAP and matplotlib, so they are imported on first
use: worker processes of a parallel extraction and the command line then start quickly.
"""

from __future__ import annotations

import importlib
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
from radharmony.extract import extract_features, read_features, write_features
from radharmony.ibsi import (
    IBSI_CONFIGURATIONS,
    PRESETS,
    ExtractionSettings,
    ProcessedLesion,
    check_compliance,
    compute_lesion_features,
    process_lesion,
)
from radharmony.io import check_geometry, read_image, read_manifest
from radharmony.lesions import split_lesions

# Public names provided on first access, and the module that defines each.
_LAZY_NAMES: dict[str, str] = {
    "SyntheticCohort": "radharmony.datasets",
    "make_cohort": "radharmony.datasets",
    "make_feature_table": "radharmony.datasets",
    "ComBat": "radharmony.harmonize",
    "HarmonizationReport": "radharmony.harmonize",
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
}
# Stage modules reachable as attributes (``radharmony.explain`` is callable: see its docs).
_LAZY_MODULES = ("datasets", "explain", "harmonize", "model", "report", "study")


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
    "EmptyMaskError",
    "EvaluationResult",
    "ExtractionSettings",
    "GeometryMismatchError",
    "HarmonizationError",
    "HarmonizationReport",
    "ImageReadError",
    "ManifestError",
    "ModelError",
    "NormativeModel",
    "ProcessedLesion",
    "RadharmonyError",
    "SelectiveComBat",
    "SettingsError",
    "ShrinkageComBat",
    "SyntheticCohort",
    "VolumeConfoundWarning",
    "__version__",
    "batch_scorer",
    "build_pipeline",
    "check_compliance",
    "check_geometry",
    "compute_lesion_features",
    "datasets",
    "default_harmonizer",
    "evaluate",
    "explain",
    "extract_features",
    "harmonization_report",
    "load_model",
    "make_cohort",
    "make_feature_table",
    "process_lesion",
    "read_features",
    "read_image",
    "read_manifest",
    "save_model",
    "scanner_predictability",
    "split_lesions",
    "write_features",
]
