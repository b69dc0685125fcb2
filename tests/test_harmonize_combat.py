"""ComBat transformer: exact reference outputs, application to new samples, robustness."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radharmony.datasets import make_feature_table
from radharmony.errors import HarmonizationError
from radharmony.harmonize import ComBat

_REFERENCE_BATCH = np.array([1] * 5 + [2] * 5)
_REFERENCE_PHENO = pd.DataFrame({"pheno": [1, 0] * 5})
_REFERENCE_FILES = sorted(
    [
        f"testdata_combat_{kind}_{adj}{suffix}_r.csv"
        for kind in ("parametric", "nonparametric")
        for adj in ("adjusted", "unadjusted")
        for suffix in (
            "",
            "_batchref",
            "_meanonly",
            "_meanonly_batchref",
            "_noeb",
            "_noeb_batchref",
            "_noeb_meanonly",
            "_noeb_meanonly_batchref",
        )
    ]
    + ["testdata_combat_nonparametric_unadjusted_meanonl_batchref_r.csv"]
)


def _options_from_name(name: str) -> tuple[dict, pd.DataFrame | None]:
    """Return ComBat's options and covariates encoded in a reference file name."""
    options = {
        "parametric": "_parametric_" in name,
        "eb": "noeb" not in name,
        "mean_only": "meanonl" in name,
        "ref_batch": 1 if "batchref" in name else None,
    }
    covariates = _REFERENCE_PHENO if "_adjusted" in name else None
    return options, covariates


def _reference(shared_data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "combat_reference"
    data = pd.read_csv(folder / "testdata.csv").to_numpy(float).T
    expected = pd.read_csv(folder / "outputs" / name).to_numpy(float).T
    return data, expected


def test_reference_file_list_is_complete(shared_data: Path) -> None:
    on_disk = sorted(p.name for p in (shared_data / "combat_reference" / "outputs").glob("*.csv"))
    assert on_disk == _REFERENCE_FILES
    assert len(on_disk) == 33


@pytest.mark.parametrize("name", _REFERENCE_FILES)
def test_matches_reference_combat_output(shared_data: Path, name: str) -> None:
    data, expected = _reference(shared_data, name)
    options, covariates = _options_from_name(name)
    model = ComBat(**options, categorical=["pheno"] if covariates is not None else None)
    out = model.fit(data, batch=_REFERENCE_BATCH, covariates=covariates).transform(
        data, batch=_REFERENCE_BATCH, covariates=covariates
    )
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "name", [n for n in _REFERENCE_FILES if "nonparametric" in n and "noeb" not in n]
)
def test_neurocombat_nonparametric_loop_matches_reference(shared_data: Path, name: str) -> None:
    data, expected = _reference(shared_data, name)
    options, covariates = _options_from_name(name)
    model = ComBat(**options, fast_nonparametric=False)
    out = model.fit_transform(data, batch=_REFERENCE_BATCH, covariates=covariates)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


def test_reference_batch_rows_unchanged_and_targeted(shared_data: Path) -> None:
    data, _ = _reference(shared_data, "testdata_combat_parametric_unadjusted_batchref_r.csv")
    out = ComBat(ref_batch=1).fit_transform(data, batch=_REFERENCE_BATCH)
    np.testing.assert_array_equal(out[:5], data[:5])
    # The other batch is moved onto the reference batch's mean (up to shrinkage): its mean
    # difference to batch 1 shrinks by more than 90 % on average.
    before = np.abs(data[5:].mean(0) - data[:5].mean(0)).mean()
    after = np.abs(out[5:].mean(0) - out[:5].mean(0)).mean()
    assert after < 0.1 * before


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    table = make_feature_table(240, n_features=20, n_informative=4, n_scanners=3, seed=7)
    table["age"] = table["age"].round()  # integers: exact in neuroCombat's float32 cast
    return table


def _features(table: pd.DataFrame) -> pd.DataFrame:
    return table.filter(regex=r"^f\d+$")


