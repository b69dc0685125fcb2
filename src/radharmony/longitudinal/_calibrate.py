"""Thresholds of the change score chosen without the test subject's labels.

Two ways, both set by a target the user chooses:

- **From the subject's own map (default, no reference data needed): mirror FDR.** Where
  nothing changed the score is a standardised residual whose distribution is symmetric about
  0, so the number of voxels below ``-t`` estimates the number of null voxels above ``t``.
  The threshold for appearance/growth is the smallest ``t`` with
  ``(1 + #{decoy <= -t} * n / n_decoy) / max(1, #{score >= t}) <= level`` (the "+1"
  estimate of Barber & Candès 2015, which keeps a handful of extreme null voxels from being
  selected on their own; a finding therefore needs at least ``1 / level`` voxels), and
  symmetrically for shrinkage. Real shrinkage would inflate the
  decoy count, so decoys exclude voxels where shrinkage could be real: voxels that look like
  lesion at the earlier visit (primary channel above its brain median by more than 2 robust
  SD, with lesion polarity, dilated by one voxel); only the subject's images are used, never
  its masks. Assumptions: a symmetric null whose tail is as frequent in the decoy region as
  elsewhere. Real shrinkage missed by the proxy only makes the estimate conservative.
- **From held-out reference subjects: conformal p-values or a false-lesion rate**, the
  calibration of detection (the functions of :mod:`radharmony.detect`) applied to change
  maps. Reference pairs (no change, or known
  change voxels given in ``change_mask`` and left out) provide null scores. ``target="fdr"``
  turns each voxel's score into a conformal p-value against the null scores and applies
  Benjamini-Hochberg at ``level``; ``target="false_lesions"`` picks the threshold at which
  reference subjects show at most ``rate`` false new lesions on average (conformal risk
  control). Both assume the test subject's unchanged voxels are exchangeable with the
  reference null voxels, which the standardised score is designed to approach.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from radharmony.detect import benjamini_hochberg, conformal_pvalues

METHODS: tuple[str, ...] = ("mirror_fdr", "reference_fdr", "reference_rate")


def mirror_fdr_threshold(scores: ArrayLike, level: float, decoys: ArrayLike | None = None) -> float:
    """Return the smallest ``t > 0`` whose mirror estimate of the FDR of ``score >= t`` is <= level.

    The number of null scores ``>= t`` is estimated by the number of decoy scores ``<= -t``,
    scaled by ``len(scores) / len(decoys)``. By default every score is a decoy; passing the
    scores of a region where the opposite change cannot be real keeps real opposite changes
    from inflating the estimate.

    Parameters
    ----------
    scores : array-like
        Signed scores (e.g. the change score inside the analysis mask).
    level : float
        Target false discovery rate in (0, 1).
    decoys : array-like, optional
        Scores whose negative tail estimates the null's positive tail.

    Returns
    -------
    float
        The threshold (``inf`` when no threshold reaches the level).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"FDR level must be in (0, 1), got {level}")
    values = np.asarray(scores, dtype=np.float64).ravel()
    mirror = values if decoys is None else np.asarray(decoys, dtype=np.float64).ravel()
    positive = np.sort(values[values > 0])
    negative = np.sort(-mirror[mirror < 0])
    if positive.size == 0 or mirror.size == 0:
        return float("inf")
    scale = values.size / mirror.size
    above = positive.size - np.searchsorted(positive, positive, side="left")
    below = negative.size - np.searchsorted(negative, positive, side="left")
    ok = (1.0 + scale * below) / np.maximum(above, 1) <= level
    return float(positive[np.argmax(ok)]) if ok.any() else float("inf")


