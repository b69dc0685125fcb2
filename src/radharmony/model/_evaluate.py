"""Nested, patient-grouped cross-validation with calibration, conformal sets and a volume check."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Memory
from numpy.typing import ArrayLike, NDArray
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import (
    LeaveOneGroupOut,
    ParameterGrid,
    StratifiedGroupKFold,
    StratifiedKFold,
)
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from radharmony.errors import HarmonizationError, ModelError
from radharmony.model import _checks, _conformal, _volume
from radharmony.model._metrics import bootstrap_metrics, classification_metrics
from radharmony.model._pipeline import (
    build_pipeline,
    default_param_grid,
    selected_features,
    set_pipeline_params,
    uses_harmonizer,
)
from radharmony.model._result import EvaluationResult, per_site_table, predictions_table

Split = _checks.Split
SITE_CV = ("leave-one-site-out", "loso")


@dataclass
class _Data:
    """The aligned inputs of one evaluation, sliceable by row positions."""

    X: pd.DataFrame
    y: NDArray[Any]
    groups: NDArray[Any]
    batch: NDArray[Any] | None
    covariates: pd.DataFrame | None

    def take(self, rows: NDArray[np.int_]) -> _Data:
        return _Data(
            self.X.iloc[rows],
            self.y[rows],
            self.groups[rows],
            None if self.batch is None else self.batch[rows],
            None if self.covariates is None else self.covariates.iloc[rows],
        )

    def metadata(self) -> dict[str, Any]:
        """Keyword arguments routed to the harmonisation step."""
        meta: dict[str, Any] = {}
        if self.batch is not None:
            meta["batch"] = self.batch
        if self.covariates is not None:
            meta["covariates"] = self.covariates
        return meta


def evaluate(
    features: pd.DataFrame,
    target: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    batch: ArrayLike | None = None,
    covariates: pd.DataFrame | None = None,
    sites: ArrayLike | None = None,
    volume: str | ArrayLike | None = "auto",
    model: str | Pipeline = "logistic_l2",
    param_grid: dict[str, list[Any]] | None = None,
    harmonize: bool | str | Any = "auto",
    cv: int | str = 5,
    inner_cv: int = 3,
    conformal_level: float = 0.9,
    mondrian: bool = False,
    confidence_level: float = 0.95,
    n_bootstrap: int = 1000,
    volume_alpha: float = 0.05,
    random_state: int = 0,
    **pipeline_options: Any,
) -> EvaluationResult:
    """Evaluate a radiomic classifier with nested, patient-grouped cross-validation.

    Every fitted step (imputation, ComBat, filters, scaling, selection, classifier, probability
    calibration) is learnt on the outer training rows only; hyper-parameters are tuned by an
    inner grouped CV on those rows. Conformal thresholds come from inner out-of-fold
    probabilities of the outer training rows (cross-conformal) and coverage is measured on the
    outer test rows. A volume-only model is evaluated on the same outer folds.

    Parameters
    ----------
    features : pandas.DataFrame
        Numeric feature columns, one row per lesion (NaN allowed; imputed inside folds).
    target : array-like of shape (n,)
        Class of each row (binary or multi-class).
    groups : array-like of shape (n,), optional
        Patient of each row: lesions of one patient never straddle training and test rows, and
        bootstrap intervals resample patients. Default: every row is its own patient.
    batch : array-like of shape (n,), optional
        Scanner/protocol of each row, routed to ComBat.
    covariates : pandas.DataFrame, optional
        Biological covariates ComBat preserves (never the target: that leaks labels).
    sites : array-like of shape (n,), optional
        Site of each row for per-site metrics and leave-one-site-out CV. Default: ``batch``.
    volume : str, array-like, None or "auto"
        Lesion volume for the volume-confound check: a column of ``features``, an array, or
        ``"auto"`` to find a volume column by name (``lesion_volume_mm3``,
        ``*original_shape_VoxelVolume``, ...). None skips the check (not recommended).
    model : str or Pipeline
        A model name of :func:`build_pipeline`, or a pipeline built by it.
    param_grid : dict, optional
        Inner-loop grid (uncalibrated naming, e.g. ``{"clf__C": [0.1, 1]}``). Default: the
        small grid of :func:`default_param_grid` for a named model, none for a pipeline.
    harmonize : bool, estimator or "auto"
        ComBat inside the folds. ``"auto"``: on when ``batch`` is given and the CV is not
        leave-one-site-out (ComBat cannot adjust a scanner it has never seen).
    cv : int or str
        Number of outer folds (stratified, grouped by patient), or ``"leave-one-site-out"``.
    inner_cv : int
        Number of inner folds used for tuning and for the conformal calibration scores.
    conformal_level : float
        Nominal coverage of the prediction sets.
    mondrian : bool
        Class-conditional conformal thresholds (coverage guaranteed per class).
    confidence_level : float
        Level of the bootstrap confidence intervals.
    n_bootstrap : int
        Number of bootstrap resamples.
    volume_alpha : float
        Significance level of the "signature beats volume" test.
    random_state : int
        Seed of the splits, classifiers and bootstrap.
    **pipeline_options
        Passed to :func:`build_pipeline` (``selection``, ``n_features``, ``calibration``, ...).

    Returns
    -------
    EvaluationResult
        Out-of-fold predictions, metrics with intervals, conformal coverage, per-site metrics,
        the volume check and the final model fitted on all rows.

    Raises
    ------
    ModelError
        On misaligned inputs, infinite values, a single class, a covariate equal to the target,
        a patient whose rows would straddle folds, too few patients per class for the requested
        folds, a leave-one-site-out fold without training rows of some class, or data ComBat
        cannot harmonise (one scanner, a one-row scanner, class confounded with scanner, a test
        scanner absent from training).
    HarmonizationError
        When ComBat fails inside a fold; the message names the fold.

    Warns
    -----
    UserWarning
        For feature columns without any value (dropped inside every fold) and, without
        harmonisation, when every site holds a single class.
    """
    # Many small fits: multi-threaded BLAS/OpenMP only adds contention, so threads are limited
    # for the duration of the call.
    with (
        threadpool_limits(limits=1),
        tempfile.TemporaryDirectory(prefix="radharmony-cv-") as cache_dir,
    ):
        return _evaluate(
            features,
            target,
            memory=Memory(cache_dir, verbose=0),
            groups=groups,
            batch=batch,
            covariates=covariates,
            sites=sites,
            volume=volume,
            model=model,
            param_grid=param_grid,
            harmonize=harmonize,
            cv=cv,
            inner_cv=inner_cv,
            conformal_level=conformal_level,
            mondrian=mondrian,
            confidence_level=confidence_level,
            n_bootstrap=n_bootstrap,
            volume_alpha=volume_alpha,
            random_state=random_state,
            **pipeline_options,
        )


def _evaluate(
    features: pd.DataFrame,
    target: ArrayLike,
    *,
    groups: ArrayLike | None,
    batch: ArrayLike | None,
    covariates: pd.DataFrame | None,
    sites: ArrayLike | None,
    volume: str | ArrayLike | None,
    model: str | Pipeline,
    param_grid: dict[str, list[Any]] | None,
    harmonize: bool | str | Any,
    cv: int | str,
    inner_cv: int,
    conformal_level: float,
    mondrian: bool,
    confidence_level: float,
    n_bootstrap: int,
    volume_alpha: float,
    random_state: int,
    memory: Memory | None = None,
    **pipeline_options: Any,
) -> EvaluationResult:
    """Body of :func:`evaluate` (same parameters)."""
    data, classes = _validated_data(features, target, groups, batch, covariates)
    sites_arr = _optional_array(sites if sites is not None else batch, len(data.y), "sites")
    site_cv = isinstance(cv, str)
    if site_cv and cv not in SITE_CV:
        raise ModelError(f"unknown cv {cv!r}; use an integer or 'leave-one-site-out'")
    if site_cv and sites_arr is None:
        raise ModelError("cv='leave-one-site-out' needs sites= or batch=")
    if harmonize == "auto":
        # One scanner has no scanner effect to remove: harmonisation is then left out.
        harmonize = data.batch is not None and not site_cv and len(set(data.batch)) > 1
    if harmonize and data.batch is None:
        raise ModelError("harmonize needs batch=: the scanner/protocol of each row")
    tune_pipe, final_pipe, grid = _pipelines(model, harmonize, param_grid, pipeline_options)
    # Grid points and the calibrated refit share every step before selection: caching those
    # fits (per training subset) avoids refitting the harmoniser for each grid point.
    tune_pipe = clone(tune_pipe).set_params(memory=memory)
    final_pipe = clone(final_pipe).set_params(memory=memory)
    if not hasattr(final_pipe, "predict_proba"):
        raise ModelError(
            f"model {model!r} gives no probabilities without calibration; pass "
            "calibration='sigmoid' (or 'isotonic'/'temperature')"
        )
    if data.batch is not None and not uses_harmonizer(final_pipe):
        data.batch, data.covariates = None, None

    splits = list(_outer_splits(data, sites_arr, cv, random_state))
    _checks.check_no_straddling(splits, data.groups)
    _checks.check_training_classes(splits, data.y, classes, sites_arr)
    if data.batch is not None:
        _checks.check_harmonizable(data.y, data.batch, splits, site_cv)
    else:
        _checks.warn_if_confounded(data.y, sites_arr)
    proba = np.full((len(data.y), classes.size), np.nan)
    fold = np.zeros(len(data.y), dtype=int)
    thresholds = np.zeros((len(data.y), classes.size))
    fold_models, best_params, fold_features = [], [], []
    for k, (train, test) in enumerate(splits):
        with _fold_context(f"outer fold {k}"):
            fitted, params, fold_thresholds = _fit_fold(
                tune_pipe,
                final_pipe,
                grid,
                data.take(train),
                classes,
                inner_cv,
                conformal_level,
                mondrian,
                random_state,
            )
            fold_proba = _predict_proba(fitted, data.take(test), classes)
        proba[test] = fold_proba
        fold[test], thresholds[test] = k, fold_thresholds
        fold_models.append(fitted)
        best_params.append(params)
        fold_features.append(selected_features(fitted, list(data.X.columns)))

    with _fold_context("the final model (all rows)"):
        final_model, final_params, _ = _fit_fold(
            tune_pipe, final_pipe, grid, data, classes, inner_cv, None, mondrian, random_state
        )
    true_index = np.searchsorted(classes, data.y)
    # Each outer fold has its own thresholds, so the sets are built row by row.
    sets = (1.0 - proba) <= thresholds
    predictions = predictions_table(data, proba, fold, sets, classes, sites_arr)
    metrics = bootstrap_metrics(
        data.y,
        proba,
        classes,
        groups=data.groups,
        confidence_level=confidence_level,
        n_resamples=n_bootstrap,
        random_state=random_state,
    )
    # The cache folder is temporary: fitted models must not point to it (nor be unsavable).
    for fitted in [final_model, *fold_models]:
        fitted.set_params(memory=None)
    result = EvaluationResult(
        predictions=predictions,
        metrics=metrics,
        coverage=_conformal.coverage_table(sets, true_index, classes, sites=sites_arr),
        per_site=None
        if sites_arr is None
        else per_site_table(data.y, proba, sets, classes, sites_arr),
        volume_check=None,
        model=final_model,
        fold_models=fold_models,
        splits=splits,
        best_params=best_params,
        final_params=final_params,
        classes=classes,
        feature_names=[str(c) for c in data.X.columns],
        conformal_level=conformal_level,
        conformal_thresholds=_conformal.conformal_thresholds(
            proba, true_index, conformal_level, mondrian=mondrian
        ),
        settings={
            "model": model if isinstance(model, str) else type(model).__name__,
            "harmonize": bool(harmonize),
            "cv": cv,
            "inner_cv": inner_cv,
            "mondrian": mondrian,
            "confidence_level": confidence_level,
            "n_bootstrap": n_bootstrap,
            "random_state": random_state,
            "param_grid": grid,
            **pipeline_options,
        },
        fold_features=fold_features,
        final_features=selected_features(final_model, list(data.X.columns)),
    )
    result.volume_check = _volume_check(
        result, data, volume, splits, volume_alpha, n_bootstrap, random_state
    )
    return result


def _pipelines(
    model: str | Pipeline,
    harmonize: bool | Any,
    param_grid: dict[str, list[Any]] | None,
    options: dict[str, Any],
) -> tuple[Pipeline, Pipeline, dict[str, list[Any]]]:
    """Return (pipeline tuned in the inner loop, calibrated pipeline, grid)."""
    if isinstance(model, Pipeline):
        return model, model, dict(param_grid or {})
    if not isinstance(model, str):
        raise ModelError(f"model must be a model name or a Pipeline, got {type(model).__name__}")
    harmonizer = harmonize if harmonize not in (True, False) else bool(harmonize)
    tune_options = {**options, "calibration": None}
    tune = build_pipeline(model, harmonize=harmonizer, **tune_options)
    final = build_pipeline(model, harmonize=harmonizer, **options)
    grid = (
        param_grid
        if param_grid is not None
        else default_param_grid(model, options.get("selection", "univariate"))
    )
    return tune, final, dict(grid)


def _fit_fold(
    tune_pipe: Pipeline,
    final_pipe: Pipeline,
    grid: dict[str, list[Any]],
    train: _Data,
    classes: NDArray[Any],
    inner_cv: int,
    conformal_level: float | None,
    mondrian: bool,
    random_state: int,
) -> tuple[Pipeline, dict[str, Any], NDArray[np.float64]]:
    """Tune, fit the calibrated pipeline and compute conformal thresholds on training rows."""
    inner = list(
        _grouped_splits(train.y, train.groups, inner_cv, random_state + 1, what="inner_cv")
    )
    params = _tune(tune_pipe, grid, train, inner)
    thresholds = np.full(classes.size, np.inf)
    if conformal_level is not None:
        oof = np.full((len(train.y), classes.size), np.nan)
        for fit_rows, score_rows in inner:
            model = _fit(set_pipeline_params(clone(final_pipe), params), train.take(fit_rows))
            oof[score_rows] = _predict_proba(model, train.take(score_rows), classes)
        thresholds = _conformal.conformal_thresholds(
            oof, np.searchsorted(classes, train.y), conformal_level, mondrian=mondrian
        )
    model = _fit(set_pipeline_params(clone(final_pipe), params), train)
    return model, params, thresholds


def _tune(
    pipeline: Pipeline, grid: dict[str, list[Any]], train: _Data, inner: list[Split]
) -> dict[str, Any]:
    """Return the grid point with the best mean inner ROC AUC (first one on ties)."""
    candidates = list(ParameterGrid(grid)) if grid else [{}]
    if len(candidates) == 1:
        return candidates[0]
    classes = np.unique(train.y)
    scores: list[float] = []
    for params in candidates:
        fold_auc = []
        for fit_rows, score_rows in inner:
            model = _fit(set_pipeline_params(clone(pipeline), params), train.take(fit_rows))
            held_out = train.take(score_rows)
            proba = _ranking_scores(model, held_out, classes)
            fold_auc.append(classification_metrics(held_out.y, proba, classes)["roc_auc"])
        scores.append(float(np.nanmean(fold_auc)) if np.isfinite(fold_auc).any() else -np.inf)
    return candidates[int(np.argmax(scores))]


def _fit(pipeline: Pipeline, data: _Data) -> Pipeline:
    """Fit a pipeline, routing batch/covariates to the harmoniser when it has one."""
    if not uses_harmonizer(pipeline):
        return pipeline.fit(data.X, data.y)
    with config_context(enable_metadata_routing=True):
        return pipeline.fit(data.X, data.y, **data.metadata())


def _predict_proba(pipeline: Pipeline, data: _Data, classes: NDArray[Any]) -> NDArray[np.float64]:
    """Return probabilities with columns in the order of ``classes`` (0 for unseen classes)."""
    if uses_harmonizer(pipeline):
        with config_context(enable_metadata_routing=True):
            raw = pipeline.predict_proba(data.X, **data.metadata())
    else:
        raw = pipeline.predict_proba(data.X)
    proba = np.zeros((len(data.y), classes.size))
    proba[:, np.searchsorted(classes, pipeline.classes_)] = raw
    return proba


def _ranking_scores(pipeline: Pipeline, data: _Data, classes: NDArray[Any]) -> NDArray[np.float64]:
    """Per-class scores for ranking (probabilities, or decision values without them)."""
    if hasattr(pipeline, "predict_proba"):
        return _predict_proba(pipeline, data, classes)
    with config_context(enable_metadata_routing=uses_harmonizer(pipeline)):
        raw = pipeline.decision_function(data.X, **data.metadata())
    if raw.ndim == 1:
        return np.column_stack([-raw, raw])
    scores = np.full((len(data.y), classes.size), -np.inf)
    scores[:, np.searchsorted(classes, pipeline.classes_)] = raw
    return scores


def _grouped_splits(
    y: NDArray[Any], groups: NDArray[Any], n_splits: int, random_state: int, *, what: str = "cv"
) -> Iterator[Split]:
    """Stratified K-fold splits that keep each group's rows together."""
    where = " in the training rows of each outer fold" if what == "inner_cv" else ""
    _checks.check_fold_counts(y, groups, n_splits, what, where)
    if pd.Series(groups).is_unique:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        yield from splitter.split(np.zeros(len(y)), y)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        yield from splitter.split(np.zeros(len(y)), y, groups)


