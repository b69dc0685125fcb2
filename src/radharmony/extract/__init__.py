"""Per-lesion feature extraction over a cohort, parallel, cached and failure-tolerant."""

from __future__ import annotations

from radharmony._cases import FAILURE_COLUMNS, failures_of
from radharmony.extract._output import read_features, write_features
from radharmony.extract._run import extract_features

__all__ = ["FAILURE_COLUMNS", "extract_features", "failures_of", "read_features", "write_features"]
