"""``radharmony harmonize``: the default, outcome-aware and normative modes, and its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radharmony.cli import main
from radharmony.datasets import make_feature_table
from radharmony.harmonize import NormativeModel, ShrinkageComBat

FEATURES = [f"f{j:02d}" for j in range(8)]


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = make_feature_table(66, n_features=8, n_scanners=3, seed=14)
    # A binary feature with the same values in every scanner (18 zeros and 4 ones each): scipy's
    # Kruskal-Wallis gives H = -1e-14 and p = NaN, which used to crash the --report diagnostics.
    table["f_binary"] = 0.0
    for scanner in table["scanner"].unique():
        rows = np.flatnonzero(table["scanner"] == scanner)
        table.loc[rows[18:], "f_binary"] = 1.0
    path = tmp_path_factory.mktemp("cli") / "features.csv"
    table.to_csv(path, index=False)
    return path


def test_default_with_report_and_a_degenerate_feature(table_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "harmonised.csv"
    code = main(
        ["harmonize", str(table_path), "--batch", "scanner", "--covariates", "age,sex"]
        + ["--out", str(out), "--report", str(tmp_path / "report"), "--splits", "2"]
    )
    assert code == 0
    table = pd.read_csv(table_path)
    expected = ShrinkageComBat(outcome=False).fit_transform(
        table[[*FEATURES, "f_binary"]], batch=table["scanner"], covariates=table[["age", "sex"]]
    )
    written = pd.read_csv(out)
    np.testing.assert_allclose(written[FEATURES].to_numpy(), expected[FEATURES].to_numpy())
    tests = pd.read_csv(tmp_path / "report" / "harmonization_batch_tests.csv")
    assert tests.set_index("feature").loc["f_binary", "p_value_before"] == 1.0
    summary = pd.read_csv(tmp_path / "report" / "harmonization_heldout_summary.csv")
    assert (summary["n_splits"] == 2).all()
    assert (tmp_path / "report" / "harmonization_corrections.csv").is_file()


def test_outcome_is_kept_in_the_design(table_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "harmonised.csv"
    args = ["harmonize", str(table_path), "--batch", "scanner", "--out", str(out)]
    assert main([*args, "--covariates", "age,sex", "--outcome", "label"]) == 0
    table = pd.read_csv(table_path)
    columns, cov = [*FEATURES, "f_binary"], table[["age", "sex"]]
    model = ShrinkageComBat(outcome=True)
    model.fit(table[columns], table["label"], batch=table["scanner"], covariates=cov)
    expected = model.transform(table[columns], batch=table["scanner"], covariates=cov)
    np.testing.assert_allclose(pd.read_csv(out)[FEATURES].to_numpy(), expected[FEATURES].to_numpy())
    capsys.readouterr()
    assert main([*args, "--outcome", "label", "--method", "combat"]) == 2
    assert "--outcome needs --method default" in capsys.readouterr().err


def test_reference_rows_give_zscores(table_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "z.csv"
    table = pd.read_csv(table_path)
    table["control"] = np.where(table["label"] == 0, "yes", "no")
    source = tmp_path / "with_controls.csv"
    table.to_csv(source, index=False)
    code = main(
        ["harmonize", str(source), "--batch", "scanner", "--covariates", "age,sex"]
        + ["--reference", "control", "--spline", "age", "--out", str(out)]
    )
    assert code == 0
    model = NormativeModel(spline_covariates=["age"]).fit(
        table[[*FEATURES, "f_binary"]],
        batch=table["scanner"],
        covariates=table[["age", "sex"]],
        reference=(table["label"] == 0).to_numpy(),
    )
    z = model.zscores(
        table[[*FEATURES, "f_binary"]], batch=table["scanner"], covariates=table[["age", "sex"]]
    )
    np.testing.assert_allclose(pd.read_csv(out)[FEATURES].to_numpy(), z[FEATURES].to_numpy())
    deviations = pd.read_csv(tmp_path / "z.deviations.csv")
    assert len(deviations) == len(table) * 9
    assert set(deviations["feature"]) == {*FEATURES, "f_binary"}
    sites = pd.read_csv(tmp_path / "z.sites.csv")
    assert sites["n_reference_rows"].sum() == int((table["label"] == 0).sum())
