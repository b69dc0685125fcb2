"""Probability calibration of a whole pipeline, fitted on out-of-fold scores of that pipeline.

Wrapping only the classifier (``CalibratedClassifierCV`` as a pipeline step) lets imputation,
harmonisation, filters and label-based feature selection see the labels of the calibration
folds, which makes calibrated probabilities over-confident in high-dimensional data. Here the
calibrator is fitted on scores of *whole-pipeline* refits that never saw the scored rows, with
folds grouped by patient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from scipy.sparse import issparse
from scipy.special import expit, log_softmax
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import ModelError

CALIBRATIONS: tuple[str, ...] = ("sigmoid", "isotonic", "temperature", "none")
_EPS = 1e-12


class ScoreCalibrator(BaseEstimator):
    """Map raw classifier scores to probabilities (Platt sigmoid, isotonic or temperature).

    Binary scores are one column (larger means the second class); multi-class scores have one
    column per class. Sigmoid and isotonic maps are fitted one class against the rest and the
    probabilities normalised to sum to one; temperature scaling divides all scores by one
    fitted temperature before a softmax (binary: before the logistic function).

    Parameters
    ----------
    method : {"sigmoid", "isotonic", "temperature"}
        The map. Sigmoid uses Platt's smoothed targets, so it stays finite when the scores
        separate the classes perfectly.

    Attributes
    ----------
    slope_, intercept_ : ndarray of shape (n_maps,)
        Sigmoid maps ``p = expit(slope * score + intercept)`` (sigmoid only).
    temperature_ : float
        Fitted temperature (temperature only).
    thresholds_x_, thresholds_y_ : list of ndarray
        Isotonic step functions, one per map (isotonic only).
    n_classes_ : int
    """

    def __init__(self, method: str = "sigmoid") -> None:
        self.method = method

    def fit(self, scores: ArrayLike, y: ArrayLike) -> ScoreCalibrator:
        """Fit the map on out-of-fold scores and class indices ``y`` (0 .. n_classes-1)."""
        if self.method not in CALIBRATIONS[:-1]:
            raise ModelError(f"unknown calibration {self.method!r}; choose one of {CALIBRATIONS}")
        s = np.asarray(scores, dtype=float)
        y = np.asarray(y, dtype=int)
        self.n_classes_ = 2 if s.ndim == 1 else s.shape[1]
        columns = [s] if s.ndim == 1 else [s[:, k] for k in range(s.shape[1])]
        targets = [y == 1] if s.ndim == 1 else [y == k for k in range(s.shape[1])]
        if self.method == "sigmoid":
            fits = [_platt(c, t) for c, t in zip(columns, targets, strict=True)]
            self.slope_ = np.array([a for a, _ in fits])
            self.intercept_ = np.array([b for _, b in fits])
        elif self.method == "isotonic":
            self.thresholds_x_, self.thresholds_y_ = [], []
            for column, target in zip(columns, targets, strict=True):
                iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
                iso.fit(column, target.astype(float))
                self.thresholds_x_.append(np.asarray(iso.X_thresholds_, dtype=float))
                self.thresholds_y_.append(np.asarray(iso.y_thresholds_, dtype=float))
        else:
            self.temperature_ = _temperature(s, y)
        return self

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Return calibrated probabilities of shape (n, n_classes)."""
        check_is_fitted(self, "n_classes_")
        s = np.asarray(scores, dtype=float)
        if self.method == "temperature":
            if s.ndim == 1:
                p = expit(s / self.temperature_)
                return np.column_stack([1.0 - p, p])
            return np.exp(log_softmax(s / self.temperature_, axis=1))
        columns = [s] if s.ndim == 1 else [s[:, k] for k in range(s.shape[1])]
        if self.method == "sigmoid":
            maps = [
                expit(a * c + b)
                for a, b, c in zip(self.slope_, self.intercept_, columns, strict=True)
            ]
        else:
            maps = [
                np.interp(c, x, y)
                for c, x, y in zip(columns, self.thresholds_x_, self.thresholds_y_, strict=True)
            ]
        if s.ndim == 1:
            return np.column_stack([1.0 - maps[0], maps[0]])
        proba = np.column_stack(maps)
        total = proba.sum(axis=1, keepdims=True)
        # A row mapped to zero for every class carries no information: uniform.
        return np.where(total > 0, proba / np.where(total > 0, total, 1.0), 1.0 / s.shape[1])

    def log_odds_map(self) -> tuple[float, float] | None:
        """Return (slope, intercept) when calibrated log-odds are affine in a binary score."""
        check_is_fitted(self, "n_classes_")
        if self.n_classes_ != 2:
            return None
        if self.method == "sigmoid":
            return float(self.slope_[0]), float(self.intercept_[0])
        if self.method == "temperature":
            return 1.0 / float(self.temperature_), 0.0
        return None


