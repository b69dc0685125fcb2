"""Per-subject work of detection, run by the shared per-case runner (local or Dask workers).

Three passes, each one task per subject: sampling a reference subject's healthy voxels, scoring a
held-out reference subject with the model that did not see it (calibration), and detecting the
lesions of a new subject (writing its maps).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from numpy.typing import NDArray

from radharmony._cases import CaseResult, CaseTask, error_message, failed
from radharmony.detect._calibration import benjamini_hochberg, conformal_pvalues
from radharmony.detect._lesions import (
    Clusters,
    brain_interior,
    clusters_above,
    keep_clusters,
    lesion_table,
    overlap_summary,
)
from radharmony.detect._model import HealthyTissueModel, raw_features, subject_landmarks
from radharmony.detect._subject import Subject, SubjectError, exclusion_zone, load_subject

EXCLUSION_MARGIN_MM = 2.0


@dataclass(frozen=True)
class SubjectFiles:
    """Paths of one subject's inputs (channel name -> path; masks may be empty strings)."""

    channels: tuple[tuple[str, str], ...]
    brain_mask: str
    lesion_mask: str

    def load(self) -> Subject:
        """Read and check the subject's images."""
        names = [name for name, _ in self.channels]
        return load_subject(
            dict(self.channels),
            names,
            brain_mask=self.brain_mask or None,
            lesion_mask=self.lesion_mask or None,
        )

    @property
    def files(self) -> tuple[str, ...]:
        """Existing input paths, for the cache key (missing ones make the case run uncached)."""
        return tuple(
            p for p in [*(p for _, p in self.channels), self.brain_mask, self.lesion_mask] if p
        )


