"""Extraction over a cohort: per case, read once, split into lesions, compute, cache."""

from __future__ import annotations

import dataclasses
import platform
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony._version import __version__
from radharmony.errors import ImageReadError, RadharmonyError
from radharmony.extract import _cache
from radharmony.ibsi import ExtractionSettings, compute_lesion_features, engine_versions
from radharmony.ibsi.settings import SettingsLike
from radharmony.io import check_geometry, read_image, read_manifest, read_mask
from radharmony.lesions import Lesion, split_lesions

FAILURE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "subject_id",
    "lesion_id",
    "file",
    "stage",
    "message",
)
_FINITE_MARGIN = 3
LESION_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "lesion_voxels",
    "lesion_volume_mm3",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
)


@dataclass
class _CaseResult:
    position: int
    rows: pd.DataFrame | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    from_cache: bool = False


@dataclass(frozen=True)
class _CaseJob:
    position: int
    case_id: str
    subject_id: str
    image: str
    mask: str
    # Cache key (hash of both files and the run parameters), computed once, in the main process.
    key: str | None = None
    # ROI names / segment labels taken from a DICOM RTSTRUCT/SEG mask (manifest column "rois").
    rois: str = ""


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
        Show a progress bar; by default shown for 10 cases or more.
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

    Returns
    -------
    pandas.DataFrame
        One row per lesion: ``case_id``, ``subject_id``, ``lesion_id``, ``scanner``, the
        manifest's covariates, ``lesion_voxels``, ``lesion_volume_mm3``,
        ``centroid_{x,y,z}_mm``, then the features (see ``data_dictionary/features.csv``).
        ``attrs["failures"]`` is a DataFrame of the cases or lesions that failed (``case_id``,
        ``subject_id``, ``lesion_id``, ``file``, ``stage``, ``message``);
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
    rois = table["rois"] if "rois" in table.columns else [""] * len(table)
    jobs = [
        _CaseJob(i, str(r.case_id), str(r.subject_id), str(r.image), str(r.mask), rois=str(s))
        for i, (r, s) in enumerate(zip(table.itertuples(index=False), rois, strict=True))
    ]
    cache = Path(cache_dir).resolve() if cache_dir is not None else None
    if backend not in ("loky", "dask"):
        raise ValueError(f"backend must be 'loky' or 'dask', got {backend!r}")
    run = _run_jobs_dask if backend == "dask" else _run_jobs
    if cache is not None:
        jobs = [dataclasses.replace(job, key=_key_or_none(job, fingerprint)) for job in jobs]
    # Cases already in the cache are read here: a resumed run then starts no worker for them.
    cached = [_cached_result(job, cache) for job in jobs] if cache else [None] * len(jobs)
    results = [r for r in cached if r is not None]
    todo = [job for job, r in zip(jobs, cached, strict=True) if r is None]
    if todo:
        results += run(
            _largest_first(todo), resolved, options, fingerprint, cache, n_jobs, progress, scheduler
        )
    results.sort(key=lambda r: r.position)
    features = _assemble(table, results)
    features.attrs["failures"] = _failure_table(results)
    features.attrs["provenance"] = provenance
    features.attrs["dropped_lesions"] = int(sum(r.dropped for r in results))
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


def _key_or_none(job: _CaseJob, fingerprint: str) -> str | None:
    try:
        return _cache.case_key(job.image, job.mask, fingerprint, job.rois)
    except OSError:
        return None  # the worker reports the unreadable file


def _cached_result(job: _CaseJob, cache: Path) -> _CaseResult | None:
    if job.key is None:
        return None
    cached = _cache.load_cached(cache, job.key)
    if cached is None:
        return None
    failures = [dict(f) for f in cached.attrs.get("failures", [])]
    dropped = int(cached.attrs.get("dropped", 0))
    cached.attrs = {}
    return _CaseResult(job.position, cached, failures, dropped, from_cache=True)


def _largest_first(jobs: list[_CaseJob]) -> list[_CaseJob]:
    # Big cases started last would leave cores idle at the end of a run; the mask's size on
    # disk is a cheap proxy of the lesion volume to process.
    def size(job: _CaseJob) -> int:
        try:
            return Path(job.mask).stat().st_size + Path(job.image).stat().st_size
        except OSError:
            return 0

    return sorted(jobs, key=lambda job: (-size(job), job.position))


def _collect(stream: Any, total: int, progress: bool | None) -> list[_CaseResult]:
    show = total >= 10 if progress is None else progress
    results: list[_CaseResult] = []
    if not show:
        return sorted(stream, key=lambda r: r.position)
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="extracting", unit="case") as bar:
        for result in stream:
            results.append(result)
            bar.update(1)
    return sorted(results, key=lambda r: r.position)


