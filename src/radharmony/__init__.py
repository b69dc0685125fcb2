"""radharmony: IBSI-compliant radiomics, leak-free ComBat harmonisation and explainable models.

The data flow is one-way: images -> lesions -> features -> harmonised features -> model ->
explanations -> report. Each stage is a module; the public API is re-exported here.
"""

from __future__ import annotations

from radharmony import datasets
from radharmony._version import __version__
from radharmony.datasets import SyntheticCohort, make_cohort, make_feature_table
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
from radharmony.explain import explain
from radharmony.extract import extract_features, read_features, write_features
from radharmony.harmonize import (
    ComBat,
    HarmonizationReport,
    SelectiveComBat,
    batch_scorer,
    default_harmonizer,
    harmonization_report,
)
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
from radharmony.model import (
    EvaluationResult,
    VolumeConfoundWarning,
    build_pipeline,
    evaluate,
    load_model,
    save_model,
)

__all__ = [
    "EvaluationResult",
    "VolumeConfoundWarning",
    "build_pipeline",
    "evaluate",
    "explain",
    "load_model",
    "save_model",
    "ComBat",
    "HarmonizationReport",
    "SelectiveComBat",
    "batch_scorer",
    "default_harmonizer",
    "harmonization_report",
    "IBSI_CONFIGURATIONS",
    "PRESETS",
    "EmptyMaskError",
    "ExtractionSettings",
    "GeometryMismatchError",
    "HarmonizationError",
    "ImageReadError",
    "ManifestError",
    "ModelError",
    "ProcessedLesion",
    "RadharmonyError",
    "SettingsError",
    "SyntheticCohort",
    "__version__",
    "check_compliance",
    "check_geometry",
    "compute_lesion_features",
    "datasets",
    "extract_features",
    "make_cohort",
    "make_feature_table",
    "process_lesion",
    "read_features",
    "read_image",
    "read_manifest",
    "split_lesions",
    "write_features",
]
