"""Detection of abnormal tissue against a model of healthy tissue, with calibrated decisions.

The detector (:class:`HealthyTissueDetector`, or :func:`detect_lesions` in one call) learns
intensity standardisation, a model of healthy tissue and the calibration of its decision on
reference subjects, then gives every voxel of a new subject an abnormality score and every
detected lesion a p-value. The calibration functions (conformal p-values, Benjamini-Hochberg,
false-event rate thresholds and their held-out check) know nothing about images and are shared
with the follow-up stage.

The estimator and the cohort runner import scikit-learn; they are loaded on first use so that
importing :mod:`radharmony` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from radharmony.detect._calibration import (
    benjamini_hochberg,
    conformal_pvalues,
    held_out_rates,
    poisson_rate_interval,
    rate_check,
    rate_threshold,
)
from radharmony.detect._lesions import LESION_TABLE_COLUMNS, per_lesion_dice

_LAZY_NAMES: dict[str, str] = {
    "Calibration": "radharmony.detect._state",
    "DetectionError": "radharmony.detect._state",
    "HealthyTissueDetector": "radharmony.detect._detector",
    "SubjectDetection": "radharmony.detect._state",
    "DetectionResult": "radharmony.detect._cohort",
    "SUBJECT_COLUMNS": "radharmony.detect._cohort",
    "detect_lesions": "radharmony.detect._api",
    "load_detector": "radharmony.detect._persist",
    "save_detector": "radharmony.detect._persist",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'radharmony.detect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__all__ = [
    "LESION_TABLE_COLUMNS",
    "SUBJECT_COLUMNS",
    "Calibration",
    "DetectionError",
    "DetectionResult",
    "HealthyTissueDetector",
    "SubjectDetection",
    "benjamini_hochberg",
    "conformal_pvalues",
    "detect_lesions",
    "held_out_rates",
    "load_detector",
    "per_lesion_dice",
    "poisson_rate_interval",
    "rate_check",
    "rate_threshold",
    "save_detector",
]
