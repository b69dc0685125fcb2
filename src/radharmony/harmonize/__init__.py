"""Leak-free ComBat harmonisation: fitted on training data, applied to new data, with diagnostics.

- :class:`ComBat`: exact ComBat (neuroCombat's estimation) as a scikit-learn transformer with
  metadata routing of ``batch`` and ``covariates``.
- :func:`default_harmonizer`: the recommended step for modelling (selective ComBat).
- :func:`batch_scorer`: a scorer that passes ``batch`` to held-out predictions in
  ``cross_validate``/``GridSearchCV``.
- :func:`harmonization_report`: held-out diagnostics of what harmonisation removed and kept.
- :class:`LongitudinalComBat`: ComBat with a subject random intercept for repeated measures.
"""

from __future__ import annotations

from radharmony.harmonize._combat import ComBat
from radharmony.harmonize._default import SelectiveComBat, default_harmonizer
from radharmony.harmonize._longitudinal import LongitudinalComBat
from radharmony.harmonize._report import HarmonizationReport, harmonization_report
from radharmony.harmonize._scoring import BatchScorer, batch_scorer

__all__ = [
    "BatchScorer",
    "ComBat",
    "HarmonizationReport",
    "LongitudinalComBat",
    "SelectiveComBat",
    "batch_scorer",
    "default_harmonizer",
    "harmonization_report",
]
