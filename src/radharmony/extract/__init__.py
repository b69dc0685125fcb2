"""Per-lesion feature extraction over a cohort, parallel, cached and failure-tolerant."""

from __future__ import annotations

from radharmony.extract._output import read_features, write_features
from radharmony.extract._run import FAILURE_COLUMNS, extract_features

__all__ = ["FAILURE_COLUMNS", "extract_features", "read_features", "write_features"]
