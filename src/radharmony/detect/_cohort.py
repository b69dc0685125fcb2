"""Detection over a cohort: per-subject tasks, then the tables and the extraction manifest."""

from __future__ import annotations

import json
import os
import platform
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony._cases import CaseResult, failure_table, run_cases
from radharmony._version import __version__
from radharmony.detect import _work
from radharmony.detect._lesions import LESION_TABLE_COLUMNS
from radharmony.io import CHANNEL_PATH_COLUMNS, read_channel_manifest

SUBJECT_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "scanner",
    "status",
    "n_lesions",
    "lesion_volume_mm3",
    "threshold",
    "brain_voxels",
    "voxel_dice",
    "reference_lesions",
    "reference_lesions_found",
    "lesion_recall",
    "lesion_precision",
    "abnormality",
    "lesions",
)


@dataclass
class DetectionResult:
    """What :meth:`HealthyTissueDetector.detect` found and wrote.

    Attributes
    ----------
    lesions : pandas.DataFrame
        One row per detected lesion (``data_dictionary/detected_lesions.csv``).
    subjects : pandas.DataFrame
        One row per subject: status, lesion count and volume, threshold, and with a reference
        ``lesion_mask`` the voxel Dice and lesion-wise recall and precision
        (``data_dictionary/detection_subjects.csv``).
    failures : pandas.DataFrame
        Subjects (reference or examined) that could not be processed, with stage and message.
    calibration : pandas.DataFrame
        Held-out check of the target on the reference subjects
        (``data_dictionary/detection_calibration.csv``).
    files : dict of str to Path
        Everything written (``manifest`` is the input of ``radharmony extract``).
    detector : HealthyTissueDetector
        The fitted detector.
    """

    lesions: pd.DataFrame
    subjects: pd.DataFrame
    failures: pd.DataFrame
    calibration: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    detector: Any = None


def detect_cohort(
    detector: Any,
    subjects: str | Path | pd.DataFrame,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None,
    n_jobs: int,
    backend: str,
    scheduler: Any,
    cache_dir: str | Path | None,
    progress: int | None,
) -> DetectionResult:
    """Run detection per subject and write every output (see ``HealthyTissueDetector.detect``)."""
    from radharmony.detect._fitting import fingerprint, tasks_of

    channels = [str(c) for c in detector.channels]
    table = read_channel_manifest(subjects, channels, base_dir=base_dir)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    overlap = sorted(set(table["subject_id"]) & set(detector.calibration_.subjects))
    if overlap:
        warnings.warn(
            f"subject(s) {overlap[:5]} are also reference subjects: their scores are in-sample "
            "and their detections optimistic",
            UserWarning,
            stacklevel=3,
        )
    tasks = tasks_of(table, channels, salted=False)
    results = run_cases(
        tasks,
        partial(_work.detect_subject, detector=detector, out_dir=str(out)),
        fingerprint=fingerprint("detect", {"out_dir": str(out)}, detector.digest()),
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        verbose=progress,
        description="detecting",
        reusable=_outputs_exist,
    )
    lesions = _lesion_rows(results)
    subject_table = _subject_table(table, results)
    failures = failure_table([*detector.failures_, *(f for r in results for f in r.failures)])
    calibration = pd.DataFrame.from_records(detector.calibration_.check)
    result = DetectionResult(lesions, subject_table, failures, calibration, detector=detector)
    result.files = _write_outputs(result, table, channels, out)
    return result


def _outputs_exist(result: CaseResult) -> bool:
    return all(Path(result.info.get(k, "")).is_file() for k in ("abnormality", "lesions"))


def _lesion_rows(results: list[CaseResult]) -> pd.DataFrame:
    pieces = [r.rows for r in results if r.rows is not None and len(r.rows)]
    if not pieces:
        return pd.DataFrame(columns=list(LESION_TABLE_COLUMNS))
    lesions = pd.concat(pieces, ignore_index=True)
    lesions["subject_id"] = lesions["subject_id"].astype(str)
    return lesions[list(LESION_TABLE_COLUMNS)]


