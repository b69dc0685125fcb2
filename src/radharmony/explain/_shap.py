"""SHAP explanations of fitted radharmony pipelines, reported on the original feature names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
from numpy.typing import NDArray
from sklearn import config_context
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from radharmony._progress import progress_bar
from radharmony.errors import ModelError
from radharmony.model import CalibratedPipeline, selected_features

_LINEAR = (LogisticRegression, RidgeClassifier, SGDClassifier, LinearSVC)
_TREES = (
    RandomForestClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    DecisionTreeClassifier,
)
_PERMUTATION_BACKGROUND = 50
_PERMUTATION_ROUNDS = 4


@dataclass
class _Final:
    """The classifier to explain and the exact map from its output to the reported output."""

    estimator: Any
    slope: float  # reported = slope * raw + intercept (binary sigmoid calibration)
    intercept: float
    output_name: str


def explain(
    model: Any,
    X: pd.DataFrame,
    *,
    batch: Any = None,
    covariates: pd.DataFrame | None = None,
    background: pd.DataFrame | None = None,
    background_batch: Any = None,
    background_covariates: pd.DataFrame | None = None,
    max_background: int = 100,
    random_state: int = 0,
    verbose: bool | int | None = None,
) -> shap.Explanation:
    """Return SHAP values of a fitted model for the rows of ``X``, on the original features.

    The classifier is explained on the features it receives; every step before it maps one
    original column to at most one column (imputation, ComBat, scaling, filters, selection), so
    each value is attributed to its original feature and features the pipeline dropped get 0.
    Linear models use the exact linear explainer (interventional, background mean), tree
    ensembles the exact tree explainer, other models the permutation explainer.

    The explained output is, for binary targets with sigmoid or temperature calibration (the
    default), the calibrated log-odds of the positive class, i.e.
    ``logit(model.predict_proba(X)[:, 1])``; otherwise the uncalibrated classifier's own score
    (decision function for linear models and gradient boosting, probability for random
    forests), per class for multi-class targets. For a :class:`~radharmony.model.ConformalEnsemble`
    the values are the mean of its members' values, which for calibrated binary members is
    exactly the ensemble's log-odds. ``explanation.output_names`` says which.

    Parameters
    ----------
    model : Pipeline, CalibratedPipeline or ConformalEnsemble
        A fitted model from :func:`radharmony.build_pipeline` or :func:`radharmony.evaluate`.
    X : pandas.DataFrame
        Cases to explain, with the training feature columns.
    batch, covariates : optional
        Scanner and covariates of ``X`` when the model harmonises.
    background : pandas.DataFrame, optional
        Reference cases defining the base value (default: the training rows an ensemble
        stores, otherwise ``X``), sub-sampled to ``max_background`` rows.
    background_batch, background_covariates : optional
        Scanner and covariates of ``background``.
    max_background : int
        Largest number of background rows.
    random_state : int
        Seed of the background sub-sample and of the permutation explainer.
    verbose : int or bool, optional
        0: silent; otherwise (default) a progress bar over the ensemble members.

    Returns
    -------
    shap.Explanation
        ``values`` of shape (n, n_features) for binary targets or (n, n_features, n_classes),
        ``base_values``, ``data`` (the original feature values) and ``feature_names``.
        Additive: ``values.sum(axis=1) + base_values`` equals the explained output.
    """
    if not isinstance(X, pd.DataFrame):
        raise ModelError("explain needs X as a DataFrame with the training feature columns")
    members = _members(model)
    if background is None:
        stored = getattr(model, "background", None)
        if callable(stored) and hasattr(model, "background_"):
            background, background_batch, background_covariates = stored()
        else:
            background, background_batch, background_covariates = X, batch, covariates
    rows = _background_rows(len(background), max_background, random_state)
    background = background.iloc[rows]
    background_batch = None if background_batch is None else np.asarray(background_batch)[rows]
    if background_covariates is not None:
        background_covariates = pd.DataFrame(background_covariates).iloc[rows]
    names = [str(c) for c in X.columns]
    parts = [
        _explain_member(
            member,
            X,
            batch,
            covariates,
            background,
            background_batch,
            background_covariates,
            random_state,
            names,
        )
        for member in progress_bar(
            members, description="SHAP", verbose=verbose, unit="model", automatic_from=2
        )
    ]
    values = np.mean([p[0] for p in parts], axis=0)
    base = np.mean([p[1] for p in parts], axis=0)
    output_name = parts[0][2]
    if len(parts) > 1:
        output_name = f"{output_name}, mean of {len(parts)} ensemble members"
    return shap.Explanation(
        values=values,
        base_values=base,
        data=X.to_numpy(dtype=float),
        feature_names=names,
        output_names=output_name,
    )


def _members(model: Any) -> list[Any]:
    if hasattr(model, "estimators_") and hasattr(model, "unit_scores_"):
        return list(model.estimators_)
    if isinstance(model, Pipeline | CalibratedPipeline):
        return [model]
    raise ModelError(
        "explain needs a fitted Pipeline, CalibratedPipeline or ConformalEnsemble, got "
        f"{type(model).__name__}"
    )


def _explain_member(
    member: Any,
    X: pd.DataFrame,
    batch: Any,
    covariates: pd.DataFrame | None,
    background: pd.DataFrame,
    background_batch: Any,
    background_covariates: pd.DataFrame | None,
    random_state: int,
    names: list[str],
) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
    """SHAP values (aligned on ``names``), base values and output name of one pipeline."""
    if isinstance(member, CalibratedPipeline):
        pipeline = member.pipeline_
        affine = member.calibrator_.log_odds_map()
        classes = np.asarray(member.classes_)
        if affine is None:
            final = _Final(pipeline.steps[-1][1], 1.0, 0.0, "")
            final.output_name = _raw_output_name(final.estimator, classes)
        else:
            final = _Final(
                pipeline.steps[-1][1],
                affine[0],
                affine[1],
                f"calibrated log-odds of class {classes[1]}",
            )
    else:
        pipeline = member
        final = _final_classifier(pipeline.steps[-1][1], pipeline.classes_)
    prefix = Pipeline(pipeline.steps[:-1])
    Z = _transform(prefix, X, batch, covariates)
    Z_background = _transform(prefix, background, background_batch, background_covariates)
    values, base = _raw_shap(final.estimator, Z, Z_background, random_state)
    values = values * final.slope
    base = base * final.slope + final.intercept
    columns = [names.index(n) for n in selected_features(pipeline, names)]
    full = np.zeros((len(X), len(names), *values.shape[2:]))
    full[:, columns] = values
    return full, base, final.output_name


def _background_rows(n: int, max_rows: int, random_state: int) -> NDArray[np.int_]:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=max_rows, replace=False))


def _transform(
    prefix: Pipeline, X: pd.DataFrame, batch: Any, covariates: pd.DataFrame | None
) -> NDArray[np.float64]:
    """Run the fitted pre-processing steps, routing batch/covariates to the harmoniser."""
    harmonizer = prefix.named_steps.get("harmonize", "passthrough")
    if harmonizer in ("passthrough", None):
        return np.asarray(prefix.transform(X), dtype=float)
    if batch is None:
        raise ModelError("this pipeline harmonises with ComBat: pass batch= (and covariates=)")
    meta: dict[str, Any] = {"batch": np.asarray(batch)}
    if covariates is not None:
        meta["covariates"] = covariates
    with config_context(enable_metadata_routing=True):
        return np.asarray(prefix.transform(X, **meta), dtype=float)


def _final_classifier(step: Any, classes: NDArray[Any]) -> _Final:
    """Unwrap a calibrated classifier; keep the exact affine map of binary sigmoid calibration."""
    if not isinstance(step, CalibratedClassifierCV):
        return _Final(step, 1.0, 0.0, _raw_output_name(step, classes))
    if step.ensemble is not False and len(step.calibrated_classifiers_) > 1:
        raise ModelError(
            "explain needs CalibratedClassifierCV(ensemble=False) (one classifier); "
            "build the pipeline with radharmony.build_pipeline"
        )
    pair = step.calibrated_classifiers_[0]
    base = pair.estimator
    if classes.size == 2 and step.method == "sigmoid":
        calibrator = pair.calibrators[0]
        # p = expit(-(a * raw + b)), so logit(p) = -a * raw - b: exact on every case.
        return _Final(
            base,
            -float(calibrator.a_),
            -float(calibrator.b_),
            f"calibrated log-odds of class {classes[1]}",
        )
    return _Final(base, 1.0, 0.0, _raw_output_name(base, classes))


def _raw_output_name(estimator: Any, classes: NDArray[Any]) -> str:
    kind = (
        "probability"
        if isinstance(
            estimator, RandomForestClassifier | ExtraTreesClassifier | DecisionTreeClassifier
        )
        else "decision function"
    )
    if classes.size == 2:
        return f"{kind} of class {classes[1]} (uncalibrated)"
    return f"{kind} per class (uncalibrated)"


def _raw_shap(
    estimator: Any, Z: NDArray[np.float64], Z_background: NDArray[np.float64], random_state: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """SHAP values and base values of the classifier's raw score on pre-processed features.

    Binary targets give the positive class only (that is what the calibrator maps).
    """
    if isinstance(estimator, (*_LINEAR, *_TREES)):
        explainer = (
            shap.LinearExplainer(
                estimator, shap.maskers.Independent(Z_background, max_samples=len(Z_background))
            )
            if isinstance(estimator, _LINEAR)
            else shap.TreeExplainer(estimator)
        )
        result = explainer(Z)
        values = np.asarray(result.values, dtype=float)
        base = np.broadcast_to(
            np.asarray(result.base_values, dtype=float), values.shape[:1] + values.shape[2:]
        ).copy()
    else:
        function = (
            estimator.decision_function
            if hasattr(estimator, "decision_function")
            else estimator.predict_proba
        )
        background = Z_background[:_PERMUTATION_BACKGROUND]
        values, base = _permutation_shap(function, Z, background, random_state)
    if values.ndim == 3 and values.shape[2] == 2:
        # Two-column outputs (probabilities of both classes): keep the positive class.
        values, base = values[:, :, 1], base[:, 1]
    return values, base


def _permutation_shap(
    function: Any,
    Z: NDArray[np.float64],
    Z_background: NDArray[np.float64],
    random_state: int,
    n_rounds: int = _PERMUTATION_ROUNDS,
    chunk: int = 100,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Interventional SHAP values by antithetic feature permutations, vectorised over cases.

    For each permutation and its reverse, features are switched from background to case values
    one at a time and the change of the mean output is credited to the switched feature. The
    contributions of one permutation telescope from the background mean to the case's output,
    so the values are exactly additive whatever the number of permutations.
    """
    rng = np.random.default_rng(random_state)
    n, p = Z.shape
    orders = []
    for _ in range(n_rounds):
        order = rng.permutation(p)
        orders += [order, order[::-1]]
    base_output = np.asarray(function(Z_background), dtype=float)
    base = np.broadcast_to(base_output.mean(axis=0), (n, *base_output.shape[1:])).copy()
    values = np.zeros((n, p, *base_output.shape[1:]))
    n_bg = len(Z_background)
    for start in range(0, n, chunk):
        cases = Z[start : start + chunk]
        m = len(cases)
        for order in orders:
            # One (case, background) row per pair; columns switch to the case one at a time.
            mixed = np.tile(Z_background, (m, 1))
            previous = np.broadcast_to(base_output.mean(axis=0), (m, *base_output.shape[1:]))
            for j in order:
                mixed[:, j] = np.repeat(cases[:, j], n_bg)
                output = np.asarray(function(mixed), dtype=float)
                current = output.reshape(m, n_bg, *output.shape[1:]).mean(axis=1)
                values[start : start + m, j] += current - previous
                previous = current
    return values / len(orders), base
