"""One judge of harmonisation for every harmoniser: held-out scanner predictability.

A harmoniser is fitted on one random half of the rows and applied to the other half; on that
held-out half a rank-based classifier (quantile transform of each feature, then logistic
regression) tries to recognise the scanner, scored by cross-validated ROC AUC (macro one-vs-rest
for more than two scanners; 0.5 means the scanner cannot be told). The raw held-out half is
judged the same way, on the same folds, so each split gives a paired comparison. In-sample
diagnostics flatter ComBat (it removes exactly the batch means it estimated on those rows);
this judge never sees a row the harmoniser was fitted on.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from radharmony.errors import HarmonizationError

#: Folds of the judge's cross-validation on the held-out half.
JUDGE_FOLDS = 5


def judge_auc(X: Any, labels: Any, *, cv: int = JUDGE_FOLDS, random_state: int = 0) -> float:
    """Return the cross-validated ROC AUC of a rank-based classifier predicting ``labels``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features of the rows being judged (finite values).
    labels : array-like of shape (n_samples,)
        Scanner (or any class) of each row; at least 2 rows per level.
    cv : int, default=5
        Folds (stratified; fewer when a level has fewer rows).
    random_state : int, default=0
        Seed of the fold assignment.

    Returns
    -------
    float
        ROC AUC (macro one-vs-rest for more than two levels).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    values = np.asarray(X, dtype=float)
    codes, levels = pd.factorize(pd.Series(np.asarray(labels, dtype=object)).astype(str))
    counts = np.bincount(codes)
    n_splits = int(min(cv, counts.min()))
    if len(levels) < 2 or n_splits < 2:
        raise HarmonizationError(
            "the held-out judge needs at least 2 scanners with 2 rows each in the judged rows; "
            f"got counts {dict(zip(levels, counts.tolist(), strict=True))}."
        )
    n_train = int(len(codes) * (n_splits - 1) / n_splits)
    model = make_pipeline(
        QuantileTransformer(n_quantiles=max(2, min(1000, n_train))),
        LogisticRegression(max_iter=5000),
    )
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    scoring = "roc_auc" if len(levels) == 2 else "roc_auc_ovr"
    with warnings.catch_warnings():
        # Constant columns (e.g. a feature harmonised to one value) are harmless here.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = cross_val_score(model, values, codes, cv=folds, scoring=scoring)
    return float(np.mean(scores))


