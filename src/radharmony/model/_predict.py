"""Applying a trained model to new patients: probability, conformal set, refer and domain flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from radharmony.errors import ModelError
from radharmony.model._ensemble import ConformalEnsemble, combine_probas


def predict_cases(
    model: ConformalEnsemble,
    X: pd.DataFrame,
    *,
    batch: ArrayLike | None = None,
    covariates: pd.DataFrame | None = None,
    sites: ArrayLike | None = None,
    reader: ArrayLike | None = None,
) -> pd.DataFrame:
    """Return one row per new case: prediction, conformal set, domain check and refer flag.

    Parameters
    ----------
    model : ConformalEnsemble
        A deployed model (``EvaluationResult.model`` or :func:`radharmony.load_model`).
    X : pandas.DataFrame
        New cases with the training feature columns (extra columns are ignored).
    batch, covariates : optional
        Scanner and covariates of each case, needed when the model harmonises. A scanner
        absent from the training data is an error that names the options.
    sites : array-like, optional
        Site of each case for the per-site domain test (default: ``batch``).
    reader : array-like, optional
        A human reading of each case (a class label, or missing); see the columns below.

    Returns
    -------
    pandas.DataFrame
        Index of ``X``; columns described in ``data_dictionary/new_predictions.csv``.
    """
    if not isinstance(model, ConformalEnsemble):
        raise ModelError(
            "predict needs a deployed model (radharmony.evaluate(...).model or a file written "
            f"by radharmony train/run), got {type(model).__name__}"
        )
    X = _aligned(model, X)
    members = model.member_probas(X, batch=batch, covariates=covariates)
    proba = combine_probas(members)
    sets = model.conformal_sets(member_probas=members)
    classes = model.classes_
    table = pd.DataFrame(index=X.index)
    table["y_pred"] = classes[proba.argmax(axis=1)]
    for k, c in enumerate(classes):
        table[f"proba_{c}"] = proba[:, k]
    table["confidence"] = proba.max(axis=1)
    table["conformal_set"] = ["|".join(str(c) for c in classes[row]) for row in sets]
    table["set_size"] = sets.sum(axis=1)
    p_values = model.domain_.p_values(X)
    shift = model.domain_.flag_cases(p_values)
    site_arr = sites if sites is not None else batch
    table["site"] = "" if site_arr is None else np.asarray(site_arr).astype(str)
    if site_arr is not None:
        site_table = model.domain_.site_table(p_values, site_arr)
        flagged = set(site_table.index[site_table["domain_shift"]])
        shift = shift | np.isin(table["site"].to_numpy(), list(flagged))
    table["domain_p_value"] = p_values
    table["domain_shift"] = shift
    table["refer"] = (table["set_size"] != 1) | table["domain_shift"]
    if reader is not None:
        _add_reader(table, np.asarray(reader), classes, sets)
    return table


def reader_agreement(predictions: pd.DataFrame) -> pd.DataFrame:
    """Summarise agreement between the model and a human reading.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Output of :func:`predict_cases` (or :func:`radharmony.predict`) with a ``reader`` column.

    Returns
    -------
    pandas.DataFrame
        One row per quantity (``quantity``, ``value``): cases read, agreement of the reader with
        the model's most probable class, Cohen's kappa, share of readings inside the conformal
        set, and the number of cases flagged for a second look.
    """
    if "reader" not in predictions.columns:
        raise ModelError("these predictions have no reader column; pass reader= to predict")
    read = predictions[predictions["reader"].notna() & (predictions["reader"] != "")]
    if read.empty:
        values: dict[str, float] = {"n_read": 0}
    else:
        reader = read["reader"].astype(str).to_numpy()
        model = read["y_pred"].astype(str).to_numpy()
        agree = float(np.mean(reader == model))
        labels = sorted(set(reader) | set(model))
        expected = sum(np.mean(reader == c) * np.mean(model == c) for c in labels)
        kappa = (agree - expected) / (1.0 - expected) if expected < 1.0 else float("nan")
        values = {
            "n_read": len(read),
            "agreement_with_model": agree,
            "cohen_kappa": float(kappa),
            "reader_in_conformal_set": float(read["reader_in_set"].mean()),
            "n_second_look": int(read["second_look"].sum()),
        }
    return pd.DataFrame({"quantity": list(values), "value": list(values.values())})


def _aligned(model: ConformalEnsemble, X: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ModelError("predict needs X as a DataFrame with the training feature columns")
    names = [str(c) for c in model.feature_names_in_]
    frame = X.copy()
    frame.columns = [str(c) for c in frame.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ModelError(
            f"{len(missing)} feature column(s) the model was trained on are missing, e.g. "
            f"{missing[:5]}; extract the new cases with the same settings as the training data"
        )
    values = frame[names]
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(values[c])]
    if bad:
        raise ModelError(f"feature columns must be numeric; {bad[:5]} are not")
    return values.astype(float)


def _add_reader(
    table: pd.DataFrame, reader: np.ndarray, classes: np.ndarray, sets: np.ndarray
) -> None:
    if reader.shape != (len(table),):
        raise ModelError(f"reader must have one value per case ({len(table)})")
    text = pd.Series(reader, index=table.index).astype("object")
    missing = text.isna() | (text.astype(str) == "")
    labels = [str(c) for c in classes]
    unknown = sorted(set(text[~missing].astype(str)) - set(labels))
    if unknown:
        raise ModelError(f"reader holds value(s) {unknown} that are not classes {labels}")
    column = np.array(
        [labels.index(str(v)) if not m else -1 for v, m in zip(text, missing, strict=True)]
    )
    inside = np.array([sets[i, c] if c >= 0 else False for i, c in enumerate(column)])
    table["reader"] = text.where(~missing, "").astype(str)
    table["reader_in_set"] = inside
    table["second_look"] = ~missing.to_numpy() & ~inside
