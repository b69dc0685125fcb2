"""The detector of abnormal tissue, learnt on reference subjects (scikit-learn conventions)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from radharmony._progress import resolve_verbose
from radharmony.detect import _work
from radharmony.detect._calibration import held_out_rates, rate_check, rate_threshold
from radharmony.detect._fitting import fit_reference
from radharmony.detect._model import MODELS, used_channels
from radharmony.detect._standardize import DEFAULT_LANDMARKS
from radharmony.detect._state import Calibration, DetectionError, SubjectDetection
from radharmony.detect._subject import load_subject
from radharmony.io import read_channel_manifest

if TYPE_CHECKING:
    from radharmony.detect._cohort import DetectionResult

TARGETS: tuple[str, ...] = ("false_lesions", "voxel_fdr")
__all__ = ["Calibration", "DetectionError", "HealthyTissueDetector", "SubjectDetection"]


class HealthyTissueDetector(BaseEstimator):
    """Detect abnormal tissue as regions that diverge from a model of healthy tissue.

    ``fit`` learns, on reference subjects only (healthy subjects, or patients whose
    ``lesion_mask`` voxels are left out), a histogram standardisation of each channel (Nyúl and
    Udupa), a model of healthy tissue (see ``model``) and the calibration of the decision:
    reference subjects are split into ``n_folds`` folds; each is scored by a model fitted on the
    others, so that false lesions and healthy voxel scores are measured on held-out subjects.
    ``detect`` then scores new subjects, forms lesions and gives each a p-value.

    **Lesions** are connected components of voxels whose score exceeds ``extent_threshold``
    (the ``extent_quantile`` of held-out healthy voxel scores), at least ``min_lesion_mm3`` in
    size and reaching deeper than ``edge_margin_mm`` into the brain. A component's *mass* is
    the sum of its scores' excess over ``extent_threshold`` (cluster mass, which weighs extent
    and height together). With ``target="false_lesions"`` a component is reported when its mass
    reaches the threshold at which held-out reference subjects show ``false_lesion_rate``
    false lesions per subject (conformal risk control; see
    :func:`~radharmony.detect.rate_threshold`); with ``target="voxel_fdr"`` lesions are the
    components of the voxels that the Benjamini-Hochberg procedure on conformal voxel p-values
    rejects at ``fdr_level``. Each lesion's ``p_value`` is the conformal p-value of its mass
    among the masses of the false lesions of held-out reference subjects: valid when a false
    lesion of a new subject is exchangeable with those.

    Parameters
    ----------
    channels : sequence of str
        Channel names, as the manifest's columns; the first defines each subject's grid.
    model : {"tail", "mixture", "intensity"}
        ``"tail"``: healthy distribution of each ``hyperintense`` channel's local mean (1-D
        Gaussian mixtures), evidence added over channels. ``"mixture"``: multivariate Gaussian
        mixture of all channels' local means (negative log-density, capped where a
        hyperintense channel is not brighter than its healthy median). ``"intensity"``: the
        standardised intensity of the first channel without averaging (the baseline).
    hyperintense : sequence of str, optional
        Channels in which abnormal tissue is brighter than healthy tissue (FLAIR and T2 for
        white-matter lesions and gliomas). Default: the first channel for ``"tail"``, none for
        ``"mixture"``.
    neighbourhood_mm : float or None
        SD (mm) of the Gaussian local average of each channel; 1 mm matches the smallest lesions
        counted (3 mm³). None: voxel intensities.
    n_components : int or "bic"
        Components of the ``"mixture"`` model (``"bic"``: 1 to ``max_components`` by BIC).
    max_components : int
        Upper bound of the BIC search.
    landmarks : sequence of float
        Percentiles used by the histogram standardisation.
    target : {"false_lesions", "voxel_fdr"}
        The decision rule (see above).
    false_lesion_rate : float
        Expected false lesions per healthy subject (``target="false_lesions"``).
    fdr_level : float
        Voxel-level false discovery rate (``target="voxel_fdr"``).
    extent_quantile : float
        Quantile of held-out healthy voxel scores above which voxels can form a lesion (0.99:
        a voxel more abnormal than 99 % of healthy tissue).
    min_lesion_mm3 : float
        Smallest lesion reported (3 mm³, the usual lower bound of lesion counts in MS
        studies); at least one voxel.
    edge_margin_mm : float
        Only voxels deeper than this in the brain mask make a lesion's peak and mass (a lesion
        may extend to the edge): the outer rim mixes brain with non-brain tissue (partial volume, skull-stripping
        residue, meninges) whose bright voxels are not lesions. 0 disables the rule.
    connectivity : {6, 18, 26}
        Voxel connectivity of lesions.
    n_folds : int
        Cross-fitting folds over reference subjects (at most one per subject).
    samples_per_subject : int
        Healthy voxels sampled per reference subject to fit the model and calibrate voxel
        p-values.
    random_state : int
        Seed of the samples, folds and mixtures.

    Attributes
    ----------
    model_ : HealthyTissueModel
        Fitted on every reference subject.
    hyperintense_ : list of str
        The hyperintense channels used (the default resolved).
    calibration_ : Calibration
    references_ : pandas.DataFrame
        One row per reference subject used (fold, brain and healthy voxel counts).
    failures_ : list of dict
        Reference subjects that could not be used (failure records).
    """

    def __init__(
        self,
        channels: Sequence[str],
        *,
        model: str = "tail",
        hyperintense: Sequence[str] | None = None,
        neighbourhood_mm: float | None = 1.0,
        n_components: int | str = "bic",
        max_components: int = 8,
        landmarks: Sequence[float] = DEFAULT_LANDMARKS,
        target: str = "false_lesions",
        false_lesion_rate: float = 1.0,
        fdr_level: float = 0.05,
        extent_quantile: float = 0.99,
        min_lesion_mm3: float = 3.0,
        edge_margin_mm: float = 3.0,
        connectivity: int = 26,
        n_folds: int = 5,
        samples_per_subject: int = 20_000,
        random_state: int = 0,
    ) -> None:
        self.channels = channels
        self.model = model
        self.hyperintense = hyperintense
        self.neighbourhood_mm = neighbourhood_mm
        self.n_components = n_components
        self.max_components = max_components
        self.landmarks = landmarks
        self.target = target
        self.false_lesion_rate = false_lesion_rate
        self.fdr_level = fdr_level
        self.extent_quantile = extent_quantile
        self.min_lesion_mm3 = min_lesion_mm3
        self.edge_margin_mm = edge_margin_mm
        self.connectivity = connectivity
        self.n_folds = n_folds
        self.samples_per_subject = samples_per_subject
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------------

    def fit(
        self,
        reference: str | Path | pd.DataFrame,
        y: None = None,
        *,
        base_dir: str | Path | None = None,
        n_jobs: int = 1,
        backend: str = "loky",
        scheduler: Any = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
        verbose: bool | int | None = None,
    ) -> HealthyTissueDetector:
        """Learn standardisation, healthy model and calibration from reference subjects.

        Parameters
        ----------
        reference : str, Path or pandas.DataFrame
            Channel manifest of the reference subjects (see
            :func:`radharmony.io.read_channel_manifest`): ``subject_id``, one column per
            channel, optional ``brain_mask`` and ``lesion_mask`` (voxels excluded from the
            healthy model; empty for healthy subjects).
        y : None
            Ignored (scikit-learn convention).
        base_dir : str or Path, optional
            Folder that relative paths of a DataFrame manifest are resolved against.
        n_jobs, backend, scheduler, cache_dir, progress, verbose
            Per-subject execution, as in :func:`radharmony.extract_features`: local processes
            or a Dask cluster, a cache of per-subject results (resumable), a progress bar.

        Returns
        -------
        self
        """
        options = self._check_options()
        self.hyperintense_ = self._hyperintense_names([str(c) for c in self.channels])
        table = read_channel_manifest(reference, self.channels, base_dir=base_dir)
        return fit_reference(
            self,
            table,
            options,
            n_jobs=n_jobs,
            backend=backend,
            scheduler=scheduler,
            cache_dir=cache_dir,
            progress=resolve_verbose(verbose, progress),
        )

    def _check_options(self) -> dict[str, Any]:
        channels = [str(c) for c in self.channels]
        if not channels:
            raise DetectionError("give at least one channel")
        if self.model not in MODELS:
            raise DetectionError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        if self.target not in TARGETS:
            raise DetectionError(f"target must be one of {list(TARGETS)}, got {self.target!r}")
        hyper = self._hyperintense_names(channels)
        unknown = [h for h in hyper if h not in channels]
        if unknown:
            raise DetectionError(
                f"hyperintense channel(s) {unknown} are not among channels {channels}"
            )
        if self.model == "tail" and not hyper:
            raise DetectionError("model='tail' needs at least one hyperintense channel")
        checks = [
            (
                self.false_lesion_rate > 0,
                f"false_lesion_rate must be > 0, got {self.false_lesion_rate}",
            ),
            (0 < self.fdr_level < 1, f"fdr_level must be in (0, 1), got {self.fdr_level}"),
            (
                0.5 <= self.extent_quantile < 1,
                f"extent_quantile must be in [0.5, 1), got {self.extent_quantile}",
            ),
            (self.min_lesion_mm3 >= 0, f"min_lesion_mm3 must be >= 0, got {self.min_lesion_mm3}"),
            (self.edge_margin_mm >= 0, f"edge_margin_mm must be >= 0, got {self.edge_margin_mm}"),
            (
                self.connectivity in (6, 18, 26),
                f"connectivity must be 6, 18 or 26, got {self.connectivity}",
            ),
            (int(self.n_folds) >= 2, f"n_folds must be >= 2, got {self.n_folds}"),
            (int(self.samples_per_subject) >= 100, "samples_per_subject must be at least 100"),
            (
                self.neighbourhood_mm is None or self.neighbourhood_mm > 0,
                "neighbourhood_mm must be > 0 or None",
            ),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise DetectionError("; ".join(problems))
        return {
            "channels": channels,
            "model": self.model,
            "hyperintense": [channels.index(h) for h in hyper],
            "features": list(
                used_channels(self.model, len(channels), [channels.index(h) for h in hyper])
            ),
            "neighbourhood_mm": None if self.model == "intensity" else self.neighbourhood_mm,
            "landmarks": [float(p) for p in self.landmarks],
            "samples_per_subject": int(self.samples_per_subject),
            "random_state": int(self.random_state),
            "min_lesion_mm3": float(self.min_lesion_mm3),
            "edge_margin_mm": float(self.edge_margin_mm),
            "connectivity": int(self.connectivity),
            "n_components": self.n_components,
            "max_components": int(self.max_components),
        }

    def _hyperintense_names(self, channels: list[str]) -> list[str]:
        if self.hyperintense is not None:
            return [str(h) for h in self.hyperintense]
        return [channels[0]] if self.model == "tail" else []

    def retarget(
        self,
        *,
        target: str | None = None,
        false_lesion_rate: float | None = None,
        fdr_level: float | None = None,
    ) -> HealthyTissueDetector:
        """Return a copy of the fitted detector with another decision target, without refitting.

        The model and the held-out scores are kept; the lesion threshold and its held-out
        check are recomputed for the new ``false_lesion_rate``. A new ``fdr_level`` applies to
        detection at once, but the per-reference voxel FDR check (computed while fitting at the
        old level) is dropped.

        Returns
        -------
        HealthyTissueDetector
        """
        import copy

        self._check_fitted()
        new = copy.deepcopy(self)
        new.set_params(
            **{
                k: v
                for k, v in {
                    "target": target,
                    "false_lesion_rate": false_lesion_rate,
                    "fdr_level": fdr_level,
                }.items()
                if v is not None
            }
        )
        new._check_options()
        calibration = new.calibration_
        peaks = calibration.masses_by_subject
        rate = float(new.false_lesion_rate)
        calibration.threshold = rate_threshold(peaks, rate) if peaks else float("inf")
        calibration.check = (
            rate_check(held_out_rates(peaks, rate), rate, subjects=calibration.subjects).to_dict(
                "records"
            )
            if len(peaks) >= 2
            else []
        )
        if fdr_level is not None and fdr_level != self.fdr_level:
            calibration.fdr_check = []
        held_out = {r["subject_id"]: r["false_events"] for r in calibration.check}
        new.references_["false_lesions_held_out"] = [
            held_out.get(s, np.nan) for s in new.references_["subject_id"]
        ]
        return new

    # -- using a fitted detector -----------------------------------------------------------------

    def digest(self) -> str:
        """Return a digest of the fitted detector and its decision settings."""
        self._check_fitted()
        settings = json.dumps(self.get_params(), sort_keys=True, default=str)
        parts = [settings, self.model_.digest(), self.calibration_.digest()]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise DetectionError("this detector is not fitted yet; call fit(reference) first")

    def detect(
        self,
        subjects: str | Path | pd.DataFrame,
        out_dir: str | Path,
        *,
        base_dir: str | Path | None = None,
        n_jobs: int = 1,
        backend: str = "loky",
        scheduler: Any = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
        verbose: bool | int | None = None,
    ) -> DetectionResult:
        """Detect the lesions of every subject of a manifest and write the outputs.

        Per subject (local processes or a Dask cluster, cached and resumable, a failing subject
        never stops the others): ``out_dir/<subject_id>/abnormality.nii.gz`` (score map) and
        ``lesions.nii.gz`` (labels 1..K) on the grid of the first channel. Then
        ``out_dir/lesions.csv``, ``subjects.csv``, ``failures.csv``, ``calibration.csv``,
        ``manifest.csv`` (what ``radharmony extract`` reads), ``detector.skops`` and
        ``detection.json``.

        Parameters
        ----------
        subjects : str, Path or pandas.DataFrame
            Channel manifest of the subjects to examine (``lesion_mask``, when given, is used
            only to measure the overlap of the detections).
        out_dir : str or Path
            Output folder.
        base_dir, n_jobs, backend, scheduler, cache_dir, progress, verbose
            As for :meth:`fit`.

        Returns
        -------
        DetectionResult
        """
        from radharmony.detect._cohort import detect_cohort

        self._check_fitted()
        return detect_cohort(
            self,
            subjects,
            out_dir,
            base_dir=base_dir,
            n_jobs=n_jobs,
            backend=backend,
            scheduler=scheduler,
            cache_dir=cache_dir,
            progress=resolve_verbose(verbose, progress),
        )

    def score_subject(
        self,
        images: Mapping[str, Any],
        *,
        brain_mask: Any = None,
        lesion_mask: Any = None,
        subject_id: str = "subject",
    ) -> SubjectDetection:
        """Detect the lesions of one subject held in memory or on disk.

        Parameters
        ----------
        images : mapping of channel name to path, SimpleITK image or nibabel image
        brain_mask, lesion_mask : path or image, optional
            ``lesion_mask`` is only used to measure the overlap of the detections.
        subject_id : str
            Written in the lesion table.

        Returns
        -------
        SubjectDetection
        """
        self._check_fitted()
        channels = [str(c) for c in self.channels]
        subject = load_subject(images, channels, brain_mask=brain_mask, lesion_mask=lesion_mask)
        score, clusters, table, info = _work.detect_subject_lesions(subject, subject_id, self)
        import SimpleITK as sitk

        abnormality = sitk.GetImageFromArray(score)
        abnormality.CopyInformation(subject.grid)
        labels = sitk.GetImageFromArray(clusters.labels)
        labels.CopyInformation(subject.grid)
        return SubjectDetection(abnormality, labels, table, info)
