"""Checks of the inputs and of the folds of an evaluation, with errors that say how to fix them."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from radharmony.errors import ModelError

Split = tuple[NDArray[np.int_], NDArray[np.int_]]


def numeric_features(features: Any) -> pd.DataFrame:
    """Return the features as float64; refuse text and infinity, warn about empty columns.

    Columns without any value are kept: the pipeline imputes them with 0 and drops them as
    constant inside every fold, so they never reach the classifier.
    """
    if not isinstance(features, pd.DataFrame):
        features = pd.DataFrame(np.asarray(features, dtype=float))
    bad = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise ModelError(
            f"feature columns must be numeric; {bad[:5]} are not. Drop identifiers and "
            "metadata columns, or encode them"
        )
    values = features.astype(float)
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        columns = [str(c) for c in values.columns[infinite.any(axis=0)]]
        first_row = values.index[np.flatnonzero(infinite.any(axis=1))[0]]
        raise ModelError(
            f"feature column(s) {columns[:10]} hold {int(infinite.sum())} infinite value(s) "
            f"(first in row {first_row!r}); infinity usually comes from a failed unit "
            "conversion or a division by zero. Replace them with NaN (imputed inside the "
            "folds) or drop those rows or columns"
        )
    empty = [str(c) for c in values.columns[values.isna().all(axis=0).to_numpy()]]
    if empty and len(values):
        warnings.warn(
            f"feature column(s) {empty[:10]} have no value in any row; they carry no "
            "information and are dropped inside every fold. Remove them to silence this warning",
            UserWarning,
            stacklevel=5,
        )
    return values


def target_and_classes(target: ArrayLike, n: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Return the labels and the sorted classes; refuse missing labels and a single class."""
    y = optional_array(target, n, "target")
    if y is None or pd.isna(pd.Series(y)).any():
        raise ModelError("target has missing values; drop those rows before evaluating")
    classes = np.unique(y)
    if classes.size < 2:
        raise ModelError(
            f"target has a single class {[_plain(c) for c in classes]}; need at least two. "
            "Check the label column and the rows kept"
        )
    return y, classes


def optional_array(values: ArrayLike | None, n: int, what: str) -> NDArray[Any] | None:
    """Return a 1-D array of ``n`` values, or None; raise on a wrong length."""
    if values is None:
        return None
    array = np.asarray(values)
    if array.shape != (n,):
        raise ModelError(
            f"{what} must have one value per feature row ({n}), got shape {array.shape}"
        )
    return array


def check_target_not_covariate(
    covariates: pd.DataFrame, y: NDArray[Any], target: ArrayLike
) -> None:
    """Refuse a ComBat covariate that is the prediction target (it leaks the labels)."""
    target_name = getattr(target, "name", None)
    codes = pd.factorize(pd.Series(y))[0]
    for column in covariates.columns:
        same_name = target_name is not None and str(column) == str(target_name)
        same_values = (
            len(covariates) == len(y)
            and pd.factorize(covariates[column].reset_index(drop=True))[0].tolist()
            == codes.tolist()
        )
        if same_name or same_values:
            raise ModelError(
                f"covariate {column!r} is the prediction target; preserving it in ComBat leaks "
                "the labels into the features. Remove it from the covariates"
            )


def check_fold_counts(
    y: NDArray[Any], groups: NDArray[Any], n_splits: int, what: str, where: str = ""
) -> None:
    """Raise when a class has fewer patients than folds.

    Parameters
    ----------
    y, groups : ndarray
        Labels and patients of the rows to split.
    n_splits : int
        Requested number of folds.
    what : str
        The parameter that set the folds, e.g. ``"cv"`` or ``"inner_cv"``.
    where : str
        Which rows are split, e.g. ``" in the training rows of outer fold 2"``.
    """
    per_class = pd.Series(groups).groupby(pd.Series(y)).nunique()
    fewest = int(per_class.min())
    if fewest >= n_splits:
        return
    label = _plain(per_class.idxmin())
    fix = (
        f"Use {what}={fewest} or fewer"
        if fewest >= 2
        else "Cross-validation needs at least 2 patients of every class; add cases or drop "
        "that class"
    )
    raise ModelError(
        f"{what}={n_splits} needs at least {n_splits} patients of each class{where}; class "
        f"{label!r} has {fewest}. {fix}"
    )


