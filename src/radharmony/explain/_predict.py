"""Predictions on new patients with their top SHAP contributions (``radharmony.predict``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from numpy.typing import ArrayLike

from radharmony.explain._shap import explain
from radharmony.explain._tables import top_contributions
from radharmony.model import predict_cases


def predict(
    model: Any,
    X: pd.DataFrame,
    *,
    batch: ArrayLike | None = None,
    covariates: pd.DataFrame | None = None,
    sites: ArrayLike | None = None,
    reader: ArrayLike | None = None,
    n_top: int = 3,
    return_explanation: bool = False,
    verbose: bool | int | None = None,
) -> Any:
    """Apply a trained model to new patients: one row per case, ready for a second reader.

    Each case gets its calibrated probabilities, the most probable class, the CV+ conformal
    set, the domain check (``domain_p_value``; ``domain_shift`` when the case, or its site, is
    outside the data the model was validated on), the *refer* flag (the set is not a single
    class, or the case is outside the domain) and its ``n_top`` largest SHAP contributions
    (background: training rows stored in the model). Cases are harmonised with the parameters
    fitted for their scanner; a scanner the model never saw is an error naming the options.

    With ``reader`` (a human reading per case, blank when unread), ``reader_in_set`` says
    whether the reading is inside the conformal set and ``second_look`` flags the cases where
    it is not; :func:`radharmony.model.reader_agreement` summarises the agreement.

    Parameters
    ----------
    model : ConformalEnsemble
        ``radharmony.evaluate(...).model`` or a model loaded with :func:`radharmony.load_model`.
    X : pandas.DataFrame
        New cases with the training feature columns.
    batch, covariates : optional
        Scanner and harmonisation covariates of each case (needed when the model harmonises).
    sites : array-like, optional
        Site of each case for the per-site domain test (default: ``batch``).
    reader : array-like, optional
        A human reading of each case.
    n_top : int
        Number of SHAP contributions per case.
    return_explanation : bool
        Also return the :class:`shap.Explanation` (for waterfall figures).
    verbose : int or bool, optional
        0: silent; otherwise (default) a progress bar over the ensemble members explained.

    Returns
    -------
    pandas.DataFrame, or (DataFrame, shap.Explanation)
        Columns described in ``data_dictionary/new_predictions.csv``.
    """
    table = predict_cases(model, X, batch=batch, covariates=covariates, sites=sites, reader=reader)
    features = X[[str(c) for c in model.feature_names_in_]].astype(float)
    explanation = explain(model, features, batch=batch, covariates=covariates, verbose=verbose)
    contributions = top_contributions(explanation, n=n_top, index=table.index)
    table = table.join(contributions)
    return (table, explanation) if return_explanation else table
