"""Longitudinal ComBat on simulated repeated measures with known truth, and two cross-checks.

Usage::

    python benchmarks/bench_longitudinal_combat.py [--subjects 200] [--visits 3] [--features 100]

1. **Known truth** (``make_longitudinal_feature_table``: subject random intercepts, scanners
   changing between visits, additive and multiplicative scanner effects on the residuals):
   scanner location left in the harmonised values (spread across scanners of the mean error),
   scanner scale left (spread across scanners of the log ratio of within-subject deviation SDs,
   harmonised over scanner-free), and the error of the within-subject change per year, for raw data, ComBat (repeated scans treated as independent
   samples) and LongitudinalComBat.
2. **Mixed-model step** against statsmodels' ``MixedLM`` (REML), when statsmodels is installed.
3. **Whole method** against ``longcombat-py`` (an independent Python port of the published R
   package, which relies on statsmodels), when installed. No output of the original R package
   was available (R is not installed here), so this is the only end-to-end comparison.

Wall time of the fit is reported against ComBat's in the same run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def _slopes(values: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    time_ = table["time_years"] - table.groupby("subject_id")["time_years"].transform("mean")
    centred = values - values.groupby(table["subject_id"].to_numpy()).transform("mean")
    return centred.mul(time_.to_numpy(), axis=0).sum() / float((time_**2).sum())


def _scale_left(values: pd.DataFrame, truth: pd.DataFrame, table: pd.DataFrame) -> float:
    """Spread across scanners of log(SD of within-subject deviations / the same for the truth)."""
    subjects = table["subject_id"].to_numpy()
    scanners = table["scanner"].to_numpy()
    own = values - values.groupby(subjects).transform("mean")
    free = truth - truth.groupby(subjects).transform("mean")
    ratio = own.groupby(scanners).std() / free.groupby(scanners).std()
    return float(np.log(ratio).std().mean())


def known_truth(args: argparse.Namespace) -> pd.DataFrame:
    from radharmony.datasets import make_longitudinal_feature_table
    from radharmony.harmonize import ComBat, LongitudinalComBat

    rows = []
    for seed in range(args.seeds):
        table, free = make_longitudinal_feature_table(
            args.subjects, n_visits=args.visits, n_features=args.features, seed=seed
        )
        X = table.filter(regex=r"^f\d+$")
        truth = free.filter(regex=r"^f\d+$")
        covariates = table[["time_years", "sex"]]
        start = time.perf_counter()
        plain = ComBat().fit_transform(X, batch=table["scanner"], covariates=covariates)
        combat_seconds = time.perf_counter() - start
        start = time.perf_counter()
        longitudinal = LongitudinalComBat().fit_transform(
            X, batch=table["scanner"], subject=table["subject_id"], covariates=covariates
        )
        long_seconds = time.perf_counter() - start
        scanners = table["scanner"].to_numpy()
        for name, values, seconds in (
            ("raw", X, np.nan),
            ("ComBat", plain, combat_seconds),
            ("LongitudinalComBat", longitudinal, long_seconds),
        ):
            error = values - truth
            rows.append(
                {
                    "method": name,
                    "scanner_location_left": float(error.groupby(scanners).mean().std().mean()),
                    "scanner_log_scale_left": _scale_left(values, truth, table),
                    "slope_error": float(
                        (_slopes(values, table) - _slopes(truth, table)).abs().mean()
                    ),
                    "fit_seconds": seconds,
                }
            )
    return pd.DataFrame(rows).groupby("method", sort=False).mean()


def against_statsmodels(args: argparse.Namespace) -> pd.DataFrame | None:
    try:
        import statsmodels.formula.api as smf
    except ImportError:
        return None
    from radharmony.datasets import make_longitudinal_feature_table
    from radharmony.harmonize._reml import fit_random_intercept

    table, _ = make_longitudinal_feature_table(60, n_visits=3, n_features=5, seed=3)
    levels = sorted(table["scanner"].unique())
    design = np.column_stack(
        [(table["scanner"] == s).to_numpy(float) for s in levels] + [table["time_years"]]
    )
    features = [f"f{j:02d}" for j in range(5)]
    codes = pd.factorize(table["subject_id"])[0]
    ours = fit_random_intercept(design, table[features].to_numpy(float), codes)
    rows = []
    for j, name in enumerate(features):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(
                f"{name} ~ 0 + C(scanner) + time_years", table, groups=table["subject_id"]
            ).fit(reml=True)
        rows.append(
            {
                "feature": name,
                "beta_max_abs_diff": float(
                    np.max(np.abs(fit.fe_params.to_numpy() - ours.beta[:, j]))
                ),
                "sigma2_rel_diff": float(abs(fit.scale - ours.sigma2[j]) / fit.scale),
                "subject_var_abs_diff": float(
                    abs(float(fit.cov_re.iloc[0, 0]) - ours.subject_variance[j])
                ),
            }
        )
    return pd.DataFrame(rows)


def against_port(args: argparse.Namespace) -> str:
    try:
        from longcombat import long_combat
    except ImportError:
        return "longcombat-py not installed: end-to-end comparison skipped"
    from radharmony.datasets import make_longitudinal_feature_table
    from radharmony.harmonize import LongitudinalComBat

    table, _ = make_longitudinal_feature_table(40, n_visits=3, n_features=8, seed=2)
    features = [c for c in table.columns if c.startswith("f")]
    table["male"] = (table["sex"] == "M").astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = long_combat(
            table,
            batch_col="scanner",
            id_col="subject_id",
            time_col="time_years",
            features=features,
            formula="time_years + male",
            ranef="(1|subject_id)",
            verbose=False,
        ).data_combat
    ours = LongitudinalComBat().fit_transform(
        table[features],
        batch=table["scanner"],
        subject=table["subject_id"],
        covariates=table[["time_years", "male"]],
    )
    theirs = theirs[[f"{f}.combat" for f in features]].to_numpy()
    gap = float(np.max(np.abs(theirs - ours.to_numpy())))
    spread = float(np.max(np.abs(ours.to_numpy())))
    return f"longcombat-py vs LongitudinalComBat: max |difference| {gap:.2e} (values up to {spread:.1f})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    print(known_truth(args).round(4).to_string())
    check = against_statsmodels(args)
    print("statsmodels not installed" if check is None else check.to_string(index=False))
    print(against_port(args))
