"""The deployed model: K cross-fitted, calibrated pipelines with CV+ conformal sets."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import ParameterGrid, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from radharmony.errors import ModelError
from radharmony.model import _checks, _conformal
from radharmony.model._calibration import (
    CalibratedPipeline,
    ScoreCalibrator,
    fit_pipeline,
    raw_scores,
    uses_harmonizer,
)
from radharmony.model._domain import DomainCheck
from radharmony.model._metrics import binary_auc

Split = tuple[NDArray[np.int_], NDArray[np.int_]]
_CLIP = 1e-12


class ConformalEnsemble(ClassifierMixin, BaseEstimator):
    """K calibrated pipelines, each fitted without one patient fold, with CV+ conformal sets.

    ``fit`` splits the patients into ``n_folds`` stratified folds. Member ``k`` is the pipeline
    tuned, calibrated and fitted on every fold but ``k``: its hyper-parameters (model family
    included) are chosen by the mean ROC AUC over the other folds, each scored by a refit that
    left it out, and its calibration map is fitted on those same out-of-fold scores. Fold ``k``
    is never seen by member ``k``, so member ``k``'s scores of fold ``k`` are honest conformal
    calibration scores (CV+), and the probabilities of fold ``k`` were calibrated without its
    labels.

    The ensemble's probability is the normalised geometric mean of the members' calibrated
    probabilities (for two classes: the logistic of the mean calibrated log-odds). Prediction
    sets are CV+ sets (see :mod:`radharmony.model._conformal`): if the training patients and a
    new patient are exchangeable, the set covers every lesion of the new patient with
    probability at least ``1 - 2 alpha`` minus a finite-sample term of order ``1/n``
    (Barber et al. 2021, Theorem 4); coverage near ``1 - alpha`` is what
    :func:`radharmony.evaluate` measures on outer folds. The guarantee does not hold for a
    scanner or site outside the training data: every prediction carries the domain check.

    Parameters
    ----------
    pipeline : Pipeline, optional
        Unfitted, uncalibrated pipeline (default: ``build_pipeline("auto", calibration=None)``).
    param_grid : dict or list of dict, optional
        Search space of the inner loop (uncalibrated names such as ``"clf__C"``); default: the
        ``"auto"`` space of :func:`default_param_grid` when ``pipeline`` is None, no search
        otherwise.
    calibration : {"sigmoid", "isotonic", "temperature", "none"}
        Calibration map of each member.
    n_folds : int
        Number of members and patient folds (at least 2; 5 by default).
    conformal_level : float
        Nominal coverage ``1 - alpha`` of the prediction sets.
    mondrian : bool or "auto"
        Class-conditional sets; ``"auto"`` uses :func:`choose_mondrian` (imbalanced classes
        with enough patients per class).
    domain_alpha : float
        Level of the per-case domain check (:class:`DomainCheck`).
    max_background : int
        Training rows kept as the SHAP background of new predictions.
    random_state : int
        Seed of the folds and the stochastic classifiers.
    n_jobs : int, optional
        Parallel fits (joblib); results are identical for any value.

    Attributes
    ----------
    estimators_ : list
        The members (:class:`CalibratedPipeline` or fitted pipelines).
    classes_ : ndarray
    mondrian_ : bool
    unit_scores_, unit_classes_ : list of ndarray
        Conformal calibration units (patients) of each member's held-out fold.
    best_params_ : list of dict
        Chosen hyper-parameters of each member.
    search_results_ : dict of lists
        Mean inner AUC of every candidate for every member (see :meth:`search_table`).
    domain_ : DomainCheck
    batches_ : list of str or None
        Scanners seen in training when the members harmonise.
    """

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        param_grid: dict[str, list[Any]] | list[dict[str, list[Any]]] | None = None,
        calibration: str = "sigmoid",
        n_folds: int = 5,
        conformal_level: float = 0.9,
        mondrian: bool | str = "auto",
        domain_alpha: float = 0.01,
        max_background: int = 100,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.param_grid = param_grid
        self.calibration = calibration
        self.n_folds = n_folds
        self.conformal_level = conformal_level
        self.mondrian = mondrian
        self.domain_alpha = domain_alpha
        self.max_background = max_background
        self.random_state = random_state
        self.n_jobs = n_jobs

    # --- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        batch: ArrayLike | None = None,
        covariates: pd.DataFrame | None = None,
    ) -> ConformalEnsemble:
        """Tune, calibrate and fit the members and their conformal calibration scores."""
        _check_inputs(X, y)
        X = _checks.numeric_features(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ModelError("target has a single class; need at least two")
        index = np.searchsorted(self.classes_, y)
        group_arr = np.arange(len(y)) if groups is None else np.asarray(groups)
        pipeline, candidates = self._search_space()
        meta: dict[str, Any] = {}
        if uses_harmonizer(pipeline):
            if batch is None:
                raise ModelError("this pipeline harmonises: pass batch= (and covariates=)")
            meta["batch"] = np.asarray(batch)
            if covariates is not None:
                meta["covariates"] = pd.DataFrame(covariates).reset_index(drop=True)
        # With harmonisation the folds are balanced on scanner as well as class, so that the
        # smaller inner training parts keep rows of every scanner.
        strata = None if "batch" not in meta else _joint_strata(y, meta["batch"])
        folds, tuning = _member_and_tuning_splits(
            y, group_arr, self.n_folds, self.random_state, strata, meta.get("batch")
        )
        needs_scores = len(candidates) > 1 or self.calibration != "none"
        scores = self._inner_scores(pipeline, candidates, X, y, meta, tuning, needs_scores)
        choices = [self._choose(candidates, scores, tuning[k], y, index) for k in range(len(folds))]
        members = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(
                pipeline, candidates[c], calibrator, X, y, meta, folds[k][0], self.classes_
            )
            for k, (c, calibrator, _) in enumerate(choices)
        )
        self.estimators_ = members
        self.best_params_ = [_plain_params(candidates[c]) for c, _, _ in choices]
        self.search_results_ = _search_results(candidates, choices)
        self._fit_conformal(X, index, group_arr, meta, folds)
        self._fit_domain(X, group_arr, batch, covariates)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def _search_space(self) -> tuple[Pipeline, list[dict[str, Any]]]:
        from radharmony.model._pipeline import build_pipeline, default_param_grid

        if self.pipeline is None:
            pipeline = build_pipeline("auto", calibration=None, random_state=self.random_state)
            grid = self.param_grid
            if grid is None:
                grid = default_param_grid("auto", random_state=self.random_state)
        else:
            pipeline, grid = self.pipeline, self.param_grid
        if isinstance(pipeline, CalibratedPipeline):
            # Members are calibrated by the ensemble itself (``calibration``).
            pipeline = pipeline.pipeline or build_pipeline(calibration=None)
        candidates = list(ParameterGrid(grid)) if grid else [{}]
        if self.calibration == "none" and not hasattr(pipeline, "predict_proba"):
            raise ModelError(
                "this model gives no probabilities without calibration; use "
                "calibration='sigmoid' (or 'isotonic'/'temperature')"
            )
        return pipeline, candidates

    def _inner_scores(
        self,
        pipeline: Pipeline,
        candidates: list[dict[str, Any]],
        X: pd.DataFrame,
        y: NDArray[Any],
        meta: dict[str, Any],
        tuning: list[list[Split]],
        needs_scores: bool,
    ) -> dict[bytes, list[_Scored]]:
        """Scores of every candidate on every distinct inner training subset (shared fits)."""
        if not needs_scores:
            return {}
        subsets: dict[bytes, Split] = {}
        for splits in tuning:
            for fit_rows, score_rows in splits:
                key = np.sort(fit_rows).tobytes()
                previous = subsets.get(key, (fit_rows, np.zeros(0, dtype=int)))[1]
                subsets[key] = (fit_rows, np.union1d(previous, score_rows))
        keys = list(subsets)
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_and_score)(pipeline, candidates, X, y, meta, *subsets[key], self.classes_)
            for key in keys
        )
        return {
            key: [_Scored(subsets[key][1], s) for s in scored]
            for key, scored in zip(keys, results, strict=True)
        }

    def _choose(
        self,
        candidates: list[dict[str, Any]],
        scores: dict[bytes, Any],
        splits: list[Split],
        y: NDArray[Any],
        index: NDArray[np.int_],
    ) -> tuple[int, ScoreCalibrator | None, list[float]]:
        """Best candidate of one member (first on ties), its calibrator and every mean AUC."""
        if not scores:
            return 0, None, [float("nan")]
        means = []
        for c in range(len(candidates)):
            aucs = [
                _auc(index[score_rows], scores[np.sort(fit_rows).tobytes()][c].at(score_rows))
                for fit_rows, score_rows in splits
            ]
            finite = [a for a in aucs if np.isfinite(a)]
            means.append(float(np.mean(finite)) if finite else -np.inf)
        best = int(np.argmax(means))
        if self.calibration == "none":
            return best, None, means
        rows = np.concatenate([score_rows for _, score_rows in splits])
        oof = np.concatenate(
            [
                scores[np.sort(fit_rows).tobytes()][best].at(score_rows)
                for fit_rows, score_rows in splits
            ]
        )
        return best, ScoreCalibrator(self.calibration).fit(oof, index[rows]), means

    def _fit_conformal(
        self,
        X: pd.DataFrame,
        index: NDArray[np.int_],
        groups: NDArray[Any],
        meta: dict[str, Any],
        folds: list[Split],
    ) -> None:
        if self.mondrian == "auto":
            self.mondrian_ = _conformal.choose_mondrian(index, groups, self.conformal_level)
        else:
            self.mondrian_ = bool(self.mondrian)
        self.unit_scores_, self.unit_classes_ = [], []
        held_out_proba = np.zeros((len(index), self.classes_.size))
        for member, (_, held_out) in zip(self.estimators_, folds, strict=True):
            proba = _member_proba(member, X.iloc[held_out], self.classes_, meta, held_out)
            held_out_proba[held_out] = proba
            lac = 1.0 - proba[np.arange(len(held_out)), index[held_out]]
            units, classes, _ = _conformal.patient_units(
                lac, index[held_out], groups[held_out], mondrian=self.mondrian_
            )
            self.unit_scores_.append(units)
            self.unit_classes_.append(classes)
        self.held_out_proba_ = held_out_proba

    def _fit_domain(
        self,
        X: pd.DataFrame,
        groups: NDArray[Any],
        batch: ArrayLike | None,
        covariates: pd.DataFrame | None,
    ) -> None:
        from radharmony.model._pipeline import selected_features

        used = selected_features(self, [str(c) for c in X.columns]) or [str(X.columns[0])]
        self.domain_ = DomainCheck(alpha=self.domain_alpha, features=used).fit(X, groups=groups)
        rng = np.random.default_rng(self.random_state)
        rows = np.arange(len(X))
        if len(rows) > self.max_background:
            rows = np.sort(rng.choice(len(X), size=self.max_background, replace=False))
        self.background_ = X.iloc[rows].to_numpy(dtype=float)
        harmonised = any(uses_harmonizer(m) for m in self.estimators_)
        self.batches_ = sorted({str(b) for b in np.asarray(batch)}) if harmonised else None
        self.background_batch_ = (
            None if not harmonised else [str(b) for b in np.asarray(batch)[rows]]
        )
        self.background_covariates_ = None
        if harmonised and covariates is not None:
            cov = pd.DataFrame(covariates).reset_index(drop=True).iloc[rows]
            self.background_covariates_ = {
                str(c): [_plain(v) for v in cov[c].tolist()] for c in cov.columns
            }

    # --- prediction -------------------------------------------------------------------------

    def member_probas(
        self, X: pd.DataFrame, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> list[NDArray[np.float64]]:
        """Return each member's calibrated probabilities (columns in ``classes_`` order)."""
        check_is_fitted(self, "estimators_")
        meta = self._metadata(len(X), batch, covariates)
        return [_member_proba(m, X, self.classes_, meta, None) for m in self.estimators_]

    def predict_proba(
        self, X: pd.DataFrame, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> NDArray[np.float64]:
        """Return the normalised geometric mean of the members' calibrated probabilities."""
        return combine_probas(self.member_probas(X, batch=batch, covariates=covariates))

    def predict(
        self, X: pd.DataFrame, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> NDArray[Any]:
        """Return the class with the largest ensemble probability."""
        return self.classes_[self.predict_proba(X, batch=batch, covariates=covariates).argmax(1)]

    def conformal_sets(
        self,
        X: pd.DataFrame | None = None,
        *,
        batch: ArrayLike | None = None,
        covariates: Any = None,
        member_probas: list[NDArray[np.float64]] | None = None,
    ) -> NDArray[np.bool_]:
        """Return the CV+ prediction sets (bool, one column per class)."""
        if member_probas is None:
            member_probas = self.member_probas(X, batch=batch, covariates=covariates)
        return _conformal.cv_plus_sets(
            [1.0 - p for p in member_probas],
            self.unit_scores_,
            self.unit_classes_,
            self.conformal_level,
        )

    def _metadata(self, n: int, batch: ArrayLike | None, covariates: Any) -> dict[str, Any]:
        if not any(uses_harmonizer(m) for m in self.estimators_):
            return {}
        if batch is None:
            raise ModelError(
                "this model harmonises features with ComBat: pass batch= (the scanner of each "
                "row) and the covariates it was trained with"
            )
        batch_arr = np.asarray(batch)
        unseen = sorted(set(batch_arr.astype(str).tolist()) - set(self.batches_ or []))
        if unseen:
            raise ModelError(
                f"scanner(s) {unseen} were not in the training data, so this model has no "
                f"harmonisation parameters for them (trained on {self.batches_}). Options: "
                "pass the training scanner with the same protocol as batch= if there is one; "
                "or use a model trained without harmonisation (harmonize=False), whose "
                "predictions on a new scanner carry the domain check; or retrain with cases "
                "from the new scanner"
            )
        meta: dict[str, Any] = {"batch": batch_arr}
        if covariates is not None:
            meta["covariates"] = pd.DataFrame(covariates).reset_index(drop=True)
        return meta

    def search_table(self) -> pd.DataFrame:
        """Return the inner search: one row per member and candidate (see data dictionary)."""
        check_is_fitted(self, "search_results_")
        return pd.DataFrame(self.search_results_)

    def background(self) -> tuple[pd.DataFrame, Any, pd.DataFrame | None]:
        """Return the stored SHAP background rows with their scanner and covariates."""
        check_is_fitted(self, "background_")
        X = pd.DataFrame(self.background_, columns=list(self.feature_names_in_))
        cov = None
        if self.background_covariates_ is not None:
            cov = pd.DataFrame(self.background_covariates_)
        batch = None if self.background_batch_ is None else np.asarray(self.background_batch_)
        return X, batch, cov


def _check_inputs(X: Any, y: Any) -> None:
    """scikit-learn's usual errors for sparse input, a missing target or a continuous one."""
    from scipy.sparse import issparse
    from sklearn.utils.multiclass import type_of_target

    if issparse(X):
        raise TypeError("sparse input is not supported: pass a dense feature table")
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"Unknown label type: {kind}; the target must hold classes")


def combine_probas(probas: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    """Normalised geometric mean of probability matrices (mean log-odds for two classes)."""
    logs = np.mean([np.log(np.clip(p, _CLIP, 1.0)) for p in probas], axis=0)
    logs -= logs.max(axis=1, keepdims=True)
    combined = np.exp(logs)
    return combined / combined.sum(axis=1, keepdims=True)


def member_folds(
    y: NDArray[Any],
    groups: NDArray[Any],
    n_folds: int,
    random_state: int,
    *,
    strata: NDArray[Any] | None = None,
) -> list[Split]:
    """Stratified, patient-grouped folds of the members (train, held-out row positions).

    ``strata`` (default: the classes) is what the folds are balanced on.
    """
    _checks.check_fold_counts(
        y, groups, n_folds, "inner_cv", " in the training rows of each outer fold"
    )
    labels = y if strata is None else strata
    with warnings.catch_warnings():
        # Joint class-and-scanner strata can be smaller than the number of folds.
        warnings.simplefilter("ignore", UserWarning)
        if pd.Series(groups).is_unique:
            splitter: Any = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
            folds = list(splitter.split(np.zeros(len(y)), labels))
        else:
            splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=random_state)
            folds = list(splitter.split(np.zeros(len(y)), labels, groups))
    if strata is not None and any(np.unique(y[held]).size < 2 for _, held in folds):
        # Balancing on scanners too must not leave a fold without a class.
        return member_folds(y, groups, n_folds, random_state)
    return folds


_FOLD_DRAWS = 20


def _member_and_tuning_splits(
    y: NDArray[Any],
    groups: NDArray[Any],
    n_folds: int,
    random_state: int,
    strata: NDArray[Any] | None,
    batch: NDArray[Any] | None,
) -> tuple[list[Split], list[list[Split]]]:
    """Member folds and each member's tuning splits.

    When harmonising, ComBat needs at least two rows of every scanner in every part it is
    fitted on. Small cohorts can miss that by chance, so up to ``_FOLD_DRAWS`` seeded fold
    assignments (``random_state``, ``random_state + 1``, ...) are drawn and the first one
    whose every training part keeps two rows per scanner is used. The rule looks only at
    scanners and classes, never at features, so it cannot leak; when no draw satisfies it
    the first draw is used and the harmoniser's own error explains what to merge.
    """
    first: tuple[list[Split], list[list[Split]]] | None = None
    for draw in range(_FOLD_DRAWS if batch is not None else 1):
        seed = random_state + draw
        folds = member_folds(y, groups, n_folds, seed, strata=strata)
        tuning = [_tuning_splits(folds, k, y, groups, seed, strata) for k in range(len(folds))]
        if first is None:
            first = (folds, tuning)
        parts = [train for train, _ in folds] + [t for splits in tuning for t, _ in splits]
        if batch is None or all(_keeps_two_per_batch(batch, part) for part in parts):
            return folds, tuning
    assert first is not None
    return first


def _keeps_two_per_batch(batch: NDArray[Any], rows: NDArray[np.int_]) -> bool:
    """Whether ``rows`` hold at least two rows of every scanner present in ``batch``."""
    counts = pd.Series(batch[rows]).value_counts()
    return bool(counts.size == pd.Series(batch).nunique() and counts.min() >= 2)


def _joint_strata(y: NDArray[Any], batch: NDArray[Any]) -> NDArray[np.int_]:
    """One stratum per (class, scanner) pair."""
    pairs = pd.Series([f"{a}|{b}" for a, b in zip(y, batch, strict=True)])
    return np.asarray(pd.factorize(pairs)[0])


def _tuning_splits(
    folds: list[Split],
    k: int,
    y: NDArray[Any],
    groups: NDArray[Any],
    random_state: int,
    strata: NDArray[Any] | None,
) -> list[Split]:
    """Inner splits of member ``k``'s rows: the other member folds, each left out in turn.

    With at least three folds the refit that leaves out folds ``k`` and ``l`` serves members
    ``k`` and ``l`` alike, so each pair is fitted once. With two folds the member's rows are
    split in two patient folds of their own.
    """
    train = folds[k][0]
    if len(folds) >= 3:
        return [
            (np.setdiff1d(train, held_out), held_out)
            for j, (_, held_out) in enumerate(folds)
            if j != k
        ]
    inner = member_folds(
        y[train],
        groups[train],
        2,
        random_state + 1 + k,
        strata=None if strata is None else strata[train],
    )
    return [(train[a], train[b]) for a, b in inner]


class _Scored:
    """Scores of one candidate on a set of rows, addressable by row position."""

    def __init__(self, rows: NDArray[np.int_], scores: NDArray[np.float64]) -> None:
        self.rows = rows
        self.scores = scores

    def at(self, rows: NDArray[np.int_]) -> NDArray[np.float64]:
        return self.scores[np.searchsorted(self.rows, rows)]


def _fit_and_score(
    pipeline: Pipeline,
    candidates: list[dict[str, Any]],
    X: pd.DataFrame,
    y: NDArray[Any],
    meta: dict[str, Any],
    fit_rows: NDArray[np.int_],
    score_rows: NDArray[np.int_],
    classes: NDArray[Any],
) -> list[NDArray[np.float64]]:
    """Fit every candidate on ``fit_rows`` and return its raw scores of ``score_rows``.

    The steps no candidate changes (imputation, harmonisation, filters, scaling for the
    default spaces) are fitted once on ``fit_rows`` and shared by all candidates.
    """
    from radharmony.model._pipeline import set_pipeline_params

    split = _shared_steps(pipeline, candidates)
    out = []
    with threadpool_limits(limits=1):
        X_fit, X_score = X.iloc[fit_rows], X.iloc[score_rows]
        if split > 0:
            prefix = Pipeline(clone(pipeline).steps[:split])
            prefix = fit_pipeline(prefix, X_fit, y[fit_rows], meta, fit_rows)
            X_fit = _transform(prefix, X_fit, meta, fit_rows)
            X_score = _transform(prefix, X_score, meta, score_rows)
        head = Pipeline(clone(pipeline).steps[split:])
        for params in candidates:
            model = set_pipeline_params(clone(head), params).fit(X_fit, y[fit_rows])
            out.append(raw_scores(model, X_score, classes, {}, None))
    return out


def _shared_steps(pipeline: Pipeline, candidates: list[dict[str, Any]]) -> int:
    """Number of leading steps that no candidate's parameters touch (kept before the last)."""
    names = [name for name, _ in pipeline.steps]
    touched = {key.split("__")[0] for params in candidates for key in params}
    first = min((names.index(n) for n in touched if n in names), default=len(names) - 1)
    return min(first, len(names) - 1)


def _transform(
    prefix: Pipeline, X: pd.DataFrame, meta: dict[str, Any], rows: NDArray[np.int_]
) -> Any:
    from sklearn import config_context

    from radharmony.model._calibration import _take_meta

    if not uses_harmonizer(prefix):
        return prefix.transform(X)
    with config_context(enable_metadata_routing=True):
        return prefix.transform(X, **_take_meta(meta, rows))


def _fit_member(
    pipeline: Pipeline,
    params: dict[str, Any],
    calibrator: ScoreCalibrator | None,
    X: pd.DataFrame,
    y: NDArray[Any],
    meta: dict[str, Any],
    rows: NDArray[np.int_],
    classes: NDArray[Any],
) -> Any:
    """Fit one member on its rows and attach its calibration map."""
    from radharmony.model._pipeline import set_pipeline_params

    with threadpool_limits(limits=1):
        model = set_pipeline_params(clone(pipeline), params)
        model = fit_pipeline(model, X.iloc[rows], y[rows], meta, rows)
    if calibrator is None:
        return model
    return CalibratedPipeline.from_parts(model, calibrator, classes, X)


def _member_proba(
    member: Any, X: pd.DataFrame, classes: NDArray[Any], meta: dict[str, Any], rows: Any
) -> NDArray[np.float64]:
    from radharmony.model._calibration import _take_meta

    routed = _take_meta(meta, rows) if uses_harmonizer(member) else {}
    if isinstance(member, CalibratedPipeline):
        return member.predict_proba(X, **routed)
    from sklearn import config_context

    with config_context(enable_metadata_routing=bool(routed)):
        raw = member.predict_proba(X, **routed)
    proba = np.zeros((len(X), classes.size))
    proba[:, np.searchsorted(classes, member.classes_)] = raw
    return proba


def _auc(true_index: NDArray[np.int_], scores: NDArray[np.float64]) -> float:
    if scores.ndim == 1:
        return binary_auc(true_index == 1, scores)
    aucs = [binary_auc(true_index == k, scores[:, k]) for k in range(scores.shape[1])]
    finite = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(finite)) if finite else float("nan")


def describe_params(params: dict[str, Any]) -> str:
    """Return a short readable description of a candidate (family and parameters)."""
    parts: list[str] = []
    for name, value in sorted(params.items()):
        if isinstance(value, BaseEstimator):
            parts.insert(0, type(value).__name__)
        elif value == "passthrough":
            parts.append(f"{name.split('__')[0]}=none")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts) if parts else "default"


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        name: type(value).__name__ if isinstance(value, BaseEstimator) else value
        for name, value in params.items()
    }


def _search_results(
    candidates: list[dict[str, Any]], choices: list[tuple[int, Any, list[float]]]
) -> dict[str, list[Any]]:
    table: dict[str, list[Any]] = {"member": [], "candidate": [], "mean_inner_auc": []}
    table["chosen"] = []
    for k, (best, _, means) in enumerate(choices):
        for c, mean in enumerate(means):
            table["member"].append(k)
            table["candidate"].append(describe_params(candidates[c]) if candidates else "")
            table["mean_inner_auc"].append(float(mean))
            table["chosen"].append(c == best)
    return table


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
