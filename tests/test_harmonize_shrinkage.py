"""ShrinkageComBat (the default harmoniser): known-truth checks of its estimates and rules."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from radharmony.datasets import make_feature_table
from radharmony.errors import HarmonizationError
from radharmony.harmonize import ComBat, ShrinkageComBat, default_harmonizer
from radharmony.harmonize._deskew import (
    apply_normal_scores,
    fit_normal_scores,
    invert_normal_scores,
)
from radharmony.harmonize._judge import judge_auc

SITES = ("s1", "s2", "s3")
PREVALENCE = {"s1": 0.2, "s2": 0.5, "s3": 0.8}


def _confounded(
    seed: int, n: int = 900, p: int = 12, theta: float = 1.0, scale: dict | None = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Three sites whose outcome rates differ (0.2 / 0.5 / 0.8); the outcome shifts 4 features
    by ``theta`` SD; each site shifts every feature; ``scale`` multiplies a site's noise."""
    rng = np.random.default_rng(seed)
    site = rng.choice(np.asarray(SITES, dtype=object), n)
    y = (rng.random(n) < np.array([PREVALENCE[s] for s in site])).astype(int)
    effect = np.zeros(p)
    effect[:4] = theta
    shifts = {s: rng.normal(0.0, 1.0, p) for s in SITES}
    noise = rng.normal(size=(n, p))
    if scale:
        noise *= np.array([scale.get(s, 1.0) for s in site])[:, None]
    X = noise + y[:, None] * effect + np.array([shifts[s] for s in site])
    return pd.DataFrame(X, columns=[f"f{j:02d}" for j in range(p)]), site, y


def _class_means(X: pd.DataFrame, site: np.ndarray, y: np.ndarray, label: int) -> np.ndarray:
    """Mean of the 4 outcome features over each site's rows of one class."""
    return np.array([X[(site == s) & (y == label)].iloc[:, :4].to_numpy().mean() for s in SITES])


def test_outcome_in_design_keeps_the_confounded_signal() -> None:
    X, site, y = _confounded(0)
    train, test = train_test_split(np.arange(len(y)), test_size=0.5, random_state=0)
    with_labels = ShrinkageComBat().fit(X.iloc[train], y[train], batch=site[train])
    without = ShrinkageComBat(outcome=False).fit(X.iloc[train], y[train], batch=site[train])
    assert with_labels.outcome_used_ and not without.outcome_used_
    # The outcome coefficient is the simulated 1 SD on the outcome features, 0 elsewhere.
    coef = with_labels.outcome_coef_.loc["outcome[1]"]
    assert coef.iloc[:4].mean() == pytest.approx(1.0, abs=0.12)
    assert coef.iloc[4:].abs().mean() < 0.15
    # Held-out rows, adjusted without their labels: with the outcome in the design each
    # class lands at the same level in every site (the location is exact); without it, the
    # site correction removes each site's outcome mix (0.2 vs 0.8 -> 0.6 SD apart).
    for model, spread_ok in ((with_labels, lambda s: s < 0.3), (without, lambda s: s > 0.4)):
        out = model.transform(X.iloc[test], batch=site[test])
        for label in (0, 1):
            means = _class_means(out, site[test], y[test], label)
            assert spread_ok(np.ptp(means)), (model.outcome_used_, label, means)
    kept = with_labels.transform(X.iloc[test], batch=site[test])
    lost = without.transform(X.iloc[test], batch=site[test])
    difference = [
        (t[y[test] == 1].iloc[:, :4].mean() - t[y[test] == 0].iloc[:, :4].mean()).mean()
        for t in (kept, lost)
    ]
    # Pooled class difference: recovered (1 SD) with the labels, attenuated by about the share
    # of outcome variance explained by the site (0.06 / 0.25) without them.
    assert difference[0] == pytest.approx(1.0, abs=0.12)
    assert difference[1] < 0.88


def test_scale_is_applied_around_each_sites_outcome_mix() -> None:
    # Site s3's noise is twice as large: its scale correction shrinks everything around the
    # site's own outcome mix, so the class difference there becomes theta / sqrt(delta) (the
    # documented approximation) while the site's mean still lands on the pooled mean.
    X, site, y = _confounded(1, n=3000, p=8, scale={"s3": 2.0})
    model = ShrinkageComBat(skew_threshold=None).fit(X, y, batch=site)
    out = model.transform(X, batch=site)
    rows = site == "s3"
    gap = out[rows & (y == 1)].iloc[:, :4].mean() - out[rows & (y == 0)].iloc[:, :4].mean()
    applied = model.delta_star_.loc["s3"].iloc[:4].to_numpy()
    # Pooled noise variance (1 + 1 + 4) / 3 = 2, so s3's scale is about 4 / 2 = 2.
    np.testing.assert_allclose(applied, 2.0, rtol=0.15)
    assert gap.mean() == pytest.approx(np.mean(1.0 / np.sqrt(applied)), abs=0.1)
    # The site's mean sits where its outcome mix puts it: theta * (its rate - the pooled rate).
    centre = out[rows].iloc[:, :4].mean() - out.iloc[:, :4].mean()
    expected = y[rows].mean() - y.mean()
    np.testing.assert_allclose(centre.to_numpy(), expected, atol=0.08)


