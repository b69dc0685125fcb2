"""Running a whole study: extraction, IBSI check, harmonisation, evaluation, explanations."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from radharmony._progress import get_logger
from radharmony.errors import ModelError
from radharmony.study._config import StudyConfig, check_study_inputs

_LOG = get_logger(__name__)


@dataclass
class StudyResult:
    """Everything a study computed (see :func:`run_study`).

    Attributes
    ----------
    config : StudyConfig
    features : pandas.DataFrame
        Per-lesion feature table (with ``attrs["failures"]``, see :func:`radharmony.failures_of`,
        and ``attrs["provenance"]``).
    analysed : pandas.DataFrame
        The labelled lesions used for modelling (feature table joined with the target).
    feature_columns : list of str
        Radiomic feature columns given to the model.
    compliance : dict of str to DataFrame
        IBSI compliance check per configuration (empty when no IBSI data was given).
    harmonization : HarmonizationReport or None
        Diagnostics of the default harmoniser.
    evaluation : EvaluationResult
        Nested, patient-grouped CV with harmonisation inside the folds.
    external : EvaluationResult or None
        Leave-one-scanner-out evaluation (no harmonisation: an unseen scanner cannot be
        adjusted).
    explanation : shap.Explanation
        SHAP values of the final model on every analysed lesion.
    oof_explanation : shap.Explanation
        Out-of-fold SHAP values (each case explained by the model that predicted it).
    cases : pandas.DataFrame
        One row per analysed lesion: out-of-fold prediction, confidence, conformal set, refer
        flag and top contributions.
    unlabelled : int
        Lesions dropped because they have no target value.
    files : dict of str to Path
        Paths of everything written.
    detection : DetectionResult or None
        Lesion detection, when the configuration has a ``detect:`` section.
    analysis_from_cache : bool
        True when harmonisation diagnostics, evaluation and explanations were read back from
        the study's analysis cache instead of being computed.
    """

    config: StudyConfig
    features: pd.DataFrame
    analysed: pd.DataFrame
    feature_columns: list[str]
    compliance: dict[str, pd.DataFrame]
    harmonization: Any
    evaluation: Any
    external: Any
    explanation: Any
    oof_explanation: Any
    cases: pd.DataFrame
    unlabelled: int
    files: dict[str, Path]
    detection: Any = None
    analysis_from_cache: bool = False


def run_study(
    config: StudyConfig,
    *,
    log: Callable[[str], None] | None = None,
    verbose: bool | int | None = None,
    cache: bool = True,
) -> StudyResult:
    """Run every step of a study and write its tables, figures, model and report.

    Extraction is cached per case in ``<out>/features.parquet.cache``, so a study that was
    interrupted resumes where it stopped. Harmonisation diagnostics, the nested evaluation (with
    its bootstrap) and the SHAP explanations are cached together in ``<out>/analysis.cache``,
    keyed by the analysed table (features and labels), the configuration keys that change them
    and the versions of radharmony and its numerical dependencies: running the same study again
    only rewrites the outputs.

    Parameters
    ----------
    config : StudyConfig
        The validated configuration (see :func:`load_study_config`).
    log : callable, optional
        Receives one line per step; default: :func:`print`, or nothing with ``verbose=0``.
    verbose : int or bool, optional
        0: no progress bars and no step lines; default: both.
    cache : bool
        False computes everything again without reading or writing the caches.

    Returns
    -------
    StudyResult
    """
    from radharmony.extract import extract_features, failures_of, write_features

    # A missing labels file or a wrong target must not cost an extraction first.
    check_study_inputs(config)
    started = time.perf_counter()
    if log is None:
        log = _silent if verbose is not None and int(verbose) == 0 else print

    def step(message: str) -> None:
        log(f"{message}  ({time.perf_counter() - started:.0f} s)")

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    detection = None
    if config.detect is not None:
        from radharmony.study._detection import run_detection

        step(f"[0/6] detecting lesions in {config.detect.subjects}")
        detection = run_detection(
            config.detect, out, n_jobs=config.n_jobs, log=log, verbose=verbose
        )
        files.update({f"detection_{k}": v for k, v in detection.files.items()})
    step(f"[1/6] extracting features from {config.manifest}")
    table_path = out / "features.parquet"
    features = extract_features(
        config.manifest,
        settings=config.settings,
        n_jobs=config.n_jobs,
        cache_dir=out / "features.parquet.cache" if cache else None,
        connectivity=config.connectivity,
        min_lesion_voxels=config.min_lesion_voxels,
        verbose=1 if verbose is None else verbose,
    )
    files.update({f"features_{k}": v for k, v in write_features(features, table_path).items()})
    log(
        f"      {len(features)} lesions, {len(failures_of(features))} failure(s), "
        f"{features.attrs.get('cached_cases', 0)} case(s) from cache"
    )

    step("[2/6] IBSI compliance check")
    compliance = _compliance(config.ibsi_data)

    analysed, unlabelled = _labelled(features, config)
    columns = _feature_columns(analysed, config.target)
    X = analysed[columns]
    y = analysed[config.target].astype(str).to_numpy()
    analysis, from_cache = cached_analysis(
        analysed, columns, config, cache=cache, step=step, verbose=verbose
    )
    harmonization, evaluation, external, explanation, oof_explanation, cases = analysis
    files.update(_write_tables(out, evaluation, external, harmonization, explanation, cases))
    files["model"] = _save_model(out, evaluation, X, y, config)

    result = StudyResult(
        config=config,
        features=features,
        analysed=analysed,
        feature_columns=columns,
        compliance=compliance,
        harmonization=harmonization,
        evaluation=evaluation,
        external=external,
        explanation=explanation,
        oof_explanation=oof_explanation,
        cases=cases,
        unlabelled=unlabelled,
        files=files,
        detection=detection,
        analysis_from_cache=from_cache,
    )
    step("[6/6] writing the report")
    from radharmony.report import make_study_report

    files["report"] = make_study_report(result).save_as_html(out / "report.html")
    step("done")
    return result


def _silent(line: str) -> None:
    """A ``log`` that drops every line."""


#: Configuration keys that change harmonisation diagnostics, evaluation or explanations.
ANALYSIS_KEYS: tuple[str, ...] = (
    "target",
    "covariates",
    "harmonize",
    "model",
    "selection",
    "n_features",
    "calibration",
    "cv",
    "inner_cv",
    "leave_one_scanner_out",
    "conformal_level",
    "mondrian",
    "n_bootstrap",
    "seed",
)
#: Analyses kept in the cache (least recently used ones are removed first).
ANALYSIS_CACHE_ENTRIES = 4
#: Distributions whose version is part of the analysis cache key.
ANALYSIS_DEPENDENCIES: tuple[str, ...] = (
    "radharmony",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "shap",
    "neuroCombat",
    "joblib",
)


def cached_analysis(
    analysed: pd.DataFrame,
    columns: list[str],
    config: StudyConfig,
    *,
    cache: bool = True,
    step: Callable[[str], None] = _silent,
    verbose: bool | int | None = None,
) -> tuple[tuple[Any, ...], bool]:
    """Run (or read back) harmonisation diagnostics, evaluation and explanations of a study.

    The cache is a :class:`joblib.Memory` in ``<out>/analysis.cache``; its key is the analysed
    table, the feature columns, the configuration keys in :data:`ANALYSIS_KEYS` and the versions
    of :data:`ANALYSIS_DEPENDENCIES` (``n_jobs`` does not change results and is not part of
    it). Only that folder is ever read; a folder that resolves elsewhere (a symbolic link) is
    not used.

    Returns
    -------
    tuple
        ``(harmonization, evaluation, external, explanation, oof_explanation, cases)`` and
        whether it came from the cache.
    """
    from joblib import Memory

    location = _analysis_cache_folder(config.out) if cache else None
    memory = Memory(location, verbose=0)
    compute = memory.cache(_analysis, ignore=["n_jobs", "verbose", "step"])
    options = {key: getattr(config, key) for key in ANALYSIS_KEYS}
    arguments = (analysed, tuple(columns), options, _dependency_versions())
    extra = {"n_jobs": config.n_jobs, "verbose": verbose, "step": step}
    hit = location is not None and compute.check_call_in_cache(*arguments, **extra)
    if hit:
        step("[3-5/6] harmonisation diagnostics, evaluation and explanations: from the cache")
    _LOG.info("analysis cache %s: %s", location, "hit" if hit else "miss")
    analysis = compute(*arguments, **extra)
    if location is not None:
        # Every changed setting adds an entry; the most recent few are enough to go back.
        memory.reduce_size(items_limit=ANALYSIS_CACHE_ENTRIES)
    return analysis, bool(hit)


def _analysis_cache_folder(out: Path) -> Path | None:
    root = Path(out).resolve()
    folder = (root / "analysis.cache").resolve()
    if not folder.is_relative_to(root):
        warnings.warn(
            f"{root / 'analysis.cache'} points outside the study folder {root}; the analysis "
            "is computed without its cache",
            stacklevel=3,
        )
        return None
    return folder


def _dependency_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ANALYSIS_DEPENDENCIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def _analysis(
    analysed: pd.DataFrame,
    columns: tuple[str, ...],
    options: dict[str, Any],
    versions: dict[str, str],
    *,
    n_jobs: int,
    verbose: bool | int | None,
    step: Callable[[str], None],
) -> tuple[Any, ...]:
    # ``versions`` is unused here: it only keys the cache.
    config = SimpleNamespace(**options, n_jobs=n_jobs, verbose=verbose)
    X = analysed[list(columns)]
    y = analysed[config.target].astype(str).to_numpy()
    batch = analysed["scanner"].astype(str).to_numpy()
    groups = analysed["subject_id"].astype(str).to_numpy()
    covariates = analysed[list(config.covariates)] if config.covariates else None

    step("[3/6] harmonisation diagnostics")
    harmonization = _harmonization(X, batch, covariates, y, config)

    step(f"[4/6] nested {config.cv}-fold cross-validation (harmonisation inside the folds)")
    evaluation = _evaluate(X, y, groups, batch, covariates, analysed, config, cv=config.cv)
    external = None
    if config.leave_one_scanner_out and len(set(batch)) > 1:
        step("      leave-one-scanner-out validation")
        external = _evaluate(
            X, y, groups, batch, covariates, analysed, config, cv="leave-one-site-out"
        )

    step("[5/6] SHAP explanations")
    explanation, oof_explanation, cases = _explanations(
        evaluation, X, batch, covariates, analysed, verbose
    )
    return harmonization, evaluation, external, explanation, oof_explanation, cases


def _compliance(ibsi_data: Path | None) -> dict[str, pd.DataFrame]:
    from radharmony.ibsi import check_compliance

    if ibsi_data is None:
        return {}
    phantom = Path(ibsi_data) / "ibsi_1_digital_phantom" / "nifti"
    reference = Path(ibsi_data) / "reference_values" / "ibsi_1_dig_phantom.csv"
    if not (phantom.is_dir() and reference.is_file()):
        return {}
    return {
        "digital_phantom": check_compliance(
            phantom / "image" / "phantom.nii.gz",
            phantom / "mask" / "mask.nii.gz",
            "digital_phantom",
            reference,
        )
    }


def _labelled(features: pd.DataFrame, config: StudyConfig) -> tuple[pd.DataFrame, int]:
    if config.labels is not None:
        labels = pd.read_csv(config.labels)
        needed = {"subject_id", "lesion_id", config.target}
        if not needed <= set(labels.columns):
            raise ModelError(
                f"labels file {config.labels} needs columns {sorted(needed)}; found "
                f"{list(labels.columns)}"
            )
        labels = labels[["subject_id", "lesion_id", config.target]].astype(
            {"subject_id": str, "lesion_id": int}
        )
        table = features.merge(labels, on=["subject_id", "lesion_id"], how="left")
    elif config.target in features.columns:
        table = features.copy()
    else:
        raise ModelError(
            f"target {config.target!r} is neither a manifest column nor given in a labels file; "
            "add `labels: FILE.csv` (subject_id, lesion_id, target) to the configuration"
        )
    missing = table[config.target].isna()
    analysed = table[~missing].reset_index(drop=True)
    analysed.index = analysed["case_id"].astype(str) + "#" + analysed["lesion_id"].astype(str)
    analysed.index.name = "lesion"
    return analysed, int(missing.sum())


def _feature_columns(analysed: pd.DataFrame, target: str) -> list[str]:
    # extract_features puts identity, covariate and lesion columns first, ending with the
    # centroid; the radiomic features follow. The target (joined last) is not a feature.
    first = list(analysed.columns).index("centroid_z_mm") + 1
    candidates = analysed.columns[first:]
    return [
        str(c)
        for c in candidates
        if c != target
        and pd.api.types.is_numeric_dtype(analysed[c])
        and not analysed[c].isna().all()
    ]


def _harmonization(
    X: pd.DataFrame,
    batch: np.ndarray,
    covariates: pd.DataFrame | None,
    y: np.ndarray,
    config: Any,
) -> Any:
    from radharmony.harmonize import default_harmonizer, harmonization_report

    if len(set(batch)) < 2:
        return None
    filled = X.fillna(X.median())
    after = default_harmonizer().fit_transform(filled, batch=batch, covariates=covariates)
    return harmonization_report(
        filled,
        after,
        batch,
        covariates=covariates,
        label=y,
        harmonizer=default_harmonizer(),
        random_state=config.seed,
    )


def _evaluate(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    batch: np.ndarray,
    covariates: pd.DataFrame | None,
    analysed: pd.DataFrame,
    config: Any,
    *,
    cv: int | str,
) -> Any:
    from radharmony.model import evaluate

    return evaluate(
        X,
        pd.Series(y, index=X.index, name=config.target),
        groups=groups,
        batch=batch,
        covariates=covariates,
        volume=analysed["lesion_volume_mm3"].to_numpy(),
        model=config.model,
        harmonize="auto" if config.harmonize else False,
        cv=cv,
        inner_cv=config.inner_cv,
        conformal_level=config.conformal_level,
        mondrian=config.mondrian,
        n_bootstrap=config.n_bootstrap,
        random_state=config.seed,
        n_jobs=config.n_jobs,
        selection=config.selection,
        n_features=config.n_features,
        calibration=None if config.calibration == "none" else config.calibration,
        verbose=config.verbose,
    )


def _explanations(
    evaluation: Any,
    X: pd.DataFrame,
    batch: np.ndarray,
    covariates: pd.DataFrame | None,
    analysed: pd.DataFrame,
    verbose: bool | int | None = None,
) -> tuple[Any, Any, pd.DataFrame]:
    from radharmony.explain import explain, explain_out_of_fold, top_contributions

    harmonized = evaluation.settings.get("harmonize")
    meta_batch = batch if harmonized else None
    meta_cov = covariates if harmonized else None
    explanation = explain(
        evaluation.model, X, batch=meta_batch, covariates=meta_cov, verbose=verbose
    )
    oof = explain_out_of_fold(evaluation, X, batch=meta_batch, covariates=meta_cov, verbose=verbose)
    contributions = top_contributions(oof, n=5, index=X.index)
    identity = analysed[["case_id", "subject_id", "lesion_id", "scanner"]]
    cases = identity.join(evaluation.predictions).join(contributions)
    return explanation, oof, cases


def _write_tables(
    out: Path,
    evaluation: Any,
    external: Any,
    harmonization: Any,
    explanation: Any,
    cases: pd.DataFrame,
) -> dict[str, Path]:
    from radharmony.explain import global_importance

    files = {
        "predictions": out / "predictions.csv",
        "metrics": out / "metrics.csv",
        "metrics_json": out / "metrics.json",
        "coverage": out / "conformal_coverage.csv",
        "shap_importance": out / "shap_importance.csv",
        "model_search": out / "model_search.csv",
    }
    evaluation.search.to_csv(files["model_search"], index=False)
    if evaluation.per_site is not None:
        files["per_site"] = out / "per_site.csv"
        evaluation.per_site.to_csv(files["per_site"])
    cases.to_csv(files["predictions"])
    evaluation.metrics.to_csv(files["metrics"])
    evaluation.coverage.to_csv(files["coverage"], index=False)
    global_importance(explanation).to_csv(files["shap_importance"])
    summary = {"cross_validation": evaluation.summary()}
    if external is not None:
        files["external_metrics"] = out / "metrics_leave_one_scanner_out.csv"
        external.metrics.to_csv(files["external_metrics"])
        summary["leave_one_scanner_out"] = external.summary()
    files["metrics_json"].write_text(
        json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
    )
    if harmonization is not None:
        for path in harmonization.save(out / "harmonization"):
            files[f"harmonization_{path.stem}"] = path
    if evaluation.volume_check is not None:
        files["volume_correlations"] = out / "volume_correlations.csv"
        evaluation.volume_check.correlations.to_csv(files["volume_correlations"])
    return files


def _save_model(
    out: Path, evaluation: Any, X: pd.DataFrame, y: np.ndarray, config: StudyConfig
) -> Path:
    from radharmony.model import data_provenance, save_model

    provenance = data_provenance(X, pd.Series(y, name=config.target), source=str(config.manifest))
    provenance.update(
        {
            "target": config.target,
            "classes": [str(c) for c in evaluation.classes],
            "conformal_level": evaluation.conformal_level,
            "conformal_mondrian": evaluation.mondrian,
        }
    )
    return save_model(evaluation.model, out / "model.skops", provenance=provenance)
