"""ComBat as a scikit-learn transformer: fitted once, applied to new samples without refitting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import HarmonizationError
from radharmony.harmonize import _design, _engine
from radharmony.harmonize._state import DataFrameStateMixin
from radharmony.harmonize._validation import (
    aligned_columns,
    as_batch,
    as_covariates,
    as_feature_matrix,
    batch_counts_or_raise,
)


class ComBat(DataFrameStateMixin, TransformerMixin, BaseEstimator):
    """ComBat location/scale harmonisation (Johnson et al. 2007) estimated with neuroCombat.

    ``fit`` estimates, per feature, the covariate coefficients, the pooled variance and the
    empirical-Bayes batch location (gamma*) and scale (delta*); ``transform`` applies them to any
    samples of known batches, using each sample's own covariate values. ``fit(X).transform(X)``
    equals neuroCombat's (and R ComBat's) output on the training data.

    Parameters
    ----------
    parametric : bool, default=True
        Parametric (normal / inverse-gamma) priors; False uses the non-parametric prior.
    eb : bool, default=True
        Shrink the batch estimates with empirical Bayes; False uses the per-feature estimates.
    mean_only : bool, default=False
        Correct only the location, not the scale.
    ref_batch : object, optional
        Batch whose location and scale are the target; its samples are returned unchanged.
    categorical, continuous : sequence of str, optional
        Covariate columns to treat as categorical (one-hot, first level dropped) or continuous.
        Columns not listed are inferred from their dtype (numeric means continuous).
    spline_covariates : sequence of str, optional
        Continuous covariates whose effect is modelled by a cubic B-spline (ComBat-GAM style)
        instead of a straight line, so a nonlinear effect such as age is preserved.
    spline_knots : int, default=5
        Number of knots of each spline basis (placed at quantiles of the training values).
    fast_nonparametric : bool, default=True
        Use the vectorised log-space non-parametric posterior (same estimator as neuroCombat,
        agreeing to ~1e-12 where neuroCombat's likelihood stays in floating-point range and
        still exact where neuroCombat's underflows to NaN); False calls neuroCombat's loop.

    Attributes
    ----------
    batch_levels_ : list
        Batches seen at fit, in the order of the rows of the parameter tables.
    gamma_hat_, delta_hat_, gamma_star_, delta_star_ : pandas.DataFrame
        Batch x feature location and scale estimates before and after empirical Bayes, in units
        of the pooled standard deviation (NaN for features left unchanged).
    grand_mean_, var_pooled_ : pandas.Series
        Per-feature grand mean (or reference-batch mean) and pooled residual variance.
    coef_ : pandas.DataFrame
        Covariate coefficients (B-hat), design column x feature; empty without covariates.
    unadjusted_features_ : list of str
        Features left unchanged: constant within a batch or overall, or fully explained by the
        covariates.
    design_columns_ : list of str
        Names of the design-matrix columns (batch indicators then covariates).
    """

    __metadata_request__fit = {"batch": True, "covariates": True}
    __metadata_request__transform = {"batch": True, "covariates": True}

    def __init__(
        self,
        parametric: bool = True,
        eb: bool = True,
        mean_only: bool = False,
        ref_batch: Any = None,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
        spline_covariates: Sequence[str] | None = None,
        spline_knots: int = 5,
        fast_nonparametric: bool = True,
    ) -> None:
        self.parametric = parametric
        self.eb = eb
        self.mean_only = mean_only
        self.ref_batch = ref_batch
        self.categorical = categorical
        self.continuous = continuous
        self.spline_covariates = spline_covariates
        self.spline_knots = spline_knots
        self.fast_nonparametric = fast_nonparametric

    def fit(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> ComBat:
        """Estimate the ComBat parameters.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Features, one row per lesion; finite values only.
        y : ignored
            Accepted for Pipeline compatibility. Never pass the prediction target as a
            covariate: it is unknown for new samples and preserving it leaks the labels.
        batch : array-like of shape (n_samples,)
            Scanner/site of each row; every batch needs at least 2 rows.
        covariates : pandas.DataFrame, optional
            Variables whose effect is preserved (e.g. age, sex), one row per sample.

        Returns
        -------
        ComBat
            The fitted estimator.
        """
        values, names, _ = as_feature_matrix(X)
        n, p = values.shape
        batch = as_batch(batch, n)
        cov = as_covariates(covariates, n)
        levels = _design.sorted_levels(batch)
        batch_counts_or_raise(batch, levels)
        ref_index = self._ref_index(levels)
        spec = _design.fit_design_spec(
            levels,
            ref_index,
            cov,
            self.categorical,
            self.continuous,
            self.spline_covariates,
            self.spline_knots,
        )
        codes = _design.batch_codes(batch, levels)
        design, slices = _design.build_design(spec, codes, cov)
        _design.check_identifiable(design, spec.n_batch, slices)

        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = p
        candidate = ~_constant_within_a_batch(values, codes, spec.n_batch)
        if self.eb and candidate.sum() < 2:
            raise HarmonizationError(
                "empirical Bayes pools the batch estimates across features and needs at least "
                f"2 features that vary within every batch; got {int(candidate.sum())} "
                "feature(s). Use eb=False."
            )
        fit = _engine.fit_combat(
            values[:, candidate],
            codes,
            design[:, spec.n_batch :],
            n_batches=spec.n_batch,
            eb=self.eb,
            parametric=self.parametric,
            mean_only=self.mean_only,
            ref_level=ref_index,
            fast_nonparametric=self.fast_nonparametric,
        )
        adjusted = np.zeros(p, dtype=bool)
        adjusted[np.flatnonzero(candidate)[fit.kept]] = True
        self._spec, self._fit, self._adjusted = spec, fit, adjusted
        self._set_public_attributes(names or [f"x{j}" for j in range(p)], spec, fit, adjusted)
        return self

    def transform(self, X: Any, *, batch: Any, covariates: Any = None) -> Any:
        """Harmonise samples with the fitted parameters (no refitting).

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Same features as at fit (a DataFrame's columns are matched by name).
        batch : array-like of shape (n_samples,)
            Scanner of each row; every value must have been seen at fit.
        covariates : pandas.DataFrame, optional
            Required when the model was fitted with covariates: each sample's own values.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            Harmonised features; a DataFrame keeps the input's column names and index.
        """
        check_is_fitted(self, "_fit")
        X = self._aligned(X)
        values, _, index = as_feature_matrix(X)
        n = values.shape[0]
        codes = _design.batch_codes(as_batch(batch, n), self._spec.batch_levels)
        cov = as_covariates(covariates, n)
        if cov is not None and not self._spec.covariate_names:
            raise HarmonizationError(
                "covariates were passed to transform but ComBat was fitted without covariates; "
                "pass the same covariates to fit and transform, or to neither."
            )
        design, _ = _design.build_design(self._spec, codes, cov)
        covariate_design = design[:, self._spec.n_batch :]
        if np.all(self._adjusted):
            # as_feature_matrix already returned a private copy: no second copy is needed.
            out = _engine.apply_combat(
                values, codes, covariate_design, self._fit, self._spec.ref_index
            )
        else:
            out = values
            out[:, self._adjusted] = _engine.apply_combat(
                values[:, self._adjusted],
                codes,
                covariate_design,
                self._fit,
                self._spec.ref_index,
            )
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=index, columns=X.columns)
        return out

    def fit_transform(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> Any:
        """Fit, then harmonise the training samples (equals neuroCombat's output).

        Parameters
        ----------
        X, y, batch, covariates
            As in :meth:`fit`.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            Harmonised training features.
        """
        return self.fit(X, y, batch=batch, covariates=covariates).transform(
            X, batch=batch, covariates=covariates
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Return the feature names (harmonisation keeps every column).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        numpy.ndarray
            Names of the output columns.
        """
        check_is_fitted(self, "_fit")
        return np.asarray(self.gamma_star_.columns, dtype=object)

    def parameters_table(self) -> pd.DataFrame:
        """Return the fitted parameters in long form, one row per feature and batch.

        Returns
        -------
        pandas.DataFrame
            Columns described in ``data_dictionary/harmonization_parameters.csv``.
        """
        check_is_fitted(self, "_fit")
        frames = []
        for name in ("gamma_hat_", "delta_hat_", "gamma_star_", "delta_star_"):
            long = getattr(self, name).stack(future_stack=True).rename(name.rstrip("_"))
            frames.append(long)
        table = pd.concat(frames, axis=1).rename_axis(["batch", "feature"]).reset_index()
        table["grand_mean"] = table["feature"].map(self.grand_mean_)
        table["var_pooled"] = table["feature"].map(self.var_pooled_)
        table["adjusted"] = ~table["feature"].isin(self.unadjusted_features_)
        table["batch"] = table["batch"].astype(str)
        return table[
            [
                "feature",
                "batch",
                "adjusted",
                "grand_mean",
                "var_pooled",
                "gamma_hat",
                "delta_hat",
                "gamma_star",
                "delta_star",
            ]
        ]

    def _covariate_effect(self, batch: Any, covariates: Any, n_samples: int) -> np.ndarray:
        """Return the fitted covariate effect of each sample (zero for unadjusted features)."""
        codes = _design.batch_codes(as_batch(batch, n_samples), self._spec.batch_levels)
        design, _ = _design.build_design(self._spec, codes, as_covariates(covariates, n_samples))
        coef = np.nan_to_num(self.coef_.to_numpy())
        return design[:, self._spec.n_batch :] @ coef

    def _ref_index(self, levels: list[Any]) -> int | None:
        """Return the position of ``ref_batch`` among the batch levels (None without one)."""
        if self.ref_batch is None:
            return None
        if self.ref_batch not in levels:
            raise HarmonizationError(
                f"ref_batch={self.ref_batch!r} is not one of the batches {levels}."
            )
        return levels.index(self.ref_batch)

    def _aligned(self, X: Any) -> Any:
        """Return X with its columns in the fitted order; raise on missing or extra columns."""
        return aligned_columns(
            X, getattr(self, "feature_names_in_", None), self.n_features_in_, type(self).__name__
        )

    def _set_public_attributes(
        self,
        names: list[str],
        spec: _design.DesignSpec,
        fit: _engine.CombatEstimates,
        adjusted: np.ndarray,
    ) -> None:
        """Expose the estimates as labelled tables (NaN for features left unchanged)."""
        levels = spec.batch_levels

        def per_batch(values: np.ndarray) -> pd.DataFrame:
            full = np.full((len(levels), len(names)), np.nan)
            full[:, adjusted] = values
            return pd.DataFrame(full, index=pd.Index(levels, name="batch"), columns=names)

        def per_feature(values: np.ndarray, name: str) -> pd.Series:
            full = np.full(len(names), np.nan)
            full[adjusted] = values
            return pd.Series(full, index=names, name=name)

        self.batch_levels_ = list(levels)
        self.design_columns_ = list(spec.column_names)
        self.gamma_hat_ = per_batch(fit.gamma_hat)
        self.delta_hat_ = per_batch(fit.delta_hat)
        self.gamma_star_ = per_batch(fit.gamma_star)
        self.delta_star_ = per_batch(fit.delta_star)
        self.grand_mean_ = per_feature(fit.grand_mean, "grand_mean")
        self.var_pooled_ = per_feature(fit.var_pooled, "var_pooled")
        coef = np.full((fit.beta_covariates.shape[0], len(names)), np.nan)
        coef[:, adjusted] = fit.beta_covariates
        self.coef_ = pd.DataFrame(coef, index=spec.column_names[spec.n_batch :], columns=names)
        self.unadjusted_features_ = [n for n, a in zip(names, adjusted, strict=True) if not a]


def _constant_within_a_batch(values: np.ndarray, codes: np.ndarray, n_batch: int) -> np.ndarray:
    """Return a mask of features with zero variance inside at least one batch (R ComBat skips them)."""
    constant = np.zeros(values.shape[1], dtype=bool)
    for b in range(n_batch):
        rows = values[codes == b]
        constant |= np.all(rows == rows[0], axis=0)
    return constant
