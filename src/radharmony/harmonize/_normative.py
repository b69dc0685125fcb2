"""Reference-population harmonisation and normative deviations (z-scores and centiles).

The model of each feature, fitted on reference rows only (healthy controls, or any designated
reference group), is ComBat's with a non-linear covariate dependence:

    x = alpha + f(covariates) + sigma * (gamma_site + sqrt(delta_site) * e),   e ~ N(0, 1)

``f`` is linear in the covariates' design (categorical indicators, B-spline bases of the
continuous covariates listed in ``spline_covariates``), estimated jointly with the site
intercepts by least squares. Each site's location ``gamma`` and scale ``delta`` get a
normal-inverse-gamma posterior whose prior is estimated across that site's features
(:mod:`._nig`), which gives the exact predictive distribution of a new reference row of that
site (a Student t) under the model. A row's z-score is the normal deviate with the same
predictive tail probability, so it is standard normal for reference rows whatever the number of
reference rows of the site; its centile is ``100 * Phi(z)``. Anchors: the Bayesian linear and
hierarchical Bayesian regression normative models of PCNtoolkit (Marquand et al. 2016;
Kia et al. 2020) and the "brain charts" of Bethlehem et al. 2022.

A new site is adapted to with a few of its reference rows (:meth:`NormativeModel.add_sites`):
only that site's location and scale are estimated, with ``f``, ``alpha`` and ``sigma`` fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import HarmonizationError
from radharmony.harmonize import _design
from radharmony.harmonize._deskew import (
    apply_normal_scores,
    fit_normal_scores,
    invert_normal_scores,
)
from radharmony.harmonize._nig import SitePosterior, fit_site
from radharmony.harmonize._shrinkage import non_normal_columns
from radharmony.harmonize._state import DataFrameStateMixin
from radharmony.harmonize._validation import (
    aligned_columns,
    as_batch,
    as_covariates,
    as_feature_matrix,
)

_OUTPUTS = ("zscore", "centile", "harmonized")
#: Reference rows a site needs (a scale needs two; the third gives one degree of freedom).
MIN_REFERENCE_ROWS = 3


class NormativeModel(DataFrameStateMixin, TransformerMixin, BaseEstimator):
    """Normative model of each feature in a reference population, with site effects.

    Fitted on reference rows only; applied to everyone (reference rows, patients, new
    sites), it returns each row's deviation from the reference population of its own site and
    covariates as a z-score, a centile, or a harmonised value.

    Parameters
    ----------
    output : {"zscore", "centile", "harmonized"}, default="zscore"
        What :meth:`transform` returns. ``"harmonized"``: the value the row would have at the
        reference population's pooled site, in the feature's units
        (``alpha + f(covariates) + sigma * z``).
    skew_threshold : float or None, default=1.0
        Reference-skewed or heavy-tailed features are modelled on rank-based normal scores
        (as in :class:`~radharmony.harmonize.ShrinkageComBat`), so that the Gaussian model
        and its centiles fit them.
    categorical, continuous : sequence of str, optional
        Covariate types (inferred from dtypes when not given).
    spline_covariates : sequence of str, optional
        Continuous covariates whose effect is a cubic B-spline (e.g. ``["age"]``) instead of a
        straight line; the spline extrapolates linearly beyond the reference range.
    spline_knots : int, default=5
        Knots of each spline (at quantiles of the reference values).

    Attributes
    ----------
    sites_ : list
        Sites with a fitted or adapted location and scale.
    adapted_sites_ : list
        Sites added by :meth:`add_sites`.
    skewed_features_ : list of str
        Features modelled on normal scores.
    constant_features_ : list of str
        Features constant in the reference rows (their z-scores are NaN).
    coef_ : pandas.DataFrame
        Covariate coefficients (design column x feature), on the modelled scale.

    Notes
    -----
    What the z-scores are calibrated for: under the model (Gaussian errors on the modelled
    scale, a site-specific mean and variance, a covariate effect shared by the sites), the
    z-score of a new reference row of a fitted site is standard normal up to the uncertainty
    of the estimated covariate curve and of the empirical-Bayes prior, which is added to the
    predictive variance or becomes negligible with many features. Not modelled: a variance
    that changes with the covariates (e.g. with age) and site-by-covariate interactions.
    """

    __metadata_request__fit = {"batch": True, "covariates": True, "reference": True}
    __metadata_request__transform = {"batch": True, "covariates": True}

    def __init__(
        self,
        output: str = "zscore",
        skew_threshold: float | None = 1.0,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
        spline_covariates: Sequence[str] | None = None,
        spline_knots: int = 5,
    ) -> None:
        self.output = output
        self.skew_threshold = skew_threshold
        self.categorical = categorical
        self.continuous = continuous
        self.spline_covariates = spline_covariates
        self.spline_knots = spline_knots

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        batch: Any,
        covariates: Any = None,
        reference: Any = None,
    ) -> NormativeModel:
        """Fit the covariate curve, the pooled SD and each site's effect on reference rows.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Features of all rows given (finite values).
        y : ignored
        batch : array-like of shape (n_samples,)
            Site/scanner of each row.
        covariates : pandas.DataFrame, optional
            Age, sex, ... of each row.
        reference : array-like of bool, shape (n_samples,), optional
            Rows of the reference population; default: every row.

        Returns
        -------
        NormativeModel
        """
        if self.output not in _OUTPUTS:
            raise HarmonizationError(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        values, names, _ = as_feature_matrix(X)
        n, p = values.shape
        names = names or [f"x{j}" for j in range(p)]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = p
        labels = as_batch(batch, n)
        cov = as_covariates(covariates, n)
        rows = _reference_rows(reference, n)
        values, labels = values[rows], labels[rows]
        cov = None if cov is None else cov.iloc[rows].reset_index(drop=True)
        levels = _design.sorted_levels(labels)
        _check_site_sizes(labels, levels, "reference rows")
        spec = _design.fit_design_spec(
            levels,
            None,
            cov,
            self.categorical,
            self.continuous,
            self.spline_covariates,
            self.spline_knots,
        )
        codes = _design.batch_codes(labels, levels)
        design, slices = _design.build_design(spec, codes, cov)
        _design.check_identifiable(design, spec.n_batch, slices)

        self._skewed = non_normal_columns(values, self.skew_threshold)
        self._scores = fit_normal_scores(values[:, self._skewed])
        modelled = apply_normal_scores(values, self._skewed, self._scores)
        gram_inv = np.linalg.inv(design.T @ design)
        beta = gram_inv @ (design.T @ modelled)
        counts = np.bincount(codes, minlength=spec.n_batch)
        weights = counts / counts.sum()
        resid = modelled - design @ beta
        dof = max(len(codes) - design.shape[1], 1)
        sd = np.sqrt(np.sum(resid**2, axis=0) / dof)
        self._constant = sd <= 1e-12 * np.maximum(np.abs(modelled).max(axis=0), 1e-300)
        self._sd = np.where(self._constant, 1.0, sd)
        self._alpha = weights @ beta[: spec.n_batch]
        self._beta = beta[spec.n_batch :]
        self._spec = spec
        # Uncertainty of alpha + f(covariates) for a new row: c' (D'D)^-1 c in sigma^2 units.
        self._gram_inv = gram_inv
        self._weights = weights
        standardised = self._standardised(modelled, cov)
        self._sites: dict[Any, SitePosterior] = {}
        for k, level in enumerate(levels):
            self._sites[level] = fit_site(standardised[codes == k])
        self._counts = {level: int(c) for level, c in zip(levels, counts, strict=True)}
        self.adapted_sites_: list[Any] = []
        self._names = names
        self._set_public_attributes()
        return self

    def add_sites(self, X: Any, *, batch: Any, covariates: Any = None) -> NormativeModel:
        """Adapt the model to new sites from a few of their reference rows.

        Only the new sites' locations and scales are estimated (each pooled across its
        features); the covariate curve and the reference population's SD are kept.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Reference rows of the new sites (at least 3 per site).
        batch : array-like of shape (n_samples,)
            Site of each row; sites already in the model are refused.
        covariates : pandas.DataFrame, optional
            Covariates of each row (as at fit).

        Returns
        -------
        NormativeModel
        """
        check_is_fitted(self, "_sites")
        values, cov, labels = self._inputs(X, batch, covariates)
        levels = _design.sorted_levels(labels)
        known = [level for level in levels if level in self._sites]
        if known:
            raise HarmonizationError(
                f"site(s) {known} are already in the model (sites: {self.sites_}); "
                "add_sites adapts to new sites only. Refit to change a fitted site."
            )
        _check_site_sizes(labels, levels, "reference rows of the new site")
        standardised = self._standardised(
            apply_normal_scores(values, self._skewed, self._scores), cov
        )
        for level in levels:
            self._sites[level] = fit_site(standardised[labels == level])
            self._counts[level] = int(np.sum(labels == level))
            self.adapted_sites_.append(level)
        self._set_public_attributes()
        return self

    def zscores(self, X: Any, *, batch: Any, covariates: Any = None) -> pd.DataFrame:
        """Return each row's z-score relative to the reference population of its site.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        batch : array-like of shape (n_samples,)
            Site of each row (fitted or added).
        covariates : pandas.DataFrame, optional

        Returns
        -------
        pandas.DataFrame
            Same shape, columns and index as X (positional index for arrays).
        """
        z, _, index = self._deviations(X, batch, covariates)
        return pd.DataFrame(z, index=index, columns=self._names)

    def centiles(self, X: Any, *, batch: Any, covariates: Any = None) -> pd.DataFrame:
        """Return each row's centile (0-100) in the reference population of its site.

        Parameters
        ----------
        X, batch, covariates
            As in :meth:`zscores`.

        Returns
        -------
        pandas.DataFrame
        """
        z = self.zscores(X, batch=batch, covariates=covariates)
        return pd.DataFrame(100.0 * stats.norm.cdf(z), index=z.index, columns=z.columns)

    def transform(self, X: Any, *, batch: Any, covariates: Any = None) -> Any:
        """Return z-scores, centiles or harmonised values (see ``output``).

        Parameters
        ----------
        X, batch, covariates
            As in :meth:`zscores`.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            A DataFrame for DataFrame input, else an array.
        """
        z, modelled_centre, index = self._deviations(X, batch, covariates)
        if self.output == "zscore":
            out = z
        elif self.output == "centile":
            out = 100.0 * stats.norm.cdf(z)
        else:
            harmonised = modelled_centre + self._sd * np.nan_to_num(z)
            out = invert_normal_scores(harmonised, self._skewed, self._scores)
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=index, columns=X.columns)
        return out

    def deviation_table(
        self, X: Any, *, batch: Any, covariates: Any = None, ids: Any = None
    ) -> pd.DataFrame:
        """Return the long table of deviations, one row per input row and feature.

        Parameters
        ----------
        X, batch, covariates
            As in :meth:`zscores`.
        ids : array-like of shape (n_samples,), optional
            Row identifiers (default: X's index, or positions).

        Returns
        -------
        pandas.DataFrame
            Columns described in ``data_dictionary/normative_deviations.csv``.
        """
        z, _, index = self._deviations(X, batch, covariates)
        values, _, _ = as_feature_matrix(X)
        labels = as_batch(batch, values.shape[0])
        row_ids = np.asarray(index if ids is None else ids, dtype=object)
        n, p = z.shape
        table = pd.DataFrame(
            {
                "row": np.repeat(row_ids, p),
                "site": np.repeat(labels, p),
                "feature": np.tile(np.asarray(self._names, dtype=object), n),
                "value": values.ravel(),
                "z": z.ravel(),
                "centile": 100.0 * stats.norm.cdf(z.ravel()),
            }
        )
        table["site"] = table["site"].astype(str)
        table["extreme"] = table["z"].abs() > stats.norm.isf(0.025)
        return table

    def site_table(self) -> pd.DataFrame:
        """Return one row per site: reference rows, adaptation and the estimated effects.

        Returns
        -------
        pandas.DataFrame
            Columns described in ``data_dictionary/normative_sites.csv``.
        """
        check_is_fitted(self, "_sites")
        rows = []
        for level, post in self._sites.items():
            rows.append(
                {
                    "site": str(level),
                    "n_reference_rows": self._counts[level],
                    "adapted": level in self.adapted_sites_,
                    "mean_abs_location": float(np.mean(np.abs(post.location()))),
                    "median_scale": float(np.median(np.sqrt(post.variance()))),
                    "median_predictive_df": float(np.median(post.df)),
                }
            )
        return pd.DataFrame(rows)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Return the output feature names (one per input feature).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        numpy.ndarray
        """
        check_is_fitted(self, "_sites")
        return np.asarray(self._names, dtype=object)

    def _inputs(
        self, X: Any, batch: Any, covariates: Any
    ) -> tuple[np.ndarray, pd.DataFrame | None, np.ndarray]:
        X = aligned_columns(
            X, getattr(self, "feature_names_in_", None), self.n_features_in_, type(self).__name__
        )
        values, _, _ = as_feature_matrix(X)
        labels = as_batch(batch, values.shape[0])
        return values, as_covariates(covariates, values.shape[0]), labels

    def _covariate_block(self, cov: pd.DataFrame | None, n: int) -> np.ndarray:
        """Return the covariate columns of the design for ``n`` rows."""
        design, _ = _design.build_design(self._spec, np.zeros(n, dtype=int), cov)
        return design[:, self._spec.n_batch :]

    def _standardised(self, modelled: np.ndarray, cov: pd.DataFrame | None) -> np.ndarray:
        centre = self._alpha + self._covariate_block(cov, modelled.shape[0]) @ self._beta
        return (modelled - centre) / self._sd

    def _deviations(
        self, X: Any, batch: Any, covariates: Any
    ) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """Return z-scores, the modelled-scale centre of each row and the row index."""
        check_is_fitted(self, "_sites")
        values, cov, labels = self._inputs(X, batch, covariates)
        unknown = sorted({str(v) for v in labels if v not in self._sites})
        if unknown:
            raise HarmonizationError(
                f"site(s) {unknown} are not in the normative model (sites: {self.sites_}). "
                "Adapt to a new site with add_sites(reference rows of that site)."
            )
        modelled = apply_normal_scores(values, self._skewed, self._scores)
        block = self._covariate_block(cov, modelled.shape[0])
        centre = self._alpha + block @ self._beta
        standardised = (modelled - centre) / self._sd
        leverage = self._leverage(block)
        z = np.empty_like(standardised)
        for level in pd.unique(labels):
            rows = labels == level
            post = self._sites[level]
            scale = np.sqrt(
                post.predictive_scale()[None, :] ** 2 + leverage[rows, None] * post.variance()
            )
            t = (standardised[rows] - post.location()) / scale
            z[rows] = _t_to_normal(t, post.df)
        z[:, self._constant] = np.nan
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(values.shape[0])
        return z, centre, index

    def _leverage(self, block: np.ndarray) -> np.ndarray:
        contrast = np.hstack([np.tile(self._weights, (block.shape[0], 1)), block])
        return np.einsum("ij,jk,ik->i", contrast, self._gram_inv, contrast)

    def _set_public_attributes(self) -> None:
        names = self._names
        self.sites_ = list(self._sites)
        self.skewed_features_ = [n for n, s in zip(names, self._skewed, strict=True) if s]
        self.constant_features_ = [n for n, c in zip(names, self._constant, strict=True) if c]
        self.coef_ = pd.DataFrame(
            self._beta, index=self._spec.column_names[self._spec.n_batch :], columns=names
        )


def _t_to_normal(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Return the normal deviate with the same tail probability as ``t`` under Student t."""
    df = np.broadcast_to(df, t.shape)
    upper = t > 0
    z = np.empty_like(t)
    # Work in the smaller tail so extreme deviations keep their precision.
    z[upper] = stats.norm.isf(stats.t.sf(t[upper], df[upper]))
    z[~upper] = stats.norm.ppf(stats.t.cdf(t[~upper], df[~upper]))
    return z


def _reference_rows(reference: Any, n: int) -> np.ndarray:
    """Return the boolean mask of reference rows (all rows when not given)."""
    if reference is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(reference)
    if mask.shape != (n,) or mask.dtype != bool:
        raise HarmonizationError(
            f"reference must be one boolean per row of X ({n}); got shape {mask.shape} and "
            f"dtype {mask.dtype}."
        )
    if not mask.any():
        raise HarmonizationError("reference selects no row: the normative model needs some.")
    return mask


def _check_site_sizes(labels: np.ndarray, levels: list[Any], what: str) -> None:
    counts = pd.Series(labels).value_counts()
    small = [level for level in levels if counts[level] < MIN_REFERENCE_ROWS]
    if small:
        raise HarmonizationError(
            f"site(s) {small} have fewer than {MIN_REFERENCE_ROWS} {what}; a site's location "
            "and scale need at least 3. Add reference rows or merge the site with a similar "
            "one."
        )
