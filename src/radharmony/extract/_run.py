"""Extraction over a cohort: per case, read once, split into lesions, compute, cache."""

from __future__ import annotations

import platform
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony import _cache
from radharmony._cases import (
    CaseResult,
    CaseTask,
    error_message,
    failed,
    failure_record,
    run_cases,
)
from radharmony._version import __version__
from radharmony.errors import ImageReadError
from radharmony.ibsi import ExtractionSettings, compute_lesion_features, engine_versions
from radharmony.ibsi.settings import SettingsLike
from radharmony.io import check_geometry, read_image, read_manifest, read_mask
from radharmony.lesions import Lesion, split_lesions

_FINITE_MARGIN = 3
LESION_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "lesion_voxels",
    "lesion_volume_mm3",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
)


def extract_features(
    manifest: str | Path | pd.DataFrame,
    settings: SettingsLike | None = None,
    *,
    n_jobs: int = 1,
    cache_dir: str | Path | None = None,
    connectivity: int = 26,
    min_lesion_voxels: int = 1,
    progress: bool | None = None,
    base_dir: str | Path | None = None,
    backend: str = "loky",
    scheduler: Any = None,
    verbose: bool | int | None = None,
) -> pd.DataFrame:
    """Extract radiomic features for every lesion of every image in a cohort.

    Parameters
    ----------
    manifest : str, Path or pandas.DataFrame
        Cohort manifest (see :func:`radharmony.io.read_manifest`): one row per image with
        ``subject_id``, ``image``, ``mask``, ``scanner`` and covariate columns.
    settings : str, dict, path or ExtractionSettings, optional
        A preset name (``"default"``, ``"ct"``, ``"mr"``, IBSI configurations), a mapping of
        settings, a YAML/JSON file, or an :class:`ExtractionSettings`. Default: ``"default"``.
    n_jobs : int
        Number of worker processes (``-1``: all cores). The output does not depend on it.
    cache_dir : str or Path, optional
        Folder of per-case results keyed by image bytes, mask bytes and settings. An
        interrupted run given the same folder recomputes only the missing cases.
    connectivity : {6, 18, 26}
        Voxel connectivity that splits a binary mask into lesions.
    min_lesion_voxels : int
        Lesions with fewer voxels are dropped and counted.
    progress : bool, optional
        Older name of ``verbose``, still accepted (True: 1, False: 0).
    base_dir : str or Path, optional
        Folder that relative paths of a DataFrame manifest are resolved against.
    backend : {"loky", "dask"}
        ``"loky"`` runs cases in local worker processes (joblib). ``"dask"`` submits the same
        per-case tasks to a Dask distributed cluster given by ``scheduler``; caching, failure
        handling and the output are the same. The cache folder must then be reachable by every
        worker (a shared file system).
    scheduler : str or dask.distributed.Client, optional
        With ``backend="dask"``: the scheduler address (``"tcp://host:8786"``) or a connected
        client. ``n_jobs`` is ignored; the cluster's workers decide the parallelism.
    verbose : int or bool, optional
        0: silent; 1: a progress bar; default: a bar for 10 cases or more.

    Returns
    -------
    pandas.DataFrame
        One row per lesion: ``case_id``, ``subject_id``, ``lesion_id``, ``scanner``, the
        manifest's covariates, ``reference_dice`` (only when the manifest has a
        ``reference_mask`` column: the lesion's Dice with the reference lesions it overlaps),
        ``lesion_voxels``, ``lesion_volume_mm3``, ``centroid_{x,y,z}_mm``, then the features (see ``data_dictionary/features.csv``).
        ``attrs["failures"]`` lists the cases or lesions that failed as records (dicts with
        ``case_id``, ``subject_id``, ``lesion_id``, ``file``, ``stage``, ``message``; get them
        as a DataFrame with :func:`radharmony.failures_of`);
        ``attrs["provenance"]`` records package versions, settings and lesion options;
        ``attrs["dropped_lesions"]`` counts lesions below ``min_lesion_voxels``;
        ``attrs["cached_cases"]`` counts cases read back from ``cache_dir``.
    """
    # Missing files are per-case failures here, so that one absent file never stops a cohort.
    table = read_manifest(manifest, base_dir=base_dir, check_files=False)
    resolved = ExtractionSettings.from_any(settings)
    options = {"connectivity": connectivity, "min_lesion_voxels": min_lesion_voxels}
    provenance = _provenance(resolved, options, table.attrs.get("manifest_path", ""))
    fingerprint = _cache.run_fingerprint(
        {"settings": resolved.to_dict(), "options": options, "versions": provenance["versions"]}
    )
    rois = table["rois"].tolist() if "rois" in table.columns else [""] * len(table)
    references = (
        table["reference_mask"].tolist() if "reference_mask" in table.columns else [""] * len(table)
    )
    tasks = [
        CaseTask(
            position=i,
            case_id=str(r.case_id),
            subject_id=str(r.subject_id),
            # A reference mask is hashed only when given, so the keys of other cases (and of
            # existing caches) do not change.
            files=(str(r.image), str(r.mask), *([str(ref)] if ref else [])),
            # ROIs taken from a DICOM RTSTRUCT/SEG mask change the result of the same files.
            payload=str(roi),
            salt=str(roi),
        )
        for i, (r, ref, roi) in enumerate(
            zip(table.itertuples(index=False), references, rois, strict=True)
        )
    ]
    results = run_cases(
        tasks,
        partial(_process_case, settings=resolved, options=options),
        fingerprint=fingerprint,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        backend=backend,
        scheduler=scheduler,
        progress=progress,
        verbose=verbose,
        description="extracting",
    )
    features = _assemble(table, results)
    features.attrs["failures"] = [f for r in results for f in r.failures]
    features.attrs["provenance"] = provenance
    features.attrs["dropped_lesions"] = int(sum(r.info.get("dropped", 0) for r in results))
    features.attrs["cached_cases"] = int(sum(r.from_cache for r in results))
    return features


