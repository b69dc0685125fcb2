"""Tables of SHAP explanations: global importance, per-case top contributions, out-of-fold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shap

from radharmony._progress import progress_bar
from radharmony.errors import ModelError
from radharmony.explain._shap import explain


def class_slice(explanation: shap.Explanation, class_index: int | None = None) -> shap.Explanation:
    """Return a 2-D explanation: the input itself, or one class of a multi-class explanation.

    Parameters
    ----------
    explanation : shap.Explanation
        From :func:`radharmony.explain.explain`.
    class_index : int, optional
        Column of the class to keep (multi-class only); default: each case's largest output.
    """
    values = np.asarray(explanation.values)
    if values.ndim == 2:
        return explanation
    base = np.asarray(explanation.base_values)
    if class_index is None:
        chosen = (values.sum(axis=1) + base).argmax(axis=1)
    else:
        chosen = np.full(len(values), int(class_index))
    rows = np.arange(len(values))
    return shap.Explanation(
        values=values[rows, :, chosen],
        base_values=base[rows, chosen],
        data=explanation.data,
        feature_names=explanation.feature_names,
    )


def global_importance(explanation: shap.Explanation) -> pd.DataFrame:
    """Return mean absolute SHAP per feature (summed over classes for multi-class), descending.

    Returns
    -------
    pandas.DataFrame
        Index ``feature``; columns ``mean_abs_shap`` and ``share`` (of the total).
    """
    values = np.abs(np.asarray(explanation.values))
    importance = values.mean(axis=0)
    if importance.ndim == 2:
        importance = importance.sum(axis=1)
    table = pd.DataFrame(
        {"mean_abs_shap": importance},
        index=pd.Index(explanation.feature_names, name="feature"),
    )
    total = table["mean_abs_shap"].sum()
    table["share"] = table["mean_abs_shap"] / total if total > 0 else 0.0
    return table.sort_values("mean_abs_shap", ascending=False)


def top_contributions(
    explanation: shap.Explanation,
    *,
    n: int = 3,
    index: Any = None,
    class_index: int | None = None,
) -> pd.DataFrame:
    """Return each case's ``n`` largest contributions (by absolute SHAP value).

    Parameters
    ----------
    explanation : shap.Explanation
        From :func:`radharmony.explain.explain`.
    n : int
        Number of contributions per case.
    index : array-like, optional
        Row labels of the output (e.g. the case identifiers).
    class_index : int, optional
        Class to report for multi-class explanations (default: each case's top class).

    Returns
    -------
    pandas.DataFrame
        Columns ``shap_base_value`` then, for ``i`` in 1..n, ``top{i}_feature``,
        ``top{i}_value`` (the case's feature value) and ``top{i}_shap`` (signed contribution).
    """
    sliced = class_slice(explanation, class_index)
    values = np.asarray(sliced.values)
    data = np.asarray(sliced.data)
    names = np.asarray(sliced.feature_names, dtype=object)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :n]
    rows = np.arange(len(values))[:, None]
    table = pd.DataFrame({"shap_base_value": np.asarray(sliced.base_values, dtype=float)})
    for i in range(order.shape[1]):
        table[f"top{i + 1}_feature"] = names[order[:, i]]
        table[f"top{i + 1}_value"] = data[rows[:, 0], order[:, i]]
        table[f"top{i + 1}_shap"] = values[rows[:, 0], order[:, i]]
    if index is not None:
        table.index = pd.Index(index)
    return table


def explain_out_of_fold(
    result: Any,
    features: pd.DataFrame,
    *,
    batch: Any = None,
    covariates: pd.DataFrame | None = None,
    max_background: int = 100,
    verbose: bool | int | None = None,
) -> shap.Explanation:
    """Explain every case with the outer-fold model that predicted it (out of fold).

    The background of each fold is a sample of that fold's training rows, so no explanation
    uses its own case to set the base value. Values are aligned on all input features.

    Parameters
    ----------
    result : EvaluationResult
        From :func:`radharmony.evaluate`.
    features : pandas.DataFrame
        The feature table passed to ``evaluate`` (same rows, same order).
    batch, covariates : optional
        The same batch and covariates as passed to ``evaluate`` (needed when it harmonised).
    max_background : int
        Largest number of background rows per fold.
    verbose : int or bool, optional
        0: silent; otherwise (default) a progress bar over the outer folds.

    Returns
    -------
    shap.Explanation
        One row per case in the order of ``features``.
    """
    if len(features) != len(result.predictions):
        raise ModelError(
            f"features has {len(features)} rows but the evaluation had {len(result.predictions)}"
        )
    batch_arr = None if batch is None else np.asarray(batch)
    cov = None if covariates is None else pd.DataFrame(covariates)
    values: np.ndarray | None = None
    base: np.ndarray | None = None
    folds = list(zip(result.fold_models, result.splits, strict=True))
    for model, (train, test) in progress_bar(
        folds, description="out-of-fold SHAP", verbose=verbose, unit="fold"
    ):
        explanation = explain(
            model,
            features.iloc[test],
            batch=None if batch_arr is None else batch_arr[test],
            covariates=None if cov is None else cov.iloc[test],
            background=features.iloc[train],
            background_batch=None if batch_arr is None else batch_arr[train],
            background_covariates=None if cov is None else cov.iloc[train],
            max_background=max_background,
            verbose=0,
        )
        fold_values = np.asarray(explanation.values)
        fold_base = np.asarray(explanation.base_values)
        if values is None or base is None:
            values = np.zeros((len(features), *fold_values.shape[1:]))
            base = np.zeros((len(features), *fold_base.shape[1:]))
        values[test], base[test] = fold_values, fold_base
    return shap.Explanation(
        values=values,
        base_values=base,
        data=features.to_numpy(dtype=float),
        feature_names=[str(c) for c in features.columns],
        output_names=explanation.output_names,
    )
