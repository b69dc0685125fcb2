"""Running a per-case stage over a cohort: dispatch, cache, progress and the failures table.

Every per-case stage (extraction, detection, follow-up analysis) describes its cases as
:class:`CaseTask` objects and a module-level ``work(task) -> CaseResult`` function; this module
runs them on local worker processes (joblib/loky, largest cases first, BLAS pinned to one thread
per case) or on a Dask distributed cluster, reads finished cases back from a cache keyed by the
bytes of their files and the run parameters (written atomically, so a killed run resumes), shows
a progress bar and collects failures as plain records. A failing case never stops the others.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from radharmony import _cache
from radharmony._progress import Verbose, get_logger, progress_bar, resolve_verbose
from radharmony.errors import RadharmonyError

FAILURE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "subject_id",
    "lesion_id",
    "file",
    "stage",
    "message",
)
BACKENDS: tuple[str, ...] = ("loky", "dask")
_LOG = get_logger(__name__)


@dataclass(frozen=True)
class CaseTask:
    """One case of a per-case stage.

    Attributes
    ----------
    position : int
        Row of the case in its manifest; results are returned in this order.
    case_id, subject_id : str
        Identity written into failure records.
    files : tuple of str
        Input files: their bytes key the cache and their sizes order the dispatch.
    payload : object
        Whatever the stage's ``work`` function needs (paths, options); must be picklable.
    salt : str
        Extra cache-key text for results that depend on the case's identity, not only on its
        files (e.g. a per-subject random sample).
    key : str or None
        Cache key, filled by :func:`run_cases` in the main process.
    """

    position: int
    case_id: str
    subject_id: str
    files: tuple[str, ...]
    payload: Any = None
    salt: str = ""
    key: str | None = None


@dataclass
class CaseResult:
    """What one case produced: rows (None when the case failed), failures and small metadata.

    ``info`` must be JSON-serialisable: it is cached with the rows.
    """

    position: int
    rows: pd.DataFrame | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False


def failure_record(
    task: CaseTask, file: str, stage: str, message: str, lesion_id: int | None = None
) -> dict[str, Any]:
    """Return one failure record (a row of the failures table)."""
    return {
        "case_id": task.case_id,
        "subject_id": task.subject_id,
        "lesion_id": lesion_id,
        "file": file,
        "stage": stage,
        "message": message,
    }


def failed(task: CaseTask, file: str, stage: str, message: str) -> CaseResult:
    """Return the result of a case that failed as a whole."""
    return CaseResult(task.position, None, [failure_record(task, file, stage, message)])


def error_message(err: BaseException) -> str:
    """Return the message recorded for an error raised while processing a case."""
    if isinstance(err, RadharmonyError):
        return str(err)
    # Unexpected errors keep their type and innermost frame so the report can be acted upon.
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" (in {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


def failure_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Return failure records as a DataFrame with the columns of ``FAILURE_COLUMNS``."""
    failures = pd.DataFrame.from_records(list(records), columns=list(FAILURE_COLUMNS))
    failures["lesion_id"] = failures["lesion_id"].astype("Int64")
    return failures


def failures_of(table: pd.DataFrame) -> pd.DataFrame:
    """Return the failures table of a per-case stage's output.

    Stage outputs keep their failures as plain records in ``table.attrs["failures"]`` (a list of
    dicts), which survive copies, ``pandas.concat`` and parquet round trips; this returns them as
    a DataFrame with the columns ``case_id``, ``subject_id``, ``lesion_id``, ``file``, ``stage``
    and ``message`` (empty when nothing failed or when ``attrs`` were lost, e.g. by a concat of
    tables with different failures).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`radharmony.extract_features`, :func:`radharmony.read_features` or a
        detection run.

    Returns
    -------
    pandas.DataFrame
    """
    records = table.attrs.get("failures") or []
    if isinstance(records, pd.DataFrame):  # a table built by hand with a DataFrame
        records = records.to_dict("records")
    return failure_table(records)


