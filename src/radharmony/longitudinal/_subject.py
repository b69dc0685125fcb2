"""One subject's follow-up analysis: change maps, new lesions, lesion tracks, lesion load."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from radharmony._cases import CaseResult, CaseTask, error_message, failure_record
from radharmony.longitudinal._calibrate import ChangeCalibration
from radharmony.longitudinal._change import ChangeSettings, change_score
from radharmony.longitudinal._matching import (
    LOAD_COLUMNS,
    TRACK_COLUMNS,
    MatchingRule,
    lesion_load,
    track_lesions,
)
from radharmony.longitudinal._visits import SubjectError, SubjectVisits, load_subject, read_for

PAIR_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "timepoint_from",
    "timepoint_to",
    "threshold_growth",
    "threshold_shrinkage",
    "n_new_lesions",
    "new_lesion_volume_mm3",
    "n_shrinking_regions",
    "shrinking_volume_mm3",
    "analysis_voxels",
    "change_map",
    "new_lesion_map",
    "overlay",
)
NEW_LESION_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "timepoint_from",
    "timepoint_to",
    "change_lesion_id",
    "kind",
    "volume_mm3",
    "max_score",
    "mean_score",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
)
LOAD_TABLE_COLUMNS: tuple[str, ...] = (*LOAD_COLUMNS, "n_new_change_map", "new_change_volume_mm3")
REGISTRATION_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "timepoint",
    "alignment",
    "qc_lncc",
    "qc_margin",
    "qc_pass",
    "registration_metric",
    "transform",
)
# Candidate level for false-lesion peaks of reference maps: well inside the null's bulk, so
# every candidate a target threshold could count is formed.
_CANDIDATE_LEVEL = 2.0
_NULL_SAMPLE = 50_000
# Robust z above which a voxel of the primary channel looks like lesion (decoy exclusion).
_LESION_LIKE_Z = 2.0
_MIN_VOXELS = 3


@dataclass(frozen=True)
class SubjectOptions:
    """Everything a subject's analysis needs besides its manifest rows (picklable)."""

    out_dir: str
    channels: tuple[str, ...] = ()
    signs: tuple[float, ...] = (1.0,)
    register: bool = False
    change: ChangeSettings = field(default_factory=ChangeSettings)
    calibration: ChangeCalibration = field(default_factory=ChangeCalibration)
    min_lesion_mm3: float = 10.0
    matching: MatchingRule = field(default_factory=MatchingRule)
    connectivity: int = 26
    reference: bool = False


def process_subject(task: CaseTask, options: SubjectOptions) -> CaseResult:
    """Analyse one subject; every problem becomes a failure record (never raised)."""
    rows = task.payload
    try:
        subject = load_subject(
            task.subject_id,
            rows,
            options.channels,
            register_missing=options.register,
            connectivity=options.connectivity,
        )
        if options.reference:
            return CaseResult(task.position, _reference_scores(subject, options))
        return _analyse(task, subject, options)
    except SubjectError as err:
        return CaseResult(
            task.position, None, [failure_record(task, err.file, err.stage, str(err))]
        )
    except Exception as err:  # noqa: BLE001 - one subject never stops the others
        return CaseResult(
            task.position, None, [failure_record(task, "", "longitudinal", error_message(err))]
        )


def _scores(subject: SubjectVisits, k: int, options: SubjectOptions) -> NDArray[np.float32]:
    before, after = subject.visits[k - 1], subject.visits[k]
    return change_score(
        before.arrays,
        after.arrays,
        subject.analysis,
        subject.spacing,
        options.change,
        options.signs,
    )


def _analyse(task: CaseTask, subject: SubjectVisits, options: SubjectOptions) -> CaseResult:
    folder = Path(options.out_dir) / subject.subject_id
    folder.mkdir(parents=True, exist_ok=True)
    pairs, new_lesions = [], []
    for k in range(1, len(subject.visits)):
        t0, t1 = subject.visits[k - 1].timepoint, subject.visits[k].timepoint
        score = _scores(subject, k, options)
        change_path = folder / f"change_{t0}_{t1}.nii.gz"
        _write(score, subject.grid, change_path)
        mask = subject.analysis
        grow, shrink = options.calibration.thresholds(
            score[mask],
            score[mask & ~_lesion_like(subject, k - 1, options)],
            score[mask & ~_lesion_like(subject, k, options)],
        )
        labels, lesions = _new_lesions(subject, k, score, grow, options.min_lesion_mm3)
        new_path = folder / f"new_lesions_{t0}_{t1}.nii.gz"
        _write(labels.astype(np.uint16), subject.grid, new_path)
        shrinking = _regions(subject.analysis & (score <= -shrink), subject, options)
        _save_overlay(subject, k, score, labels, folder / f"overlay_{t0}_{t1}.npz")
        voxel = float(np.prod(subject.spacing))
        pairs.append(
            {
                "subject_id": subject.subject_id,
                "timepoint_from": t0,
                "timepoint_to": t1,
                "threshold_growth": grow,
                "threshold_shrinkage": shrink,
                "n_new_lesions": len(lesions),
                "new_lesion_volume_mm3": float(sum(r["volume_mm3"] for r in lesions)),
                "n_shrinking_regions": len(shrinking),
                "shrinking_volume_mm3": float(sum(shrinking) * voxel),
                "analysis_voxels": int(subject.analysis.sum()),
                "change_map": str(change_path),
                "new_lesion_map": str(new_path),
                "overlay": str(folder / f"overlay_{t0}_{t1}.npz"),
            }
        )
        new_lesions += [r | {"timepoint_from": t0, "timepoint_to": t1} for r in lesions]
    tracks, load = _tracks_and_load(subject, options, pairs)
    failures = [failure_record(task, w["file"], w["stage"], w["message"]) for w in subject.warnings]
    info = {
        "pairs": _records(pd.DataFrame(pairs, columns=list(PAIR_COLUMNS))),
        "new_lesions": _records(pd.DataFrame(new_lesions, columns=list(NEW_LESION_COLUMNS))),
        "load": _records(load),
        "registration": _records(_registration(subject)),
    }
    return CaseResult(task.position, tracks, failures, info)


