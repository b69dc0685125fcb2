"""Default model search versus the previous default on public radiomics tables (nested AUC).

Every table is evaluated with the same nested, patient-grouped procedure (5 outer folds, an
ensemble of 5 members each tuned and calibrated without one inner fold, CV+ sets); only the
inner search space differs:

- ``default``: ``model="auto"`` (penalised logistic regression, random forest and RBF SVM,
  each with its complexity parameter on a decade grid; see ``default_param_grid``);
- ``previous``: the previous default, L2 logistic regression with the 5 or 10 best univariate
  features and C in {0.1, 1}.

Tables are read from a folder given on the command line (radMLBench format: gzipped CSV with
feature columns, ``ID`` and ``Target``); nothing is downloaded and nothing is stored in the
project. The reference run used the two tables in ``../shared/data/radmlbench`` and the six
smallest complete tables of the public radMLBench collection (smallest files, to keep the run
short; chosen before any result was seen).

Run:  python benchmarks/bench_model_default.py --data DIR [--jobs 2]
Writes benchmarks/results/model_default.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from radharmony.model import evaluate

PREVIOUS = {
    "model": "logistic_l2",
    "param_grid": {"select__k": [5, 10], "clf__C": [0.1, 1.0]},
}
DEFAULT = {"model": "auto"}


def _table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    table = pd.read_csv(path)
    y = table["Target"].to_numpy()
    X = table.drop(columns=["ID", "Target"]).select_dtypes("number")
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of radMLBench .gz files")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "model_default"
    )
    args = parser.parse_args()
    rows = []
    for path in sorted(args.data.glob("*.gz")):
        X, y = _table(path)
        for name, options in (("previous", PREVIOUS), ("default", DEFAULT)):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = evaluate(
                    X,
                    y,
                    volume=None,
                    n_bootstrap=200,
                    random_state=args.seed,
                    n_jobs=args.jobs,
                    **options,
                )
            seconds = time.perf_counter() - started
            overall = result.coverage.iloc[0]
            chosen = result.search[result.search["chosen"]]["candidate"]
            rows.append(
                {
                    "table": path.name.removesuffix(".gz"),
                    "n": len(y),
                    "features": X.shape[1],
                    "search": name,
                    "nested_auc": float(result.metrics.loc["roc_auc", "estimate"]),
                    "auc_ci_low": float(result.metrics.loc["roc_auc", "ci_low"]),
                    "auc_ci_high": float(result.metrics.loc["roc_auc", "ci_high"]),
                    "coverage_90": float(overall["coverage"]),
                    "refer_rate": float(overall["refer_rate"]),
                    "seconds": round(seconds, 1),
                    "most_chosen": chosen.value_counts().index[0],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="table", columns="search", values="nested_auc")
    times = frame.pivot(index="table", columns="search", values="seconds")
    summary = {
        "mean_nested_auc_previous": float(wide["previous"].mean()),
        "mean_nested_auc_default": float(wide["default"].mean()),
        "tables_default_better": int((wide["default"] > wide["previous"]).sum()),
        "n_tables": len(wide),
        "mean_seconds_previous": float(times["previous"].mean()),
        "mean_seconds_default": float(times["default"].mean()),
        "mean_coverage_default": float(frame.query("search == 'default'")["coverage_90"].mean()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(
        json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n", encoding="utf-8"
    )
    lines = [
        "| table | n | features | previous AUC | default AUC | default coverage (90 %) | "
        "seconds previous / default | most chosen (default) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for table, part in frame.groupby("table", sort=True):
        prev = part[part["search"] == "previous"].iloc[0]
        new = part[part["search"] == "default"].iloc[0]
        lines.append(
            f"| {table} | {new['n']} | {new['features']} | {prev['nested_auc']:.3f} | "
            f"{new['nested_auc']:.3f} | {new['coverage_90']:.3f} | {prev['seconds']:.0f} / "
            f"{new['seconds']:.0f} | {new['most_chosen']} |"
        )
    lines.append(
        f"| **mean** | | | **{summary['mean_nested_auc_previous']:.3f}** | "
        f"**{summary['mean_nested_auc_default']:.3f}** | {summary['mean_coverage_default']:.3f} | "
        f"{summary['mean_seconds_previous']:.0f} / {summary['mean_seconds_default']:.0f} | |"
    )
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
