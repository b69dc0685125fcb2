"""Fitted state and errors of the detector."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from radharmony.errors import RadharmonyError


class DetectionError(RadharmonyError, ValueError):
    """A detector cannot be fitted or used with the given data or settings."""


@dataclass
class Calibration:
    """Everything the detector learnt from held-out reference subjects.

    Attributes
    ----------
    extent_threshold : float
        Score above which a voxel may belong to a lesion: the ``extent_quantile`` of held-out
        healthy voxel scores.
    threshold : float
        Mass a candidate lesion needs to be reported (``target="false_lesions"``).
    null_masses : numpy.ndarray
        Sorted masses of the false lesions of held-out reference subjects (lesion p-values).
    voxel_scores : numpy.ndarray
        Sorted held-out healthy voxel scores (a sample; voxel p-values).
    masses_by_subject : list of numpy.ndarray
        False-lesion masses per reference subject.
    subjects : list of str
        Reference subjects used.
    cross_fitted : bool
        False when a single reference subject made held-out scores impossible (in-sample).
    check : list of dict
        Held-out measurement of the target (see :func:`rate_check`), as records.
    fdr_check : list of dict
        Per reference subject, voxel rejections and false rejections of the FDR procedure.
    """

    extent_threshold: float
    threshold: float
    null_masses: np.ndarray
    voxel_scores: np.ndarray
    masses_by_subject: list[np.ndarray]
    subjects: list[str]
    cross_fitted: bool
    check: list[dict[str, Any]] = field(default_factory=list)
    fdr_check: list[dict[str, Any]] = field(default_factory=list)

    def digest(self) -> str:
        """Return a digest of the calibration (part of cache keys)."""
        digest = hashlib.sha256(repr((self.extent_threshold, self.threshold)).encode())
        digest.update(np.ascontiguousarray(self.null_masses, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.voxel_scores, dtype=np.float64).tobytes())
        return digest.hexdigest()


@dataclass
class SubjectDetection:
    """The detection result of one subject.

    Attributes
    ----------
    abnormality : SimpleITK.Image
        Float score map on the grid of the first channel (0 outside the brain).
    labels : SimpleITK.Image
        Lesion labels 1..K, 0 elsewhere.
    lesions : pandas.DataFrame
        One row per lesion (see ``data_dictionary/detected_lesions.csv``).
    summary : dict
        Counts, threshold and, with a reference mask, voxel Dice and lesion-wise recall and
        precision.
    """

    abnormality: Any
    labels: Any
    lesions: pd.DataFrame
    summary: dict[str, Any]