def _outer_splits(
    data: _Data, sites: NDArray[Any] | None, cv: int | str, random_state: int
) -> Iterator[Split]:
    if isinstance(cv, str):
        yield from LeaveOneGroupOut().split(np.zeros(len(data.y)), data.y, sites)
    else:
        yield from _grouped_splits(data.y, data.groups, int(cv), random_state)


def _validated_data(
    features: pd.DataFrame,
    target: ArrayLike,
    groups: ArrayLike | None,
    batch: ArrayLike | None,
    covariates: pd.DataFrame | None,
) -> tuple[_Data, NDArray[Any]]:
    """Check and align the inputs; return them with the sorted class labels."""
    values = _checks.numeric_features(features)
    n = len(values)
    y, classes = _checks.target_and_classes(target, n)
    group_arr = _optional_array(groups, n, "groups")
    if group_arr is None:
        group_arr = np.arange(n)
    if covariates is not None:
        covariates = pd.DataFrame(covariates).reset_index(drop=True)
        _checks.check_target_not_covariate(covariates, y, target)
    return _Data(values, y, group_arr, _optional_array(batch, n, "batch"), covariates), classes


_optional_array = _checks.optional_array


@contextmanager
def _fold_context(where: str) -> Iterator[None]:
    """Re-raise a harmonisation failure with the fold it happened in."""
    try:
        yield
    except HarmonizationError as err:
        raise HarmonizationError(
            f"harmonisation failed while fitting {where}: {err} (Inside cross-validation "
            "ComBat sees only each fold's training rows, where a small scanner or covariate "
            "level can be missing or reduced to one row: merge small groups or use fewer folds.)"
        ) from err


