"""Nested, patient-grouped cross-validation of the deployed procedure, with a volume check."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from numpy.typing import ArrayLike, NDArray
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from radharmony._progress import progress_bar
from radharmony.errors import HarmonizationError, ModelError
from radharmony.model import _checks, _volume
from radharmony.model._calibration import CalibratedPipeline, uses_harmonizer
from radharmony.model._ensemble import ConformalEnsemble
from radharmony.model._metrics import bootstrap_metrics
from radharmony.model._pipeline import build_pipeline, default_param_grid, selected_features
from radharmony.model._result import EvaluationResult, per_site_table, predictions_table

Split = _checks.Split
SITE_CV = ("leave-one-site-out", "loso")
#: What the prediction sets guarantee, and under which assumption (also in reports).
CONFORMAL_GUARANTEE = (
    "CV+ prediction sets: if the training patients and a new patient are exchangeable, the "
    "set covers the true class of every lesion of the new patient with probability at least "
    "1 - 2*alpha minus a finite-sample term of order 1/n (Barber et al. 2021); the coverage "
    "measured on the outer folds is the estimate to report. Mondrian sets make the statement "
    "per class. Nothing is guaranteed for a scanner or site absent from the training data: "
    "such cases are tested by the domain check and flagged for referral when outside."
)


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
            meta["covariates"] = self.covariates.reset_index(drop=True)
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
    model: str | Pipeline | CalibratedPipeline = "auto",
    param_grid: dict[str, list[Any]] | list[dict[str, list[Any]]] | None = None,
    harmonize: bool | str | Any = "auto",
    cv: int | str = 5,
    inner_cv: int = 5,
    conformal_level: float = 0.9,
    mondrian: bool | str = "auto",
    confidence_level: float = 0.95,
    n_bootstrap: int = 1000,
    volume_alpha: float = 0.05,
    domain_alpha: float = 0.01,
    random_state: int = 0,
    n_jobs: int | None = None,
    verbose: bool | int | None = None,
    **pipeline_options: Any,
) -> EvaluationResult:
    """Evaluate a radiomic classifier with nested, patient-grouped cross-validation.

    The deployed model is a :class:`ConformalEnsemble` fitted on all rows: ``inner_cv``
    members, each tuned (model family included, for ``model="auto"``), calibrated and fitted
    without one patient fold, with CV+ conformal sets. The outer cross-validation repeats that
    whole procedure on each outer training part and scores the outer test rows, so its metrics
    and its conformal coverage are honest estimates for the deployed procedure (fitted on a
    share ``(cv - 1)/cv`` of the patients). Every fitted step (imputation, harmonisation,
    filters, scaling, selection, classifier, calibration, domain check) sees training rows
    only. A volume-only model is evaluated on the same outer folds.

    What the conformal sets guarantee: if the patients are exchangeable (drawn from one
    population, e.g. the same scanners and referral pattern), a new patient's set covers the
    true class of all of its lesions with probability at least ``1 - 2 alpha`` minus a term of
    order ``1/n`` (CV+, Barber et al. 2021); the measured coverage is reported in
    ``coverage``. With Mondrian sets the statement holds within each class. Nothing is
    guaranteed for a scanner or site absent from the training data: every prediction carries a
    domain check (``domain_p_value``, ``domain_shift``) and a case outside the domain is
    flagged *refer*.

    Parameters
    ----------
    features : pandas.DataFrame
        Numeric feature columns, one row per lesion (NaN allowed; imputed inside folds).
    target : array-like of shape (n,)
        Class of each row (binary or multi-class).
    groups : array-like of shape (n,), optional
        Patient of each row: lesions of one patient never straddle training and test rows,
        conformal calibration units and bootstrap resamples are patients. Default: every row
        is its own patient.
    batch : array-like of shape (n,), optional
        Scanner/protocol of each row, routed to the harmoniser.
    covariates : pandas.DataFrame, optional
        Biological covariates the harmoniser preserves (never the target: that leaks labels).
    sites : array-like of shape (n,), optional
        Site of each row for per-site metrics, the per-site domain test and
        leave-one-site-out CV. Default: ``batch``.
    volume : str, array-like, None or "auto"
        Lesion volume for the volume-confound check: a column of ``features``, an array, or
        ``"auto"`` to find a volume column by name (``lesion_volume_mm3``,
        ``*original_shape_VoxelVolume``, ...; a :class:`VolumeCheckSkippedWarning` when none is
        found). None skips the check (not recommended).
    model : str, Pipeline or CalibratedPipeline
        ``"auto"`` (default: logistic regression, random forest and RBF SVM compared in the
        inner loop), a single family of :func:`build_pipeline`, or a pipeline built by it.
    param_grid : dict or list of dict, optional
        Inner-loop search space (uncalibrated naming, e.g. ``{"clf__C": [0.1, 1]}``).
        Default: :func:`default_param_grid` for a named model, none for a pipeline.
    harmonize : bool, estimator or "auto"
        Harmonisation inside the folds. ``"auto"``: on when ``batch`` holds several scanners
        and the CV is not leave-one-site-out (an unseen scanner cannot be adjusted).
    cv : int or str
        Number of outer folds (stratified, grouped by patient), or ``"leave-one-site-out"``.
    inner_cv : int
        Number of members of the ensemble (patient folds of the inner loop), at least 2.
    conformal_level : float
        Nominal coverage ``1 - alpha`` of the prediction sets.
    mondrian : bool or "auto"
        Class-conditional conformal sets; ``"auto"`` chooses them for imbalanced classes with
        enough patients per class (:func:`choose_mondrian`).
    confidence_level : float
        Level of the bootstrap confidence intervals.
    n_bootstrap : int
        Number of bootstrap resamples (class-stratified patient resampling).
    volume_alpha : float
        Significance level of the "signature beats volume" test.
    domain_alpha : float
        Level of the per-case domain check.
    random_state : int
        Seed of the splits, classifiers and bootstrap.
    n_jobs : int, optional
        Outer folds (and the final fit) and bootstrap resamples run in parallel with joblib;
        every fit is seeded by ``random_state`` and its fold, so results are identical for
        any ``n_jobs``.
    verbose : int or bool, optional
        0: silent; otherwise (default) progress bars over the outer folds and the bootstrap.
    **pipeline_options
        Passed to :func:`build_pipeline` (``selection``, ``n_features``, ``calibration``, ...).

    Returns
    -------
    EvaluationResult
        Out-of-fold predictions, metrics with intervals, conformal coverage, per-site metrics
        with the domain test, the per-fold model search, the volume check and the deployed
        ensemble fitted on all rows.

    Raises
    ------
    ModelError
        On misaligned inputs, infinite values, a single class, a covariate equal to the target,
        a patient whose rows would straddle folds, too few patients per class for the requested
        folds, a leave-one-site-out fold without training rows of some class, or data the
        harmoniser cannot use (one scanner, a one-row scanner, class confounded with scanner,
        a test scanner absent from training).
    HarmonizationError
        When harmonisation fails inside a fold; the message names the fold.
    """
    # Many small fits: multi-threaded BLAS/OpenMP only adds contention, so threads are limited
    # for the duration of the call (joblib workers limit their own).
    with threadpool_limits(limits=1):
        return _evaluate(
            features,
            target,
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
            domain_alpha=domain_alpha,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
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
    model: str | Pipeline | CalibratedPipeline,
    param_grid: Any,
    harmonize: bool | str | Any,
    cv: int | str,
    inner_cv: int,
    conformal_level: float,
    mondrian: bool | str,
    confidence_level: float,
    n_bootstrap: int,
    volume_alpha: float,
    domain_alpha: float,
    random_state: int,
    n_jobs: int | None,
    verbose: bool | int | None,
    **pipeline_options: Any,
) -> EvaluationResult:
    """Body of :func:`evaluate` (same parameters)."""
    if not 0.0 < conformal_level < 1.0:
        raise ModelError(f"conformal_level must be in (0, 1), got {conformal_level}")
    if not isinstance(inner_cv, int) or inner_cv < 2:
        raise ModelError(f"inner_cv must be an integer >= 2, got {inner_cv!r}")
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
    if harmonize is not False and harmonize is not None and data.batch is None:
        raise ModelError("harmonize needs batch=: the scanner/protocol of each row")
    template = _template(
        model,
        harmonize,
        param_grid,
        {"random_state": random_state, **pipeline_options},
        inner_cv,
        conformal_level,
        mondrian,
    )
    template.set_params(domain_alpha=domain_alpha, random_state=random_state, n_jobs=1)
    if data.batch is not None and not uses_harmonizer(template.pipeline):
        data.batch, data.covariates = None, None

    splits = list(_outer_splits(data, sites_arr, cv, random_state))
    _checks.check_no_straddling(splits, data.groups)
    _checks.check_training_classes(splits, data.y, classes, sites_arr)
    if data.batch is not None:
        _checks.check_harmonizable(data.y, data.batch, splits, site_cv)
    else:
        _checks.warn_if_confounded(data.y, sites_arr)
    for train, _ in splits:
        _checks.check_fold_counts(
            data.y[train],
            data.groups[train],
            inner_cv,
            "inner_cv",
            " in the training rows of each outer fold",
        )
    runs: list[tuple[str, NDArray[np.int_], NDArray[np.int_] | None]] = [
        (f"outer fold {k}", train, test) for k, (train, test) in enumerate(splits)
    ]
    runs.append(("the final model (all rows)", np.arange(len(data.y)), None))
    # Results come back in submission order as they finish, so the bar moves per fit.
    stream = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_run)(template, data, train, test, where) for where, train, test in runs
    )
    outputs = list(
        progress_bar(stream, total=len(runs), description="nested CV fits", verbose=verbose)
    )
    final_model = outputs[-1][0]
    proba = np.full((len(data.y), classes.size), np.nan)
    sets = np.zeros((len(data.y), classes.size), dtype=bool)
    domain_p = np.ones(len(data.y))
    case_shift = np.zeros(len(data.y), dtype=bool)
    fold = np.zeros(len(data.y), dtype=int)
    for k, ((_, test), (ensemble, fold_proba, fold_sets, fold_p)) in enumerate(
        zip(splits, outputs[:-1], strict=True)
    ):
        proba[test], sets[test], domain_p[test], fold[test] = fold_proba, fold_sets, fold_p, k
        case_shift[test] = ensemble.domain_.flag_cases(fold_p)
    fold_models = [out[0] for out in outputs[:-1]]
    domain_sites = (
        None if sites_arr is None else final_model.domain_.site_table(domain_p, sites_arr)
    )
    site_shift = np.zeros(len(data.y), dtype=bool)
    if domain_sites is not None:
        flagged = set(domain_sites.index[domain_sites["domain_shift"]])
        site_shift = np.isin(np.asarray(sites_arr).astype(str), list(flagged))
    predictions = predictions_table(
        data, proba, fold, sets, classes, sites_arr, domain_p, case_shift | site_shift
    )
    metrics = bootstrap_metrics(
        data.y,
        proba,
        classes,
        groups=data.groups,
        confidence_level=confidence_level,
        n_resamples=n_bootstrap,
        random_state=random_state,
        n_jobs=n_jobs,
        verbose=verbose,
    )
    true_index = np.searchsorted(classes, data.y)
    from radharmony.model._conformal import coverage_table

    names = [str(c) for c in data.X.columns]
    result = EvaluationResult(
        predictions=predictions,
        metrics=metrics,
        coverage=coverage_table(
            sets, true_index, classes, sites=sites_arr, refer=predictions["refer"].to_numpy()
        ),
        per_site=None
        if sites_arr is None
        else per_site_table(data.y, proba, sets, classes, sites_arr, domain_sites),
        volume_check=None,
        model=final_model,
        fold_models=fold_models,
        splits=splits,
        best_params=[m.best_params_ for m in fold_models],
        final_params=final_model.best_params_,
        classes=classes,
        feature_names=names,
        conformal_level=conformal_level,
        mondrian=bool(final_model.mondrian_),
        search=_search_by_fold(fold_models),
        settings={
            "model": model if isinstance(model, str) else type(model).__name__,
            "harmonize": uses_harmonizer(template.pipeline),
            "cv": cv,
            "inner_cv": inner_cv,
            "mondrian": mondrian,
            "confidence_level": confidence_level,
            "n_bootstrap": n_bootstrap,
            "domain_alpha": domain_alpha,
            "random_state": random_state,
            "calibration": template.calibration,
            "param_grid": str(template.param_grid),
            **{k: v for k, v in pipeline_options.items() if k != "calibration"},
            "conformal_guarantee": CONFORMAL_GUARANTEE,
        },
        fold_features=[selected_features(m, names) for m in fold_models],
        final_features=selected_features(final_model, names),
    )
    result.volume_check = _volume_check(
        result, data, volume, splits, volume_alpha, n_bootstrap, random_state
    )
    return result


def _template(
    model: str | Pipeline | CalibratedPipeline,
    harmonize: bool | Any,
    param_grid: Any,
    options: dict[str, Any],
    inner_cv: int,
    conformal_level: float,
    mondrian: bool | str,
) -> ConformalEnsemble:
    """Return the unfitted ensemble whose fitting procedure the outer folds repeat."""
    calibration = options.get("calibration", "sigmoid")
    calibration = "none" if calibration is None else calibration
    if isinstance(model, CalibratedPipeline):
        base: Pipeline = model.pipeline or build_pipeline(calibration=None)
        calibration, grid = model.method, param_grid
    elif isinstance(model, Pipeline):
        base, grid = model, param_grid
        if "calibration" not in options:
            has_proba = hasattr(model, "predict_proba")
            calibrated = isinstance(model.steps[-1][1], CalibratedClassifierCV)
            calibration = "none" if has_proba or calibrated else "sigmoid"
    elif isinstance(model, str):
        harmonizer = harmonize if harmonize not in (True, False) else bool(harmonize)
        build_options = {k: v for k, v in options.items() if k != "calibration"}
        random_state = build_options.pop("random_state", 0)
        base = build_pipeline(
            model,
            harmonize=harmonizer,
            calibration=None,
            random_state=random_state,
            **build_options,
        )
        grid = (
            param_grid
            if param_grid is not None
            else default_param_grid(
                model, options.get("selection", "univariate"), random_state=random_state
            )
        )
    else:
        raise ModelError(f"model must be a model name or a Pipeline, got {type(model).__name__}")
    return ConformalEnsemble(
        pipeline=base,
        param_grid=grid,
        calibration=calibration,
        n_folds=inner_cv,
        conformal_level=conformal_level,
        mondrian=mondrian,
    )


def _run(
    template: ConformalEnsemble,
    data: _Data,
    train: NDArray[np.int_],
    test: NDArray[np.int_] | None,
    where: str,
) -> tuple[ConformalEnsemble, Any, Any, Any]:
    """Fit the procedure on ``train`` and score ``test`` (proba, sets, domain p-values)."""
    from sklearn.base import clone

    part = data.take(train)
    with threadpool_limits(limits=1), _fold_context(where):
        ensemble = clone(template).fit(part.X, part.y, groups=part.groups, **part.metadata())
        if test is None:
            return ensemble, None, None, None
        held = data.take(test)
        members = ensemble.member_probas(held.X, **held.metadata())
    from radharmony.model._ensemble import combine_probas

    return (
        ensemble,
        combine_probas(members),
        ensemble.conformal_sets(member_probas=members),
        ensemble.domain_.p_values(held.X),
    )


def _search_by_fold(models: list[ConformalEnsemble]) -> pd.DataFrame:
    tables = []
    for k, model in enumerate(models):
        table = model.search_table()
        table.insert(0, "fold", k)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _grouped_splits(
    y: NDArray[Any], groups: NDArray[Any], n_splits: int, random_state: int, *, what: str = "cv"
) -> Iterator[Split]:
    """Stratified K-fold splits that keep each group's rows together."""
    _checks.check_fold_counts(y, groups, n_splits, what)
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
            "the harmoniser sees only each fold's training rows, where a small scanner or "
            "covariate level can be missing or reduced to one row: merge small groups or use "
            "fewer folds.)"
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
            warnings.warn(
                "the volume check could not run: no lesion volume column was found among the "
                f"features (looked for {list(_volume.VOLUME_NAMES)} and names ending in "
                f"{list(_volume.VOLUME_SUFFIXES)}). Pass volume=<column or array>, or "
                "volume=None to skip the check knowingly",
                _volume.VolumeCheckSkippedWarning,
                stacklevel=4,
            )
            return None
        if name not in data.X.columns:
            raise ModelError(f"volume column {name!r} is not among the feature columns")
        values = data.X[name].to_numpy(dtype=float)
    else:
        name, values = "volume", np.asarray(volume, dtype=float)
        _optional_array(values, len(data.y), "volume")
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
