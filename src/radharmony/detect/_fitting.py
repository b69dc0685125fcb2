"""Fitting a detector on reference subjects: per-subject samples, cross-fitted models, calibration.

Two passes over the reference subjects, each one task per subject on the shared per-case runner:
sampling their healthy voxels (and intensity landmarks), then scoring each with the model of the
folds that did not see it to count its false lesions.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from radharmony import _cache
from radharmony._cases import CaseResult, CaseTask, run_cases
from radharmony.detect import _work
from radharmony.detect._calibration import held_out_rates, rate_check, rate_threshold
from radharmony.detect._model import HealthyTissueModel, fit_healthy_model, standardise
from radharmony.detect._standardize import fit_standardizer
from radharmony.detect._state import Calibration, DetectionError

_MAX_POOL = 500_000


def fit_reference(
    detector: Any,
    table: pd.DataFrame,
    options: dict[str, Any],
    *,
    n_jobs: int,
    backend: str,
    scheduler: Any,
    cache_dir: Any,
    progress: int | None,
) -> Any:
    """Fit ``detector`` (model, calibration, references, failures) on a channel manifest."""
    run = partial(
        run_cases,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        cache_dir=cache_dir,
        verbose=progress,
    )
    tasks = tasks_of(table, detector.channels, salted=True)
    sampled = run(
        tasks,
        partial(_work.sample_reference, options=options),
        fingerprint=fingerprint("sample", options),
        description="sampling reference subjects",
    )
    detector.failures_ = [f for r in sampled for f in r.failures]
    usable = [(t, r) for t, r in zip(tasks, sampled, strict=True) if r.rows is not None]
    if not usable:
        raise DetectionError(
            "no reference subject could be used: "
            + "; ".join(f"{f['subject_id']}: {f['message']}" for f in detector.failures_[:5])
        )
    folds = folds_of(len(usable), detector.n_folds, detector.random_state)
    detector.model_ = fit_model([r for _, r in usable], options)
    fold_models = fit_folds(detector, usable, folds, options)
    detector.calibration_ = calibrate(detector, usable, folds, fold_models, options, run)
    held_out = {
        row["subject_id"]: row["false_events"]
        for row in detector.calibration_.check
        if row["subject_id"] != "all"
    }
    names = [t.subject_id for t, _ in usable]
    detector.references_ = pd.DataFrame(
        {
            "subject_id": names,
            "fold": folds,
            "brain_voxels": [r.info["brain_voxels"] for _, r in usable],
            "healthy_voxels": [r.info["healthy_voxels"] for _, r in usable],
            "false_lesions_held_out": [held_out.get(n, np.nan) for n in names],
        }
    )
    return detector


def fit_model(
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


def fit_folds(
    detector: Any,
    usable: list[tuple[CaseTask, CaseResult]],
    folds: list[int],
    options: dict[str, Any],
) -> dict[int, HealthyTissueModel]:
    models = {}
    for fold in sorted(set(folds)):
        training = [r for (_, r), f in zip(usable, folds, strict=True) if f != fold]
        models[fold] = fit_model(training or [r for _, r in usable], options, detector.model_)
    return models


def calibrate(
    detector: Any,
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
            model.score(standardise(rows, marks, model.standardizer, model.channels)).astype(
                np.float64
            )
        )
    pool = np.sort(np.concatenate(held_out))
    extent = float(np.quantile(pool, detector.extent_quantile))
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
            fdr_level=float(detector.fdr_level),
        ),
        fingerprint=fingerprint("calibrate", options, extent, float(detector.fdr_level)),
        description="calibrating on held-out reference subjects",
    )
    detector.failures_ += [f for r in results for f in r.failures]
    done = [(tasks[r.position].subject_id, r) for r in results if r.rows is not None]
    peaks = [np.sort(r.rows["mass"].to_numpy(dtype=np.float64)) for _, r in done]  # type: ignore[index]
    threshold = rate_threshold(peaks, float(detector.false_lesion_rate)) if peaks else np.inf
    cross = len(set(folds)) > 1
    check: list[dict[str, Any]] = []
    subjects = [s for s, _ in done]
    if len(peaks) >= 2:
        counts = held_out_rates(peaks, float(detector.false_lesion_rate))
        check = rate_check(counts, float(detector.false_lesion_rate), subjects=subjects).to_dict(
            "records"
        )
    fdr_check = [
        {
            "subject_id": s,
            "rejected_voxels": r.info["fdr_rejections"],
            "false_rejected_voxels": r.info["fdr_false"],
            "false_discovery_proportion": (
                r.info["fdr_false"] / r.info["fdr_rejections"] if r.info["fdr_rejections"] else 0.0
            ),
        }
        for s, r in done
    ]
    rng = np.random.default_rng(detector.random_state)
    voxel_scores = (
        pool if pool.size <= _MAX_POOL else np.sort(rng.choice(pool, _MAX_POOL, replace=False))
    )
    if not cross:
        warnings.warn(
            "only one reference subject: its scores are in-sample, so the calibration is "
            "optimistic and cannot be checked on held-out subjects; use two or more",
            UserWarning,
            stacklevel=4,
        )
    return Calibration(
        extent_threshold=extent,
        threshold=float(threshold),
        null_masses=np.sort(np.concatenate(peaks)) if peaks else np.zeros(0),
        voxel_scores=voxel_scores.astype(np.float64),
        masses_by_subject=peaks,
        subjects=subjects,
        cross_fitted=cross,
        check=check,
        fdr_check=fdr_check,
    )


def tasks_of(table: pd.DataFrame, channels: Sequence[str], *, salted: bool) -> list[CaseTask]:
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


def folds_of(n: int, n_folds: int, random_state: int) -> list[int]:
    """Fold of each reference subject: a seeded permutation dealt into ``min(n_folds, n)``."""
    if n < 2:
        return [0] * n
    k = min(int(n_folds), n)
    order = np.random.default_rng(random_state).permutation(n)
    folds = np.empty(n, dtype=int)
    folds[order] = np.arange(n) % k
    return folds.tolist()


def fingerprint(stage: str, options: dict[str, Any], *extra: Any) -> str:
    from radharmony._version import __version__

    return _cache.run_fingerprint(
        {
            "stage": stage,
            "options": options,
            "extra": [str(e) for e in extra],
            "versions": {"radharmony": __version__, "numpy": np.__version__},
        }
    )