def scanner_predictability(
    X: Any,
    batch: Any,
    harmonizers: dict[str, Any],
    *,
    y: Any = None,
    covariates: pd.DataFrame | None = None,
    reference: Any = None,
    n_splits: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """Held-out scanner predictability, raw and after each harmoniser, over random half splits.

    Parameters
    ----------
    X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Features (finite values).
    batch : array-like of shape (n_samples,)
        Scanner/site of each row.
    harmonizers : dict of str to estimator
        Harmonisers to compare (cloned and fitted on each training half with ``batch`` and
        ``covariates``; with ``y`` when given, which an outcome-aware harmoniser uses at fit).
    y : array-like of shape (n_samples,), optional
        Training labels passed to each harmoniser's ``fit`` (never to ``transform``). The
        halves are stratified by scanner and label.
    covariates : pandas.DataFrame, optional
        Passed to fit and transform.
    reference : array-like of bool, optional
        Reference rows, passed (restricted to the fitting half) to the ``fit`` of harmonisers
        that take it (:class:`~radharmony.harmonize.NormativeModel`).
    n_splits : int, default=10
        Number of random half splits.
    random_state : int, default=0
        Seed of the splits (split ``k`` uses ``random_state + k``).

    Returns
    -------
    pandas.DataFrame
        One row per split and harmoniser (``raw`` included): ``split``, ``harmonizer``,
        ``scanner_auc``, ``raw_scanner_auc`` and ``excess_auc`` (harmonised minus raw on the
        same held-out rows); see ``data_dictionary/harmonization_heldout_splits.csv``.
    """
    from sklearn.base import clone

    values = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
    labels = np.asarray(batch, dtype=object)
    cov = None if covariates is None else pd.DataFrame(covariates).reset_index(drop=True)
    rows = []
    splits = half_splits(labels, y, n_splits=n_splits, random_state=random_state)
    for k, (first, second) in enumerate(splits):
        held_out = values.iloc[second]
        raw = judge_auc(held_out, labels[second], random_state=random_state + k)
        rows.append(_row(k, "raw", raw, raw))
        for name, harmonizer in harmonizers.items():
            fitted = clone(harmonizer)
            fit_kwargs: dict[str, Any] = {"batch": labels[first]}
            apply_kwargs: dict[str, Any] = {"batch": labels[second]}
            if cov is not None:
                fit_kwargs["covariates"] = cov.iloc[first]
                apply_kwargs["covariates"] = cov.iloc[second]
            if reference is not None and _accepts(fitted, "reference"):
                fit_kwargs["reference"] = np.asarray(reference, dtype=bool)[first]
            target = None if y is None else np.asarray(y)[first]
            fitted.fit(values.iloc[first], target, **fit_kwargs)
            harmonised = fitted.transform(held_out, **apply_kwargs)
            auc = judge_auc(harmonised, labels[second], random_state=random_state + k)
            rows.append(_row(k, name, auc, raw))
    return pd.DataFrame(rows)


def half_splits(
    batch: Any, y: Any = None, *, n_splits: int = 10, random_state: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return random half splits of the rows, stratified by batch (and label when possible).

    Parameters
    ----------
    batch : array-like of shape (n_samples,)
    y : array-like of shape (n_samples,), optional
        Labels; the strata are batch x label when every such cell has at least 2 rows.
    n_splits : int, default=10
    random_state : int, default=0
        Split ``k`` uses seed ``random_state + k``.

    Returns
    -------
    list of (ndarray, ndarray)
        Row positions of the fitting half and of the held-out half.
    """
    from sklearn.model_selection import train_test_split

    strata = np.asarray(batch, dtype=object).astype(str)
    if y is not None:
        combined = np.char.add(np.char.add(strata, "|"), np.asarray(y).astype(str))
        if pd.Series(combined).value_counts().min() >= 2:
            strata = combined
    positions = np.arange(strata.size)
    return [
        tuple(train_test_split(positions, test_size=0.5, stratify=strata, random_state=seed))
        for seed in range(random_state, random_state + n_splits)
    ]


def summarise_predictability(table: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`scanner_predictability` per harmoniser.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`scanner_predictability`.

    Returns
    -------
    pandas.DataFrame
        ``harmonizer``, ``n_splits``, ``mean_auc``, ``sd_auc``, ``worst_auc`` (largest),
        ``mean_excess_auc``, ``worst_excess_auc`` (largest increase over raw) and
        ``splits_worse_than_raw`` (see ``data_dictionary/harmonization_heldout_summary.csv``).
    """
    grouped = table.groupby("harmonizer", sort=False)
    summary = pd.DataFrame(
        {
            "n_splits": grouped["scanner_auc"].size(),
            "mean_auc": grouped["scanner_auc"].mean(),
            "sd_auc": grouped["scanner_auc"].std(ddof=1),
            "worst_auc": grouped["scanner_auc"].max(),
            "mean_excess_auc": grouped["excess_auc"].mean(),
            "worst_excess_auc": grouped["excess_auc"].max(),
            "splits_worse_than_raw": grouped["excess_auc"].apply(lambda e: int((e > 0).sum())),
        }
    )
    return summary.reset_index()


def _accepts(estimator: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(estimator.fit).parameters


def _row(split: int, name: str, auc: float, raw: float) -> dict[str, Any]:
    return {
        "split": split,
        "harmonizer": name,
        "scanner_auc": auc,
        "raw_scanner_auc": raw,
        "excess_auc": auc - raw,
    }