def bh_threshold(scores: ArrayLike, null_scores: ArrayLike, level: float) -> float:
    """Return the lowest score Benjamini-Hochberg rejects on conformal p-values at ``level``.

    Each score gets the conformal p-value of :func:`radharmony.detect.conformal_pvalues`
    against the null scores; :func:`radharmony.detect.benjamini_hochberg` decides.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        return float("inf")
    rejected, _ = benjamini_hochberg(conformal_pvalues(values, null_scores), level)
    return float(values[rejected].min()) if rejected.any() else float("inf")


@dataclass(frozen=True)
class ChangeCalibration:
    """How the change maps of new subjects are thresholded.

    Build it with :func:`radharmony.longitudinal.calibrate_change` (reference data) or
    :meth:`mirror` (each subject's own map).

    Attributes
    ----------
    method : {"mirror_fdr", "reference_fdr", "reference_rate"}
    level : float
        Target voxel FDR (``*_fdr``) or expected false new lesions per subject
        (``reference_rate``).
    null_positive, null_negative : ndarray or None
        Sorted samples of reference null scores for growth (score) and shrinkage (-score).
    rate_thresholds : tuple of float or None
        Fixed thresholds (growth, shrinkage) of ``reference_rate``.
    held_out : pandas.DataFrame or None
        Leave-one-reference-subject-out check of the target (``reference_rate``).
    n_reference_subjects : int
    """

    method: str = "mirror_fdr"
    level: float = 0.05
    null_positive: NDArray[np.float64] | None = None
    null_negative: NDArray[np.float64] | None = None
    rate_thresholds: tuple[float, float] | None = None
    held_out: pd.DataFrame | None = field(default=None, compare=False)
    n_reference_subjects: int = 0

    @classmethod
    def mirror(cls, level: float = 0.05) -> ChangeCalibration:
        """Return the label-free per-subject calibration at a voxel FDR ``level``."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"FDR level must be in (0, 1), got {level}")
        return cls("mirror_fdr", level)

    def thresholds(
        self,
        scores: NDArray,
        growth_decoys: NDArray | None = None,
        shrinkage_decoys: NDArray | None = None,
    ) -> tuple[float, float]:
        """Return ``(growth, shrinkage)`` thresholds for one change map's in-mask scores.

        ``growth_decoys`` (``shrinkage_decoys``) are the scores of voxels where shrinkage
        (growth) cannot be real; only the mirror calibration uses them.
        """
        if self.method == "mirror_fdr":
            return (
                mirror_fdr_threshold(scores, self.level, growth_decoys),
                mirror_fdr_threshold(
                    -scores, self.level, None if shrinkage_decoys is None else -shrinkage_decoys
                ),
            )
        if self.method == "reference_fdr":
            assert self.null_positive is not None and self.null_negative is not None
            return (
                bh_threshold(scores, self.null_positive, self.level),
                bh_threshold(-scores, self.null_negative, self.level),
            )
        assert self.rate_thresholds is not None
        return self.rate_thresholds

    def digest(self) -> str:
        """Return a digest identifying the calibration (part of cache keys)."""
        hasher = hashlib.sha256(f"{self.method}:{self.level!r}".encode())
        for array in (self.null_positive, self.null_negative):
            if array is not None:
                hasher.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        if self.rate_thresholds is not None:
            hasher.update(repr(self.rate_thresholds).encode())
        return hasher.hexdigest()

    def describe(self) -> str:
        """Return one sentence saying how thresholds are chosen (reports, provenance)."""
        if self.method == "mirror_fdr":
            return (
                f"per subject, voxel false discovery rate {self.level:g} estimated from the "
                "opposite tail of the subject's own change map (symmetric null assumed)"
            )
        if self.method == "reference_fdr":
            return (
                f"voxel false discovery rate {self.level:g}: Benjamini-Hochberg on conformal "
                f"p-values against null scores of {self.n_reference_subjects} reference "
                "subject(s)"
            )
        assert self.rate_thresholds is not None
        return (
            f"at most {self.level:g} false new lesion(s) per subject on average, calibrated on "
            f"{self.n_reference_subjects} reference subject(s) (thresholds "
            f"{self.rate_thresholds[0]:.2f} / {self.rate_thresholds[1]:.2f})"
        )
