"""Unsupervised feature filters and an mRMR-like selector, fitted inside the training folds."""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted, validate_data


class DropNearConstant(SelectorMixin, BaseEstimator):
    """Drop features that are (nearly) constant in the training data.

    Parameters
    ----------
    max_mode_fraction : float
        A feature is dropped when a single value covers more than this fraction of the training
        rows, or when its standard deviation is zero.

    Attributes
    ----------
    support_ : ndarray of bool
        True for each kept feature.
    """

    def __init__(self, max_mode_fraction: float = 0.95) -> None:
        self.max_mode_fraction = max_mode_fraction

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> DropNearConstant:
        """Find the features to keep from the training rows ``X``."""
        X = np.asarray(validate_data(self, X, ensure_all_finite="allow-nan"), dtype=float)
        self.support_ = np.array([self._is_variable(column) for column in X.T], dtype=bool)
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are ignored, not refused
        return tags

    def _is_variable(self, column: NDArray[np.float64]) -> bool:
        finite = column[np.isfinite(column)]
        if finite.size == 0 or np.std(finite) == 0.0:
            return False
        _, counts = np.unique(finite, return_counts=True)
        return bool(counts.max() / finite.size <= self.max_mode_fraction)

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return np.asarray(self.support_, dtype=bool)


class DropCorrelated(SelectorMixin, BaseEstimator):
    """Drop the later feature of every pair whose absolute correlation exceeds a threshold.

    Features are visited in column order; a feature is kept when its absolute Pearson correlation
    with every feature kept so far is at most ``threshold``. Column order is therefore a priority:
    put the features you prefer to keep (e.g. volume) first.

    Parameters
    ----------
    threshold : float
        Largest absolute correlation allowed between two kept features, in (0, 1].

    Attributes
    ----------
    support_ : ndarray of bool
        True for each kept feature.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> DropCorrelated:
        """Find the features to keep from the training rows ``X``."""
        X = np.asarray(validate_data(self, X), dtype=float)
        std = X.std(axis=0)
        centred = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        corr = np.abs(centred.T @ centred) / X.shape[0]
        support = np.zeros(X.shape[1], dtype=bool)
        for j in range(X.shape[1]):
            kept = np.flatnonzero(support)
            support[j] = kept.size == 0 or bool(np.all(corr[j, kept] <= self.threshold))
        self.support_ = support
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return np.asarray(self.support_, dtype=bool)


class MRMRSelector(SelectorMixin, BaseEstimator):
    """Greedy minimum-redundancy maximum-relevance selection (F-statistic / correlation quotient).

    Relevance is the ANOVA F statistic of each feature against the class; redundancy is the mean
    absolute Pearson correlation with the features already selected. At each step the feature
    maximising relevance / redundancy is added (the "FCQ" variant of mRMR).

    Parameters
    ----------
    k : int
        Number of features to select (capped at the number of input features).

    Attributes
    ----------
    support_ : ndarray of bool
        True for each selected feature.
    ranking_ : ndarray of int
        Column indices in the order they were selected.
    """

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def fit(self, X: ArrayLike, y: ArrayLike) -> MRMRSelector:
        """Select ``k`` features from the training rows ``X`` and labels ``y``."""
        X, y = _validated(self, X, y)
        relevance = np.nan_to_num(f_classif(X, y)[0], nan=0.0)
        std = X.std(axis=0)
        centred = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        corr = np.abs(centred.T @ centred) / X.shape[0]
        n_select = min(self.k, X.shape[1])
        selected = [int(np.argmax(relevance))]
        while len(selected) < n_select:
            redundancy = corr[:, selected].mean(axis=1)
            score = relevance / np.maximum(redundancy, 1e-12)
            score[selected] = -np.inf
            selected.append(int(np.argmax(score)))
        support = np.zeros(X.shape[1], dtype=bool)
        support[selected] = True
        self.support_ = support
        self.ranking_ = np.asarray(selected)
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return np.asarray(self.support_, dtype=bool)


class UnivariateSelector(SelectorMixin, BaseEstimator):
    """Keep the ``k`` features with the largest ANOVA F statistic against the class.

    Unlike :class:`sklearn.feature_selection.SelectKBest`, ``k`` is silently capped at the number
    of features that reach this step (earlier filters decide that number inside each fold).

    Parameters
    ----------
    k : int
        Number of features to keep.

    Attributes
    ----------
    scores_ : ndarray
        F statistic of each input feature (NaN for constant features is replaced by 0).
    support_ : ndarray of bool
        True for each selected feature.
    """

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def fit(self, X: ArrayLike, y: ArrayLike) -> UnivariateSelector:
        """Score the features of the training rows ``X`` against ``y`` and keep the top ``k``."""
        X, y = _validated(self, X, y)
        self.scores_ = np.nan_to_num(f_classif(X, y)[0], nan=0.0)
        self.support_ = _top_k_mask(self.scores_, self.k)
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return np.asarray(self.support_, dtype=bool)


class L1Selector(SelectorMixin, BaseEstimator):
    """Keep at most ``k`` features with non-zero L1-penalised logistic regression coefficients.

    Parameters
    ----------
    k : int
        Largest number of features to keep (those with the largest absolute coefficients).
    C : float
        Inverse regularisation strength of the L1 logistic regression.

    Attributes
    ----------
    scores_ : ndarray
        Largest absolute coefficient of each input feature over the classes.
    support_ : ndarray of bool
        True for each selected feature; at least one feature is always kept.
    """

    def __init__(self, k: int = 10, C: float = 0.5) -> None:
        self.k = k
        self.C = C

    def fit(self, X: ArrayLike, y: ArrayLike) -> L1Selector:
        """Fit the L1 model on the training rows and keep the features it uses."""
        X, y = _validated(self, X, y)
        if np.unique(y).size < 2:
            raise ValueError("L1Selector needs samples of at least 2 classes; got 1 class")
        # liblinear is fast but binary-only in recent scikit-learn; saga handles any number of
        # classes with a multinomial L1 penalty.
        binary = np.unique(y).size <= 2
        lasso = penalised_logistic(
            1.0,
            C=self.C,
            solver="liblinear" if binary else "saga",
            class_weight="balanced",
            max_iter=100 if binary else 5000,
        )
        coef = np.atleast_2d(lasso.fit(X, y).coef_)
        self.scores_ = np.abs(coef).max(axis=0)
        support = _top_k_mask(self.scores_, self.k) & (self.scores_ > 0)
        if not support.any():
            support[int(np.argmax(self.scores_))] = True
        self.support_ = support
        return self

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return np.asarray(self.support_, dtype=bool)


def _validated(
    estimator: BaseEstimator, X: ArrayLike, y: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Validate features and labels with scikit-learn; features as float."""
    values, labels = validate_data(estimator, X, y)
    return np.asarray(values, dtype=float), np.asarray(labels)


def _top_k_mask(scores: NDArray[np.float64], k: int) -> NDArray[np.bool_]:
    """Boolean mask of the ``k`` largest scores (ties broken by column order)."""
    order = np.argsort(-scores, kind="stable")[: max(1, min(k, scores.size))]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order] = True
    return mask


def penalised_logistic(l1_ratio: float, **options: Any) -> LogisticRegression:
    """Return an L1 (``l1_ratio=1``) or elastic-net logistic regression on any scikit-learn.

    scikit-learn 1.8 deprecated ``penalty`` in favour of ``l1_ratio`` alone; older versions
    ignore ``l1_ratio`` unless ``penalty`` says which penalty to use.
    """
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return LogisticRegression(l1_ratio=l1_ratio, **options)
    if l1_ratio == 1.0:
        return LogisticRegression(penalty="l1", **options)
    return LogisticRegression(penalty="elasticnet", l1_ratio=l1_ratio, **options)
