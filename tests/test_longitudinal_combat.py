"""Longitudinal ComBat: REML against closed forms, known-truth repeated measures, sklearn contract."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radharmony.datasets import make_longitudinal_feature_table
from radharmony.errors import HarmonizationError
from radharmony.harmonize import ComBat, LongitudinalComBat
from radharmony.harmonize._reml import fit_random_intercept


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_longitudinal_feature_table(80, n_visits=3, n_features=20, seed=1)


@pytest.fixture(scope="module")
def table(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return simulated[0]


@pytest.fixture(scope="module")
def truth(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return _features(simulated[1])


def _features(table: pd.DataFrame) -> pd.DataFrame:
    return table.filter(regex=r"^f\d+$")


def _within_subject_slopes(values: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    # Fixed-effects (within-subject) estimate of the change per year: independent of the REML.
    subjects = table["subject_id"].to_numpy()
    time = table["time_years"] - table.groupby("subject_id")["time_years"].transform("mean")
    centred = values - values.groupby(subjects).transform("mean")
    return centred.mul(time.to_numpy(), axis=0).sum() / float((time**2).sum())


def test_reml_equals_the_anova_estimators_of_a_balanced_nested_design() -> None:
    # Balanced one-way random effects nested in batches: REML = ANOVA (when positive).
    rng = np.random.default_rng(0)
    n_batch, per_batch, visits = 3, 6, 4
    subjects = np.repeat(np.arange(n_batch * per_batch), visits)
    batch = subjects // per_batch
    y = (
        rng.normal(0, 2.0, n_batch * per_batch)[subjects]
        + np.array([0.0, 1.0, -2.0])[batch]
        + rng.normal(0, 1.0, subjects.size)
    )
    design = np.eye(n_batch)[batch]
    fit = fit_random_intercept(design, y[:, None], subjects)
    frame = pd.DataFrame({"y": y, "s": subjects, "b": batch})
    subject_means = frame.groupby("s")["y"].transform("mean")
    batch_means = frame.groupby("b")["y"].transform("mean")
    n_subjects = n_batch * per_batch
    msw = float(((frame["y"] - subject_means) ** 2).sum()) / (subjects.size - n_subjects)
    msb = float(((subject_means - batch_means) ** 2).sum()) / (n_subjects - n_batch)
    # The optimum of a smooth criterion is located to about sqrt(machine epsilon).
    assert fit.sigma2[0] == pytest.approx(msw, rel=1e-6)
    assert fit.subject_variance[0] == pytest.approx((msb - msw) / visits, rel=1e-6)
    assert fit.beta[:, 0] == pytest.approx(frame.groupby("b")["y"].mean().to_numpy(), rel=1e-10)


def test_reml_boundary_when_subjects_do_not_differ() -> None:
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(30), 3)
    y = rng.normal(0, 1, (subjects.size, 1))
    y[:, 0] -= pd.Series(y[:, 0]).groupby(subjects).transform("mean").to_numpy() * 0.9
    fit = fit_random_intercept(np.ones((subjects.size, 1)), y, subjects)
    assert fit.lam[0] == 0.0
    assert fit.sigma2[0] == pytest.approx(float(np.var(y, ddof=1)), rel=1e-10)


def test_known_truth_repeated_measures(table: pd.DataFrame, truth: pd.DataFrame) -> None:
    X = _features(table)
    covariates = table[["time_years", "sex"]]
    longitudinal = LongitudinalComBat().fit_transform(
        X, batch=table["scanner"], subject=table["subject_id"], covariates=covariates
    )
    plain = ComBat().fit_transform(X, batch=table["scanner"], covariates=covariates)
    scanners = table["scanner"].to_numpy()

    subjects = table["subject_id"].to_numpy()
    free = truth - truth.groupby(subjects).transform("mean")

    def leftover(values: pd.DataFrame) -> tuple[float, float]:
        location = float((values - truth).groupby(scanners).mean().std().mean())
        # Multiplicative scanner effect: SD of within-subject deviations per scanner, relative
        # to the scanner-free values.
        own = values - values.groupby(subjects).transform("mean")
        scale = float(
            np.log(own.groupby(scanners).std() / free.groupby(scanners).std()).std().mean()
        )
        return location, scale

    raw_location, raw_scale = leftover(X)
    long_location, long_scale = leftover(longitudinal)
    plain_location, plain_scale = leftover(plain)
    # Measured: location 0.81 -> 0.16 (ComBat 0.17); within-subject scale spread 0.19 -> 0.095
    # (ComBat 0.18: its pooled variance mixes subject differences into the scanner scale).
    assert long_location < 0.25 * raw_location
    assert long_scale < 0.6 * raw_scale
    assert long_scale < 0.7 * plain_scale
    # Change over time is preserved: within-subject slopes equal those of the scanner-free data.
    free_slopes = _within_subject_slopes(truth, table)
    gap = float((_within_subject_slopes(longitudinal, table) - free_slopes).abs().mean())
    raw_gap = float((_within_subject_slopes(X, table) - free_slopes).abs().mean())
    assert gap < 0.025 < raw_gap
    # Subject variance: the simulation's subject SD is 1.5 (variance 2.25).
    fitted = LongitudinalComBat().fit(
        X, batch=table["scanner"], subject=table["subject_id"], covariates=covariates
    )
    assert fitted.subject_variance_.median() == pytest.approx(2.25, rel=0.3)


def test_transform_reproduces_training_output_and_applies_to_new_subjects(
    table: pd.DataFrame, truth: pd.DataFrame
) -> None:
    X = _features(table)
    covariates = table[["time_years"]]
    train = table["subject_id"] < "sub-0060"
    model = LongitudinalComBat().fit(
        X[train],
        batch=table.loc[train, "scanner"],
        subject=table.loc[train, "subject_id"],
        covariates=covariates[train],
    )
    again = model.transform(
        X[train],
        batch=table.loc[train, "scanner"],
        subject=table.loc[train, "subject_id"],
        covariates=covariates[train],
    )
    refit = LongitudinalComBat().fit_transform(
        X[train],
        batch=table.loc[train, "scanner"],
        subject=table.loc[train, "subject_id"],
        covariates=covariates[train],
    )
    np.testing.assert_allclose(again.to_numpy(), refit.to_numpy(), rtol=0, atol=1e-10)
    new = model.transform(
        X[~train],
        batch=table.loc[~train, "scanner"],
        subject=table.loc[~train, "subject_id"],
        covariates=covariates[~train],
    )
    held_out = truth[~train]
    scanners = table.loc[~train, "scanner"].to_numpy()
    before = float((X[~train] - held_out).groupby(scanners).mean().std().mean())
    after = float((new - held_out).groupby(scanners).mean().std().mean())
    assert after < 0.4 * before
    # Row order does not matter: a subject's intercept comes from its own rows.
    order = np.random.default_rng(0).permutation(int((~train).sum()))
    shuffled = model.transform(
        X[~train].iloc[order],
        batch=table.loc[~train, "scanner"].iloc[order],
        subject=table.loc[~train, "subject_id"].iloc[order],
        covariates=covariates[~train].iloc[order],
    )
    np.testing.assert_allclose(shuffled.loc[new.index].to_numpy(), new.to_numpy(), atol=1e-10)


def test_routing_pipeline_and_persistence(table: pd.DataFrame) -> None:
    X, batch, subject = _features(table), table["scanner"], table["subject_id"]
    routing = LongitudinalComBat().get_metadata_routing()
    assert routing.consumes("fit", ["batch", "subject", "covariates"]) == {
        "batch",
        "subject",
        "covariates",
    }
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(LongitudinalComBat(), StandardScaler())
        out = pipe.fit_transform(X, batch=batch, subject=subject)
        direct = StandardScaler().fit_transform(
            LongitudinalComBat().fit_transform(X, batch=batch, subject=subject)
        )
        np.testing.assert_allclose(out, direct, atol=1e-10)
    model = LongitudinalComBat().fit(X, batch=batch, subject=subject)
    restored = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(
        restored.transform(X, batch=batch, subject=subject),
        model.transform(X, batch=batch, subject=subject),
    )


def test_bad_inputs_are_named(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"]
    with pytest.raises(HarmonizationError, match="subject is required"):
        LongitudinalComBat().fit(X, batch=batch, subject=None)
    with pytest.raises(HarmonizationError, match="subject has 3 values"):
        LongitudinalComBat().fit(X, batch=batch, subject=["a", "b", "c"])
    model = LongitudinalComBat().fit(X, batch=batch, subject=table["subject_id"])
    unseen = batch.where(batch != "scanner_A", "scanner_Z")
    with pytest.raises(HarmonizationError, match="scanner_Z"):
        model.transform(X, batch=unseen, subject=table["subject_id"])
    with pytest.raises(HarmonizationError, match="only one batch"):
        LongitudinalComBat().fit(X, batch=["A"] * len(X), subject=table["subject_id"])
