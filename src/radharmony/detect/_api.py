"""Functional entry point: fit a detector on reference subjects and examine new subjects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from radharmony._progress import resolve_verbose
from radharmony.detect._cohort import DetectionResult
from radharmony.detect._detector import HealthyTissueDetector


def detect_lesions(
    subjects: str | Path | pd.DataFrame,
    reference: str | Path | pd.DataFrame,
    channels: Sequence[str],
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    verbose: bool | int | None = None,
    **settings: Any,
) -> DetectionResult:
    """Learn healthy tissue on ``reference`` subjects, then detect the lesions of ``subjects``.

    Equivalent to ``HealthyTissueDetector(channels, **settings).fit(reference).detect(subjects,
    out_dir)`` with the same execution options for both steps (see
    :class:`HealthyTissueDetector` for the method and every setting).

    Parameters
    ----------
    subjects, reference : str, Path or pandas.DataFrame
        Channel manifests (``subject_id``, one column per channel, optional ``brain_mask``,
        ``lesion_mask``, ``scanner`` and covariates; paths relative to the CSV).
    channels : sequence of str
        Channel columns; the first defines the grid of the outputs.
    out_dir : str or Path
        Output folder (see :meth:`HealthyTissueDetector.detect`).
    base_dir, n_jobs, backend, scheduler, cache_dir, progress, verbose
        Execution options (as in :func:`radharmony.extract_features`).
    **settings
        Parameters of :class:`HealthyTissueDetector`.

    Returns
    -------
    DetectionResult
    """
    options = {
        "base_dir": base_dir,
        "n_jobs": n_jobs,
        "backend": backend,
        "scheduler": scheduler,
        "cache_dir": cache_dir,
        "verbose": resolve_verbose(verbose, progress),
    }
    detector = HealthyTissueDetector(channels, **settings).fit(reference, **options)
    return detector.detect(subjects, out_dir, **options)
