"""Scorers that pass ``batch``/``covariates`` to the predictions they score.

scikit-learn's built-in scorers call ``predict(X)`` (or ``predict_proba``/``decision_function``)
without metadata, so in ``cross_validate``/``GridSearchCV`` a Pipeline holding ComBat cannot
harmonise the held-out fold before predicting it. The scorer here requests ``batch`` and
``covariates`` through metadata routing and forwards them to the Pipeline's prediction method,
which routes them to ``ComBat.transform``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.metrics import get_scorer
from sklearn.utils.metadata_routing import MetadataRequest

_PREDICTION_METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


class _EstimatorWithMetadata:
    """An estimator whose prediction methods always receive the same routed metadata."""

    def __init__(self, estimator: Any, metadata: dict[str, Any]) -> None:
        self._estimator = estimator
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._estimator, name)
        if name in _PREDICTION_METHODS:

            def with_metadata(X: Any) -> Any:
                return attribute(X, **self._metadata)

            # scikit-learn dispatches on the method's name (probabilities vs decisions).
            with_metadata.__name__ = name
            return with_metadata
        return attribute

    def __sklearn_tags__(self) -> Any:
        return self._estimator.__sklearn_tags__()


class BatchScorer:
    """Wrap a scikit-learn scorer so that held-out folds are harmonised before prediction.

    Parameters
    ----------
    scoring : str or callable, default="balanced_accuracy"
        A scorer name (``sklearn.metrics.get_scorer_names()``) or a scorer
        ``scorer(estimator, X, y)``.

    Notes
    -----
    Requires ``sklearn.set_config(enable_metadata_routing=True)``. ``batch`` and ``covariates``
    passed as ``params=`` to ``cross_validate`` or ``GridSearchCV.fit`` reach the scorer sliced
    to the held-out fold; the scorer passes them to the estimator's prediction method.

    Examples
    --------
    >>> import sklearn
    >>> sklearn.set_config(enable_metadata_routing=True)
    >>> from sklearn.model_selection import cross_validate
    >>> # cross_validate(pipe, X, y, params={"batch": scanner},
    >>> #                scoring=BatchScorer("roc_auc"))
    """

    def __init__(self, scoring: str | Callable[..., float] = "balanced_accuracy") -> None:
        self.scoring = scoring

    def __call__(
        self, estimator: Any, X: Any, y_true: Any, *, batch: Any = None, covariates: Any = None
    ) -> float:
        """Score ``estimator`` on ``X`` with ``batch``/``covariates`` passed to its predictions.

        Parameters
        ----------
        estimator : fitted estimator (typically a Pipeline holding ComBat)
        X : array-like of shape (n_samples, n_features)
        y_true : array-like of shape (n_samples,)
        batch, covariates : optional
            Metadata of the rows of ``X``.

        Returns
        -------
        float
            The wrapped scorer's value.
        """
        metadata = {"batch": batch}
        if covariates is not None:
            metadata["covariates"] = covariates
        scorer = get_scorer(self.scoring) if isinstance(self.scoring, str) else self.scoring
        return float(scorer(_EstimatorWithMetadata(estimator, metadata), X, y_true))

    def get_metadata_routing(self) -> MetadataRequest:
        """Return the routing request: ``batch`` and ``covariates`` are requested for scoring.

        Returns
        -------
        sklearn.utils.metadata_routing.MetadataRequest
        """
        request = MetadataRequest(owner=self)
        for name in ("batch", "covariates"):
            request.score.add_request(param=name, alias=True)
        return request

    def __repr__(self) -> str:
        return f"BatchScorer({self.scoring!r})"


def batch_scorer(scoring: str | Callable[..., float] = "balanced_accuracy") -> BatchScorer:
    """Return a scorer that forwards routed ``batch``/``covariates`` to the predictions.

    Parameters
    ----------
    scoring : str or callable, default="balanced_accuracy"
        Scorer name or scorer callable to wrap.

    Returns
    -------
    BatchScorer
        Use as ``scoring=`` in ``cross_validate``/``GridSearchCV`` (one scorer or in a dict).
    """
    return BatchScorer(scoring)