def _volume_check(
    result: EvaluationResult,
    data: _Data,
    volume: str | ArrayLike | None,
    splits: list[Split],
    alpha: float,
    n_resamples: int,
    random_state: int,
) -> _volume.VolumeCheck | None:
    """Run the volume-confound check on the outer folds (None when no volume is known)."""
    if volume is None:
        return None
    if isinstance(volume, str):
        name = _volume.find_volume_column(list(data.X.columns)) if volume == "auto" else volume
        if name is None:
            return None
        if name not in data.X.columns:
            raise ModelError(f"volume column {name!r} is not among the feature columns")
        values = data.X[name].to_numpy(dtype=float)
    else:
        name, values = "volume", np.asarray(_optional_array(volume, len(data.y), "volume"), float)
    proba_sig = result.predictions[[f"proba_{c}" for c in result.classes]].to_numpy()
    proba_vol = _volume.volume_only_oof(values, data.y, splits, result.classes)
    sig_auc, vol_auc, p_value, test = _volume.compare_with_volume(
        data.y,
        proba_sig,
        proba_vol,
        result.classes,
        groups=data.groups,
        alpha=alpha,
        n_resamples=n_resamples,
        random_state=random_state,
    )
    beats, message = _volume.volume_message(sig_auc, vol_auc, p_value, test, alpha)
    return _volume.VolumeCheck(
        volume_column=name,
        signature_auc=sig_auc,
        volume_auc=vol_auc,
        difference=sig_auc - vol_auc,
        p_value=p_value,
        test=test,
        beats_volume=beats,
        correlations=_volume.volume_correlations(data.X, values, result.selection_frequency()),
        message=message,
    )