class CalibratedPipeline(ClassifierMixin, BaseEstimator):
    """A classification pipeline whose probabilities are calibrated without label leakage.

    ``fit`` refits the *whole* pipeline (imputation, harmonisation, filters, selection and
    classifier) on each training part of ``cv`` grouped, stratified folds, scores the held-out
    part, fits the calibration map on those out-of-fold scores, then fits the pipeline on all
    rows. No step that chose features or adjusted scanners ever saw the labels of the rows the
    calibration map was fitted on, and lesions of one patient stay in one fold.

    Parameters
    ----------
    pipeline : Pipeline
        Unfitted pipeline ending in a classifier (``decision_function`` or ``predict_proba``).
    method : {"sigmoid", "isotonic", "temperature"}
        Calibration map (see :class:`ScoreCalibrator`).
    cv : int
        Number of calibration folds.
    random_state : int
        Seed of the folds.

    Attributes
    ----------
    pipeline_ : Pipeline
        The pipeline fitted on all rows.
    calibrator_ : ScoreCalibrator
        The map fitted on out-of-fold scores.
    classes_ : ndarray
    """

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        method: str = "sigmoid",
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.pipeline = pipeline
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(
        self,
        X: Any,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        batch: ArrayLike | None = None,
        covariates: Any = None,
    ) -> CalibratedPipeline:
        """Fit the calibration on out-of-fold whole-pipeline scores, then the pipeline."""
        if issparse(X):
            raise TypeError("sparse input is not supported: pass a dense feature table")
        pipeline = _default_pipeline() if self.pipeline is None else self.pipeline
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        index = np.searchsorted(self.classes_, y)
        meta = _metadata(batch, covariates)
        scores: NDArray[np.float64] | None = None
        for fit_rows, score_rows in _calibration_folds(y, groups, self.cv, self.random_state):
            fitted = fit_pipeline(clone(pipeline), _rows(X, fit_rows), y[fit_rows], meta, fit_rows)
            part = raw_scores(fitted, _rows(X, score_rows), self.classes_, meta, score_rows)
            if scores is None:
                scores = np.zeros((len(y), *part.shape[1:]))
            scores[score_rows] = part
        if scores is None:
            raise ModelError("calibration needs at least one fold")
        self.calibrator_ = ScoreCalibrator(self.method).fit(scores, index)
        self.pipeline_ = fit_pipeline(clone(pipeline), X, y, meta, None)
        self._store_input(X)
        return self

    @classmethod
    def from_parts(
        cls, pipeline: Pipeline, calibrator: ScoreCalibrator, classes: ArrayLike, X: Any
    ) -> CalibratedPipeline:
        """Assemble a fitted instance from a fitted pipeline and a map fitted elsewhere."""
        model = cls(pipeline=pipeline, method=calibrator.method)
        model.pipeline_ = pipeline
        model.calibrator_ = calibrator
        model.classes_ = np.asarray(classes)
        model._store_input(X)
        return model

    def _store_input(self, X: Any) -> None:
        self.n_features_in_ = int(np.shape(X)[1])
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)

    def decision_function(
        self, X: Any, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> NDArray[np.float64]:
        """Return the uncalibrated score the calibration map is applied to."""
        check_is_fitted(self, "pipeline_")
        return raw_scores(self.pipeline_, X, self.classes_, _metadata(batch, covariates), None)

    def predict_proba(
        self, X: Any, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> NDArray[np.float64]:
        """Return calibrated probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "calibrator_")
        return self.calibrator_.predict_proba(
            self.decision_function(X, batch=batch, covariates=covariates)
        )

    def predict(
        self, X: Any, *, batch: ArrayLike | None = None, covariates: Any = None
    ) -> NDArray[Any]:
        """Return the class with the largest calibrated probability."""
        proba = self.predict_proba(X, batch=batch, covariates=covariates)
        return self.classes_[proba.argmax(axis=1)]


def uses_harmonizer(pipeline: Any) -> bool:
    """Return True when the pipeline has a harmonisation step (which needs ``batch``)."""
    if isinstance(pipeline, CalibratedPipeline):
        pipeline = pipeline.pipeline_ if hasattr(pipeline, "pipeline_") else pipeline.pipeline
    if not isinstance(pipeline, Pipeline):
        return False
    step = pipeline.named_steps.get("harmonize", "passthrough")
    return step not in ("passthrough", None)


def fit_pipeline(
    pipeline: Pipeline, X: Any, y: NDArray[Any], meta: dict[str, Any], rows: Any
) -> Pipeline:
    """Fit a pipeline, routing batch/covariates (restricted to ``rows``) to its harmoniser."""
    if not uses_harmonizer(pipeline):
        return pipeline.fit(X, y)
    with config_context(enable_metadata_routing=True):
        return pipeline.fit(X, y, **_take_meta(meta, rows))


def raw_scores(
    pipeline: Pipeline, X: Any, classes: NDArray[Any], meta: dict[str, Any], rows: Any
) -> NDArray[np.float64]:
    """Uncalibrated scores: 1-D for two classes, one column per class otherwise.

    The decision function when the classifier has one, else the probabilities. Columns follow
    ``classes``; a class the pipeline never saw gets -inf (decision) or 0 (probability).
    """
    routed = _take_meta(meta, rows) if uses_harmonizer(pipeline) else {}
    with config_context(enable_metadata_routing=bool(routed)):
        if hasattr(pipeline, "decision_function"):
            raw = np.asarray(pipeline.decision_function(X, **routed), dtype=float)
            fill = -np.inf
        else:
            raw = np.asarray(pipeline.predict_proba(X, **routed), dtype=float)
            fill = 0.0
    seen = np.asarray(pipeline.classes_)
    if raw.ndim == 1:
        raw = np.column_stack([-raw, raw]) if fill == -np.inf else np.column_stack([1 - raw, raw])
    full = np.full((raw.shape[0], len(classes)), fill)
    full[:, np.searchsorted(classes, seen)] = raw
    if len(classes) == 2:
        return full[:, 1]
    return np.where(np.isfinite(full), full, np.nanmin(full[np.isfinite(full)]) - 10.0)


def _platt(score: NDArray[np.float64], target: NDArray[np.bool_]) -> tuple[float, float]:
    """Platt's sigmoid fit with smoothed targets (finite under perfect separation)."""
    n_pos, n_neg = int(target.sum()), int((~target).sum())
    t = np.where(target, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    scale = float(np.std(score)) or 1.0
    z = score / scale
    a, b = 0.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))
    for _ in range(100):
        p = expit(a * z + b)
        w = np.maximum(p * (1.0 - p), 1e-12)
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        h += 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return a / scale, b


def _temperature(scores: NDArray[np.float64], y: NDArray[np.int_]) -> float:
    """Temperature minimising the log loss of ``softmax(scores / T)``."""

    def loss(log_t: float) -> float:
        t = np.exp(log_t)
        if scores.ndim == 1:
            z = scores / t
            return float(np.sum(np.logaddexp(0.0, np.where(y == 1, -z, z))))
        logp = log_softmax(scores / t, axis=1)
        return float(-np.sum(logp[np.arange(len(y)), y]))

    finite = scores[np.isfinite(scores)] if scores.size else np.array([1.0])
    spread = float(np.std(finite)) or 1.0
    result = minimize_scalar(
        loss, bounds=(np.log(spread) - 8.0, np.log(spread) + 8.0), method="bounded"
    )
    return float(np.exp(result.x))


def _calibration_folds(
    y: NDArray[Any], groups: ArrayLike | None, n_splits: int, random_state: int
) -> list[tuple[NDArray[np.int_], NDArray[np.int_]]]:
    from radharmony.model._checks import check_fold_counts

    group_arr = np.arange(len(y)) if groups is None else np.asarray(groups)
    check_fold_counts(y, group_arr, n_splits, "calibration cv")
    if len(set(group_arr.tolist())) == len(group_arr):
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(len(y)), y))
    grouped = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(grouped.split(np.zeros(len(y)), y, group_arr))


def _metadata(batch: ArrayLike | None, covariates: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if batch is not None:
        meta["batch"] = np.asarray(batch)
    if covariates is not None:
        meta["covariates"] = covariates
    return meta


def _take_meta(meta: dict[str, Any], rows: Any) -> dict[str, Any]:
    if rows is None:
        return meta
    return {
        key: value.iloc[rows] if hasattr(value, "iloc") else np.asarray(value)[rows]
        for key, value in meta.items()
    }


def _rows(X: Any, rows: NDArray[np.int_]) -> Any:
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def _default_pipeline() -> Pipeline:
    from radharmony.model._pipeline import build_pipeline

    return build_pipeline(calibration=None)