def _run_jobs(
    jobs: list[_CaseJob],
    settings: ExtractionSettings,
    options: dict,
    fingerprint: str,
    cache: Path | None,
    n_jobs: int,
    progress: bool | None,
    scheduler: Any = None,
) -> list[_CaseResult]:
    from joblib import Parallel, delayed

    if n_jobs == 1:
        stream = (_process_case(job, settings, options, fingerprint, cache) for job in jobs)
    else:
        stream = Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="n_jobs")(
            delayed(_process_case)(job, settings, options, fingerprint, cache) for job in jobs
        )
    return _collect(stream, len(jobs), progress)


def _run_jobs_dask(
    jobs: list[_CaseJob],
    settings: ExtractionSettings,
    options: dict,
    fingerprint: str,
    cache: Path | None,
    n_jobs: int,
    progress: bool | None,
    scheduler: Any = None,
) -> list[_CaseResult]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as err:
        raise ImportError(
            "backend='dask' needs dask.distributed: pip install 'radharmony[dask]'"
        ) from err
    if scheduler is None:
        raise ValueError("backend='dask' needs scheduler= (an address or a dask Client)")
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(
            _process_case,
            jobs,
            settings=settings,
            options=options,
            fingerprint=fingerprint,
            cache=cache,
            pure=False,
        )
        return _collect((f.result() for f in as_completed(futures)), len(jobs), progress)
    finally:
        if client is not scheduler:
            client.close()


def _process_case(
    job: _CaseJob,
    settings: ExtractionSettings,
    options: dict,
    fingerprint: str,
    cache: Path | None,
) -> _CaseResult:
    from threadpoolctl import threadpool_limits

    # One case per core: nested BLAS threads would only oversubscribe the machine.
    with threadpool_limits(limits=1):
        return _process_case_unlimited(job, settings, options, fingerprint, cache)


def _process_case_unlimited(
    job: _CaseJob,
    settings: ExtractionSettings,
    options: dict,
    fingerprint: str,
    cache: Path | None,
) -> _CaseResult:
    key = job.key
    if cache is not None and key is None:
        try:
            key = _cache.case_key(job.image, job.mask, fingerprint, job.rois)
        except OSError as err:
            return _failed(job, job.image, "read", f"cannot read file for hashing: {err}")
    try:
        image = read_image(job.image, role="image")
    except Exception as err:  # noqa: BLE001 - any failure is recorded, never raised
        return _failed(job, job.image, "read_image", _message(err))
    try:
        mask, names = read_mask(job.mask, image_source=job.image, reference=image, rois=job.rois)
        check_geometry(image, mask, image_name=job.image, mask_name=job.mask)
        lesion_set = split_lesions(
            mask,
            connectivity=options["connectivity"],
            min_voxels=options["min_lesion_voxels"],
            name=job.mask,
            multi_label=True if names else None,
        )
    except Exception as err:  # noqa: BLE001
        return _failed(job, job.mask, _stage_of(err), _message(err))
    rows, failures = [], []
    for lesion in lesion_set.lesions:
        try:
            _check_finite_around(image, lesion, job.image)
            values = compute_lesion_features(image, lesion_set.mask_of(lesion, mask), settings)
        except Exception as err:  # noqa: BLE001
            stage = "image_values" if isinstance(err, ImageReadError) else "features"
            failures.append(_failure(job, job.image, stage, _message(err), lesion.lesion_id))
            continue
        named = {"lesion_name": names.get(lesion.lesion_id, "")} if names else {}
        rows.append(_lesion_row(lesion) | named | values)
    frame = pd.DataFrame(rows, columns=None if rows else list(LESION_COLUMNS))
    if cache is not None and key is not None:
        frame.attrs = {"failures": failures, "dropped": lesion_set.dropped}
        _cache.store(cache, key, frame)
        frame.attrs = {}
    return _CaseResult(job.position, frame, failures, lesion_set.dropped)


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


def _message(err: Exception) -> str:
    if isinstance(err, RadharmonyError):
        return str(err)
    # Unexpected errors keep their type and innermost frame so the report can be acted upon.
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" (in {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


def _failure(
    job: _CaseJob, file: str, stage: str, message: str, lesion_id: int | None = None
) -> dict[str, Any]:
    return {
        "case_id": job.case_id,
        "subject_id": job.subject_id,
        "lesion_id": lesion_id,
        "file": file,
        "stage": stage,
        "message": message,
    }


def _failed(job: _CaseJob, file: str, stage: str, message: str) -> _CaseResult:
    return _CaseResult(job.position, None, [_failure(job, file, stage, message)])


def _assemble(table: pd.DataFrame, results: list[_CaseResult]) -> pd.DataFrame:
    covariates = [c for c in table.columns if c not in ("image", "mask", "rois")]
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
    ordered = leading + [c for c in covariates if c not in leading] + list(LESION_COLUMNS[1:])
    return features[ordered + [c for c in features.columns if c not in ordered]]


def _failure_table(results: list[_CaseResult]) -> pd.DataFrame:
    records = [f for r in results for f in r.failures]
    failures = pd.DataFrame.from_records(records, columns=list(FAILURE_COLUMNS))
    failures["lesion_id"] = failures["lesion_id"].astype("Int64")
    return failures
