"""Embedded synthetic data: a multi-scanner image cohort and tabular feature simulations.

Both generators are deterministic for a seed and write or return their ground truth, so tests and
tutorials can check results against known values rather than against themselves.
"""

from __future__ import annotations

from radharmony.datasets._brain import SyntheticBrainCohort, make_brain_cohort
from radharmony.datasets._cohort import SyntheticCohort, make_cohort
from radharmony.datasets._longitudinal import SyntheticFollowUpCohort, make_longitudinal_cohort
from radharmony.datasets._longitudinal_tabular import make_longitudinal_feature_table
from radharmony.datasets._tabular import make_feature_table

__all__ = [
    "SyntheticBrainCohort",
    "SyntheticCohort",
    "SyntheticFollowUpCohort",
    "make_brain_cohort",
    "make_cohort",
    "make_feature_table",
    "make_longitudinal_cohort",
    "make_longitudinal_feature_table",
]