def _provenance(settings: ExtractionSettings, options: dict, manifest: str) -> dict[str, Any]:
    versions = {
        "radharmony": __version__,
        **engine_versions(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    return {
        "versions": versions,
        "settings": settings.to_dict(),
        "lesion_options": options,
        "manifest": manifest,
    }


def _process_case(task: CaseTask, settings: ExtractionSettings, options: dict) -> CaseResult:
    image_path, mask_path = task.files[0], task.files[1]
    reference_path = task.files[2] if len(task.files) > 2 else None
    try:
        image = read_image(image_path, role="image")
    except Exception as err:  # noqa: BLE001 - any failure is recorded, never raised
        return failed(task, image_path, "read_image", error_message(err))
    try:
        mask, names = read_mask(
            mask_path, image_source=image_path, reference=image, rois=str(task.payload or "")
        )
        check_geometry(image, mask, image_name=image_path, mask_name=mask_path)
        lesion_set = split_lesions(
            mask,
            connectivity=options["connectivity"],
            min_voxels=options["min_lesion_voxels"],
            name=mask_path,
            multi_label=True if names else None,
        )
    except Exception as err:  # noqa: BLE001
        return failed(task, mask_path, _stage_of(err), error_message(err))
    dice: dict[int, float] = {}
    if reference_path is not None:
        try:
            dice = _reference_dice(image, image_path, reference_path, lesion_set)
        except Exception as err:  # noqa: BLE001
            return failed(task, reference_path, "reference_mask", error_message(err))
    rows, failures = [], []
    for lesion in lesion_set.lesions:
        try:
            _check_finite_around(image, lesion, image_path)
            values = compute_lesion_features(image, lesion_set.mask_of(lesion, mask), settings)
        except Exception as err:  # noqa: BLE001
            stage = "image_values" if isinstance(err, ImageReadError) else "features"
            failures.append(
                failure_record(task, image_path, stage, error_message(err), lesion.lesion_id)
            )
            continue
        extra = {"reference_dice": dice[lesion.lesion_id]} if dice else {}
        named = {"lesion_name": names.get(lesion.lesion_id, "")} if names else {}
        rows.append(_lesion_row(lesion) | named | extra | values)
    columns = list(LESION_COLUMNS) + (["reference_dice"] if dice else [])
    frame = pd.DataFrame(rows, columns=None if rows else columns)
    return CaseResult(task.position, frame, failures, {"dropped": lesion_set.dropped})


def _reference_dice(
    image: sitk.Image, image_path: str, reference_path: str, lesion_set: Any
) -> dict[int, float]:
    """Dice of each lesion with the reference lesions it overlaps (see ``per_lesion_dice``)."""
    from radharmony.detect import per_lesion_dice

    reference = read_image(reference_path, role="reference mask")
    check_geometry(image, reference, image_name=image_path, mask_name=reference_path)
    values = sitk.GetArrayViewFromImage(reference)
    ids = [lesion.lesion_id for lesion in lesion_set.lesions]
    dice = per_lesion_dice(lesion_set.labels, np.asarray(values != 0), ids)
    return dict(zip(ids, dice.tolist(), strict=True))


def _check_finite_around(image: sitk.Image, lesion: Lesion, name: str) -> None:
    # Interpolation reads a few voxels beyond the lesion: NaN/inf there would spread into the
    # features silently. Non-finite voxels far from the lesion (e.g. a NaN background) are fine.
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return
    values = sitk.GetArrayViewFromImage(image)
    box = tuple(
        slice(max(0, s.start - _FINITE_MARGIN), min(n, s.stop + _FINITE_MARGIN))
        for s, n in zip(lesion.bbox, values.shape, strict=True)
    )
    bad = int(np.count_nonzero(~np.isfinite(values[box])))
    if bad:
        raise ImageReadError(
            f"{name} has {bad} NaN or infinite voxel(s) in or next to lesion {lesion.lesion_id}; "
            "replace them (e.g. by the background value) before extraction"
        )


def _lesion_row(lesion: Any) -> dict[str, Any]:
    x, y, z = lesion.centroid_mm
    return {
        "lesion_id": lesion.lesion_id,
        "lesion_voxels": lesion.voxels,
        "lesion_volume_mm3": lesion.volume_mm3,
        "centroid_x_mm": x,
        "centroid_y_mm": y,
        "centroid_z_mm": z,
    }


def _stage_of(err: Exception) -> str:
    from radharmony.errors import EmptyMaskError, GeometryMismatchError

    if isinstance(err, GeometryMismatchError):
        return "geometry"
    if isinstance(err, EmptyMaskError):
        return "lesions"
    return "read_mask"


def _assemble(table: pd.DataFrame, results: list[CaseResult]) -> pd.DataFrame:
    covariates = [c for c in table.columns if c not in ("image", "mask", "rois", "reference_mask")]
    pieces = []
    for result in results:
        if result.rows is None or result.rows.empty:
            continue
        meta = table.iloc[[result.position] * len(result.rows)][covariates].reset_index(drop=True)
        pieces.append(pd.concat([meta, result.rows.reset_index(drop=True)], axis=1))
    if not pieces:
        return pd.DataFrame(columns=covariates + list(LESION_COLUMNS))
    features = pd.concat(pieces, ignore_index=True)
    leading = ["case_id", "subject_id", "lesion_id", "scanner"]
    if "lesion_name" in features.columns:
        leading.insert(3, "lesion_name")
    # The overlap with a reference mask is an evaluation column, never a feature: it is placed
    # before the lesion columns (feature columns follow the centroid).
    evaluation = ["reference_dice"] if "reference_dice" in features.columns else []
    ordered = leading + [c for c in covariates if c not in leading] + evaluation
    ordered += list(LESION_COLUMNS[1:])
    return features[ordered + [c for c in features.columns if c not in ordered]]
