"""The detector of abnormal tissue, learnt on reference subjects (scikit-learn conventions)."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from radharmony import _cache
from radharmony._cases import CaseResult, CaseTask, run_cases
from radharmony.detect import _work
from radharmony.detect._calibration import held_out_rates, rate_check, rate_threshold
from radharmony.detect._model import MODELS, HealthyTissueModel, fit_healthy_model, standardise
from radharmony.detect._standardize import DEFAULT_LANDMARKS, fit_standardizer
from radharmony.detect._subject import load_subject
from radharmony.errors import RadharmonyError
from radharmony.io import read_channel_manifest

if TYPE_CHECKING:
    from radharmony.detect._cohort import DetectionResult

TARGETS: tuple[str, ...] = ("false_lesions", "voxel_fdr")
_MAX_POOL = 500_000


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
        Peak score a candidate lesion needs to be reported (``target="false_lesions"``).
    null_peaks : numpy.ndarray
        Sorted peaks of the false lesions of held-out reference subjects (lesion p-values).
    voxel_scores : numpy.ndarray
        Sorted held-out healthy voxel scores (a sample; voxel p-values).
    peaks_by_subject : list of numpy.ndarray
        False-lesion peaks per reference subject.
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
    null_peaks: np.ndarray
    voxel_scores: np.ndarray
    peaks_by_subject: list[np.ndarray]
    subjects: list[str]
    cross_fitted: bool
    check: list[dict[str, Any]] = field(default_factory=list)
    fdr_check: list[dict[str, Any]] = field(default_factory=list)

    def digest(self) -> str:
        """Return a digest of the calibration (part of cache keys)."""
        digest = hashlib.sha256(repr((self.extent_threshold, self.threshold)).encode())
        digest.update(np.ascontiguousarray(self.null_peaks, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.voxel_scores, dtype=np.float64).tobytes())
        return digest.hexdigest()


class HealthyTissueDetector(BaseEstimator):
    """Detect abnormal tissue as regions that diverge from a model of healthy tissue.

    ``fit`` learns, on reference subjects only (healthy subjects, or patients whose
    ``lesion_mask`` voxels are left out), a histogram standardisation of each channel (Nyúl and
    Udupa), a model of healthy tissue (see ``model``) and the calibration of the decision:
    reference subjects are split into ``n_folds`` folds; each is scored by a model fitted on the
    others, so that false lesions and healthy voxel scores are measured on held-out subjects.
    ``detect`` then scores new subjects, forms lesions and gives each a p-value.

    **Lesions** are connected components of voxels whose score exceeds ``extent_threshold``
    (the ``extent_quantile`` of held-out healthy voxel scores) and at least ``min_lesion_mm3``
    in size. With ``target="false_lesions"`` a component is reported when its peak score
    reaches the threshold at which held-out reference subjects show ``false_lesion_rate``
    false lesions per subject (conformal risk control; see
    :func:`~radharmony.detect.rate_threshold`); with ``target="voxel_fdr"`` lesions are the
    components of the voxels that the Benjamini-Hochberg procedure on conformal voxel p-values
    rejects at ``fdr_level``. Each lesion's ``p_value`` is the conformal p-value of its peak
    among the peaks of false lesions of held-out reference subjects: valid when a false lesion
    of a new subject is exchangeable with those.

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
        n_jobs, backend, scheduler, cache_dir, progress
            Per-subject execution, as in :func:`radharmony.extract_features`: local processes
            or a Dask cluster, a cache of per-subject results (resumable), a progress bar.

        Returns
        -------
        self
        """
        options = self._check_options()
        table = read_channel_manifest(reference, self.channels, base_dir=base_dir)
        run = partial(
            run_cases,
            n_jobs=n_jobs,
            backend=backend,
            scheduler=scheduler,
            cache_dir=cache_dir,
            progress=progress,
        )
        tasks = _tasks(table, self.channels, salted=True)
        sampled = run(
            tasks,
            partial(_work.sample_reference, options=options),
            fingerprint=_fingerprint("sample", options),
            description="sampling reference subjects",
        )
        self.failures_ = [f for r in sampled for f in r.failures]
        usable = [(t, r) for t, r in zip(tasks, sampled, strict=True) if r.rows is not None]
        if not usable:
            raise DetectionError(
                "no reference subject could be used: "
                + "; ".join(f"{f['subject_id']}: {f['message']}" for f in self.failures_[:5])
            )
        folds = _folds(len(usable), self.n_folds, self.random_state)
        self.model_ = self._fit_model([r for _, r in usable], options)
        fold_models = self._fit_folds(usable, folds, options)
        self.calibration_ = self._calibrate(usable, folds, fold_models, options, run)
        held_out = {
            row["subject_id"]: row["false_events"]
            for row in self.calibration_.check
            if row["subject_id"] != "all"
        }
        names = [t.subject_id for t, _ in usable]
        self.references_ = pd.DataFrame(
            {
                "subject_id": names,
                "fold": folds,
                "brain_voxels": [r.info["brain_voxels"] for _, r in usable],
                "healthy_voxels": [r.info["healthy_voxels"] for _, r in usable],
                "false_lesions_held_out": [held_out.get(n, np.nan) for n in names],
            }
        )
        return self

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
            "neighbourhood_mm": None if self.model == "intensity" else self.neighbourhood_mm,
            "landmarks": [float(p) for p in self.landmarks],
            "samples_per_subject": int(self.samples_per_subject),
            "random_state": int(self.random_state),
            "min_lesion_mm3": float(self.min_lesion_mm3),
            "connectivity": int(self.connectivity),
            "n_components": self.n_components,
            "max_components": int(self.max_components),
        }

    def _hyperintense_names(self, channels: list[str]) -> list[str]:
        if self.hyperintense is not None:
            return [str(h) for h in self.hyperintense]
        return [channels[0]] if self.model == "tail" else []

    def _fit_model(
        self,
        results: list[CaseResult],
        options: dict[str, Any],
        like: HealthyTissueModel | None = None,
    ) -> HealthyTissueModel:
        landmarks = [np.asarray(r.info["landmarks"]) for r in results]
        standardizer = fit_standardizer(np.stack(landmarks), options["landmarks"])
        return fit_healthy_model(
            [r.rows.to_numpy(dtype=np.float32) for r in results],  # type: ignore[union-attr]
            landmarks,
            standardizer,
            kind=options["model"],
            neighbourhood_mm=options["neighbourhood_mm"],
            hyperintense=options["hyperintense"],
            n_components=options["n_components"],
            max_components=options["max_components"],
            random_state=options["random_state"],
            like=like,
        )

    def _fit_folds(
        self, usable: list[tuple[CaseTask, CaseResult]], folds: list[int], options: dict[str, Any]
    ) -> dict[int, HealthyTissueModel]:
        models = {}
        for fold in sorted(set(folds)):
            training = [r for (_, r), f in zip(usable, folds, strict=True) if f != fold]
            models[fold] = self._fit_model(training or [r for _, r in usable], options, self.model_)
        return models

    def _calibrate(
        self,
        usable: list[tuple[CaseTask, CaseResult]],
        folds: list[int],
        fold_models: dict[int, HealthyTissueModel],
        options: dict[str, Any],
        run: Any,
    ) -> Calibration:
        held_out = []
        for (_, result), fold in zip(usable, folds, strict=True):
            model = fold_models[fold]
            rows = result.rows.to_numpy(dtype=np.float32)  # type: ignore[union-attr]
            marks = np.asarray(result.info["landmarks"])
            held_out.append(
                model.score(standardise(rows, marks, model.standardizer)).astype(np.float64)
            )
        pool = np.sort(np.concatenate(held_out))
        extent = float(np.quantile(pool, self.extent_quantile))
        pools = {
            fold: np.sort(
                np.concatenate([held_out[j] for j, f in enumerate(folds) if f != fold] or held_out)
            )
            for fold in set(folds)
        }
        digests = {fold: model.digest() for fold, model in fold_models.items()}
        pool_digests = {f: hashlib.sha256(p.tobytes()).hexdigest() for f, p in pools.items()}
        tasks = [
            replace(
                task,
                position=i,
                payload=_work.HeldOut(task.payload, fold_models[fold], pools[fold]),
                # The fold's model and pool change the result: they salt the cache key.
                salt=f"{task.subject_id}\x00{digests[fold]}\x00{pool_digests[fold]}",
            )
            for i, ((task, _), fold) in enumerate(zip(usable, folds, strict=True))
        ]
        results = run(
            tasks,
            partial(
                _work.calibrate_reference,
                extent=extent,
                options=options,
                fdr_level=float(self.fdr_level),
            ),
            fingerprint=_fingerprint("calibrate", options, extent, float(self.fdr_level)),
            description="calibrating on held-out reference subjects",
        )
        self.failures_ += [f for r in results for f in r.failures]
        done = [(tasks[r.position].subject_id, r) for r in results if r.rows is not None]
        peaks = [np.sort(r.rows["peak"].to_numpy(dtype=np.float64)) for _, r in done]  # type: ignore[index]
        threshold = rate_threshold(peaks, float(self.false_lesion_rate)) if peaks else np.inf
        cross = len(set(folds)) > 1
        check: list[dict[str, Any]] = []
        subjects = [s for s, _ in done]
        if len(peaks) >= 2:
            counts = held_out_rates(peaks, float(self.false_lesion_rate))
            check = rate_check(counts, float(self.false_lesion_rate), subjects=subjects).to_dict(
                "records"
            )
        fdr_check = [
            {
                "subject_id": s,
                "rejected_voxels": r.info["fdr_rejections"],
                "false_rejected_voxels": r.info["fdr_false"],
                "false_discovery_proportion": (
                    r.info["fdr_false"] / r.info["fdr_rejections"]
                    if r.info["fdr_rejections"]
                    else 0.0
                ),
            }
            for s, r in done
        ]
        rng = np.random.default_rng(self.random_state)
        voxel_scores = (
            pool if pool.size <= _MAX_POOL else np.sort(rng.choice(pool, _MAX_POOL, replace=False))
        )
        if not cross:
            warnings.warn(
                "only one reference subject: its scores are in-sample, so the calibration is "
                "optimistic and cannot be checked on held-out subjects; use two or more",
                UserWarning,
                stacklevel=3,
            )
        return Calibration(
            extent_threshold=extent,
            threshold=float(threshold),
            null_peaks=np.sort(np.concatenate(peaks)) if peaks else np.zeros(0),
            voxel_scores=voxel_scores.astype(np.float64),
            peaks_by_subject=peaks,
            subjects=subjects,
            cross_fitted=cross,
            check=check,
            fdr_check=fdr_check,
        )

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
        base_dir, n_jobs, backend, scheduler, cache_dir, progress
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
            progress=progress,
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


def _tasks(table: pd.DataFrame, channels: Sequence[str], *, salted: bool) -> list[CaseTask]:
    tasks = []
    for position, row in enumerate(table.to_dict("records")):
        files = _work.SubjectFiles(
            channels=tuple((str(c), str(row[c])) for c in channels),
            brain_mask=str(row.get("brain_mask", "") or ""),
            lesion_mask=str(row.get("lesion_mask", "") or ""),
        )
        tasks.append(
            CaseTask(
                position=position,
                case_id=str(row["subject_id"]),
                subject_id=str(row["subject_id"]),
                files=files.files,
                payload=files,
                salt=str(row["subject_id"]) if salted else "",
            )
        )
    return tasks


def _folds(n: int, n_folds: int, random_state: int) -> list[int]:
    """Fold of each reference subject: a seeded permutation dealt into ``min(n_folds, n)``."""
    if n < 2:
        return [0] * n
    k = min(int(n_folds), n)
    order = np.random.default_rng(random_state).permutation(n)
    folds = np.empty(n, dtype=int)
    folds[order] = np.arange(n) % k
    return folds.tolist()


def _fingerprint(stage: str, options: dict[str, Any], *extra: Any) -> str:
    from radharmony._version import __version__

    return _cache.run_fingerprint(
        {
            "stage": stage,
            "options": options,
            "extra": [str(e) for e in extra],
            "versions": {"radharmony": __version__, "numpy": np.__version__},
        }
    )
