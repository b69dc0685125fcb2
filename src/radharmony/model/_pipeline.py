"""Construction of leak-free classification pipelines and their small default tuning grids."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from radharmony.errors import ModelError
from radharmony.model._calibration import CALIBRATIONS, CalibratedPipeline
from radharmony.model._calibration import uses_harmonizer as uses_harmonizer
from radharmony.model._transformers import (
    DropCorrelated,
    DropNearConstant,
    L1Selector,
    MRMRSelector,
    UnivariateSelector,
    penalised_logistic,
)

MODELS: tuple[str, ...] = (
    "auto",
    "logistic_l2",
    "logistic_l1",
    "logistic_elasticnet",
    "random_forest",
    "gradient_boosting",
    "svm",
)
SELECTIONS: tuple[str, ...] = ("univariate", "l1", "mrmr", "none")

#: Step names of every pipeline built by :func:`build_pipeline`, in order.
STEP_NAMES: tuple[str, ...] = (
    "impute",
    "harmonize",
    "near_constant",
    "decorrelate",
    "scale",
    "select",
    "clf",
)


def build_pipeline(
    model: str = "auto",
    *,
    harmonize: bool | BaseEstimator | None = None,
    selection: str = "univariate",
    n_features: int = 10,
    correlation_threshold: float = 0.9,
    max_mode_fraction: float = 0.95,
    calibration: str | None = "sigmoid",
    calibration_cv: int = 5,
    random_state: int = 0,
) -> Pipeline | CalibratedPipeline:
    """Return a classification pipeline whose every step is fitted on training rows only.

    Steps: median imputation, optional ComBat harmonisation (``batch``/``covariates`` routed as
    metadata), removal of near-constant then highly correlated features, standardisation,
    feature selection, and a classifier with balanced class weights. With a calibration the
    pipeline is wrapped in :class:`CalibratedPipeline`, which fits the calibration map on
    out-of-fold scores of whole-pipeline refits (grouped by patient when ``groups`` is passed
    to ``fit``), so no step that saw labels was fitted on the calibration rows.

    Parameters
    ----------
    model : str
        ``"auto"`` (default) builds the ``"logistic_l2"`` pipeline; with
        :func:`default_param_grid` the inner loop of :func:`radharmony.evaluate` then also
        tries a random forest and an RBF support vector machine. Single families:
        ``"logistic_l2"``, ``"logistic_l1"``, ``"logistic_elasticnet"``, ``"random_forest"``,
        ``"gradient_boosting"`` (histogram gradient boosting) or ``"svm"`` (RBF kernel).
    harmonize : bool or estimator, optional
        ``None``/``False``: no harmonisation step ("passthrough"). ``True``: the package's
        default ComBat (``radharmony.harmonize.default_harmonizer()``). An estimator: a clone of
        it, which must accept ``batch`` (and ``covariates``) in ``fit`` and ``transform``.
    selection : str
        ``"univariate"`` (ANOVA F), ``"l1"`` (L1 logistic), ``"mrmr"`` (greedy mRMR) or ``"none"``.
    n_features : int
        Number of features the selection step keeps (capped at what reaches it).
    correlation_threshold : float
        Absolute Pearson correlation above which the later feature of a pair is dropped.
    max_mode_fraction : float
        A feature whose most frequent value covers more than this fraction of rows is dropped.
    calibration : str or None
        ``"sigmoid"`` (default; Platt), ``"isotonic"``, ``"temperature"`` or ``None``/``"none"``.
        The SVM has probabilities only through a calibration.
    calibration_cv : int
        Number of folds of the whole-pipeline refits the calibration map is fitted on.
    random_state : int
        Seed of the stochastic classifiers.

    Returns
    -------
    Pipeline or CalibratedPipeline
        Steps named as in ``STEP_NAMES``; unused steps are ``"passthrough"``. Calibrated: the
        pipeline is ``.pipeline`` (fitted: ``.pipeline_``).

    Raises
    ------
    ModelError
        If ``model``, ``selection`` or ``calibration`` is not a known name.
    """
    calibration = "none" if calibration is None else calibration
    _check_choice("model", model, MODELS)
    _check_choice("selection", selection, SELECTIONS)
    _check_choice("calibration", calibration, CALIBRATIONS)
    classifier = _classifier("logistic_l2" if model == "auto" else model, random_state)
    steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("harmonize", _harmonizer(harmonize)),
        ("near_constant", DropNearConstant(max_mode_fraction=max_mode_fraction)),
        ("decorrelate", DropCorrelated(threshold=correlation_threshold)),
        ("scale", StandardScaler()),
        ("select", _selector(selection, n_features)),
        ("clf", classifier),
    ]
    if calibration == "none":
        return Pipeline(steps)
    return CalibratedPipeline(
        Pipeline(steps), method=calibration, cv=calibration_cv, random_state=random_state
    )


def default_param_grid(
    model: str, selection: str = "univariate", *, random_state: int = 0
) -> dict[str, list[Any]] | list[dict[str, list[Any]]]:
    """Return the inner-loop search space used by :func:`radharmony.evaluate` for a model.

    Keys address the uncalibrated pipeline (``"clf__C"``, ``"select__k"``); use
    :func:`set_pipeline_params` to apply them to a calibrated one.

    The ``"auto"`` space compares three classifier families that radiomics comparisons keep
    finding among the best on small tables (penalised logistic regression, random forest, RBF
    support vector machine), each with its main complexity parameter on a decade grid that
    ends at the library default: logistic regression ``C`` in {0.1, 1} with the 5, 10 or 20
    best univariate features; a 200-tree random forest on every filtered feature (it selects
    features itself) with ``min_samples_leaf`` in {1, 5}; the SVM with the 10 best features
    and ``C`` in {1, 10} (its default gamma adapts to the scale). The space was fixed by this
    rule before any benchmark table was looked at.

    Parameters
    ----------
    model : str
        A name from ``MODELS``.
    selection : str
        A name from ``SELECTIONS``; ``"none"`` adds no selection parameter.
    random_state : int
        Seed of the random forest of the ``"auto"`` space.

    Returns
    -------
    dict or list of dict
        Parameter name to candidate values (a list of such grids for ``"auto"``).
    """
    _check_choice("model", model, MODELS)
    if model == "auto":
        with_selection = selection != "none"
        linear: dict[str, list[Any]] = {"clf__C": [0.1, 1.0]}
        svm: dict[str, list[Any]] = {"clf": [_classifier("svm", random_state)]}
        svm["clf__C"] = [1.0, 10.0]
        if with_selection:
            linear["select__k"] = [5, 10, 20]
            svm["select__k"] = [10]
        forest: dict[str, list[Any]] = {
            "clf": [_classifier("random_forest", random_state)],
            "clf__min_samples_leaf": [1, 5],
            "select": ["passthrough"],
        }
        return [linear, forest, svm]
    grid: dict[str, list[Any]] = {}
    if selection != "none":
        grid["select__k"] = [5, 10]
    if model.startswith("logistic") or model == "svm":
        grid["clf__C"] = [0.1, 1.0]
    elif model == "random_forest":
        grid["clf__min_samples_leaf"] = [1, 5]
    elif model == "gradient_boosting":
        grid["clf__learning_rate"] = [0.05, 0.2]
    return grid


def set_pipeline_params(pipeline: Pipeline, params: dict[str, Any]) -> Pipeline:
    """Set grid parameters (uncalibrated naming) on a pipeline, calibrated or not.

    Parameters
    ----------
    pipeline : Pipeline
        A pipeline from :func:`build_pipeline`.
    params : dict
        Parameters such as ``{"clf__C": 1.0, "select__k": 5}``.

    Returns
    -------
    Pipeline
        The same pipeline, modified in place.
    """
    values = {
        name: clone(value) if isinstance(value, BaseEstimator) else value
        for name, value in params.items()
    }
    if isinstance(pipeline, CalibratedPipeline):
        inner = (
            pipeline.pipeline if pipeline.pipeline is not None else build_pipeline(calibration=None)
        )
        pipeline.set_params(pipeline=set_pipeline_params(clone(inner), values))
        return pipeline
    calibrated = isinstance(pipeline.named_steps["clf"], CalibratedClassifierCV)
    translated = {
        (name.replace("clf__", "clf__estimator__", 1) if calibrated else name): value
        for name, value in values.items()
    }
    if calibrated and "clf" in values:
        translated.pop("clf__estimator__", None)
        translated["clf__estimator"] = translated.pop("clf")
    return pipeline.set_params(**translated)


def selected_features(pipeline: Any, input_features: list[str]) -> list[str]:
    """Return the input feature names that reach the classifier of a fitted pipeline.

    Every step before the classifier maps one input column to at most one output column
    (imputation, ComBat and scaling keep columns; the filters and the selector drop some), so
    the classifier's inputs are a subset of the original features, in order. For a
    calibrated pipeline, the fitted pipeline inside it; for an ensemble, the features any
    member uses.
    """
    if hasattr(pipeline, "estimators_"):
        used = set()
        for member in pipeline.estimators_:
            used |= set(selected_features(member, input_features))
        return [str(n) for n in input_features if str(n) in used]
    if isinstance(pipeline, CalibratedPipeline):
        pipeline = pipeline.pipeline_
    names = np.asarray(input_features, dtype=object)
    for _, step in pipeline.steps[:-1]:
        if step in ("passthrough", None):
            continue
        if hasattr(step, "get_support"):
            names = names[step.get_support()]
    return [str(n) for n in names]


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ModelError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _classifier(model: str, random_state: int) -> BaseEstimator:
    """Return the unfitted classifier for a model name, with balanced class weights."""
    if model == "logistic_l2":
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    if model == "logistic_l1":
        return penalised_logistic(1.0, solver="saga", class_weight="balanced", max_iter=5000)
    if model == "logistic_elasticnet":
        return penalised_logistic(0.5, solver="saga", class_weight="balanced", max_iter=5000)
    if model == "random_forest":
        return RandomForestClassifier(
            n_estimators=200, class_weight="balanced", random_state=random_state
        )
    if model == "gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=100, max_depth=3, class_weight="balanced", random_state=random_state
        )
    # SVC's internal probability option is deprecated: probabilities come from the calibrator.
    return SVC(kernel="rbf", C=1.0, class_weight="balanced")


def _selector(selection: str, n_features: int) -> BaseEstimator | str:
    if selection == "univariate":
        return UnivariateSelector(k=n_features)
    if selection == "l1":
        return L1Selector(k=n_features)
    if selection == "mrmr":
        return MRMRSelector(k=n_features)
    return "passthrough"


def _harmonizer(harmonize: bool | BaseEstimator | None) -> BaseEstimator | str:
    """Return the harmonisation step with ``batch``/``covariates`` requested for fit/transform."""
    if harmonize is None or harmonize is False:
        return "passthrough"
    if harmonize is True:
        try:
            from radharmony.harmonize import default_harmonizer
        except ImportError as err:
            raise ModelError(
                "harmonize=True needs radharmony.harmonize, which cannot be imported "
                f"({err}); pass harmonize=None or an estimator"
            ) from err
        step = default_harmonizer()
    else:
        step = clone(harmonize)
    # The package's ComBat declares these requests itself; setting them again lets any
    # transformer with batch/covariates keywords be used without the caller knowing routing.
    with config_context(enable_metadata_routing=True):
        for method in ("set_fit_request", "set_transform_request"):
            if hasattr(step, method):
                step = getattr(step, method)(batch=True, covariates=True)
    return step
