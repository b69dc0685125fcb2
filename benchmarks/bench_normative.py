"""Calibration of the normative model's z-scores on the real multi-site tables.

Usage::

    python benchmarks/bench_normative.py [--splits 10] [--adapt-rows 10] [--data ../shared/data]

The tables hold no healthy controls, so every row is a reference row and the question is the
one a reference population asks: are the z-scores of *new* reference rows standard normal?

- **held-out sites fitted**: ``NormativeModel`` is fitted on the reference rows of one random
  half (stratified by site) and scores the other half
  (``radharmony.harmonize._diagnostics.normative_calibration``); the z-scores of all splits are
  pooled per site (mean, SD, share inside the central 50/90/95 % normal intervals).
- **new site adapted**: the model is fitted on every other site, the left-out site is adapted
  from ``--adapt-rows`` of its rows (``NormativeModel.add_sites``) and its remaining rows are
  scored; repeated ``--splits`` times with different adaptation rows.

Tables: ``nsclc`` (the three NSCLC cohorts, site = cohort, loaded and filtered as in
``bench_harmonization.py``) and ``ct_phantom`` (site = acquisition group, tissue class as a
categorical covariate, so the reference curve is per tissue). Writes
``normative_real.csv`` and ``normative_real.md`` to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_harmonization import load_nsclc, load_phantom
from scipy import stats

LEVELS = (0.5, 0.9, 0.95)


def _calibration_row(z: np.ndarray) -> dict[str, float]:
    z = z[np.isfinite(z)]
    row = {"n_values": int(z.size), "mean_z": float(z.mean()), "sd_z": float(z.std(ddof=1))}
    for level in LEVELS:
        row[f"coverage_{round(100 * level)}"] = float(
            (np.abs(z) < stats.norm.isf((1 - level) / 2)).mean()
        )
    return row


def held_out_calibration(
    X: pd.DataFrame, site: np.ndarray, cov: pd.DataFrame | None, n_splits: int
) -> pd.DataFrame:
    from radharmony.harmonize import NormativeModel
    from radharmony.harmonize._diagnostics import normative_calibration

    return normative_calibration(
        X,
        site,
        NormativeModel(),
        covariates=cov,
        reference=None,
        n_splits=n_splits,
        random_state=0,
    ).assign(check="held-out rows, site fitted")


def new_site_calibration(
    X: pd.DataFrame, site: np.ndarray, cov: pd.DataFrame | None, n_splits: int, n_adapt: int
) -> pd.DataFrame:
    from radharmony.harmonize import NormativeModel

    rows = []
    for left_out in sorted(pd.unique(site), key=str):
        inside, outside = np.flatnonzero(site != left_out), np.flatnonzero(site == left_out)
        kwargs = {} if cov is None else {"covariates": cov.iloc[inside]}
        base = NormativeModel().fit(X.iloc[inside], batch=site[inside], **kwargs)
        z_parts = []
        for k in range(n_splits):
            order = np.random.default_rng(k).permutation(outside)
            adapt, test = order[:n_adapt], order[n_adapt:]
            adapt_kw = {} if cov is None else {"covariates": cov.iloc[adapt]}
            test_kw = {} if cov is None else {"covariates": cov.iloc[test]}
            model = copy.deepcopy(base).add_sites(X.iloc[adapt], batch=site[adapt], **adapt_kw)
            z_parts.append(model.zscores(X.iloc[test], batch=site[test], **test_kw).to_numpy())
        row = {"site": str(left_out), **_calibration_row(np.concatenate(z_parts).ravel())}
        rows.append(row)
    return pd.DataFrame(rows).assign(check=f"new site adapted from {n_adapt} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--adapt-rows", type=int, default=10)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--tables", nargs="*", default=None, help="subset of table names")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    X, site, _ = load_nsclc(args.data)
    tables: dict[str, tuple] = {"nsclc": (X, site, None)}
    phantom, group, tissue = load_phantom(args.data)
    tables["ct_phantom"] = (phantom, group, pd.DataFrame({"tissue": tissue.astype(str)}))
    frames = []
    for name, (features, batch, cov) in tables.items():
        if args.tables and name not in args.tables:
            continue
        started = time.perf_counter()
        for table in (
            held_out_calibration(features, batch, cov, args.splits),
            new_site_calibration(features, batch, cov, args.splits, args.adapt_rows),
        ):
            frames.append(table.assign(table=name))
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    result = pd.concat(frames, ignore_index=True)
    columns = ["table", "check", "site", "n_values", "mean_z", "sd_z"]
    result = result[columns + [c for c in result.columns if c.startswith("coverage_")]]
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.tables else "_" + "_".join(args.tables)
    result.to_csv(args.out / f"normative_real{suffix}.csv", index=False)
    text = result.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    (args.out / f"normative_real{suffix}.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