def subject_seed(subject_id: str, random_state: int) -> int:
    """A seed that depends on the subject's identity, not on its row in the manifest."""
    digest = hashlib.sha256(f"{random_state}\x00{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def min_voxels(grid: sitk.Image, min_mm3: float) -> int:
    """Smallest lesion size in voxels on this grid (at least one voxel)."""
    return max(1, int(np.ceil(min_mm3 / float(np.prod(grid.GetSpacing())) - 1e-9)))


def _failure(task: CaseTask, err: Exception) -> CaseResult:
    if isinstance(err, SubjectError):
        return failed(task, err.file, err.stage, str(err))
    return failed(task, task.files[0] if task.files else "", "detection", error_message(err))


def sample_reference(task: CaseTask, *, options: dict[str, Any]) -> CaseResult:
    """Pass 1: landmarks of a reference subject and a random sample of its healthy voxels."""
    files: SubjectFiles = task.payload
    try:
        subject = files.load()
        landmarks = subject_landmarks(subject, options["landmarks"])
        features = raw_features(subject, options["neighbourhood_mm"], options["features"])
        excluded = exclusion_zone(subject.lesion, subject.spacing_zyx, EXCLUSION_MARGIN_MM)
        healthy = np.flatnonzero(~excluded[subject.brain]) if excluded is not None else None
        pool = healthy if healthy is not None else np.arange(features.shape[0])
        if pool.size == 0:
            raise SubjectError(
                "no healthy brain voxel is left outside the lesion mask; a reference subject "
                "needs normal-appearing tissue",
                stage="lesion_mask",
                file=files.lesion_mask,
            )
        rng = np.random.default_rng(subject_seed(task.subject_id, options["random_state"]))
        size = min(pool.size, int(options["samples_per_subject"]))
        chosen = np.sort(rng.choice(pool, size=size, replace=False))
    except Exception as err:  # noqa: BLE001 - any failure is recorded, never raised
        return _failure(task, err)
    names = [files.channels[k][0] for k in options["features"]]
    rows = pd.DataFrame(features[chosen].astype(np.float64), columns=names)
    info = {
        "landmarks": landmarks.tolist(),
        "brain_voxels": int(subject.brain.sum()),
        "healthy_voxels": int(pool.size),
    }
    return CaseResult(task.position, rows, [], info)


@dataclass(frozen=True)
class HeldOut:
    """A reference subject with the model that did not see it and the other subjects' scores."""

    files: SubjectFiles
    model: HealthyTissueModel
    pool: NDArray[np.float64]


def calibrate_reference(
    task: CaseTask, *, extent: float, options: dict[str, Any], fdr_level: float
) -> CaseResult:
    """Pass 2: false lesions and voxel false discoveries of a held-out reference subject.

    The subject is scored by its fold's model, which did not see it. Candidate lesions are
    formed as in detection; those touching the subject's own lesions (grown by a margin) are
    not false. The rows hold the mass, peak and size of each false lesion. The voxel-level FDR
    procedure is run with ``pool`` (held-out healthy scores of the subjects of other folds) as
    calibration set.
    """
    held_out: HeldOut = task.payload
    files, model, pool = held_out.files, held_out.model, held_out.pool
    try:
        subject = files.load()
        score = model.score_subject(subject)
        excluded = exclusion_zone(subject.lesion, subject.spacing_zyx, EXCLUSION_MARGIN_MM)
        clusters = clusters_above(
            score,
            subject.brain,
            extent,
            min_voxels=min_voxels(subject.grid, options["min_lesion_mm3"]),
            connectivity=options["connectivity"],
            exclude=excluded,
            interior=brain_interior(subject.brain, subject.spacing_zyx, options["edge_margin_mm"]),
        )
        p_values = conformal_pvalues(score[subject.brain], pool)
        rejected, _ = benjamini_hochberg(p_values, fdr_level)
        lesion_tissue = excluded[subject.brain] if excluded is not None else np.zeros_like(rejected)
    except Exception as err:  # noqa: BLE001
        return _failure(task, err)
    rows = pd.DataFrame({"mass": clusters.masses, "peak": clusters.peaks, "voxels": clusters.sizes})
    info = {
        "brain_voxels": int(subject.brain.sum()),
        "fdr_rejections": int(rejected.sum()),
        "fdr_false": int((rejected & ~lesion_tissue).sum()),
    }
    return CaseResult(task.position, rows, [], info)


def detect_subject_lesions(
    subject: Subject, subject_id: str, detector: Any
) -> tuple[NDArray[np.float32], Clusters, pd.DataFrame, dict[str, Any]]:
    """Score a subject, form and keep its lesions, and tabulate them (no file written)."""
    calibration = detector.calibration_
    model: HealthyTissueModel = detector.model_
    score = model.score_subject(subject)
    size = min_voxels(subject.grid, detector.min_lesion_mm3)
    interior = brain_interior(subject.brain, subject.spacing_zyx, detector.edge_margin_mm)
    info: dict[str, Any] = {}
    if detector.target == "voxel_fdr":
        p_values = conformal_pvalues(score[subject.brain], calibration.voxel_scores)
        rejected, cutoff = benjamini_hochberg(p_values, detector.fdr_level)
        threshold = float(score[subject.brain][rejected].min()) if rejected.any() else np.inf
        clusters = clusters_above(
            score,
            subject.brain,
            threshold,
            min_voxels=size,
            connectivity=detector.connectivity,
            base=calibration.extent_threshold,
            interior=interior,
        )
        info["voxel_p_cutoff"] = cutoff
    else:
        threshold = calibration.threshold
        candidates = clusters_above(
            score,
            subject.brain,
            calibration.extent_threshold,
            min_voxels=size,
            connectivity=detector.connectivity,
            interior=interior,
        )
        clusters = keep_clusters(candidates, candidates.masses >= threshold)
    p_lesion = (
        conformal_pvalues(clusters.masses, calibration.null_masses)
        if calibration.null_masses.size
        else np.ones(clusters.count)
    )
    table = lesion_table(subject_id, clusters, score, subject.grid, p_lesion, subject.lesion)
    info.update(
        {
            "n_lesions": int(clusters.count),
            "lesion_volume_mm3": float(table["volume_mm3"].sum()) if len(table) else 0.0,
            "threshold": float(threshold),
            "brain_voxels": int(subject.brain.sum()),
        }
    )
    if subject.lesion is not None:
        info.update(overlap_summary(clusters.labels, subject.lesion, clusters.count))
    return score, clusters, table, info


def detect_subject(task: CaseTask, *, detector: Any, out_dir: str) -> CaseResult:
    """Pass 3: a new subject's abnormality map, lesions, lesion table; maps written to disk."""
    files: SubjectFiles = task.payload
    try:
        subject = files.load()
        score, clusters, table, info = detect_subject_lesions(subject, task.subject_id, detector)
        folder = Path(out_dir) / task.subject_id
        folder.mkdir(parents=True, exist_ok=True)
        score_path, labels_path = folder / "abnormality.nii.gz", folder / "lesions.nii.gz"
        _write_like(score, subject.grid, score_path)
        dtype = (
            np.uint8 if clusters.count < 256 else np.uint16 if clusters.count < 65536 else np.int32
        )
        _write_like(clusters.labels.astype(dtype), subject.grid, labels_path)
    except Exception as err:  # noqa: BLE001
        return _failure(task, err)
    info.update({"abnormality": str(score_path), "lesions": str(labels_path)})
    return CaseResult(task.position, table, [], info)


def _write_like(array: np.ndarray, grid: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    # Written beside the target then renamed, so an interrupted run never leaves a partial map.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.nii.gz")
    try:
        sitk.WriteImage(image, str(tmp), True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