def _save_overlay(
    subject: SubjectVisits, k: int, score: NDArray, labels: NDArray, path: Path
) -> None:
    """Store the axial slice with the most new-lesion voxels (or the most change) for reports."""
    per_slice = (labels > 0).sum(axis=(1, 2))
    if not per_slice.any():
        per_slice = (np.abs(score) * subject.analysis).sum(axis=(1, 2))
    z = int(np.argmax(per_slice))
    np.savez_compressed(
        path,
        baseline=np.nan_to_num(subject.visits[k - 1].arrays[0][z]).astype(np.float32),
        followup=np.nan_to_num(subject.visits[k].arrays[0][z]).astype(np.float32),
        score=score[z].astype(np.float32),
        labels=labels[z].astype(np.int16),
        spacing=np.asarray(subject.spacing[:2], dtype=np.float64),
        slice_index=np.asarray(z),
    )


def _lesion_like(subject: SubjectVisits, k: int, options: SubjectOptions) -> NDArray[np.bool_]:
    """Voxels that look like lesion at visit ``k``: primary channel far from the brain median."""
    values = subject.visits[k].arrays[0]
    mask = subject.analysis
    inside = values[mask].astype(np.float64)
    centre = float(np.median(inside))
    spread = 1.4826 * float(np.median(np.abs(inside - centre))) or 1.0
    z = options.signs[0] * (np.nan_to_num(values, nan=centre) - centre) / spread
    return ndimage.binary_dilation(mask & (z > _LESION_LIKE_Z), iterations=1)


def _regions(mask: NDArray[np.bool_], subject: SubjectVisits, options: SubjectOptions) -> list[int]:
    """Return voxel counts of the connected regions of ``mask`` above the minimum volume."""
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 3))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    minimum = _min_voxels(options.min_lesion_mm3, subject)
    return [int(s) for s in sizes if s >= minimum]


def _min_voxels(min_mm3: float, subject: SubjectVisits) -> int:
    """Smallest region kept: ``min_mm3`` and never fewer than 3 voxels (a lone voxel is noise)."""
    return max(_MIN_VOXELS, math.ceil(min_mm3 / float(np.prod(subject.spacing)) - 1e-9))


def _new_lesions(
    subject: SubjectVisits, k: int, score: NDArray, threshold: float, min_mm3: float
) -> tuple[NDArray[np.int64], list[dict[str, Any]]]:
    """Return the label image of new/enlarging lesions and one record per lesion."""
    above = subject.analysis & (score >= threshold)
    labels, count = ndimage.label(above, structure=ndimage.generate_binary_structure(3, 3))
    voxel = float(np.prod(subject.spacing))
    out = np.zeros(labels.shape, dtype=np.int64)
    records: list[dict[str, Any]] = []
    before = subject.visits[k - 1].labels
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = labels[box] == index
        n = int(region.sum())
        if n < _min_voxels(min_mm3, subject):
            continue
        lesion_id = len(records) + 1
        out[box][region] = lesion_id
        values = score[box][region]
        if before is None:
            kind = "new_or_enlarging"
        else:
            kind = "enlarging" if np.any(before[box][region] != 0) else "new"
        centre = np.array(ndimage.center_of_mass(region)) + [s.start for s in box]
        x, y, z = (subject.index_to_world @ np.append(centre[::-1], 1.0))[:3]
        records.append(
            {
                "subject_id": subject.subject_id,
                "change_lesion_id": lesion_id,
                "kind": kind,
                "volume_mm3": n * voxel,
                "max_score": float(values.max()),
                "mean_score": float(values.mean()),
                "centroid_x_mm": float(x),
                "centroid_y_mm": float(y),
                "centroid_z_mm": float(z),
            }
        )
    return out, records


