"""default_harmonizer: selective ComBat must not make held-out data more separable by scanner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer

from radharmony.datasets import make_feature_table
from radharmony.harmonize import ComBat, SelectiveComBat, default_harmonizer


def _correlated_cohort(seed: int, shift: float, n: int = 190, p: int = 100) -> tuple:
    """Two scanners, correlated heavy-tailed features (8 latent factors), weak scanner shift."""
    rng = np.random.default_rng(seed)
    batch = np.where(rng.random(n) < 0.5, "A", "B")
    X = rng.normal(size=(n, 8)) @ rng.normal(size=(8, p)) + 0.5 * rng.normal(size=(n, p))
    X += shift * rng.normal(size=p) * (batch == "B")[:, None] * X.std(0)
    X[:, ::2] = np.exp(0.3 * X[:, ::2] / X[:, ::2].std(0))
    return pd.DataFrame(X, columns=[f"f{j:03d}" for j in range(p)]), batch


def _scanner_auc(X: pd.DataFrame, batch: np.ndarray) -> float:
    """Cross-validated AUC of a rank-based logistic regression predicting the scanner."""
    clf = make_pipeline(QuantileTransformer(n_quantiles=50), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(clf, X, batch, cv=cv, scoring="roc_auc").mean())


@pytest.mark.slow
def test_default_does_no_harm_where_combat_does() -> None:
    raw, combat, default = [], [], []
    for seed in range(4):
        X, batch = _correlated_cohort(seed, shift=0.0)
        first, second = train_test_split(
            np.arange(len(batch)), test_size=0.5, stratify=batch, random_state=seed
        )
        raw.append(_scanner_auc(X.iloc[second], batch[second]))
        for model, scores in ((ComBat(), combat), (default_harmonizer(), default)):
            model.fit(X.iloc[first], batch=batch[first])
            harmonised = model.transform(X.iloc[second], batch=batch[second])
            scores.append(_scanner_auc(harmonised, batch[second]))
    # Without a scanner effect, all-feature ComBat adds its estimation error to every feature
    # and the held-out half becomes separable by scanner; the default leaves it as it was.
    assert np.mean(combat) > np.mean(raw) + 0.04
    assert np.mean(default) < np.mean(raw) + 0.01
    assert max(np.subtract(default, raw)) < 0.02


def test_selection_follows_the_simulated_scanner_effect() -> None:
    table = make_feature_table(
        300,
        n_features=30,
        n_informative=0,
        n_scanners=2,
        scanner_shift=0.0,
        scanner_scale=0.0,
        seed=2,
    )
    X = table.filter(regex=r"^f\d+$").copy()
    X[["f10", "f11", "f12"]] += np.where(table["scanner"] == "scanner_B", 1.5, 0.0)[:, None]
    model = SelectiveComBat(skew_threshold=None).fit(X, batch=table["scanner"])
    assert isinstance(model, SelectiveComBat)
    selected = set(model.selected_features_)
    # The three shifted features are found; at FDR 5 % one false discovery among 27 null
    # features is within expectation (here f24, p = 0.005).
    assert {"f10", "f11", "f12"} <= selected
    assert len(selected) <= 4
    out = model.transform(X, batch=table["scanner"])
    unselected = X.columns.difference(sorted(selected))
    np.testing.assert_array_equal(out[unselected].to_numpy(), X[unselected].to_numpy())
    full = ComBat().fit_transform(X, batch=table["scanner"])
    np.testing.assert_allclose(out[["f10", "f11", "f12"]], full[["f10", "f11", "f12"]])
    table_ = model.batch_effect_table_
    assert list(table_.columns) == [
        "feature",
        "skewness",
        "skewed",
        "kruskal_h",
        "p_value",
        "q_value",
        "selected",
    ]
    assert (table_.loc[table_["selected"], "q_value"] < 0.05).all()


def test_skewed_features_are_deskewed_with_training_transform() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.lognormal(8, 1, 200), "b": rng.normal(size=200)})
    batch = np.repeat(["s1", "s2"], 100)
    model = SelectiveComBat(alpha=0.0).fit(X.iloc[:150], batch=batch[:150])
    assert model.skewed_features_ == ["a"]
    out = model.transform(X.iloc[150:], batch=batch[150:])
    # Same transform as fitted on the training rows (robust scaling then Yeo-Johnson).
    scaled = (X["a"].iloc[150:].to_numpy() - model._center[0]) / model._scale[0]
    expected = model.power_.transform(scaled[:, None])[:, 0]
    np.testing.assert_allclose(out["a"].to_numpy(), expected)
    np.testing.assert_array_equal(out["b"].to_numpy(), X["b"].iloc[150:].to_numpy())
    assert abs(pd.Series(model.transform(X, batch=batch)["a"]).skew()) < 0.3
