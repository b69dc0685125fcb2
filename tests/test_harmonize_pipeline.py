"""ComBat inside scikit-learn: metadata routing, cross-validation, held-out behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radharmony.datasets import make_feature_table
from radharmony.harmonize import ComBat, batch_scorer, default_harmonizer


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_feature_table(450, n_features=30, n_informative=5, n_scanners=3, seed=3)


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _sklearn_version() -> tuple[int, int]:
    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int(minor)


def _features(table: pd.DataFrame) -> pd.DataFrame:
    return table.filter(regex=r"^f\d+$")


def _folds(X: pd.DataFrame, target: np.ndarray, n_splits: int = 3):
    return StratifiedKFold(n_splits, shuffle=True, random_state=0).split(X, target)


def test_routing_requests_are_declared() -> None:
    for estimator in (ComBat(), default_harmonizer()):
        routing = estimator.get_metadata_routing()
        assert routing.consumes("fit", ["batch", "covariates"]) == {"batch", "covariates"}
        assert routing.consumes("transform", ["batch", "covariates"]) == {"batch", "covariates"}


def test_cross_validate_pipeline_with_routed_batch(cohort: pd.DataFrame, routing) -> None:
    X, y, batch = _features(cohort), cohort["label"].to_numpy(), cohort["scanner"].to_numpy()
    pipe = make_pipeline(ComBat(), StandardScaler(), LogisticRegression())
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    result = cross_validate(
        pipe,
        X,
        y,
        cv=cv,
        params={"batch": batch, "covariates": cohort[["age", "sex"]]},
        scoring={"accuracy": batch_scorer("accuracy"), "auc": batch_scorer("roc_auc")},
        return_estimator=True,
        error_score="raise",
    )
    # Recompute each fold by hand: the same training-fold fit and held-out transform.
    for (train, test), fitted, accuracy, auc in zip(
        cv.split(X, y),
        result["estimator"],
        result["test_accuracy"],
        result["test_auc"],
        strict=True,
    ):
        combat = ComBat().fit(
            X.iloc[train], batch=batch[train], covariates=cohort.iloc[train][["age", "sex"]]
        )
        np.testing.assert_allclose(fitted[0].gamma_star_.to_numpy(), combat.gamma_star_.to_numpy())
        held_out = combat.transform(
            X.iloc[test], batch=batch[test], covariates=cohort.iloc[test][["age", "sex"]]
        )
        tail = make_pipeline(*[step for _, step in fitted.steps[1:]])
        assert accuracy == pytest.approx((tail.predict(held_out) == y[test]).mean())
        assert auc == pytest.approx(roc_auc_score(y[test], tail.predict_proba(held_out)[:, 1]))
    assert result["test_auc"].mean() > 0.75

    # The estimator's own score also receives the routed batch (scikit-learn routes metadata to
    # a pipeline's score from 1.8 on; before, scoring=batch_scorer(...) above is the way).
    if _sklearn_version() >= (1, 8):
        plain = cross_validate(pipe, X, y, cv=cv, params={"batch": batch}, error_score="raise")
        assert np.all(plain["test_score"] > 0.6)


def test_grid_search_with_routed_batch(cohort: pd.DataFrame, routing) -> None:
    X, y, batch = _features(cohort), cohort["label"].to_numpy(), cohort["scanner"].to_numpy()
    pipe = make_pipeline(default_harmonizer(), StandardScaler(), LogisticRegression())
    search = GridSearchCV(
        pipe,
        {"logisticregression__C": [0.01, 1.0]},
        cv=3,
        scoring=batch_scorer("roc_auc"),
        error_score="raise",
    ).fit(X, y, batch=batch)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    fitted = search.best_estimator_[0]
    assert fitted.correction_table().shape[0] == 3 * X.shape[1]
    # The Pipeline passed the training labels to the harmoniser's fit: the outcome is kept.
    assert fitted.outcome_used_
    assert list(fitted.outcome_coef_.index) == ["outcome[1]"]


def _held_out_balanced_accuracy(X, target, batch, harmonizer) -> float:
    """Balanced accuracy on held-out folds, harmonising with a model fitted on training folds."""
    scores = []
    for train, test in _folds(X, target):
        X_train, X_test = X.iloc[train], X.iloc[test]
        if harmonizer is not None:
            fitted = sklearn.clone(harmonizer).fit(X_train, batch=batch[train])
            X_train = fitted.transform(X_train, batch=batch[train])
            X_test = fitted.transform(X_test, batch=batch[test])
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(X_train, target[train])
        scores.append(balanced_accuracy_score(target[test], clf.predict(X_test)))
    return float(np.mean(scores))


@pytest.mark.slow
def test_scanner_falls_to_chance_and_class_signal_is_kept(cohort: pd.DataFrame) -> None:
    X, y, batch = _features(cohort), cohort["label"].to_numpy(), cohort["scanner"].to_numpy()
    chance = 1 / 3
    raw = _held_out_balanced_accuracy(X, batch, batch, None)
    for harmonizer in (ComBat(), default_harmonizer()):
        scanner = _held_out_balanced_accuracy(X, batch, batch, harmonizer)
        assert raw > 0.95
        assert scanner < chance + 0.08
        label_raw = _held_out_balanced_accuracy(X, y, batch, None)
        label = _held_out_balanced_accuracy(X, y, batch, harmonizer)
        # The class signal survives (Bayes AUC of this cohort is about 0.87).
        assert label > 0.75
        assert label > label_raw - 0.04
