"""Benchmark radharmony's ComBat against plain neuroCombat, and the default's held-out effect.

Usage::

    python benchmarks/bench_combat.py speed [--sizes 1000 10000] [--features 1000] [--full]
    python benchmarks/bench_combat.py heldout [--seeds 8]

``speed`` reports fit and transform wall time and peak traced memory (tracemalloc, which counts
NumPy buffers) for ComBat (parametric and non-parametric) and for neuroCombat's own function.
neuroCombat's non-parametric loop is O(n^2 p) and is only run at the smallest size unless
``--full`` is given.

``heldout`` fits each harmoniser on one half of a cohort and measures, on the other half, the
cross-validated AUC of a rank-based logistic regression predicting the scanner (0.5 = the scanner
cannot be told). Cohorts: correlated heavy-tailed features with no / weak / moderate scanner
shift, and the simulated multi-scanner table of ``radharmony.datasets``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import tracemalloc
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd


def _measure(action: Callable[[], object]) -> tuple[float, float, object]:
    """Return (seconds, peak MiB, result) of ``action``."""
    tracemalloc.start()
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def _data(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = np.arange(n) % 4
    X = rng.normal(size=(n, p)) * (1 + 0.2 * batch[:, None]) + 0.5 * batch[:, None]
    return X, batch


def _neurocombat(X: np.ndarray, covars: pd.DataFrame, parametric: bool) -> np.ndarray:
    """Run neuroCombat's own function (silenced) on samples x features data."""
    from neuroCombat import neuroCombat

    with contextlib.redirect_stdout(io.StringIO()):
        return neuroCombat(X.T.copy(), covars, "batch", parametric=parametric)["data"].T


def run_speed(sizes: list[int], n_features: int, full: bool) -> pd.DataFrame:
    """Time and memory of fit / transform for each engine and size."""
    from radharmony.harmonize import ComBat

    rows = []
    for n in sizes:
        X, batch = _data(n, n_features)
        covars = pd.DataFrame({"batch": batch})
        for parametric in (True, False):
            kind = "parametric" if parametric else "non-parametric"
            model = ComBat(parametric=parametric)
            fit_s, fit_mb, _ = _measure(partial(model.fit, X, batch=batch))
            tr_s, tr_mb, ours = _measure(partial(model.transform, X, batch=batch))
            rows.append(("radharmony.ComBat", kind, n, fit_s, fit_mb, tr_s, tr_mb, np.nan))
            if not parametric and n > min(sizes) and not full:
                rows.append(("neuroCombat", kind, n, np.nan, np.nan, np.nan, np.nan, np.nan))
                continue

            nc_s, nc_mb, theirs = _measure(partial(_neurocombat, X, covars, parametric))
            diff = float(np.max(np.abs(theirs - ours)))
            rows.append(("neuroCombat", kind, n, nc_s, nc_mb, np.nan, np.nan, diff))
            print(f"done n={n} {kind}", flush=True)
    columns = [
        "engine",
        "mode",
        "n_samples",
        "fit_s",
        "fit_peak_mib",
        "transform_s",
        "transform_peak_mib",
        "max_abs_diff_vs_radharmony",
    ]
    return pd.DataFrame(rows, columns=columns)


def _scanner_auc(X: pd.DataFrame, batch: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    clf = make_pipeline(QuantileTransformer(n_quantiles=50), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(clf, X, batch, cv=cv, scoring="roc_auc_ovr").mean())


def _correlated(seed: int, shift: float, n: int = 190, p: int = 100) -> tuple:
    rng = np.random.default_rng(seed)
    batch = np.where(rng.random(n) < 0.5, "A", "B")
    X = rng.normal(size=(n, 8)) @ rng.normal(size=(8, p)) + 0.5 * rng.normal(size=(n, p))
    X += shift * rng.normal(size=p) * (batch == "B")[:, None] * X.std(0)
    X[:, ::2] = np.exp(0.3 * X[:, ::2] / X[:, ::2].std(0))
    return pd.DataFrame(X, columns=[f"f{j:03d}" for j in range(p)]), batch


def _simulated(seed: int, shift: float) -> tuple:
    from radharmony.datasets import make_feature_table

    table = make_feature_table(
        190, n_features=100, n_scanners=2, scanner_shift=shift, scanner_scale=shift / 3, seed=seed
    )
    X = table.filter(regex=r"^f\d+$").copy()
    X.iloc[:, ::2] = np.exp(0.7 * X.iloc[:, ::2])
    return X, table["scanner"].to_numpy()


def run_heldout(n_seeds: int) -> pd.DataFrame:
    """Held-out scanner AUC after raw / ComBat / default harmonisation, per cohort and seed."""
    from sklearn.model_selection import train_test_split

    from radharmony.harmonize import ComBat, default_harmonizer

    rows = []
    cohorts = [("correlated", _correlated, s) for s in (0.0, 0.05, 0.2)]
    cohorts += [("simulated", _simulated, s) for s in (0.1, 0.3, 1.0)]
    for name, make, shift in cohorts:
        for seed in range(n_seeds):
            X, batch = make(seed, shift)
            first, second = train_test_split(
                np.arange(len(batch)), test_size=0.5, stratify=batch, random_state=seed
            )
            row = {"cohort": name, "shift": shift, "seed": seed}
            row["raw"] = _scanner_auc(X.iloc[second], batch[second])
            for label, model in (("combat", ComBat()), ("default", default_harmonizer())):
                model.fit(X.iloc[first], batch=batch[first])
                harmonised = model.transform(X.iloc[second], batch=batch[second])
                row[label] = _scanner_auc(harmonised, batch[second])
                if label == "default":
                    row["n_selected"] = len(model.selected_features_)
            rows.append(row)
        print(f"done {name} shift={shift}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    speed.add_argument("--features", type=int, default=1000)
    speed.add_argument("--full", action="store_true")
    held = sub.add_parser("heldout")
    held.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    pd.set_option("display.width", 160)
    if args.what == "speed":
        table = run_speed(args.sizes, args.features, args.full)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    else:
        table = run_heldout(args.seeds)
        summary = table.groupby(["cohort", "shift"])[["raw", "combat", "default", "n_selected"]]
        print(summary.mean().round(3).to_string())
        worst = (table["default"] - table["raw"]).max()
        print(f"largest increase of held-out scanner AUC by the default over raw: {worst:+.3f}")


if __name__ == "__main__":
    main()