def test_labels_are_never_used_to_transform() -> None:
    assert "y" not in inspect.signature(ShrinkageComBat.transform).parameters
    X, site, y = _confounded(2, n=300)
    model = ShrinkageComBat().fit(X, y, batch=site)
    # Training rows are adjusted exactly like new rows (no label), so a model trained on them
    # sees the same distribution as at prediction time.
    np.testing.assert_array_equal(
        ShrinkageComBat().fit_transform(X, y, batch=site).to_numpy(),
        model.transform(X, batch=site).to_numpy(),
    )


def test_outcome_confounded_with_site_is_refused() -> None:
    X, site, _ = _confounded(3, n=120)
    with pytest.raises(HarmonizationError, match="outcome \\(y\\) is \\(nearly\\) determined"):
        ShrinkageComBat().fit(X, (site == "s1").astype(int), batch=site)
    with pytest.raises(HarmonizationError, match="outcome=True needs the training labels"):
        ShrinkageComBat(outcome=True).fit(X, batch=site)


def _estimates(noise: str) -> tuple:
    rng = np.random.default_rng(4)
    batch = np.repeat(np.array(["a", "b", "c"], dtype=object), [40, 80, 120])
    age = rng.normal(60, 10, batch.size) + 8.0 * (batch == "c")
    size = (batch.size, 800)
    X = pd.DataFrame(rng.normal(size=size) if noise == "normal" else rng.standard_t(5, size))
    model = ShrinkageComBat(skew_threshold=None, shrink=False).fit(
        X, batch=batch, covariates=pd.DataFrame({"age": age})
    )
    return model._fit, np.array([40, 80, 120])


def test_sampling_variances_match_the_spread_of_the_estimates() -> None:
    # 800 independent null features: across features, the spread of each batch's estimates is
    # their sampling variance. Batches of unequal size (the largest holds half the rows, so
    # half of the pooled variance is its own) and a covariate unevenly spread over them.
    fit, _ = _estimates("normal")
    np.testing.assert_allclose(fit.gamma_hat.var(axis=1) / fit.gamma_var.mean(axis=1), 1, atol=0.15)
    ratio = np.log(fit.delta_hat).var(axis=1) / fit.log_delta_var.mean(axis=1)
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)


def test_scale_variance_accounts_for_heavy_tails() -> None:
    # t(5) noise (kurtosis 9): the normal-theory variance of a log-variance, 2 / (n - 1), is
    # far too small; the kurtosis term brings the prediction close (the sample kurtosis of such
    # tails is biased low, which is why the default first maps heavy-tailed features to
    # normal scores, where the formula is the normal one).
    fit, counts = _estimates("t5")
    weights = counts / counts.sum()
    normal_theory = ((np.eye(3) - weights) ** 2) @ (2.0 / (counts - 1))
    spread = np.log(fit.delta_hat).var(axis=1)
    assert np.all(spread / normal_theory > 1.8)
    assert np.all(
        (spread / fit.log_delta_var.mean(axis=1) > 0.8)
        & (spread / fit.log_delta_var.mean(axis=1) < 1.5)
    )


def test_james_stein_factor_is_zero_without_effect_and_one_with_a_strong_one() -> None:
    factors = {}
    for shift in (0.0, 1.0):
        table = make_feature_table(
            300,
            n_features=40,
            n_informative=0,
            n_scanners=3,
            scanner_shift=shift,
            scanner_scale=0.0,
            seed=5,
        )
        X = table.filter(regex=r"^f\d+$")
        model = ShrinkageComBat(skew_threshold=None).fit(X, batch=table["scanner"])
        factors[shift] = model._fit.location_factor
        if shift:
            truth = pd.DataFrame(table.attrs["truth"]["scanner_shift"]).T[X.columns]
            truth = truth - truth.mean()
            applied = model.gamma_star_ * np.sqrt(model.var_pooled_)
            # The applied shifts are the simulated ones (relative to the scanners' mean).
            assert np.corrcoef(applied.to_numpy().ravel(), truth.to_numpy().ravel())[0, 1] > 0.95
    assert np.all(factors[0.0] < 0.2)
    assert np.all(factors[1.0] > 0.9)