def run_cases(
    tasks: Sequence[CaseTask],
    work: Callable[[CaseTask], CaseResult],
    *,
    fingerprint: str,
    cache_dir: str | Path | None = None,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: Any = None,
    progress: bool | None = None,
    description: str = "processing",
    reusable: Callable[[CaseResult], bool] | None = None,
    verbose: Verbose = None,
) -> list[CaseResult]:
    """Run ``work`` on every task and return the results in task order.

    Parameters
    ----------
    tasks : sequence of CaseTask
        The cases; ``position`` gives the order of the returned results.
    work : callable
        A module-level function (picklable for worker processes) turning a task into a
        :class:`CaseResult`. It must catch its own errors and return them as failures.
    fingerprint : str
        Digest of everything besides the files that changes a result (settings, versions).
    cache_dir : str or Path, optional
        Folder of cached results. Cases whose files cannot be hashed (e.g. missing) run
        uncached, so that ``work`` reports the problem in its own words.
    n_jobs : int
        Local worker processes (``-1``: all cores); ignored with ``backend="dask"``.
    backend : {"loky", "dask"}
        Local processes or a Dask distributed cluster given by ``scheduler``.
    scheduler : str or dask.distributed.Client, optional
        The scheduler address or a connected client (``backend="dask"``).
    progress : bool, optional
        Older name of ``verbose`` (True: 1, False: 0).
    description : str
        Label of the progress bar.
    reusable : callable, optional
        Called on a cached result; when it returns False the case is recomputed (e.g. an output
        file the result refers to was deleted).
    verbose : int or bool, optional
        0: silent; 1: a progress bar; None (default): a bar for 10 cases or more.

    Returns
    -------
    list of CaseResult
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'loky' or 'dask', got {backend!r}")
    if backend == "dask" and scheduler is None:
        raise ValueError("backend='dask' needs scheduler= (an address or a dask Client)")
    cache = Path(cache_dir).resolve() if cache_dir is not None else None
    tasks = list(tasks)
    if cache is not None:
        tasks = [dataclasses.replace(t, key=_key_or_none(t, fingerprint)) for t in tasks]
    # Cases already in the cache are read here: a resumed run then starts no worker for them.
    cached = [_cached_result(t, cache) for t in tasks] if cache else [None] * len(tasks)
    if reusable is not None:
        cached = [r if r is None or reusable(r) else None for r in cached]
    results = [r for r in cached if r is not None]
    todo = [t for t, r in zip(tasks, cached, strict=True) if r is None]
    _LOG.info("%s: %d case(s) from the cache, %d to run", description, len(results), len(todo))
    if todo:
        dispatch = _run_dask if backend == "dask" else _run_local
        stream = dispatch(_largest_first(todo), work, cache, n_jobs, scheduler)
        level = resolve_verbose(verbose, progress)
        results += _collect(stream, len(todo), level, description)
    results.sort(key=lambda r: r.position)
    return results


def _key_or_none(task: CaseTask, fingerprint: str) -> str | None:
    try:
        return _cache.case_key(task.files, fingerprint, task.salt)
    except OSError:
        return None  # run uncached: the worker reports the unreadable file in its own words


def _cached_result(task: CaseTask, cache: Path | None) -> CaseResult | None:
    if task.key is None or cache is None:
        return None
    cached = _cache.load_cached(cache, task.key)
    if cached is None:
        return None
    attrs = dict(cached.attrs)
    failures = [dict(f) for f in attrs.pop("failures", [])]
    cached.attrs = {}
    return CaseResult(task.position, cached, failures, attrs, from_cache=True)


def _largest_first(tasks: list[CaseTask]) -> list[CaseTask]:
    # Big cases started last would leave cores idle at the end of a run; the size of the files
    # on disk is a cheap proxy of the work a case needs.
    def size(task: CaseTask) -> int:
        try:
            return sum(Path(f).stat().st_size for f in task.files)
        except OSError:
            return 0

    return sorted(tasks, key=lambda task: (-size(task), task.position))


def _collect(
    stream: Iterable[CaseResult], total: int, verbose: int | None, description: str
) -> list[CaseResult]:
    bar = progress_bar(
        stream,
        total=total,
        description=description,
        verbose=verbose,
        unit="case",
        automatic_from=10,
    )
    return list(bar)


def _run_local(
    tasks: list[CaseTask],
    work: Callable[[CaseTask], CaseResult],
    cache: Path | None,
    n_jobs: int,
    scheduler: Any,
) -> Iterable[CaseResult]:
    from joblib import Parallel, delayed

    if n_jobs == 1:
        return (run_case(task, work, cache) for task in tasks)
    return Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="n_jobs")(
        delayed(run_case)(task, work, cache) for task in tasks
    )


def _run_dask(
    tasks: list[CaseTask],
    work: Callable[[CaseTask], CaseResult],
    cache: Path | None,
    n_jobs: int,
    scheduler: Any,
) -> Iterable[CaseResult]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as err:
        raise ImportError(
            "backend='dask' needs dask.distributed: pip install 'radharmony[dask]'"
        ) from err
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(run_case, tasks, work=work, cache=cache, pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        if client is not scheduler:
            client.close()


def run_case(
    task: CaseTask, work: Callable[[CaseTask], CaseResult], cache: Path | None
) -> CaseResult:
    """Run one case with BLAS pinned to one thread and store its result in the cache."""
    from threadpoolctl import threadpool_limits

    # One case per core: nested BLAS threads would only oversubscribe the machine.
    with threadpool_limits(limits=1):
        result = work(task)
    if cache is not None and task.key is not None and result.rows is not None:
        rows = result.rows.copy()
        rows.attrs = {"failures": result.failures, **result.info}
        _cache.store(cache, task.key, rows)
    return result
