"""Normative model: z-scores and centiles against a reference population, with known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from radharmony.errors import HarmonizationError
from radharmony.harmonize import NormativeModel
from radharmony.harmonize._nig import fit_site

SIZES = {"A": 240, "B": 200, "C": 160, "D": 120, "E": 160}
COVARIATES = ["age", "sex"]


def simulate(seed: int, *, patients: int = 0, shift: float = 2.0, p: int = 20) -> pd.DataFrame:
    """Reference rows (and patients) of 5 sites: a non-linear age effect (a U shape plus a
    sigmoid step at 60), a sex effect, correlated unit-variance noise, per-site offsets and
    scales; every third feature is exponentiated (skewed). Patients deviate by ``shift`` noise
    SDs on the first five features."""
    rng = np.random.default_rng(seed)
    u_shape, step, sex_effect = rng.normal(0, 1, p), rng.normal(0, 0.8, p), rng.normal(0, 0.5, p)
    loadings = rng.normal(size=(3, p)) * 0.6
    frames = []
    for site, size in SIZES.items():
        offset, scale = rng.normal(0, 0.7, p), np.exp(rng.normal(0, 0.25, p))
        for kind, n in (("reference", size), ("patient", patients)):
            age = rng.uniform(20, 85, n)
            sex = rng.choice(np.array(["F", "M"], dtype=object), n)
            curve = (
                u_shape * ((age[:, None] - 50) / 20) ** 2 / 2
                + step / (1 + np.exp(-(age[:, None] - 60) / 5))
                + sex_effect * (sex[:, None] == "M")
            )
            noise = rng.normal(size=(n, 3)) @ loadings + 0.8 * rng.normal(size=(n, p))
            noise /= np.sqrt(0.64 + (loadings**2).sum(axis=0))
            deviation = np.zeros((n, p))
            deviation[:, :5] = shift if kind == "patient" else 0.0
            x = curve + offset + scale * (noise + deviation)
            x[:, ::3] = np.exp(x[:, ::3] / 2)
            frame = pd.DataFrame(x, columns=[f"f{j:02d}" for j in range(p)])
            frames.append(frame.assign(site=site, age=age, sex=sex, kind=kind))
    return pd.concat(frames, ignore_index=True)


def _features(table: pd.DataFrame) -> pd.DataFrame:
    return table.filter(regex=r"^f\d+$")


def _split(table: pd.DataFrame, seed: int, n_adapt: int = 8) -> tuple:
    """Fit rows (half the reference rows of sites A-D), adaptation rows of the new site E and
    held-out reference rows of every site."""
    reference = table[table["kind"] == "reference"]
    fit_rows = reference[reference["site"] != "E"].sample(frac=0.5, random_state=seed)
    rest = reference.drop(fit_rows.index)
    adapt = rest[rest["site"] == "E"].sample(n_adapt, random_state=seed)
    return fit_rows, adapt, rest.drop(adapt.index)


def _fitted(fit_rows: pd.DataFrame, adapt: pd.DataFrame) -> NormativeModel:
    model = NormativeModel(spline_covariates=["age"])
    model.fit(_features(fit_rows), batch=fit_rows["site"], covariates=fit_rows[COVARIATES])
    return model.add_sites(_features(adapt), batch=adapt["site"], covariates=adapt[COVARIATES])


@pytest.fixture(scope="module")
def held_out_z() -> pd.DataFrame:
    """Z-scores of held-out reference rows over 12 simulated data sets."""
    rows = []
    for seed in range(12):
        table = simulate(seed)
        fit_rows, adapt, held = _split(table, seed)
        model = _fitted(fit_rows, adapt)
        z = model.zscores(_features(held), batch=held["site"], covariates=held[COVARIATES])
        rows.append(
            pd.DataFrame(
                {"site": np.repeat(held["site"].to_numpy(), z.shape[1]), "z": z.to_numpy().ravel()}
            )
        )
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("site", list(SIZES))
def test_zscores_are_standard_normal_on_held_out_reference_rows(held_out_z, site: str) -> None:
    # Every site, including E, which the model learnt from 8 reference rows only (add_sites).
    z = held_out_z.loc[held_out_z["site"] == site, "z"].to_numpy()
    assert abs(z.mean()) < 0.05
    assert z.std() == pytest.approx(1.0, abs=0.05)
    for level in (0.5, 0.9, 0.95):
        coverage = np.mean(np.abs(z) < stats.norm.isf((1 - level) / 2))
        assert coverage == pytest.approx(level, abs=0.02), (site, level)


def test_patients_deviate_by_the_simulated_amount() -> None:
    table = simulate(20, patients=80)
    fit_rows, adapt, _ = _split(table, 20)
    model = _fitted(fit_rows, adapt)
    patients = table[table["kind"] == "patient"]
    z = model.zscores(_features(patients), batch=patients["site"], covariates=patients[COVARIATES])
    assert z.iloc[:, :5].to_numpy().mean() == pytest.approx(2.0, abs=0.25)
    assert abs(z.iloc[:, 5:].to_numpy().mean()) < 0.15
    centiles = model.centiles(
        _features(patients), batch=patients["site"], covariates=patients[COVARIATES]
    )
    np.testing.assert_allclose(centiles.to_numpy(), 100 * stats.norm.cdf(z.to_numpy()))


def test_harmonised_reference_rows_lose_their_site_offsets() -> None:
    table = simulate(21)
    fit_rows, adapt, held = _split(table, 21)
    model = _fitted(fit_rows, adapt).set_params(output="harmonized")
    out = model.transform(_features(held), batch=held["site"], covariates=held[COVARIATES])
    # Non-skewed features: the spread of the site means falls from the simulated offsets
    # (SD 0.7 x the feature's scale) to sampling noise (site E's offset comes from 8 rows).
    plain = [c for c in out.columns if c not in model.skewed_features_]
    raw_spread = _features(held)[plain].groupby(held["site"].to_numpy()).mean().std().mean()
    spread = out[plain].groupby(held["site"].to_numpy()).mean().std().mean()
    assert raw_spread > 0.5
    assert spread < raw_spread / 3


def test_reference_mask_fits_on_reference_rows_only() -> None:
    table = simulate(22, patients=40)
    X, site, cov = _features(table), table["site"], table[COVARIATES]
    mask = (table["kind"] == "reference").to_numpy()
    masked = NormativeModel().fit(X, batch=site, covariates=cov, reference=mask)
    subset = NormativeModel().fit(X[mask], batch=site[mask], covariates=cov[mask])
    pd.testing.assert_frame_equal(
        masked.zscores(X, batch=site, covariates=cov), subset.zscores(X, batch=site, covariates=cov)
    )


def test_bad_sites_are_named() -> None:
    table = simulate(23)
    fit_rows, adapt, held = _split(table, 23)
    model = _fitted(fit_rows, adapt)
    with pytest.raises(HarmonizationError, match=r"site\(s\) \['Z'\] are not in the normative"):
        model.zscores(_features(held), batch=["Z"] * len(held), covariates=held[COVARIATES])
    with pytest.raises(HarmonizationError, match="already in the model"):
        model.add_sites(_features(adapt), batch=adapt["site"], covariates=adapt[COVARIATES])
    few = adapt.iloc[:2]
    with pytest.raises(HarmonizationError, match="fewer than 3"):
        model.add_sites(_features(few), batch=["F", "F"], covariates=few[COVARIATES])


def test_site_prior_and_predictive_recover_the_simulated_truth() -> None:
    # Per feature, a site's (location, variance) drawn from a known normal-inverse-gamma prior;
    # 6 rows per feature. Empirical Bayes recovers the prior and the predictive t covers new
    # rows at the nominal rate (it would not with a normal predictive from 6 rows).
    rng = np.random.default_rng(24)
    p, n, (mu0, kappa0, a0, b0) = 4000, 6, (0.3, 2.0, 4.0, 3.0)
    variance = stats.invgamma.rvs(a0, scale=b0, size=p, random_state=rng)
    location = rng.normal(mu0, np.sqrt(variance / kappa0))
    rows = location + np.sqrt(variance) * rng.normal(size=(n, p))
    posterior = fit_site(rows)
    assert posterior.prior[0] == pytest.approx(mu0, abs=0.1)
    assert posterior.prior[2] == pytest.approx(a0, rel=0.25)
    assert posterior.prior[3] / (posterior.prior[2] - 1) == pytest.approx(b0 / (a0 - 1), rel=0.1)
    new = location + np.sqrt(variance) * rng.normal(size=p)
    t = (new - posterior.location()) / posterior.predictive_scale()
    inside = np.abs(t) < stats.t.isf(0.05, posterior.df)
    assert inside.mean() == pytest.approx(0.9, abs=0.015)


def test_tables_match_the_data_dictionary(project_root: Path) -> None:
    table = simulate(25)
    fit_rows, adapt, held = _split(table, 25)
    model = _fitted(fit_rows, adapt)
    deviations = model.deviation_table(
        _features(held.iloc[:5]), batch=held["site"].iloc[:5], covariates=held[COVARIATES].iloc[:5]
    )
    assert len(deviations) == 5 * 20
    sites = model.site_table()
    assert sites.set_index("site").loc["E", "adapted"]
    assert sites.set_index("site").loc["E", "n_reference_rows"] == 8
    for name, frame in (("normative_deviations", deviations), ("normative_sites", sites)):
        described = pd.read_csv(project_root / "data_dictionary" / f"{name}.csv")["name"]
        assert list(frame.columns) == described.tolist()
