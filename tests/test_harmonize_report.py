"""harmonization_report, the data dictionary of its tables, and the harmonize command."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from radharmony.cli import main
from radharmony.datasets import make_feature_table
from radharmony.harmonize import (
    ComBat,
    NormativeModel,
    SelectiveComBat,
    default_harmonizer,
    harmonization_report,
)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return make_feature_table(240, n_features=12, n_informative=3, n_scanners=3, seed=11)


@pytest.fixture(scope="module")
def report(cohort: pd.DataFrame):
    X = cohort.filter(regex=r"^f\d+$")
    cov = cohort[["age", "sex"]]
    after = ComBat().fit_transform(X, batch=cohort["scanner"], covariates=cov)
    return harmonization_report(
        X, after, cohort["scanner"], cov, label=cohort["label"], cv=4, n_splits=4
    )


def _dictionary(project_root: Path, name: str) -> list[str]:
    return pd.read_csv(project_root / "data_dictionary" / f"{name}.csv")["name"].tolist()


def test_tables_match_the_data_dictionary(report, project_root: Path) -> None:
    for name in ("batch_tests", "scanner_prediction", "preserved_effects", "heldout"):
        table = getattr(report, name)
        stem = "heldout_splits" if name == "heldout" else name
        assert list(table.columns) == _dictionary(project_root, f"harmonization_{stem}")
    assert list(report.heldout_summary.columns) == _dictionary(
        project_root, "harmonization_heldout_summary"
    )
    model = SelectiveComBat().fit(np.random.default_rng(0).normal(size=(20, 3)), batch=[0, 1] * 10)
    assert list(model.batch_effect_table_.columns) == _dictionary(
        project_root, "harmonization_selection"
    )
    params = ComBat().fit(np.random.default_rng(0).normal(size=(20, 3)), batch=[0, 1] * 10)
    assert list(params.parameters_table().columns) == _dictionary(
        project_root, "harmonization_parameters"
    )


def test_batch_tests_are_kruskal_wallis_with_bh(report, cohort: pd.DataFrame) -> None:
    X = cohort.filter(regex=r"^f\d+$")
    groups = [X["f05"][cohort["scanner"] == s] for s in ("scanner_A", "scanner_B", "scanner_C")]
    h, p = stats.kruskal(*groups)
    row = report.batch_tests.set_index("feature").loc["f05"]
    assert row["kruskal_h_before"] == pytest.approx(h)
    assert row["p_value_before"] == pytest.approx(p)
    q = stats.false_discovery_control(report.batch_tests["p_value_before"], method="bh")
    np.testing.assert_allclose(report.batch_tests["q_value_before"], q)
    assert report.batch_tests["significant_before"].sum() >= 10
    assert report.batch_tests["significant_after"].sum() == 0


def test_scanner_prediction_is_held_out_and_near_chance(report) -> None:
    table = report.scanner_prediction.set_index("data")
    assert table["chance"].iloc[0] == pytest.approx(1 / 3)
    assert table.loc["before", "balanced_accuracy"] > 0.9
    held_out = table.loc["after (harmoniser fitted on training folds)"]
    assert bool(held_out["held_out_harmonisation"])
    assert held_out["balanced_accuracy"] < 1 / 3 + 0.12
    # In-sample ComBat over-corrects: the table harmonised on all rows scores below chance.
    assert table.loc["after (table as given)", "balanced_accuracy"] < 1 / 3


def test_preserved_effects(report, cohort: pd.DataFrame) -> None:
    effects = report.preserved_effects.set_index(["variable", "feature"])
    assert set(effects.index.get_level_values("variable")) == {"age", "sex", "label"}
    assert (effects.loc["age", "statistic"] == "spearman_rho").all()
    assert (effects.loc["label", "statistic"] == "cohens_d").all()
    X = cohort.filter(regex=r"^f\d+$")
    rho = stats.spearmanr(X["f04"], cohort["age"]).statistic
    assert effects.loc[("age", "f04"), "before"] == pytest.approx(rho)
    # The informative features keep a class effect of about the simulated 1 SD.
    for feature in cohort.attrs["truth"]["informative_features"]:
        assert effects.loc[("label", feature), "after"] > 0.6
    # The age features keep their (simulated, positive) age association.
    for feature in cohort.attrs["truth"]["age_features"]:
        assert effects.loc[("age", feature), "after"] > 0.2


def test_figures_and_save(report, tmp_path: Path) -> None:
    assert set(report.figures) == {"pca", "batch_tests", "scanner_prediction", "heldout"}
    assert len(report.figures["pca"].axes) == 2
    written = report.save(tmp_path)
    assert sorted(p.name for p in written if p.suffix == ".png") == [
        "harmonization_batch_tests.png",
        "harmonization_heldout.png",
        "harmonization_pca.png",
        "harmonization_scanner_prediction.png",
    ]
    assert {"harmonization_heldout_splits.csv", "harmonization_parameters.csv"} - {
        p.name for p in written
    } == {"harmonization_parameters.csv"}
    saved = pd.read_csv(tmp_path / "harmonization_batch_tests.csv")
    assert len(saved) == 12


def test_cli_harmonize_equals_the_python_api(tmp_path: Path, capsys) -> None:
    table = make_feature_table(90, n_features=8, n_scanners=3, seed=4)
    source = tmp_path / "features.csv"
    table.to_csv(source, index=False)
    out = tmp_path / "harmonised.csv"
    code = main(
        ["harmonize", str(source), "--batch", "scanner", "--covariates", "age,sex"]
        + ["--method", "combat", "--out", str(out)]
    )
    assert code == 0
    written = pd.read_csv(out)
    features = [f"f{j:02d}" for j in range(8)]
    expected = ComBat().fit_transform(
        table[features], batch=table["scanner"], covariates=table[["age", "sex"]]
    )
    np.testing.assert_allclose(written[features].to_numpy(), expected.to_numpy(), atol=1e-10)
    pd.testing.assert_series_equal(written["lesion_volume_mm3"], table["lesion_volume_mm3"])
    assert "harmonised 8 features of 90 rows across 3 batches" in capsys.readouterr().out
    assert main(["harmonize", str(source), "--batch", "site", "--out", str(out)]) == 2
    assert "['site'] are not in" in capsys.readouterr().err


def test_repeated_splits_judge_the_harmoniser_on_held_out_halves(report, cohort) -> None:
    summary = report.heldout_summary.set_index("harmonizer")
    assert summary.loc["raw", "n_splits"] == 4
    # Strong simulated scanner effects: recognisable raw, much less after ComBat on new rows.
    assert summary.loc["raw", "mean_auc"] > 0.95
    assert summary.loc["ComBat", "mean_auc"] < 0.75
    splits = report.heldout
    paired = splits[splits["harmonizer"] == "ComBat"]
    np.testing.assert_allclose(
        paired["excess_auc"], paired["scanner_auc"] - paired["raw_scanner_auc"]
    )
    assert "held-out scanner AUC over 4 half splits" in report.summary()


def test_default_mode_reports_its_corrections_and_keeps_the_label(cohort) -> None:
    X = cohort.filter(regex=r"^f\d+$")
    cov = cohort[["age", "sex"]]
    model = default_harmonizer()
    after = model.fit_transform(X, cohort["label"], batch=cohort["scanner"], covariates=cov)
    report = harmonization_report(
        X,
        after,
        cohort["scanner"],
        cov,
        label=cohort["label"],
        harmonizer=default_harmonizer(),
        n_splits=3,
        figures=False,
    )
    assert "training labels in the design" in report.mode
    corrections = report.corrections
    assert corrections["outcome_in_design"].all()
    assert len(corrections) == 3 * X.shape[1]
    pd.testing.assert_frame_equal(corrections, model.correction_table())


def test_normative_mode_reports_the_calibration_of_held_out_reference_rows() -> None:
    table = make_feature_table(300, n_features=8, n_informative=2, n_scanners=3, seed=12)
    X, cov = table.filter(regex=r"^f\d+$"), table[["age", "sex"]]
    reference = (table["label"] == 0).to_numpy()
    model = NormativeModel(output="harmonized")
    after = model.fit(X, batch=table["scanner"], covariates=cov, reference=reference).transform(
        X, batch=table["scanner"], covariates=cov
    )
    report = harmonization_report(
        X,
        after,
        table["scanner"],
        cov,
        harmonizer=NormativeModel(),
        reference=reference,
        n_splits=3,
        figures=False,
    )
    assert report.mode.startswith("NormativeModel")
    calibration = report.calibration.set_index("site")
    assert list(calibration.index) == ["scanner_A", "scanner_B", "scanner_C"]
    # Simulated Gaussian features: held-out reference rows get standard z-scores.
    np.testing.assert_allclose(calibration["sd_z"], 1.0, atol=0.1)
    np.testing.assert_allclose(calibration["coverage_90"], 0.9, atol=0.04)
    assert list(report.corrections.columns)[:3] == ["site", "n_reference_rows", "adapted"]


def test_degenerate_batch_tests_do_not_break_the_report() -> None:
    # A binary feature with the same values in every scanner: scipy's Kruskal-Wallis gives
    # H = -1e-14 and p = NaN for it (p = 1 before scipy 1.12), which the false-discovery
    # correction used to reject.
    rng = np.random.default_rng(13)
    binary = np.array([0.0] * 18 + [1.0] * 4)
    X = pd.DataFrame(
        {"binary": np.tile(binary, 3), "f1": rng.normal(size=66), "f2": rng.normal(size=66)}
    )
    batch = np.repeat(["a", "b", "c"], 22)
    degenerate = stats.kruskal(binary, binary, binary)
    assert degenerate.statistic <= 0.0 and not degenerate.pvalue < 1.0
    report = harmonization_report(X, X, batch, n_splits=0, figures=False)
    row = report.batch_tests.set_index("feature").loc["binary"]
    assert row["kruskal_h_after"] == 0.0 and row["p_value_after"] == 1.0
    assert not row["significant_after"]
    assert report.batch_tests["q_value_before"].notna().all()


def test_constant_feature_has_no_correlation_and_no_warning() -> None:
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["f1", "f2", "f3"]).assign(constant=1.0)
    batch = np.repeat(["a", "b", "c"], 20)
    age = pd.DataFrame({"age": rng.uniform(40, 80, 60)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", stats.ConstantInputWarning)
        report = harmonization_report(X, X, batch, covariates=age, n_splits=0, figures=False)
    effects = report.preserved_effects.set_index(["variable", "feature"])
    assert effects.loc[("age", "constant"), "statistic"] == "spearman_rho"
    assert np.isnan(effects.loc[("age", "constant"), "before"])
    assert np.isfinite(effects.loc[("age", "f1"), "before"])