def test_strong_scanner_effect_is_removed_from_held_out_rows() -> None:
    table = make_feature_table(240, n_features=30, n_scanners=3, scanner_shift=1.0, seed=6)
    X, batch = table.filter(regex=r"^f\d+$"), table["scanner"].to_numpy()
    first, second = train_test_split(
        np.arange(len(batch)), test_size=0.5, stratify=batch, random_state=0
    )
    raw = judge_auc(X.iloc[second], batch[second])
    model = default_harmonizer().fit(X.iloc[first], batch=batch[first])
    harmonised = judge_auc(model.transform(X.iloc[second], batch=batch[second]), batch[second])
    combat = ComBat().fit(X.iloc[first], batch=batch[first])
    reference = judge_auc(combat.transform(X.iloc[second], batch=batch[second]), batch[second])
    assert raw > 0.99
    assert harmonised < 0.8
    assert harmonised < reference + 0.03


def test_a_point_mass_is_left_unchanged() -> None:
    rng = np.random.default_rng(7)
    batch = np.repeat(np.array(["a", "b"], dtype=object), 100)
    X = pd.DataFrame(rng.normal(size=(200, 6)) + 0.8 * (batch == "b")[:, None])
    X.columns = [f"f{j}" for j in range(6)]
    X.loc[rng.random(200) < 0.5, "f0"] = 1.0  # half the rows share one value
    model = ShrinkageComBat().fit(X, batch=batch)
    assert model.tied_features_ == ["f0"]
    assert "f0" in model.unadjusted_features_
    out = model.transform(X, batch=batch)
    # Shifting the mass by a batch-specific amount would make the tied value name the batch.
    np.testing.assert_array_equal(out["f0"].to_numpy(), X["f0"].to_numpy())
    assert not np.allclose(out["f1"], X["f1"])


def test_normal_scores_are_tie_preserving_and_invertible() -> None:
    rng = np.random.default_rng(8)
    train = np.column_stack([rng.lognormal(5, 2, 300), rng.standard_t(2, 300)])
    train[:60, 1] = 0.0
    maps = fit_normal_scores(train)
    columns = np.ones(2, dtype=bool)
    scores = apply_normal_scores(train, columns, maps)
    # Training columns become normal scores (ties share one), whatever their tails.
    assert abs(pd.Series(scores[:, 0]).skew()) < 0.05
    assert np.unique(scores[:60, 1]).size == 1
    new = np.column_stack([rng.lognormal(5, 3, 200), rng.standard_t(2, 200)])
    mapped = apply_normal_scores(new, columns, maps)
    # Increasing (also beyond the training range, where it continues linearly) and invertible.
    for j in range(2):
        order = np.argsort(new[:, j])
        assert np.all(np.diff(mapped[order, j]) >= 0)
    np.testing.assert_allclose(invert_normal_scores(mapped, columns, maps), new, rtol=1e-9)


def test_skewed_features_keep_their_units() -> None:
    rng = np.random.default_rng(9)
    batch = np.repeat(np.array(["a", "b"], dtype=object), 150)
    X = pd.DataFrame({"volume": rng.lognormal(8, 1, 300), "mean_hu": rng.normal(40, 5, 300)})
    X.loc[batch == "b", "volume"] *= 1.5
    model = ShrinkageComBat().fit(X, batch=batch)
    assert model.skewed_features_ == ["volume"]
    out = model.transform(X, batch=batch)
    # Corrections act on normal scores and come back in mm3: the scanner's 1.5x is removed
    # (geometric means agree) and the values stay positive volumes.
    ratio = np.exp(
        np.log(out["volume"][batch == "b"]).mean() - np.log(out["volume"][batch == "a"]).mean()
    )
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert (out["volume"] > 0).all()
    assert out["mean_hu"].mean() == pytest.approx(X["mean_hu"].mean(), abs=0.5)


def test_correction_table_says_what_was_corrected() -> None:
    X, site, y = _confounded(10, n=300, p=5)
    model = ShrinkageComBat().fit(X, y, batch=site)
    table = model.correction_table()
    assert len(table) == 15
    row = table.set_index(["batch", "feature"]).loc[("s2", "f03")]
    assert row["location_applied"] == pytest.approx(model.gamma_star_.loc["s2", "f03"])
    assert row["shift_applied"] == pytest.approx(
        model.gamma_star_.loc["s2", "f03"] * np.sqrt(model.var_pooled_["f03"])
    )
    assert bool(row["outcome_in_design"])
    assert row["n_training_rows"] == int(np.sum(site == "s2"))
