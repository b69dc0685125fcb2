"""Leak-free harmonisation across scanners and sites: fitted on training data, applied to new data.

- :class:`ComBat`: exact ComBat (neuroCombat's estimation) as a scikit-learn transformer with
  metadata routing of ``batch`` and ``covariates``.
- :class:`ShrinkageComBat` (returned by :func:`default_harmonizer`): ComBat's model with
  deconvolved empirical-Bayes shrinkage, so weak, poorly estimated batch effects are left alone,
  and with the training labels in the design, so the outcome signal is kept.
- :class:`SelectiveComBat`: the previous default (ComBat on features with a significant batch
  effect).
- :func:`batch_scorer`: a scorer that passes ``batch`` to held-out predictions in
  ``cross_validate``/``GridSearchCV``.
- :func:`harmonization_report`: held-out diagnostics of what harmonisation removed and kept.
- :class:`LongitudinalComBat`: ComBat with a subject random intercept for repeated measures.
- :class:`NormativeModel`: reference-population harmonisation with non-linear covariate effects
  and site effects, giving z-scores and centiles; new sites adapted from a few reference rows.
- :func:`scanner_predictability`: the held-out judge over repeated random half splits.
"""

from __future__ import annotations

from radharmony.harmonize._combat import ComBat
from radharmony.harmonize._default import SelectiveComBat
from radharmony.harmonize._judge import scanner_predictability, summarise_predictability
from radharmony.harmonize._longitudinal import LongitudinalComBat
from radharmony.harmonize._normative import NormativeModel
from radharmony.harmonize._report import HarmonizationReport, harmonization_report
from radharmony.harmonize._scoring import BatchScorer, batch_scorer
from radharmony.harmonize._shrinkage import ShrinkageComBat, default_harmonizer

__all__ = [
    "BatchScorer",
    "ComBat",
    "HarmonizationReport",
    "LongitudinalComBat",
    "NormativeModel",
    "SelectiveComBat",
    "ShrinkageComBat",
    "batch_scorer",
    "default_harmonizer",
    "harmonization_report",
    "scanner_predictability",
    "summarise_predictability",
]
