"""The default harmoniser: ComBat's model with deconvolved shrinkage and the outcome in the design.

Why not plain ComBat out of sample. ComBat fitted on training rows removes, from new rows, its
*estimate* of each batch's location and scale. Each estimate carries a sampling error of about
``sqrt(delta / n_batch)`` pooled SDs, and a multivariate classifier adds those errors up over
features: where the true scanner effect is weak, the new rows become *more* separable by scanner
than before. ComBat's empirical-Bayes prior does not prevent this: its prior variance is the
spread of the estimates across features, which includes their sampling noise, so it shrinks
least exactly when there is least to correct.

What this estimator does instead (see :mod:`._location_scale`):

1. skewed and heavy-tailed features are replaced by rank-based normal scores learned on the
   training rows for the estimation and correction, then mapped back to their units
   (Yeo-Johnson cannot tame the tails of many filtered-image features);
2. every location and scale estimate gets its sampling variance (the scale's from the
   feature's kurtosis, since heavy tails make variances noisy);
3. per batch, the vector of location estimates over all features is shrunk towards "no
   correction" by one James-Stein factor computed from its Mahalanobis norm in units of its
   own estimation noise (the features' correlation included); the log-scale estimates likewise.
   A batch effect that does not stand out from the estimation noise is left alone; a strong
   one is removed almost completely. It is a rule with a risk property (for Gaussian estimates
   with known covariance and three or more features, James-Stein shrinkage has lower expected
   squared error than the unshrunk estimate; here the covariance is estimated, so this holds
   approximately), not a significance test with a threshold, and it needs no internal
   held-out choice.
4. with the training labels (``y``, which a scikit-learn ``Pipeline`` passes to ``fit``), the
   outcome is part of the design, so batch effects are estimated net of each batch's outcome
   mix; new rows are adjusted without their labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import HarmonizationError
from radharmony.harmonize import _design
from radharmony.harmonize._deskew import (
    apply_normal_scores,
    fit_normal_scores,
    invert_normal_scores,
    skewness,
)
from radharmony.harmonize._location_scale import (
    LocationScaleFit,
    apply_location_scale,
    fit_location_scale,
    largest_tie_fraction,
)
from radharmony.harmonize._state import DataFrameStateMixin
from radharmony.harmonize._validation import (
    aligned_columns,
    as_batch,
    as_covariates,
    as_feature_matrix,
    batch_counts_or_raise,
)

_OUTCOME_CHOICES = ("auto", True, False)


class ShrinkageComBat(DataFrameStateMixin, TransformerMixin, BaseEstimator):
    """ComBat location/scale harmonisation that corrects only what it can estimate reliably.

    The scanner/site effects of ComBat's model (a shift and a scale per batch and feature) are
    estimated on the training rows and shrunk by empirical Bayes with a nonparametric prior
    whose sampling noise is deconvolved; with labels at fit, the outcome is in the design so
    that its signal is not removed with the site effect. ``transform`` never uses labels.

    Parameters
    ----------
    outcome : {"auto", True, False}, default="auto"
        Put the training labels ``y`` in the design at fit. ``"auto"``: when ``y`` is given
        (a ``Pipeline`` passes it). Categorical labels (strings, integers, booleans) enter as
        indicators, non-integer numbers as one continuous column. ``True`` makes ``y``
        required; ``False`` ignores it.
    skew_threshold : float or None, default=1.0
        Features whose absolute training skewness exceeds it, or whose excess kurtosis exceeds
        three times it (tails heavier than a t distribution with 6 degrees of freedom at the
        default), are replaced by rank-based normal scores learned on the training rows before
        harmonisation (their output stays on that scale): means and variances of such features
        are driven by a few extreme rows, and a correction estimated from them can pull the
        bulk of a batch apart from the others. The corrected scores are mapped back to the
        feature's units, so every output column keeps its units and each batch's correction is
        an increasing map. Ties keep one score; new values between training values are
        interpolated, beyond them extrapolated linearly. None disables it.
    shrink : bool, default=True
        Shrink the estimates by empirical Bayes. False applies the raw per-feature estimates
        (ComBat with ``eb=False``, plus the outcome and the de-skewing).
    mean_only : bool, default=False
        Correct the location only.
    max_tie_fraction : float, default=0.25
        A feature whose most frequent training value is held by at least this fraction of the
        training rows is left unchanged (listed in ``tied_features_``). Shifting such a point
        mass by a batch-specific amount, however small, gives the tied rows a value that names
        their batch, which a rank-based or tree model then reads: a split mass of fraction
        ``f`` adds about ``f**2 / 2`` to that feature's rank AUC, at most 0.03 below a quarter
        of the rows, which a real scanner correction outweighs (integer-valued features such as
        HU percentiles hold a few per cent per value and must be corrected). Above it the
        point mass dominates the feature and a location/scale model does not describe it
        (filtered-image features often hold the same value in most lesions). ``1.0`` disables
        the rule.
    categorical, continuous, spline_covariates, spline_knots
        Covariate handling, as in :class:`~radharmony.harmonize.ComBat`.

    Attributes
    ----------
    batch_levels_ : list
        Batches seen at fit.
    outcome_used_ : bool
        Whether the labels were in the design.
    outcome_levels_ : list
        Label levels (categorical outcome; the first is the baseline), empty otherwise.
    skewed_features_ : list of str
        Features replaced by normal scores.
    unadjusted_features_ : list of str
        Features left unchanged (constant within a batch, fully explained by the design, or
        tied).
    tied_features_ : list of str
        Features left unchanged because of ``max_tie_fraction``.
    gamma_hat_, gamma_star_ : pandas.DataFrame
        Batch x feature location estimate and the applied (posterior-mean) location, in pooled
        standard deviations (NaN for unadjusted features).
    gamma_se_ : pandas.DataFrame
        Standard error of ``gamma_hat_``.
    delta_hat_, delta_star_ : pandas.DataFrame
        Batch x feature variance ratio estimated and applied.
    grand_mean_, var_pooled_ : pandas.Series
        Per-feature intercept and pooled residual variance (on the de-skewed scale).
    coef_ : pandas.DataFrame
        Covariate coefficients (design column x feature).
    outcome_coef_ : pandas.DataFrame
        Outcome coefficients (design column x feature): the effect that is preserved.

    Notes
    -----
    **What is exact and what is approximated for new rows** (with the outcome in the design).
    The location term ``sigma * gamma_b`` is estimated net of the batch's outcome mix and is
    removed from a new row as it is; it needs no label. The scale is applied around the
    batch's training outcome mix ``m_b``: a row becomes
    ``c + (x - c - sigma*gamma_b) / sqrt(delta_b)`` with ``c`` its covariate prediction plus
    ``m_b``. Hence (i) the batch's mean lands on the pooled mean for rows whose outcome mix
    equals the batch's training mix, whatever the label of each row; (ii) within a batch, a
    row's outcome effect relative to ``m_b`` is multiplied by ``1/sqrt(delta_b)``. Under
    ComBat's model (the scanner scales the noise only) that is the approximation: exact
    adjustment would need the row's label. Under the model where the scanner scales the whole
    signal (``x = a_b + s_b * biology``, e.g. an intensity calibration) the same formula is
    exact. Either way the transform is, per batch and feature, an increasing affine map, so the
    ranking of rows within a batch never changes.
    """

    __metadata_request__fit = {"batch": True, "covariates": True}
    __metadata_request__transform = {"batch": True, "covariates": True}

    def __init__(
        self,
        outcome: str | bool = "auto",
        skew_threshold: float | None = 1.0,
        shrink: bool = True,
        mean_only: bool = False,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
        spline_covariates: Sequence[str] | None = None,
        spline_knots: int = 5,
        max_tie_fraction: float = 0.25,
    ) -> None:
        self.max_tie_fraction = max_tie_fraction
        self.outcome = outcome
        self.skew_threshold = skew_threshold
        self.shrink = shrink
        self.mean_only = mean_only
        self.categorical = categorical
        self.continuous = continuous
        self.spline_covariates = spline_covariates
        self.spline_knots = spline_knots

    def fit(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> ShrinkageComBat:
        """Estimate and shrink the batch effects on training rows.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Training features (finite values).
        y : array-like of shape (n_samples,), optional
            Training labels; with ``outcome="auto"``/``True`` they enter the design so their
            effect is preserved. They are never needed (nor used) by ``transform``.
        batch : array-like of shape (n_samples,)
            Scanner/site of each row; every batch needs at least 2 rows.
        covariates : pandas.DataFrame, optional
            Variables whose effect is preserved (age, sex, ...).

        Returns
        -------
        ShrinkageComBat
        """
        if self.outcome not in _OUTCOME_CHOICES:
            raise HarmonizationError(f"outcome must be 'auto', True or False, got {self.outcome!r}")
        values, names, _ = as_feature_matrix(X)
        n, p = values.shape
        names = names or [f"x{j}" for j in range(p)]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = p
        labels = as_batch(batch, n)
        cov = as_covariates(covariates, n)
        levels = _design.sorted_levels(labels)
        batch_counts_or_raise(labels, levels)
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
        outcome_design, self.outcome_levels_, outcome_names = self._outcome_design(y, n)
        self.outcome_used_ = outcome_design.shape[1] > 0
        if self.outcome_used_:
            _check_outcome_identifiable(np.hstack([design, outcome_design]), spec.n_batch)

        self._skewed = non_normal_columns(values, self.skew_threshold)
        self._scores = fit_normal_scores(values[:, self._skewed])
        deskewed = apply_normal_scores(values, self._skewed, self._scores)
        self._tied = largest_tie_fraction(values) >= self.max_tie_fraction
        fit = fit_location_scale(
            deskewed,
            codes,
            design[:, spec.n_batch :],
            outcome_design,
            spec.n_batch,
            shrink=self.shrink,
            mean_only=self.mean_only,
            exclude=self._tied,
        )
        self._spec, self._fit = spec, fit
        self._counts = np.bincount(codes, minlength=spec.n_batch)
        self._set_public_attributes(names, spec, fit, outcome_names)
        return self

    def transform(self, X: Any, *, batch: Any, covariates: Any = None) -> Any:
        """Harmonise rows with the fitted (shrunk) batch effects; labels are never used.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Same features as at fit.
        batch : array-like of shape (n_samples,)
            Scanner of each row; every value must have been seen at fit.
        covariates : pandas.DataFrame, optional
            Each row's covariates (required when fitted with covariates).

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            Harmonised features (a DataFrame keeps the input's columns and index).
        """
        check_is_fitted(self, "_fit")
        X = aligned_columns(
            X, getattr(self, "feature_names_in_", None), self.n_features_in_, type(self).__name__
        )
        values, _, index = as_feature_matrix(X)
        n = values.shape[0]
        codes = _design.batch_codes(as_batch(batch, n), self._spec.batch_levels)
        cov = as_covariates(covariates, n)
        if cov is not None and not self._spec.covariate_names:
            raise HarmonizationError(
                "covariates were passed to transform but the harmoniser was fitted without "
                "covariates; pass the same covariates to fit and transform, or to neither."
            )
        design, _ = _design.build_design(self._spec, codes, cov)
        deskewed = apply_normal_scores(values, self._skewed, self._scores)
        harmonised = apply_location_scale(
            deskewed, codes, design[:, self._spec.n_batch :], self._fit
        )
        out = invert_normal_scores(harmonised, self._skewed, self._scores)
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=index, columns=X.columns)
        return out

    def fit_transform(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> Any:
        """Fit, then transform the training rows exactly as new rows (without their labels).

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
        """Return the output feature names (every input column is kept).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        numpy.ndarray
        """
        check_is_fitted(self, "_fit")
        return np.asarray(self.gamma_star_.columns, dtype=object)

    def correction_table(self) -> pd.DataFrame:
        """Return what was estimated and what was applied, per feature and batch.

        Returns
        -------
        pandas.DataFrame
            Columns described in ``data_dictionary/harmonization_corrections.csv``.
        """
        check_is_fitted(self, "_fit")
        frames = {
            "location_estimate": self.gamma_hat_,
            "location_se": self.gamma_se_,
            "location_applied": self.gamma_star_,
            "scale_estimate": self.delta_hat_,
            "scale_applied": self.delta_star_,
        }
        long = [frame.stack(future_stack=True).rename(name) for name, frame in frames.items()]
        table = pd.concat(long, axis=1).rename_axis(["batch", "feature"]).reset_index()
        sd = table["feature"].map(np.sqrt(self.var_pooled_))
        table["shift_applied"] = table["location_applied"] * sd
        counts = dict(zip(self.batch_levels_, self._counts.tolist(), strict=True))
        table["n_training_rows"] = table["batch"].map(counts)
        table["batch"] = table["batch"].astype(str)
        table["adjusted"] = ~table["feature"].isin(self.unadjusted_features_)
        table["skewed"] = table["feature"].isin(self.skewed_features_)
        table["outcome_in_design"] = self.outcome_used_
        return table[
            [
                "feature",
                "batch",
                "n_training_rows",
                "adjusted",
                "skewed",
                "outcome_in_design",
                "location_estimate",
                "location_se",
                "location_applied",
                "shift_applied",
                "scale_estimate",
                "scale_applied",
            ]
        ]

    def _outcome_design(self, y: Any, n: int) -> tuple[np.ndarray, list[Any], list[str]]:
        """Return the outcome block of the design, the label levels and the column names."""
        if self.outcome is False or (y is None and self.outcome == "auto"):
            return np.zeros((n, 0)), [], []
        if y is None:
            raise HarmonizationError(
                "outcome=True needs the training labels: pass y to fit (a Pipeline does)."
            )
        return outcome_block(y, n)

    def _set_public_attributes(
        self,
        names: list[str],
        spec: _design.DesignSpec,
        fit: LocationScaleFit,
        outcome_names: list[str],
    ) -> None:
        """Expose the estimates as labelled tables (NaN for features left unchanged)."""
        levels = spec.batch_levels
        kept = fit.kept

        def per_batch(values: np.ndarray) -> pd.DataFrame:
            full = np.full((len(levels), len(names)), np.nan)
            full[:, kept] = values
            return pd.DataFrame(full, index=pd.Index(levels, name="batch"), columns=names)

        def per_feature(values: np.ndarray) -> np.ndarray:
            full = np.full(len(names), np.nan)
            full[kept] = values
            return full

        def per_column(values: np.ndarray, rows: list[str]) -> pd.DataFrame:
            full = np.full((len(rows), len(names)), np.nan)
            full[:, kept] = values
            return pd.DataFrame(full, index=rows, columns=names)

        self.batch_levels_ = list(levels)
        self.gamma_hat_ = per_batch(fit.gamma_hat)
        self.gamma_se_ = per_batch(np.sqrt(fit.gamma_var))
        self.gamma_star_ = per_batch(fit.gamma_star)
        self.delta_hat_ = per_batch(fit.delta_hat)
        self.delta_star_ = per_batch(fit.delta_star)
        self.grand_mean_ = pd.Series(per_feature(fit.grand_mean), index=names, name="grand_mean")
        self.var_pooled_ = pd.Series(per_feature(fit.sd_pooled**2), index=names, name="var_pooled")
        self.coef_ = per_column(fit.beta_covariates, spec.column_names[spec.n_batch :])
        self.outcome_coef_ = per_column(fit.beta_outcome, outcome_names)
        self.unadjusted_features_ = [n for n, k in zip(names, kept, strict=True) if not k]
        self.skewed_features_ = [n for n, s in zip(names, self._skewed, strict=True) if s]
        self.tied_features_ = [n for n, t in zip(names, self._tied, strict=True) if t]


def default_harmonizer(**kwargs: Any) -> ShrinkageComBat:
    """Return the recommended harmonisation step for modelling pipelines.

    Parameters
    ----------
    **kwargs
        Parameters of :class:`ShrinkageComBat` (e.g. ``outcome``, ``skew_threshold``,
        ``categorical``, ``spline_covariates``).

    Returns
    -------
    ShrinkageComBat
        Unfitted; ``fit(X, y, *, batch, covariates)``/``transform(X, *, batch, covariates)``
        with metadata routing of ``batch`` and ``covariates``.

    Notes
    -----
    Exact, all-feature ComBat is :class:`~radharmony.harmonize.ComBat`; the previous default
    is :class:`~radharmony.harmonize.SelectiveComBat`. The default shrinks each batch's
    location and scale corrections by a James-Stein factor computed in the metric of held-out
    separability, so a weak, poorly estimated scanner effect is not "corrected" into a larger
    one, and, inside a ``Pipeline``, it keeps the training labels in the design so the outcome
    signal is not removed with the site effect.
    """
    return ShrinkageComBat(**kwargs)


def outcome_block(y: Any, n: int) -> tuple[np.ndarray, list[Any], list[str]]:
    """Return the design block of training labels, their levels and the column names.

    Categorical labels give drop-first indicators; non-integer numbers one centred column.
    """
    values = np.asarray(y)
    if values.ndim != 1:
        values = values.reshape(values.shape[0], -1)
        if values.shape[1] != 1:
            raise HarmonizationError(
                f"y must be one label per row to enter the design; got shape {np.shape(y)}."
            )
        values = values[:, 0]
    if values.shape[0] != n:
        raise HarmonizationError(f"y has {values.shape[0]} values but X has {n} rows.")
    if pd.isna(pd.Series(values, dtype=object)).any():
        raise HarmonizationError(
            "y has missing values; drop the unlabelled rows before fitting (or pass "
            "outcome=False to harmonise without the labels)."
        )
    numeric = np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_)
    if numeric and np.issubdtype(values.dtype, np.floating):
        as_float = values.astype(float)
        if not np.all(np.isfinite(as_float)):
            raise HarmonizationError("y holds infinite values.")
        if not np.all(as_float == np.round(as_float)):
            return (as_float - as_float.mean()).reshape(-1, 1), [], ["outcome"]
    levels = _design.sorted_levels(values)
    codes = _design.batch_codes(values.astype(object), levels, what="label")
    block = np.eye(len(levels))[codes][:, 1:]
    return block, levels, [f"outcome[{level}]" for level in levels[1:]]


def non_normal_columns(values: np.ndarray, skew_threshold: float | None) -> np.ndarray:
    """Return the columns too skewed or heavy-tailed for mean/variance estimates."""
    if skew_threshold is None:
        return np.zeros(values.shape[1], dtype=bool)
    with np.errstate(all="ignore"):
        centred = values - values.mean(axis=0)
        variance = np.mean(centred**2, axis=0)
        excess = np.mean(centred**4, axis=0) / variance**2 - 3.0
    excess = np.nan_to_num(excess)
    return (np.abs(skewness(values)) > skew_threshold) | (excess > 3.0 * skew_threshold)


def _check_outcome_identifiable(design: np.ndarray, n_batch: int) -> None:
    """Raise when the labels are (nearly) determined by the batch and the covariates."""
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    if np.linalg.cond(design / norms) < _design.MAX_CONDITION:
        return
    raise HarmonizationError(
        "the outcome (y) is (nearly) determined by the batch and covariates, e.g. every batch "
        "holds a single class: the scanner effect cannot be told from the outcome signal. "
        "Harmonising would remove that signal (outcome=False) or cannot be estimated "
        "(outcome=True); consider not harmonising these data."
    )