def test_fit_transform_equals_neurocombat_on_training_data(cohort: pd.DataFrame) -> None:
    from neuroCombat import neuroCombat

    X = _features(cohort)
    covars = cohort[["scanner", "sex", "age"]].reset_index(drop=True)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = neuroCombat(
            X.to_numpy(float).T.copy(),
            covars,
            "scanner",
            categorical_cols=["sex"],
            continuous_cols=["age"],
        )["data"].T
    out = ComBat().fit_transform(X, batch=cohort["scanner"], covariates=cohort[["sex", "age"]])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(X.columns)
    assert out.index.equals(X.index)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=0, atol=1e-8)


def test_transform_of_new_samples_is_the_fitted_model_not_a_refit(cohort: pd.DataFrame) -> None:
    X, batch, cov = _features(cohort), cohort["scanner"].to_numpy(), cohort[["sex", "age"]]
    train, test = np.arange(160), np.arange(160, 240)
    model = ComBat().fit(X.iloc[train], batch=batch[train], covariates=cov.iloc[train])
    out = model.transform(X.iloc[test], batch=batch[test], covariates=cov.iloc[test])

    # What the fitted parameters imply for each held-out row, with its own covariates.
    design = np.column_stack([(cov["sex"].iloc[test] == "M").astype(float), cov["age"].iloc[test]])
    assert model.coef_.index.tolist() == ["sex[M]", "age"]
    effect = design @ model.coef_.to_numpy()
    sd = np.sqrt(model.var_pooled_.to_numpy())
    mean = model.grand_mean_.to_numpy()
    gamma = model.gamma_star_.loc[batch[test]].to_numpy()
    delta = model.delta_star_.loc[batch[test]].to_numpy()
    implied = ((X.iloc[test].to_numpy() - mean - effect) / sd - gamma) / np.sqrt(delta) * sd
    implied += mean + effect
    np.testing.assert_allclose(out.to_numpy(), implied, rtol=0, atol=1e-10)

    refit = ComBat().fit_transform(X.iloc[test], batch=batch[test], covariates=cov.iloc[test])
    assert np.max(np.abs(refit.to_numpy() - out.to_numpy())) > 0.05
    # A sample's own covariates matter: changing one age changes only that row, by the amount
    # the age coefficient implies after scaling: (1 - 1/sqrt(delta*)) * coef * change.
    older = cov.iloc[test].copy()
    older.iloc[0, older.columns.get_loc("age")] += 10
    shifted = model.transform(X.iloc[test], batch=batch[test], covariates=older)
    change = (shifted - out).to_numpy()
    expected_change = 10 * model.coef_.loc["age"].to_numpy() * (1 - 1 / np.sqrt(delta[0]))
    np.testing.assert_allclose(change[0], expected_change, atol=1e-10)
    np.testing.assert_array_equal(change[1:], 0.0)


def test_synthetic_scanner_shifts_are_recovered(cohort: pd.DataFrame) -> None:
    X, batch = _features(cohort), cohort["scanner"]
    model = ComBat(eb=False).fit(X, batch=batch)
    truth = pd.DataFrame(cohort.attrs["truth"]["scanner_shift"]).T
    # gamma_hat is the scanner shift relative to the weighted mean, in pooled-SD units: its
    # between-scanner differences track the simulated shifts.
    estimated = model.gamma_hat_ * np.sqrt(model.var_pooled_)
    est_diff = (estimated.loc["scanner_B"] - estimated.loc["scanner_A"]).to_numpy()
    true_diff = (truth.loc["scanner_B"] - truth.loc["scanner_A"]).to_numpy()
    assert np.corrcoef(est_diff, true_diff)[0, 1] > 0.9


def test_unseen_batch_lists_known_batches(cohort: pd.DataFrame) -> None:
    X, batch = _features(cohort), cohort["scanner"]
    model = ComBat().fit(X, batch=batch)
    with pytest.raises(HarmonizationError, match=r"scanner_Z.*known.*scanner_A"):
        model.transform(X.iloc[:3], batch=["scanner_A", "scanner_Z", "scanner_A"])


def test_single_sample_batch_is_rejected(cohort: pd.DataFrame) -> None:
    X = _features(cohort).iloc[:21]
    batch = ["a"] * 10 + ["b"] * 10 + ["c"]
    with pytest.raises(HarmonizationError, match=r"\['c'\] have fewer than 2 samples"):
        ComBat().fit(X, batch=batch)