def check_no_straddling(splits: list[Split], groups: NDArray[Any]) -> None:
    """Raise when a patient has rows on both sides of a split (leakage)."""
    for k, (train, test) in enumerate(splits):
        shared = set(groups[train]) & set(groups[test])
        if shared:
            example = sorted(map(str, shared))[0]
            raise ModelError(
                f"patient {example!r} has lesions in both the training and test rows of outer "
                f"fold {k}; with leave-one-site-out every patient must be scanned at one site"
            )


def check_training_classes(
    splits: list[Split], y: NDArray[Any], classes: NDArray[Any], sites: NDArray[Any] | None
) -> None:
    """Raise when an outer fold leaves no training row of some class (leave-one-site-out)."""
    for k, (train, test) in enumerate(splits):
        missing = sorted(set(classes.tolist()) - set(y[train].tolist()))
        if missing:
            held_out = "" if sites is None else f" (held-out site(s) {_levels(sites[test])})"
            raise ModelError(
                f"outer fold {k}{held_out} leaves no training rows of class(es) "
                f"{[_plain(c) for c in missing]}: all of them are at the held-out site, and a "
                "model cannot learn a class it never sees. Use cv=<number of folds> instead of "
                "leave-one-site-out, or add sites where that class occurs"
            )


def check_harmonizable(
    y: NDArray[Any], batch: NDArray[Any], splits: list[Split], site_cv: bool
) -> None:
    """Raise when ComBat cannot be fitted or applied in these folds.

    Refused: a scanner with a single row; every scanner holding a single class (ComBat would
    remove the class signal with the scanner effect); a test fold holding a scanner that no
    training row has (ComBat cannot adjust a scanner it has not seen).
    """
    counts = pd.Series(batch).value_counts()
    if len(counts) < 2:
        raise ModelError(
            f"harmonize is on but batch holds a single scanner {_levels(batch)}: there is no "
            "scanner effect to remove. Pass harmonize=False"
        )
    lonely = sorted(map(str, counts.index[counts < 2]))
    if lonely:
        raise ModelError(
            f"scanner(s) {lonely} have a single row; ComBat needs at least 2 rows of every "
            "scanner in each training fold. Merge them with a similar scanner, drop them, or "
            "pass harmonize=False"
        )
    classes_per_batch = pd.Series(y).groupby(pd.Series(batch)).nunique()
    if classes_per_batch.max() == 1 and np.unique(y).size > 1:
        raise ModelError(
            "every scanner holds a single class, so class and scanner are confounded: ComBat "
            "would remove the class signal together with the scanner effect. Pass "
            "harmonize=False, and report that class and scanner cannot be separated in "
            "these data"
        )
    for k, (train, test) in enumerate(splits):
        unseen = sorted(map(str, set(batch[test]) - set(batch[train])))
        if unseen:
            fix = (
                "With leave-one-site-out pass harmonize=False (the default 'auto' does)"
                if site_cv
                else "Merge small scanners or use fewer folds"
            )
            raise ModelError(
                f"outer fold {k} tests scanner(s) {unseen} that no training row has; ComBat "
                f"cannot adjust a scanner it has not seen. {fix}"
            )


def warn_if_confounded(y: NDArray[Any], sites: NDArray[Any] | None) -> None:
    """Warn when every site holds a single class: the model may learn the site, not the class."""
    if sites is None or np.unique(y).size < 2:
        return
    if pd.Series(y).groupby(pd.Series(sites)).nunique().max() == 1:
        warnings.warn(
            "every site holds a single class: any difference between sites (scanner, "
            "protocol) predicts the class as well as the disease does, so the metrics cannot "
            "separate the two",
            UserWarning,
            stacklevel=4,
        )


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python value it holds (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _levels(values: NDArray[Any]) -> list[str]:
    return sorted(map(str, pd.unique(pd.Series(values))))
