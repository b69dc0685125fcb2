"""Longitudinal ComBat: batch location/scale harmonisation that respects repeated measures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import HarmonizationError
from radharmony.harmonize import _design
from radharmony.harmonize._reml import fit_random_intercept, random_intercepts
from radharmony.harmonize._state import DataFrameStateMixin
from radharmony.harmonize._validation import (
    as_batch,
    as_covariates,
    as_feature_matrix,
    batch_counts_or_raise,
)


class LongitudinalComBat(DataFrameStateMixin, TransformerMixin, BaseEstimator):
    """ComBat with a subject random intercept for repeated measures (Beer et al. 2020).

    Per feature ``v`` the model is ``y_ij = X_ij beta_v + u_iv + gamma_bv + delta_bv e_ijv``:
    fixed covariate effects, a random intercept per subject ``i``, and an additive and a
    multiplicative effect of the batch ``b`` of visit ``j``. ``fit`` estimates the mixed model
    by REML (batch as a fixed effect), standardises the residuals, and shrinks the per-batch
    location and scale of the standardised residuals with longitudinal ComBat's empirical
    Bayes (method-of-moments hyper-priors, fixed number of iterations). ``transform`` removes
    each row's batch location and scale while keeping its covariate effects and its subject's
    random intercept, which is predicted from that subject's rows passed to ``transform``
    (fitted variance components; nothing is re-estimated).

    Plain :class:`~radharmony.harmonize.ComBat` treats repeated scans of a subject as
    independent samples: when subjects change scanner between visits, their own level is
    partly mistaken for a scanner effect. Here the subject level is modelled, so batch effects
    are estimated from within- and between-subject contrasts as a mixed model does.

    Parameters
    ----------
    eb : bool, default=True
        Shrink the batch estimates with empirical Bayes; False applies the per-batch estimates.
    n_iter : int, default=30
        Iterations of the empirical-Bayes updates (longitudinal ComBat's default).
    sigma : {"reml", "msr"}, default="reml"
        Residual scale used to standardise: the REML residual standard deviation, or the root
        mean square of the conditional residuals (``"MSR"`` in the published method).
    categorical, continuous : sequence of str, optional
        Covariate columns to treat as categorical (one-hot, first level dropped) or continuous.
        Columns not listed are inferred from their dtype (numeric means continuous). Time (or
        age at the visit) belongs here, so that real change over time is preserved.

    Attributes
    ----------
    batch_levels_ : list
        Batches seen at fit.
    gamma_hat_, delta_hat_, gamma_star_, delta_star_ : pandas.DataFrame
        Batch x feature location and scale (variance) of the standardised residuals before and
        after empirical Bayes (NaN for features left unchanged).
    batch_effect_ : pandas.DataFrame
        Batch x feature fixed effects of the mixed model, centred so that their
        sample-weighted mean is 0 (feature units).
    coef_ : pandas.DataFrame
        Covariate coefficients, design column x feature.
    sigma_ : pandas.Series
        Residual standard deviation per feature.
    subject_variance_ : pandas.Series
        Variance of the subject random intercepts per feature (REML).
    unadjusted_features_ : list of str
        Features left unchanged (no residual variance).

    Notes
    -----
    Only a random intercept is modelled (the ``(1 | subject)`` model of the published method's
    examples); random slopes are not. Estimation follows the published description (REML mixed
    model per feature, batch effects centred on their sample-weighted mean, residuals
    standardised by the residual SD, method-of-moments priors, EM-style updates that use the
    previous iteration's values). It was checked against simulated repeated measures with known
    batch and subject effects, and its mixed-model step against another REML implementation;
    no output of the original R package was available to compare with.

    References
    ----------
    Beer JC, Tustison NJ, Cook PA, et al. Longitudinal ComBat: a method for harmonizing
    longitudinal multi-scanner imaging data. NeuroImage 2020;220:117129.
    """

    __metadata_request__fit = {"batch": True, "subject": True, "covariates": True}
    __metadata_request__transform = {"batch": True, "subject": True, "covariates": True}

    def __init__(
        self,
        eb: bool = True,
        n_iter: int = 30,
        sigma: str = "reml",
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
    ) -> None:
        self.eb = eb
        self.n_iter = n_iter
        self.sigma = sigma
        self.categorical = categorical
        self.continuous = continuous

    def fit(
        self, X: Any, y: Any = None, *, batch: Any, subject: Any, covariates: Any = None
    ) -> LongitudinalComBat:
        """Estimate the mixed model and the batch effects.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_visits, n_features)
            Features, one row per subject visit (or per lesion and visit); finite values only.
        y : ignored
            Accepted for Pipeline compatibility; never pass the prediction target as a
            covariate.
        batch : array-like of shape (n_visits,)
            Scanner of each row; every batch needs at least 2 rows.
        subject : array-like of shape (n_visits,)
            Subject (or lesion track) of each row: rows of one subject share a random intercept.
        covariates : pandas.DataFrame, optional
            Variables whose effect is preserved (time or age at the visit, sex, ...).

        Returns
        -------
        LongitudinalComBat
        """
        if self.sigma not in ("reml", "msr"):
            raise HarmonizationError(f"sigma must be 'reml' or 'msr', got {self.sigma!r}")
        if int(self.n_iter) < 1:
            raise HarmonizationError(f"n_iter must be at least 1, got {self.n_iter!r}")
        values, names, _ = as_feature_matrix(X)
        n, p = values.shape
        batch = as_batch(batch, n)
        subject_codes = _subject_codes(subject, n)
        cov = as_covariates(covariates, n)
        levels = _design.sorted_levels(batch)
        batch_counts_or_raise(batch, levels)
        spec = _design.fit_design_spec(
            levels, None, cov, self.categorical, self.continuous, None, 5
        )
        codes = _design.batch_codes(batch, levels)
        design, slices = _design.build_design(spec, codes, cov)
        _design.check_identifiable(design, spec.n_batch, slices)
        scale = np.maximum(values.var(axis=0), np.finfo(float).tiny)
        mixed = fit_random_intercept(design, values, subject_codes)
        adjusted = mixed.sigma2 > 1e-20 * scale
        if self.eb and adjusted.sum() < 2:
            raise HarmonizationError(
                "empirical Bayes pools the batch estimates across features and needs at least 2 "
                f"features with residual variance; got {int(adjusted.sum())}. Use eb=False."
            )
        counts = np.bincount(codes, minlength=spec.n_batch).astype(float)
        batch_coef = mixed.beta[: spec.n_batch]
        batch_effect = batch_coef - (counts @ batch_coef) / n
        fitted = _conditional_fit(design, values, subject_codes, mixed.beta, mixed.lam)
        sigma = np.sqrt(mixed.sigma2)
        if self.sigma == "msr":
            residual = values - fitted
            sigma = residual.std(axis=0)
        sigma = np.where(adjusted, sigma, 1.0)
        standard = (values - fitted + batch_effect[codes]) / sigma
        gamma_hat, delta_hat, gamma_star, delta_star = _batch_estimates(
            standard[:, adjusted], codes, spec.n_batch, self.eb, int(self.n_iter)
        )
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = p
        self._spec, self._adjusted = spec, adjusted
        self._beta, self._lam, self._sigma = mixed.beta, mixed.lam, sigma
        self._batch_effect = batch_effect
        self._gamma_star = _full(gamma_star, adjusted, 0.0)
        self._delta_star = _full(delta_star, adjusted, 1.0)
        labels = names or [f"x{j}" for j in range(p)]
        self._set_public_attributes(
            labels, spec, mixed, adjusted, (gamma_hat, delta_hat, gamma_star, delta_star)
        )
        return self

    def transform(self, X: Any, *, batch: Any, subject: Any = None, covariates: Any = None) -> Any:
        """Harmonise rows with the fitted model (no refitting).

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_visits, n_features)
            Same features as at fit (a DataFrame's columns are matched by name).
        batch : array-like of shape (n_visits,)
            Scanner of each row; every value must have been seen at fit.
        subject : array-like of shape (n_visits,), optional
            Subject of each row. Each subject's random intercept is predicted from its rows
            given here. Without it every row is taken as its own subject.
        covariates : pandas.DataFrame, optional
            Required when fitted with covariates: each row's own values.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            Harmonised features; a DataFrame keeps the input's column names and index.
        """
        check_is_fitted(self, "_beta")
        X = self._aligned(X)
        values, _, index = as_feature_matrix(X)
        n = values.shape[0]
        codes = _design.batch_codes(as_batch(batch, n), self._spec.batch_levels)
        subject_codes = np.arange(n) if subject is None else _subject_codes(subject, n)
        cov = as_covariates(covariates, n)
        if cov is not None and not self._spec.covariate_names:
            raise HarmonizationError(
                "covariates were passed to transform but the model was fitted without "
                "covariates; pass the same covariates to fit and transform, or to neither."
            )
        design, _ = _design.build_design(self._spec, codes, cov)
        fitted = _conditional_fit(design, values, subject_codes, self._beta, self._lam)
        centre = fitted - self._batch_effect[codes]
        standard = (values - centre) / self._sigma
        gamma, delta = self._gamma_star[codes], self._delta_star[codes]
        out = self._sigma * (standard - gamma) / np.sqrt(delta) + centre
        out[:, ~self._adjusted] = values[:, ~self._adjusted]
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=index, columns=X.columns)
        return out

    def fit_transform(
        self, X: Any, y: Any = None, *, batch: Any, subject: Any, covariates: Any = None
    ) -> Any:
        """Fit, then harmonise the training rows.

        Parameters
        ----------
        X, y, batch, subject, covariates
            As in :meth:`fit`.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
        """
        return self.fit(X, y, batch=batch, subject=subject, covariates=covariates).transform(
            X, batch=batch, subject=subject, covariates=covariates
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Return the feature names (harmonisation keeps every column).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        numpy.ndarray
        """
        check_is_fitted(self, "_beta")
        return np.asarray(self.gamma_star_.columns, dtype=object)

    def _aligned(self, X: Any) -> Any:
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            expected = list(self.feature_names_in_)
            columns = [str(c) for c in X.columns]
            if sorted(columns) != sorted(expected):
                missing = sorted(set(expected) - set(columns))
                extra = sorted(set(columns) - set(expected))
                raise HarmonizationError(
                    f"X's columns differ from those seen at fit: missing {missing[:10]}, "
                    f"unexpected {extra[:10]}."
                )
            return X.set_axis(columns, axis=1)[expected]
        n_cols = np.shape(X)[1] if np.ndim(X) == 2 else -1
        if n_cols != self.n_features_in_:
            raise HarmonizationError(
                f"X has {n_cols} columns but the model was fitted on {self.n_features_in_}."
            )
        return X

    def _set_public_attributes(
        self,
        names: list[str],
        spec: _design.DesignSpec,
        mixed: Any,
        adjusted: NDArray[np.bool_],
        estimates: tuple[NDArray, ...],
    ) -> None:
        levels = list(spec.batch_levels)
        index = pd.Index(levels, name="batch")

        def per_batch(values: NDArray) -> pd.DataFrame:
            return pd.DataFrame(_full(values, adjusted, np.nan), index=index, columns=names)

        self.batch_levels_ = levels
        self.design_columns_ = list(spec.column_names)
        gamma_hat, delta_hat, gamma_star, delta_star = estimates
        self.gamma_hat_ = per_batch(gamma_hat)
        self.delta_hat_ = per_batch(delta_hat)
        self.gamma_star_ = per_batch(gamma_star)
        self.delta_star_ = per_batch(delta_star)
        self.batch_effect_ = pd.DataFrame(self._batch_effect, index=index, columns=names)
        self.coef_ = pd.DataFrame(
            mixed.beta[spec.n_batch :], index=spec.column_names[spec.n_batch :], columns=names
        )
        self.sigma_ = pd.Series(np.where(adjusted, self._sigma, np.nan), index=names, name="sigma")
        self.subject_variance_ = pd.Series(
            mixed.subject_variance, index=names, name="subject_variance"
        )
        self.unadjusted_features_ = [n for n, a in zip(names, adjusted, strict=True) if not a]


def _subject_codes(subject: Any, n_samples: int) -> NDArray[np.int64]:
    if subject is None:
        raise HarmonizationError(
            "subject is required: pass subject=<subject of each row> so that repeated measures "
            "share a random intercept. Inside scikit-learn enable metadata routing and pass it "
            "as params={'subject': ...}."
        )
    values = pd.Series(np.asarray(subject, dtype=object).ravel())
    if len(values) != n_samples:
        raise HarmonizationError(
            f"subject has {len(values)} values but X has {n_samples} rows; pass one subject "
            "identifier per row of X."
        )
    if values.isna().any():
        raise HarmonizationError(
            f"subject has {int(values.isna().sum())} missing value(s); every row needs its subject."
        )
    codes, _ = pd.factorize(values.astype(str))
    return np.asarray(codes, dtype=np.int64)


def _conditional_fit(
    design: NDArray, values: NDArray, subject_codes: NDArray, beta: NDArray, lam: NDArray
) -> NDArray:
    """Return fixed effects plus each row's subject random intercept (BLUP)."""
    marginal = design @ beta
    intercepts = random_intercepts(values - marginal, subject_codes, lam)
    return marginal + intercepts[subject_codes]


def _batch_estimates(
    standard: NDArray, codes: NDArray, n_batch: int, eb: bool, n_iter: int
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Return per-batch location/scale of standardised residuals, before and after shrinkage."""
    counts = np.bincount(codes, minlength=n_batch).astype(float)
    gamma_hat = np.stack([standard[codes == b].mean(axis=0) for b in range(n_batch)])
    delta_hat = np.stack([standard[codes == b].var(axis=0, ddof=1) for b in range(n_batch)])
    if not eb:
        return gamma_hat, delta_hat, gamma_hat.copy(), delta_hat.copy()
    # Method-of-moments hyper-priors across features: normal for locations, inverse gamma for
    # variances.
    gamma_bar = gamma_hat.mean(axis=1, keepdims=True)
    tau2 = gamma_hat.var(axis=1, ddof=1, keepdims=True)
    d_bar = delta_hat.mean(axis=1, keepdims=True)
    s2 = delta_hat.var(axis=1, ddof=1, keepdims=True)
    shape = (d_bar**2 + 2.0 * s2) / s2
    rate = (d_bar**3 + d_bar * s2) / s2
    within = np.stack(
        [((standard[codes == b] - gamma_hat[b]) ** 2).sum(axis=0) for b in range(n_batch)]
    )
    n = counts[:, None]

    def location(delta: NDArray) -> NDArray:
        return (n * tau2 * gamma_hat + delta * gamma_bar) / (n * tau2 + delta)

    def scale(gamma: NDArray) -> NDArray:
        squares = within + n * (gamma_hat - gamma) ** 2
        return (rate + 0.5 * squares) / (n / 2.0 + shape - 1.0)

    gamma_star = location(delta_hat)
    delta_star = scale(gamma_star)
    for _ in range(n_iter):
        # Both updates use the previous iteration's values, as the published algorithm does.
        gamma_star, delta_star = location(delta_star), scale(gamma_star)
    return gamma_hat, delta_hat, gamma_star, delta_star


def _full(values: NDArray, adjusted: NDArray[np.bool_], fill: float) -> NDArray:
    out = np.full((values.shape[0], adjusted.shape[0]), fill, dtype=float)
    out[:, adjusted] = values
    return out
