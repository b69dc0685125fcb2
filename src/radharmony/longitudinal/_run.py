"""Follow-up analysis of a cohort: one case per subject on the shared per-case runner."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony import _cache
from radharmony._cases import CaseResult, CaseTask, failure_table, run_cases
from radharmony._progress import resolve_verbose
from radharmony._version import __version__
from radharmony.detect import held_out_rates, rate_check, rate_threshold
from radharmony.errors import RadharmonyError
from radharmony.longitudinal._calibrate import ChangeCalibration
from radharmony.longitudinal._change import ChangeSettings
from radharmony.longitudinal._manifest import read_longitudinal_manifest
from radharmony.longitudinal._matching import TRACK_COLUMNS, MatchingRule
from radharmony.longitudinal._subject import (
    LOAD_TABLE_COLUMNS,
    NEW_LESION_COLUMNS,
    PAIR_COLUMNS,
    REGISTRATION_COLUMNS,
    SubjectOptions,
    process_subject,
)

ManifestLike: TypeAlias = str | Path | pd.DataFrame


@dataclass
class LongitudinalResult:
    """Everything a follow-up analysis produced (tables; images are in ``out_dir``).

    Attributes
    ----------
    tracks : pandas.DataFrame
        One row per lesion and visit with its track and status (``lesion_tracks.csv``).
    load : pandas.DataFrame
        Lesion load per subject and visit (``lesion_load.csv``).
    pairs : pandas.DataFrame
        One row per pair of consecutive visits: thresholds, new-lesion count and volume,
        paths of the change and new-lesion maps (``change_pairs.csv``).
    new_lesions : pandas.DataFrame
        One row per new or enlarging lesion found on a change map (``new_lesions.csv``).
    registration : pandas.DataFrame
        How each visit was aligned and its quality (``registration.csv``).
    failures : pandas.DataFrame
        One row per subject (or part of a subject) that failed, with the reason.
    calibration : ChangeCalibration
        How thresholds were chosen.
    out_dir : pathlib.Path
        Folder of the per-subject maps.
    provenance : dict
        Versions and options.
    """

    tracks: pd.DataFrame
    load: pd.DataFrame
    pairs: pd.DataFrame
    new_lesions: pd.DataFrame
    registration: pd.DataFrame
    failures: pd.DataFrame
    calibration: ChangeCalibration
    out_dir: Path
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """Return a few lines summarising the run."""
        subjects = self.pairs["subject_id"].nunique() if len(self.pairs) else 0
        lines = [
            f"{subjects} subject(s) analysed, {len(self.pairs)} pair(s) of visits, "
            f"{len(self.failures)} failure(s)",
            f"{int(self.pairs['n_new_lesions'].sum()) if len(self.pairs) else 0} new or "
            "enlarging lesion(s) on the change maps",
            f"thresholds: {self.calibration.describe()}",
        ]
        if len(self.tracks):
            lines.append(f"{self.tracks['lesion_track_id'].count()} lesion observation(s) matched")
        return "\n".join(lines)


def _options(
    out_dir: str | Path,
    channels: Sequence[str],
    channel_signs: Mapping[str, float] | None,
    register: bool,
    change: ChangeSettings | None,
    calibration: ChangeCalibration,
    min_lesion_mm3: float,
    matching: MatchingRule | None,
    connectivity: int,
    reference: bool = False,
) -> SubjectOptions:
    signs_given = dict(channel_signs or {})
    unknown = sorted(set(signs_given) - {"image", *channels})
    if unknown:
        raise ValueError(f"channel_signs names unknown channel(s) {unknown}")
    signs = tuple(float(signs_given.get(c, 1.0)) for c in ("image", *channels))
    if any(s not in (1.0, -1.0) for s in signs):
        raise ValueError("channel_signs values must be +1 (lesions bright) or -1 (dark)")
    if min_lesion_mm3 < 0:
        raise ValueError(f"min_lesion_mm3 must be >= 0, got {min_lesion_mm3}")
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    return SubjectOptions(
        out_dir=str(Path(out_dir).resolve()),
        channels=tuple(channels),
        signs=signs,
        register=bool(register),
        change=change or ChangeSettings(),
        calibration=calibration,
        min_lesion_mm3=float(min_lesion_mm3),
        matching=matching or MatchingRule(),
        connectivity=connectivity,
        reference=reference,
    )


def _tasks(table: pd.DataFrame, channels: Sequence[str]) -> list[CaseTask]:
    path_columns = [
        c
        for c in table.columns
        if c in ("image", "mask", "transform", "reference_grid", "brain_mask", "change_mask")
        or c in channels
        or c.endswith("_transform")
    ]
    tasks = []
    for position, (subject_id, group) in enumerate(table.groupby("subject_id", sort=False)):
        rows = [_plain(r) for r in group.to_dict("records")]
        files = sorted({str(r[c]) for r in rows for c in path_columns if str(r.get(c) or "")})
        # Time points and their order are part of the case besides its files.
        salt = json.dumps([[r["timepoint"], r["timepoint_order"]] for r in rows])
        tasks.append(
            CaseTask(
                position=position,
                case_id=str(subject_id),
                subject_id=str(subject_id),
                files=tuple(files),
                payload=rows,
                salt=salt,
            )
        )
    return tasks


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _fingerprint(options: SubjectOptions, extra: dict[str, Any]) -> str:
    return _cache.run_fingerprint(
        {
            "stage": "longitudinal",
            "out_dir": options.out_dir,
            "channels": options.channels,
            "signs": options.signs,
            "register": options.register,
            "change": options.change.to_dict(),
            "calibration": options.calibration.digest(),
            "min_lesion_mm3": options.min_lesion_mm3,
            "matching": vars(options.matching),
            "connectivity": options.connectivity,
            "reference": options.reference,
            "versions": _versions(),
            **extra,
        }
    )


def _versions() -> dict[str, str]:
    return {
        "radharmony": __version__,
        "numpy": np.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "python": platform.python_version(),
    }


def analyse_followups(
    manifest: ManifestLike,
    out_dir: str | Path,
    *,
    channels: Sequence[str] = (),
    channel_signs: Mapping[str, float] | None = None,
    register: bool = False,
    calibration: ChangeCalibration | None = None,
    fdr: float = 0.05,
    change: ChangeSettings | None = None,
    min_lesion_mm3: float = 10.0,
    matching: MatchingRule | None = None,
    connectivity: int = 26,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    base_dir: str | Path | None = None,
    verbose: bool | int | None = None,
) -> LongitudinalResult:
    """Analyse follow-up scans: change maps, new lesions, lesion tracks and lesion load.

    Each subject is one case of the shared per-case runner (local processes or Dask, cached,
    failure-tolerant): its visits are brought into its common space (given transforms, or
    registration with ``register=True``), a change map is computed for every pair of
    consecutive visits (see :mod:`radharmony.longitudinal`), thresholded into new or enlarging
    lesions, and the lesions of the visits' masks (when given) are matched into tracks.

    Parameters
    ----------
    manifest : str, Path or pandas.DataFrame
        Longitudinal manifest (see :func:`read_longitudinal_manifest`).
    out_dir : str or Path
        Folder receiving ``<subject_id>/change_<t0>_<t1>.nii.gz`` (float score on the common
        grid) and ``<subject_id>/new_lesions_<t0>_<t1>.nii.gz`` (labels 1..K).
    channels : sequence of str
        Extra channel columns combined with ``image`` in the change score.
    channel_signs : mapping, optional
        Lesion polarity per channel (``{"T1": -1}``); +1 (lesions bright) by default. The
        primary channel is named ``"image"``.
    register : bool
        Register visits that have no transform and are not on the common grid (otherwise such
        a visit is an error for its subject).
    calibration : ChangeCalibration, optional
        How thresholds are chosen: from reference subjects (:func:`calibrate_change`) or, by
        default, per subject at voxel FDR ``fdr`` from the map's opposite tail.
    fdr : float
        Target voxel false discovery rate of the default calibration.
    change : ChangeSettings, optional
        Smoothing and neighbourhood of the change score.
    min_lesion_mm3 : float
        New-lesion candidates smaller than this are dropped.
    matching : MatchingRule, optional
        Overlap/distance matching and the volume-change rule of lesion tracks.
    connectivity : {6, 18, 26}
        Connectivity splitting binary lesion masks into lesions.
    n_jobs, backend, scheduler, cache_dir, progress
        As in :func:`radharmony.extract_features`: local worker processes or a Dask cluster,
        per-subject results cached by the bytes of every file of the subject and the options.
        ``progress`` is the older name of ``verbose``.
    base_dir : str or Path, optional
        Folder that relative paths of a DataFrame manifest are resolved against.
    verbose : int or bool, optional
        0: silent; 1: a progress bar; default: a bar for 10 subjects or more.

    Returns
    -------
    LongitudinalResult
    """
    table = read_longitudinal_manifest(manifest, channels=channels, base_dir=base_dir)
    calibration = calibration or ChangeCalibration.mirror(fdr)
    options = _options(
        out_dir,
        channels,
        channel_signs,
        register,
        change,
        calibration,
        min_lesion_mm3,
        matching,
        connectivity,
    )
    Path(options.out_dir).mkdir(parents=True, exist_ok=True)
    results = run_cases(
        _tasks(table, channels),
        partial(process_subject, options=options),
        fingerprint=_fingerprint(options, {}),
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        verbose=resolve_verbose(verbose, progress),
        description="follow-ups",
        reusable=_maps_exist,
    )
    provenance = {
        "versions": _versions(),
        "manifest": table.attrs.get("manifest_path", ""),
        "channels": list(channels),
        "signs": list(options.signs),
        "register": options.register,
        "change": options.change.to_dict(),
        "calibration": calibration.describe(),
        "min_lesion_mm3": options.min_lesion_mm3,
        "matching": vars(options.matching),
        "cached_subjects": int(sum(r.from_cache for r in results)),
    }
    return LongitudinalResult(
        tracks=_concat([r.rows for r in results if r.rows is not None], TRACK_COLUMNS),
        load=_from_info(results, "load", LOAD_TABLE_COLUMNS),
        pairs=_from_info(results, "pairs", PAIR_COLUMNS),
        new_lesions=_from_info(results, "new_lesions", NEW_LESION_COLUMNS),
        registration=_from_info(results, "registration", REGISTRATION_COLUMNS),
        failures=failure_table([f for r in results for f in r.failures]),
        calibration=calibration,
        out_dir=Path(options.out_dir),
        provenance=provenance,
    )


def _maps_exist(result: CaseResult) -> bool:
    pairs = result.info.get("pairs") or []
    return all(
        Path(p["change_map"]).is_file() and Path(p["new_lesion_map"]).is_file() for p in pairs
    )


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)


def _from_info(results: list[CaseResult], key: str, columns: Sequence[str]) -> pd.DataFrame:
    records = [row for r in results if r.rows is not None for row in r.info.get(key, [])]
    frame = pd.DataFrame.from_records(records)
    extra = [c for c in frame.columns if c not in columns]
    return frame.reindex(columns=[*columns, *extra])


def calibrate_change(
    reference: ManifestLike,
    *,
    target: str = "fdr",
    level: float = 0.05,
    channels: Sequence[str] = (),
    channel_signs: Mapping[str, float] | None = None,
    register: bool = False,
    change: ChangeSettings | None = None,
    min_lesion_mm3: float = 10.0,
    connectivity: int = 26,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    base_dir: str | Path | None = None,
    verbose: bool | int | None = None,
) -> ChangeCalibration:
    """Learn change thresholds from reference subjects (never from the subjects analysed).

    Reference subjects are followed up without change, or with their known changes marked in
    the ``change_mask`` column (those voxels, and one voxel around them, are left out). Their
    change maps give null scores for growth and shrinkage.

    Parameters
    ----------
    reference : str, Path or pandas.DataFrame
        Longitudinal manifest of the reference subjects.
    target : {"fdr", "false_lesions"}
        ``"fdr"``: voxel false discovery rate ``level`` (Benjamini-Hochberg on conformal
        p-values against the null scores, applied to each new map). ``"false_lesions"``:
        expected false new lesions per follow-up at most ``level`` (the threshold is fixed).
    level : float
        The target.
    channels, channel_signs, register, change, min_lesion_mm3, connectivity
        Must match those of the analysis the calibration is used in.
    n_jobs, backend, scheduler, cache_dir, progress, base_dir, verbose
        As in :func:`analyse_followups`.

    Returns
    -------
    ChangeCalibration
        ``held_out`` (for ``"false_lesions"``) holds each reference pair's false new-lesion
        count at the threshold chosen without it, and their mean with a 95 % interval.

    Raises
    ------
    RadharmonyError
        When no reference subject could be processed (their failures are listed).
    """
    if target not in ("fdr", "false_lesions"):
        raise ValueError(f"target must be 'fdr' or 'false_lesions', got {target!r}")
    if target == "fdr" and not 0.0 < level < 1.0:
        raise ValueError(f"FDR level must be in (0, 1), got {level}")
    if target == "false_lesions" and level <= 0:
        raise ValueError(f"the false-lesion rate must be positive, got {level}")
    table = read_longitudinal_manifest(reference, channels=channels, base_dir=base_dir)
    options = _options(
        ".",
        channels,
        channel_signs,
        register,
        change,
        ChangeCalibration(),
        min_lesion_mm3,
        None,
        connectivity,
        reference=True,
    )
    tasks = _tasks(table, channels)
    results = run_cases(
        tasks,
        partial(process_subject, options=options),
        fingerprint=_fingerprint(options, {}),
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        verbose=resolve_verbose(verbose, progress),
        description="reference follow-ups",
    )
    scores = [(t.subject_id, r.rows) for t, r in zip(tasks, results, strict=True)]
    done = [(s, rows) for s, rows in scores if rows is not None and len(rows)]
    if not done:
        reasons = "; ".join(f["message"] for r in results for f in r.failures)
        raise RadharmonyError(f"no reference subject could be processed: {reasons}")
    frame = pd.concat([rows.assign(subject_id=s) for s, rows in done], ignore_index=True)

    def values(sign: str, kind: str) -> np.ndarray:
        chosen = frame[(frame["sign"] == sign) & (frame["kind"] == kind)]
        return np.sort(chosen["value"].to_numpy(dtype=np.float64))

    n_subjects = len(done)
    if target == "fdr":
        return ChangeCalibration(
            "reference_fdr",
            level,
            null_positive=values("growth", "null"),
            null_negative=values("shrinkage", "null"),
            n_reference_subjects=n_subjects,
        )
    peaks = {sign: _peaks_per_pair(frame, sign) for sign in ("growth", "shrinkage")}
    thresholds = (rate_threshold(peaks["growth"], level), rate_threshold(peaks["shrinkage"], level))
    return ChangeCalibration(
        "reference_rate",
        level,
        rate_thresholds=thresholds,
        held_out=_held_out(peaks["growth"], level) if len(peaks["growth"]) > 1 else None,
        n_reference_subjects=n_subjects,
    )


def _peaks_per_pair(frame: pd.DataFrame, sign: str) -> list[np.ndarray]:
    chosen = frame[frame["sign"] == sign]
    pairs = []
    for _, group in chosen.groupby(["subject_id", "pair"], sort=True):
        pairs.append(group.loc[group["kind"] == "peak", "value"].to_numpy(dtype=np.float64))
    return pairs


def _held_out(peaks: list[np.ndarray], rate: float) -> pd.DataFrame:
    counts = held_out_rates(peaks, rate)
    return rate_check(counts, rate, subjects=[f"pair {i + 1}" for i in range(len(counts))])


def write_longitudinal(result: LongitudinalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the tables of a follow-up analysis as CSV files and return their paths.

    Writes ``lesion_tracks.csv``, ``lesion_load.csv``, ``change_pairs.csv``,
    ``new_lesions.csv``, ``registration.csv``, ``failures.csv`` and ``provenance.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "lesion_tracks": result.tracks,
        "lesion_load": result.load,
        "change_pairs": result.pairs,
        "new_lesions": result.new_lesions,
        "registration": result.registration,
        "failures": result.failures,
    }
    paths = {}
    for name, frame in tables.items():
        paths[name] = out / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["provenance"] = out / "provenance.json"
    paths["provenance"].write_text(
        json.dumps(result.provenance, indent=2, sort_keys=True, default=str) + "\n",
        encoding="utf-8",
    )
    return paths
