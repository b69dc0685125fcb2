"""IBSI image-processing chain, extraction settings and compliance checking."""

from __future__ import annotations

from radharmony.ibsi.compliance import check_compliance, read_reference, summary_line
from radharmony.ibsi.engine import (
    compute_lesion_features,
    engine_versions,
    feature_columns,
    features_from_processed,
)
from radharmony.ibsi.names import FEATURES, FeatureInfo, column_to_tags, feature_dictionary
from radharmony.ibsi.processing import (
    ProcessedLesion,
    interpolate_image,
    process_lesion,
    resampled_size,
)
from radharmony.ibsi.settings import (
    DEFAULT_FEATURE_CLASSES,
    FEATURE_CLASSES,
    IBSI_CONFIGURATIONS,
    PRESETS,
    ExtractionSettings,
)

__all__ = [
    "DEFAULT_FEATURE_CLASSES",
    "FEATURES",
    "FEATURE_CLASSES",
    "IBSI_CONFIGURATIONS",
    "PRESETS",
    "ExtractionSettings",
    "FeatureInfo",
    "ProcessedLesion",
    "check_compliance",
    "column_to_tags",
    "compute_lesion_features",
    "engine_versions",
    "feature_columns",
    "feature_dictionary",
    "features_from_processed",
    "interpolate_image",
    "process_lesion",
    "read_reference",
    "resampled_size",
    "summary_line",
]
