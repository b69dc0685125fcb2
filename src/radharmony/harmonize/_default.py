"""Selective ComBat on train-fitted, de-skewed features (the default before ShrinkageComBat).

Plain ComBat removes the estimated scanner shift of every feature. Out of sample, each estimate
carries an error of order sigma/sqrt(n_batch); on features without a real scanner effect that
error is all that is "corrected", and a multivariate classifier adds those errors up, so held-out
data can become *more* separable by scanner than before. The default therefore

1. de-skews heavy-tailed features with a Yeo-Johnson transform fitted on the training rows
   (ComBat's location/scale model assumes roughly symmetric noise),
2. fits ComBat on all features (the empirical-Bayes priors pool every feature), and
3. applies the correction only to features whose training data show a scanner effect
   (Kruskal-Wallis across batches on the covariate-adjusted values, Benjamini-Hochberg FDR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from radharmony.errors import HarmonizationError
from radharmony.harmonize._combat import ComBat
from radharmony.harmonize._deskew import apply_deskew, fit_deskew, skewness
from radharmony.harmonize._state import DataFrameStateMixin
from radharmony.harmonize._stats import bh_q_values, kruskal_per_feature
from radharmony.harmonize._validation import as_batch, as_feature_matrix


class SelectiveComBat(DataFrameStateMixin, TransformerMixin, BaseEstimator):
    """ComBat applied only to features with evidence of a scanner effect, after de-skewing.

    Parameters
    ----------
    alpha : float, default=0.05
        False-discovery rate of the per-feature Kruskal-Wallis test of a batch effect; only
        features below it are harmonised. ``alpha=1`` harmonises every feature.
    strategy : {"auto", "selective", "all"}, default="auto"
        ``"selective"`` corrects the features selected by the test; ``"all"`` corrects every
        feature (plain ComBat after de-skewing). ``"auto"`` decides on the training rows only:
        both variants are fitted on internal training folds and applied to the internal
        held-out folds, and the variant whose held-out scanner prediction is closer to chance
        is kept; full correction must win by more than the sampling noise of that accuracy. Selective correction protects weak,
        scattered scanner effects from the estimation noise ComBat adds out of sample; full
        correction is needed when the scanner effect reaches many features more weakly than
        the per-feature test can detect.
    skew_threshold : float or None, default=1.0
        Features whose absolute training skewness exceeds this are Yeo-Johnson transformed
        (fitted on the training rows, applied to new rows). None disables the transform.
    parametric, eb, mean_only, ref_batch, categorical, continuous, spline_covariates, spline_knots
        Passed to :class:`~radharmony.harmonize.ComBat`.

    Attributes
    ----------
    combat_ : ComBat
        The ComBat model fitted on all (de-skewed) training features.
    skewed_features_ : list of str
        Features that were Yeo-Johnson transformed.
    selected_features_ : list of str
        Features whose ComBat correction is applied.
    strategy_ : str
        ``"selective"`` or ``"all"``: the variant used (``strategy`` or the one ``"auto"`` chose).
    strategy_check_ : pandas.DataFrame or None
        With ``strategy="auto"``: held-out balanced accuracy of predicting the scanner from the
        internal held-out rows for each variant (``strategy``, ``balanced_accuracy``, ``chance``).
    batch_effect_table_ : pandas.DataFrame
        One row per feature: ``feature``, ``skewness``, ``skewed``, ``kruskal_h``, ``p_value``,
        ``q_value``, ``selected`` (see ``data_dictionary/harmonization_selection.csv``).

    Notes
    -----
    Output columns of skewed features are on the Yeo-Johnson (standardised) scale; the others keep
    their units. Use the estimator inside a Pipeline so the selection and the transform are
    learned from training folds only.
    """

    __metadata_request__fit = {"batch": True, "covariates": True}
    __metadata_request__transform = {"batch": True, "covariates": True}

    def __init__(
        self,
        alpha: float = 0.05,
        strategy: str = "auto",
        skew_threshold: float | None = 1.0,
        parametric: bool = True,
        eb: bool = True,
        mean_only: bool = False,
        ref_batch: Any = None,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
        spline_covariates: Sequence[str] | None = None,
        spline_knots: int = 5,
    ) -> None:
        self.alpha = alpha
        self.strategy = strategy
        self.skew_threshold = skew_threshold
        self.parametric = parametric
        self.eb = eb
        self.mean_only = mean_only
        self.ref_batch = ref_batch
        self.categorical = categorical
        self.continuous = continuous
        self.spline_covariates = spline_covariates
        self.spline_knots = spline_knots

    def fit(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> SelectiveComBat:
        """Learn the de-skewing transform, the ComBat model and the features to correct.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Training features.
        y : ignored
            Never pass the prediction target as a covariate (it leaks the labels).
        batch : array-like of shape (n_samples,)
            Scanner of each row.
        covariates : pandas.DataFrame, optional
            Variables whose effect is preserved.

        Returns
        -------
        SelectiveComBat
            The fitted estimator.
        """
        if self.strategy not in ("auto", "selective", "all"):
            raise HarmonizationError(
                f"strategy must be 'auto', 'selective' or 'all', got {self.strategy!r}"
            )
        values, names, _ = as_feature_matrix(X)
        names = names or [f"x{j}" for j in range(values.shape[1])]
        if names is not None and isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = values.shape[1]
        skew = skewness(values)
        self._skewed = (
            np.zeros(values.shape[1], dtype=bool)
            if self.skew_threshold is None
            else np.abs(skew) > self.skew_threshold
        )
        self._center, self._scale, self.power_ = fit_deskew(values[:, self._skewed])
        deskewed = self._deskew(values)
        self.combat_ = self._combat().fit(
            pd.DataFrame(deskewed, columns=names), batch=batch, covariates=covariates
        )
        table = self._selection_table(self.combat_, deskewed, batch, covariates, names)
        adjusted = np.asarray(self.combat_.gamma_star_.notna().all(axis=0))
        self.strategy_check_ = None
        self.strategy_ = self.strategy
        if self.strategy == "auto":
            self.strategy_check_ = self._strategy_check(deskewed, batch, covariates, names)
            self.strategy_ = str(self.strategy_check_["chosen"].iloc[0])
        selected = table["q_value"].to_numpy() < self.alpha
        table["selected"] = (selected if self.strategy_ == "selective" else True) & adjusted
        table.insert(1, "skewness", skew)
        table.insert(2, "skewed", self._skewed)
        self._selected = table["selected"].to_numpy()
        self.batch_effect_table_ = table
        self.skewed_features_ = [n for n, s in zip(names, self._skewed, strict=True) if s]
        self.selected_features_ = [n for n, s in zip(names, self._selected, strict=True) if s]
        return self

    def transform(self, X: Any, *, batch: Any, covariates: Any = None) -> Any:
        """De-skew with the training transform and correct the selected features.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Features with the training columns.
        batch : array-like of shape (n_samples,)
            Scanner of each row (seen at fit).
        covariates : pandas.DataFrame, optional
            Each row's covariates, required when fitted with covariates.

        Returns
        -------
        pandas.DataFrame or numpy.ndarray
            Harmonised features (DataFrame input keeps columns and index).
        """
        check_is_fitted(self, "combat_")
        X = self.combat_._aligned(X)
        values, _, index = as_feature_matrix(X)
        deskewed = self._deskew(values)
        corrected = self.combat_.transform(deskewed, batch=batch, covariates=covariates)
        out = np.where(self._selected, corrected, deskewed)
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=index, columns=X.columns)
        return out

    def fit_transform(self, X: Any, y: Any = None, *, batch: Any, covariates: Any = None) -> Any:
        """Fit, then transform the training rows.

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
        check_is_fitted(self, "combat_")
        return self.combat_.get_feature_names_out()

    def _combat(self) -> ComBat:
        return ComBat(
            parametric=self.parametric,
            eb=self.eb,
            mean_only=self.mean_only,
            ref_batch=self.ref_batch,
            categorical=self.categorical,
            continuous=self.continuous,
            spline_covariates=self.spline_covariates,
            spline_knots=self.spline_knots,
        )

    @staticmethod
    def _selection_table(
        combat: ComBat, deskewed: np.ndarray, batch: Any, covariates: Any, names: list[str]
    ) -> pd.DataFrame:
        residual = deskewed - combat._covariate_effect(batch, covariates, deskewed.shape[0])
        return _batch_effect_tests(residual, as_batch(batch, deskewed.shape[0]), names)

    def _strategy_check(
        self, deskewed: np.ndarray, batch: Any, covariates: Any, names: list[str]
    ) -> pd.DataFrame:
        """Compare selective and full correction on internal held-out folds of the training rows."""
        from sklearn.model_selection import StratifiedKFold

        labels = as_batch(batch, deskewed.shape[0])
        smallest = int(pd.Series(labels).value_counts().min())
        n_splits = min(3, smallest)
        chance = 1.0 / len(pd.unique(labels))
        if n_splits < 2:
            return pd.DataFrame(
                {
                    "strategy": ["selective"],
                    "balanced_accuracy": [np.nan],
                    "chance": [chance],
                    "chosen": ["selective"],
                }
            )
        held_out = {"selective": deskewed.copy(), "all": deskewed.copy()}
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
        codes = pd.factorize(labels)[0]  # scikit-learn needs a plain class vector
        for train, test in folds.split(deskewed, codes):
            cov_train = None if covariates is None else _rows(covariates, train)
            cov_test = None if covariates is None else _rows(covariates, test)
            frame = pd.DataFrame(deskewed[train], columns=names)
            combat = self._combat().fit(frame, batch=labels[train], covariates=cov_train)
            corrected = np.asarray(
                combat.transform(deskewed[test], batch=labels[test], covariates=cov_test)
            )
            tests = self._selection_table(combat, deskewed[train], labels[train], cov_train, names)
            chosen = tests["q_value"].to_numpy() < self.alpha
            held_out["all"][test] = corrected
            held_out["selective"][test] = np.where(chosen, corrected, deskewed[test])
        accuracy = {k: _scanner_accuracy(v, codes, n_splits) for k, v in held_out.items()}
        # Full correction must be better by more than the accuracy's sampling noise (two
        # binomial standard errors at chance level): it is the riskier variant out of sample.
        # Accuracy *below* chance is also scanner information: out-of-sample ComBat over-corrects
        # (it subtracts batch means estimated without the held-out rows), so the distance from
        # chance is compared, not the accuracy itself.
        margin = max(0.05, 2.0 * np.sqrt(chance * (1.0 - chance) / len(labels)))
        distance = {k: abs(v - chance) for k, v in accuracy.items()}
        winner = "all" if distance["all"] < distance["selective"] - margin else "selective"
        return pd.DataFrame(
            {
                "strategy": list(accuracy),
                "balanced_accuracy": list(accuracy.values()),
                "chance": chance,
                "chosen": winner,
            }
        )

    def _deskew(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` with the skewed columns robust-scaled and Yeo-Johnson transformed."""
        return apply_deskew(values, self._skewed, self._center, self._scale, self.power_)


def _rows(covariates: Any, rows: np.ndarray) -> Any:
    return covariates.iloc[rows] if isinstance(covariates, pd.DataFrame) else covariates[rows]


def _scanner_accuracy(values: np.ndarray, labels: np.ndarray, n_splits: int) -> float:
    """Cross-validated balanced accuracy of a linear classifier predicting the scanner."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    finite = np.where(np.isfinite(values), values, 0.0)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=1)
    scores = cross_val_score(model, finite, labels, cv=folds, scoring="balanced_accuracy")
    return float(np.mean(scores))


def _batch_effect_tests(residual: np.ndarray, batch: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Return per-feature Kruskal-Wallis tests of a batch effect with BH q-values."""
    h, p = kruskal_per_feature(residual, batch)
    # Constant features cannot be tested; counting them in the FDR correction would make the
    # selection of the others depend on how many empty columns the table happens to hold.
    q = bh_q_values(p, np.isfinite(h))
    return pd.DataFrame({"feature": names, "kruskal_h": h, "p_value": p, "q_value": q})