def _subject_table(table: pd.DataFrame, results: list[CaseResult]) -> pd.DataFrame:
    rows = []
    for row, result in zip(table.to_dict("records"), results, strict=True):
        info = result.info
        entry: dict[str, Any] = {
            "subject_id": str(row["subject_id"]),
            "scanner": str(row.get("scanner", "")) if "scanner" in table.columns else "",
            "status": "ok" if result.rows is not None else "failed",
        }
        for column in SUBJECT_COLUMNS[3:]:
            entry[column] = info.get(column, np.nan)
        rows.append(entry)
    return pd.DataFrame(rows, columns=list(SUBJECT_COLUMNS))


def _relative(path: str, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # another drive on Windows
        return path


def extraction_manifest(
    table: pd.DataFrame, subjects: pd.DataFrame, channels: list[str], out: Path
) -> pd.DataFrame:
    """The manifest ``radharmony extract`` reads: one row per subject with detected lesions.

    ``image`` is the first channel, ``mask`` the detected lesion labels, ``scanner`` and the
    covariates are carried (``scanner`` is ``"unknown"`` when the subject manifest has none),
    and ``reference_mask`` is the subject's ``lesion_mask`` when given (extraction then adds
    each lesion's Dice with it). Paths are relative to ``out``.
    """
    detected = subjects[(subjects["status"] == "ok") & (subjects["n_lesions"] > 0)]
    keep = table[table["subject_id"].isin(detected["subject_id"])]
    labels = dict(zip(detected["subject_id"], detected["lesions"], strict=True))
    reserved = {*channels, *CHANNEL_PATH_COLUMNS, "subject_id", "scanner"}
    covariates = [c for c in table.columns if c not in reserved]
    rows = []
    for row in keep.to_dict("records"):
        entry = {
            "subject_id": row["subject_id"],
            "image": _relative(row[channels[0]], out),
            "mask": _relative(labels[row["subject_id"]], out),
            "scanner": row.get("scanner", "unknown") or "unknown",
        }
        entry.update({c: row[c] for c in covariates})
        if row.get("lesion_mask"):
            entry["reference_mask"] = _relative(row["lesion_mask"], out)
        rows.append(entry)
    columns = ["subject_id", "image", "mask", "scanner", *covariates]
    if any("reference_mask" in r for r in rows):
        columns.append("reference_mask")
    return pd.DataFrame(rows, columns=columns)


def _write_outputs(
    result: DetectionResult, table: pd.DataFrame, channels: list[str], out: Path
) -> dict[str, Path]:
    from radharmony.detect._persist import save_detector

    files = {
        "lesions": out / "lesions.csv",
        "subjects": out / "subjects.csv",
        "failures": out / "failures.csv",
        "calibration": out / "calibration.csv",
        "manifest": out / "manifest.csv",
        "summary": out / "detection.json",
    }
    result.lesions.to_csv(files["lesions"], index=False)
    result.subjects.to_csv(files["subjects"], index=False)
    result.failures.to_csv(files["failures"], index=False)
    result.calibration.to_csv(files["calibration"], index=False)
    extraction_manifest(table, result.subjects, channels, out).to_csv(
        files["manifest"], index=False
    )
    files["detector"] = save_detector(result.detector, out / "detector.skops")
    files["summary"].write_text(
        json.dumps(detection_summary(result.detector, table), indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    return files


def detection_summary(detector: Any, table: pd.DataFrame | None = None) -> dict[str, Any]:
    """Settings, thresholds, calibration check and versions of a detection run (JSON-ready)."""
    calibration = detector.calibration_
    summary = {
        "settings": detector.get_params(),
        "reference_subjects": calibration.subjects,
        "cross_fitted": calibration.cross_fitted,
        "extent_threshold": calibration.extent_threshold,
        "lesion_threshold": calibration.threshold,
        "false_lesions_held_out": int(calibration.null_masses.size),
        "calibration_check": calibration.check,
        "voxel_fdr_check": calibration.fdr_check,
        "versions": {
            "radharmony": __version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    if table is not None:
        summary["manifest"] = table.attrs.get("manifest_path", "")
    return summary
