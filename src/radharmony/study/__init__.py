"""A whole study in one call: extraction, IBSI check, harmonisation, evaluation, report."""

from __future__ import annotations

from radharmony.study._config import StudyConfig, load_study_config
from radharmony.study._run import StudyResult, run_study

__all__ = ["StudyConfig", "StudyResult", "load_study_config", "run_study"]
