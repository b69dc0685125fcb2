"""Input checks shared by the harmonisation estimators and the report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from radharmony.errors import HarmonizationError


def as_feature_matrix(X: Any) -> tuple[np.ndarray, list[str] | None, pd.Index | None]:
    """Return ``(values float64, column names or None, index or None)``; raise on NaN/inf."""
    from scipy import sparse

    if sparse.issparse(X):
        raise HarmonizationError(
            "sparse input is not supported: harmonisation changes every value of a feature, so "
            "the result is dense; pass X.toarray()."
        )
    if isinstance(X, pd.DataFrame):
        non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if non_numeric:
            raise HarmonizationError(
                f"feature column(s) {non_numeric[:10]} are not numeric; pass only feature "
                "columns as X (batch and covariates go to batch= and covariates=)."
            )
        values = X.to_numpy(dtype=float, copy=True)
        names, index = [str(c) for c in X.columns], X.index
    else:
        raw = np.asarray(X)
        if np.iscomplexobj(raw):
            raise HarmonizationError("Complex data not supported: X must hold real numbers.")
        values = np.array(raw, dtype=float, copy=True)
        names, index = None, None
    _check_two_dimensional(values.shape)
    for axis, what in ((0, "sample(s)"), (1, "feature(s)")):
        if values.shape[axis] == 0:
            raise HarmonizationError(
                f"Found array with 0 {what} (shape={values.shape}) while a minimum of 1 is "
                "required: harmonisation needs at least one sample and one feature."
            )
    bad = ~np.isfinite(values)
    if bad.any():
        raise HarmonizationError(_non_finite_message(bad, names))
    return values, names, index


def as_batch(batch: Any, n_samples: int) -> np.ndarray:
    """Return the batch labels as a 1-D object array of length ``n_samples``."""
    if batch is None:
        raise HarmonizationError(
            "batch is required: pass batch=<scanner of each row>. Inside scikit-learn "
            "(Pipeline, cross_validate, GridSearchCV) enable metadata routing and pass it as "
            "params={'batch': ...}; for scoring use radharmony.harmonize.batch_scorer."
        )
    values = np.asarray(batch, dtype=object).ravel()
    if values.shape[0] != n_samples:
        raise HarmonizationError(
            f"batch has {values.shape[0]} values but X has {n_samples} rows; pass one batch "
            "label per row of X."
        )
    missing = pd.isna(pd.Series(values)).to_numpy()
    if missing.any():
        raise HarmonizationError(
            f"batch has {int(missing.sum())} missing value(s) (rows {np.flatnonzero(missing)[:10]}"
            "); every row needs its scanner/site."
        )
    return values


def as_covariates(covariates: Any, n_samples: int) -> pd.DataFrame | None:
    """Return covariates as a DataFrame with a fresh positional index (rows align with X)."""
    if covariates is None:
        return None
    frame = covariates.to_frame() if isinstance(covariates, pd.Series) else covariates
    if not isinstance(frame, pd.DataFrame):
        raise HarmonizationError(
            "covariates must be a pandas DataFrame whose named columns are the variables to "
            f"preserve, got {type(covariates).__name__}."
        )
    if frame.shape[0] != n_samples:
        raise HarmonizationError(
            f"covariates have {frame.shape[0]} rows but X has {n_samples}; pass one row per "
            "sample, in the same order as X."
        )
    return frame.reset_index(drop=True)


def batch_counts_or_raise(batch: np.ndarray, levels: list[Any]) -> np.ndarray:
    """Return samples per batch; raise if there is one batch or a batch with one sample."""
    counts = pd.Series(batch).value_counts().reindex(levels).to_numpy()
    if len(levels) < 2:
        raise HarmonizationError(
            f"only one batch ({levels}) was given: there is no scanner effect to remove. "
            "Leave out the harmonisation step (harmonize=False) for single-scanner data."
        )
    small = [level for level, count in zip(levels, counts, strict=True) if count < 2]
    if small:
        raise HarmonizationError(
            f"batch(es) {small} have fewer than 2 samples; ComBat cannot estimate a scale from "
            "one sample (neuroCombat would return NaN for every value). Merge them with a "
            "similar scanner or drop them."
        )
    return counts


def aligned_columns(
    X: Any, feature_names_in: Any, n_features_in: int, owner: str = "the harmoniser"
) -> Any:
    """Return X with its columns in the fitted order; raise on missing or extra columns."""
    if isinstance(X, pd.DataFrame) and feature_names_in is not None:
        expected = [str(c) for c in feature_names_in]
        columns = [str(c) for c in X.columns]
        if columns != expected:
            missing = sorted(set(expected) - set(columns))
            extra = sorted(set(columns) - set(expected))
            if missing or extra:
                raise HarmonizationError(
                    f"X's columns differ from those seen at fit: missing {missing[:10]}, "
                    f"unexpected {extra[:10]}."
                )
            X = X.set_axis(columns, axis=1)[expected]
        return X
    shape = np.shape(np.asarray(X))
    _check_two_dimensional(shape)
    n_cols = shape[1]
    if n_cols != n_features_in:
        raise HarmonizationError(
            f"X has {n_cols} features, but {owner} is expecting {n_features_in} features "
            "as input (those seen at fit)."
        )
    return X


def _check_two_dimensional(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise HarmonizationError(
            f"X must be 2-D (samples x features), got shape {shape}. Reshape your data "
            "either using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample."
        )


def _non_finite_message(bad: np.ndarray, names: list[str] | None) -> str:
    """Say which columns hold NaN/inf, singling out columns with no finite value at all."""
    label = (lambda c: names[c]) if names else (lambda c: f"column {c}")
    empty = [label(c) for c in np.flatnonzero(bad.all(axis=0))]
    partial = [label(c) for c in np.flatnonzero(bad.any(axis=0) & ~bad.all(axis=0))]
    parts = []
    if empty:
        parts.append(
            f"column(s) {empty[:10]}{' ...' if len(empty) > 10 else ''} hold no finite value "
            "(drop them: there is nothing to harmonise)"
        )
    if partial:
        parts.append(
            f"column(s) {partial[:10]}{' ...' if len(partial) > 10 else ''} hold "
            f"{int(bad[:, bad.any(axis=0) & ~bad.all(axis=0)].sum())} NaN or infinite value(s) "
            "(impute or drop them)"
        )
    return (
        f"X holds NaN or infinite values: {'; '.join(parts)}. ComBat would turn each such "
        "feature into NaN for every sample, so fix these before harmonising."
    )