def test_nan_input_is_rejected_with_column_name(cohort: pd.DataFrame) -> None:
    X = _features(cohort).copy()
    X.iloc[3, 2] = np.nan
    with pytest.raises(HarmonizationError, match="f02"):
        ComBat().fit(X, batch=cohort["scanner"])


def test_feature_constant_within_a_batch_is_kept_unchanged(cohort: pd.DataFrame) -> None:
    X, batch = _features(cohort).copy(), cohort["scanner"]
    X["f03"] = np.where(batch == "scanner_A", 5.0, X["f03"])
    X["f04"] = 1.0
    model = ComBat()
    out = model.fit_transform(X, batch=batch)
    assert model.unadjusted_features_ == ["f03", "f04"]
    np.testing.assert_array_equal(out[["f03", "f04"]].to_numpy(), X[["f03", "f04"]].to_numpy())
    assert np.isfinite(out.to_numpy()).all()
    # The other features equal ComBat on the varying features alone (the priors pool only them).
    rest = X.drop(columns=["f03", "f04"])
    np.testing.assert_allclose(
        out[rest.columns].to_numpy(), ComBat().fit_transform(rest, batch=batch).to_numpy()
    )


def test_covariate_collinear_with_batch_is_rejected(cohort: pd.DataFrame) -> None:
    X, batch = _features(cohort), cohort["scanner"]
    one_class_per_scanner = pd.DataFrame({"label": (batch == "scanner_A").astype(str)})
    with pytest.raises(HarmonizationError, match=r"\['label'\].*determined by the batch"):
        ComBat().fit(X, batch=batch, covariates=one_class_per_scanner)


def test_unseen_categorical_level_is_rejected(cohort: pd.DataFrame) -> None:
    X, batch, cov = _features(cohort), cohort["scanner"], cohort[["sex"]]
    model = ComBat().fit(X, batch=batch, covariates=cov)
    new = cov.iloc[:4].copy()
    new["sex"] = ["F", "M", "X", "F"]
    with pytest.raises(HarmonizationError, match=r"covariate 'sex'.*\['X'\]"):
        model.transform(X.iloc[:4], batch=batch.iloc[:4], covariates=new)
    with pytest.raises(HarmonizationError, match="pass the same columns"):
        model.transform(X.iloc[:4], batch=batch.iloc[:4])


def test_set_output_and_arrays(cohort: pd.DataFrame) -> None:
    X, batch = _features(cohort), cohort["scanner"].to_numpy()
    from_frame = ComBat().fit_transform(X, batch=batch)
    from_array = ComBat().set_output(transform="pandas").fit_transform(X.to_numpy(), batch=batch)
    assert list(from_array.columns) == [f"x{j}" for j in range(X.shape[1])]
    np.testing.assert_allclose(from_array.to_numpy(), from_frame.to_numpy())
    # Columns are matched by name, so a reordered frame gives the same values.
    model = ComBat().fit(X, batch=batch)
    reordered = model.transform(X[X.columns[::-1]], batch=batch)
    assert list(reordered.columns) == list(X.columns)
    np.testing.assert_allclose(reordered.to_numpy(), from_frame.to_numpy())


def test_spline_preserves_nonlinear_age_effect() -> None:
    rng = np.random.default_rng(0)
    n = 300
    batch = np.repeat(["a", "b"], n // 2)
    # Scanner b sees older patients: a linear age term misattributes the curvature to the
    # scanner, the spline basis does not.
    age = np.where(batch == "a", rng.uniform(20, 60, n), rng.uniform(40, 80, n))
    signal = ((age - 50) / 15) ** 2
    X = signal[:, None] + rng.normal(0, 0.3, (n, 5)) + np.where(batch == "b", 1.0, 0.0)[:, None]
    cov = pd.DataFrame({"age": age})
    bias = {}
    for splines in (None, ["age"]):
        out = ComBat(spline_covariates=splines).fit_transform(X, batch=batch, covariates=cov)
        # With the true age curve removed, no scanner difference should remain.
        residual = out - signal[:, None]
        gap = residual[batch == "b"].mean(0) - residual[batch == "a"].mean(0)
        bias[bool(splines)] = np.abs(gap).mean()
    assert bias[False] > 0.08
    assert bias[True] < 0.05