def _tracks_and_load(
    subject: SubjectVisits, options: SubjectOptions, pairs: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    timepoints = [v.timepoint for v in subject.visits]
    labels = [v.labels for v in subject.visits]
    if all(x is not None for x in labels):
        tracks = track_lesions(
            [x for x in labels if x is not None],
            timepoints,
            spacing=subject.spacing,
            index_to_world=subject.index_to_world,
            subject_id=subject.subject_id,
            rule=options.matching,
        )
        load = lesion_load(tracks, timepoints, subject.subject_id)
    else:
        tracks = pd.DataFrame(columns=list(TRACK_COLUMNS))
        load = pd.DataFrame({"subject_id": subject.subject_id, "timepoint": timepoints})
        load = load.reindex(columns=list(LOAD_COLUMNS))
    by_target = {p["timepoint_to"]: p for p in pairs}
    load["n_new_change_map"] = [
        by_target[t]["n_new_lesions"] if t in by_target else np.nan for t in timepoints
    ]
    load["new_change_volume_mm3"] = [
        by_target[t]["new_lesion_volume_mm3"] if t in by_target else np.nan for t in timepoints
    ]
    return tracks, load


def _registration(subject: SubjectVisits) -> pd.DataFrame:
    rows = []
    for visit in subject.visits:
        rows.append(
            {
                "subject_id": subject.subject_id,
                "timepoint": visit.timepoint,
                "alignment": visit.alignment.method,
                "qc_lncc": visit.qc_lncc,
                "qc_margin": visit.qc_margin,
                "qc_pass": visit.qc_pass,
                "registration_metric": visit.alignment.metric,
                "transform": str(visit.row.get("transform", "") or ""),
            }
        )
    return pd.DataFrame(rows, columns=list(REGISTRATION_COLUMNS))


def _reference_scores(subject: SubjectVisits, options: SubjectOptions) -> pd.DataFrame:
    """Return null scores and false-lesion peaks of a reference subject's change maps."""
    seed = int(hashlib.sha256(subject.subject_id.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    frames = []
    needed = _min_voxels(options.min_lesion_mm3, subject)
    for k in range(1, len(subject.visits)):
        score = _scores(subject, k, options)
        null = subject.analysis & ~_known_change(subject, k)
        values = score[null].astype(np.float64)
        if values.size > _NULL_SAMPLE:
            values = rng.choice(values, _NULL_SAMPLE, replace=False)
        pair = f"{subject.visits[k - 1].timepoint}_{subject.visits[k].timepoint}"
        for sign, name in ((1.0, "growth"), (-1.0, "shrinkage")):
            frames.append(
                pd.DataFrame({"pair": pair, "sign": name, "kind": "null", "value": sign * values})
            )
            peaks = _peaks(sign * score, null, needed)
            frames.append(
                pd.DataFrame({"pair": pair, "sign": name, "kind": "peak", "value": peaks})
            )
    return pd.concat(frames, ignore_index=True)


def _known_change(subject: SubjectVisits, k: int) -> NDArray[np.bool_]:
    """Return the known change of a reference pair: the ``change_mask`` of the later visit."""
    path = str(subject.visits[k].row.get("change_mask", "") or "").strip()
    if not path:
        return np.zeros(subject.analysis.shape, dtype=bool)
    mask = read_for(path, "change_mask", "change_mask")
    if mask.GetSize() != subject.grid.GetSize():
        raise SubjectError(
            f"change mask {path} is not on the common grid ({subject.grid.GetSize()} voxels); "
            "it must be drawn in the common space",
            file=path,
            stage="change_mask",
        )
    changed = sitk.GetArrayFromImage(mask) != 0
    # Partial-volume voxels around a known change are not null either.
    return ndimage.binary_dilation(changed, iterations=1)


def _peaks(score: NDArray, null: NDArray[np.bool_], needed: int) -> NDArray[np.float64]:
    """Return, per candidate false lesion, the highest threshold it would survive.

    A candidate is a connected region of ``score >= _CANDIDATE_LEVEL`` inside the null region;
    at threshold ``t`` it still forms a lesion when at least ``needed`` of its voxels are
    ``>= t``, i.e. up to its ``needed``-th largest score (splits at higher thresholds are
    ignored, which can only undercount).
    """
    labels, count = ndimage.label(null & (score >= _CANDIDATE_LEVEL), structure=np.ones((3, 3, 3)))
    peaks = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        values = np.sort(score[box][labels[box] == index])[::-1]
        if values.size >= needed:
            peaks.append(float(values[needed - 1]))
    return np.asarray(peaks, dtype=np.float64)


def _write(array: NDArray, grid: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    tmp = path.with_name(f".{path.name}.tmp.nii.gz")
    sitk.WriteImage(image, str(tmp), True)
    tmp.replace(path)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return rows as JSON-friendly records (plain Python numbers, None for missing)."""
    out = []
    for row in frame.astype(object).to_dict("records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            missing = value is pd.NA or value is pd.NaT
            if missing or (isinstance(value, float) and math.isnan(value)):
                value = None
            clean[str(key)] = value
        out.append(clean)
    return out
