"""Simulations behind the conformal, domain and calibration claims (full numbers).

1. Coverage: several seeds, two or three lesions per patient, imbalanced classes (about one
   patient in five of class 1), ComBat inside the folds. Patient-level coverage (every lesion of
   the patient covered) of the outer-fold CV+ sets, per class; and the deployed model's coverage
   on 3000 fresh patients of the same simulation, against the outer-fold estimate.
2. New site: three sites without scanner effect and a fourth whose features are shifted by
   ``shift`` standard deviations; leave-one-site-out. Per held-out site: coverage, domain flag.
3. Calibration without leakage: 120 patients x 400 features (3 informative); calibration slope
   on 3000 fresh cases of the whole-pipeline calibration versus calibrating only the classifier
   (median and geometric mean over seeds: the slope of one fit is skewed).

Run:  python benchmarks/bench_model_coverage.py [--seeds 10]
Writes benchmarks/results/model_coverage.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV

from radharmony.datasets import make_feature_table
from radharmony.harmonize import ComBat
from radharmony.model import build_pipeline, evaluate
from radharmony.model._metrics import classification_metrics

LEVEL = 0.9


def _features(table: pd.DataFrame) -> pd.DataFrame:
    out = table[[c for c in table.columns if c.startswith("f")]].copy()
    out.attrs = {}
    return out


def _lesions(table: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    X = _features(table)
    copies = rng.integers(2, 4, len(table))
    rows = np.repeat(np.arange(len(table)), copies)
    noisy = X.iloc[rows].reset_index(drop=True) + rng.normal(0, 0.3, (rows.size, X.shape[1]))
    return noisy, rows


def coverage(seeds: int) -> list[dict]:
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        # One simulated population: the first 400 patients train, 3000 more are fresh patients
        # of the same scanners, imbalance and lesion process (exchangeable with the training).
        whole = make_feature_table(3400, n_features=12, seed=seed)
        y = whole["label"].to_numpy()
        whole = whole[(y == 0) | (rng.random(len(y)) < 0.35)].reset_index(drop=True)
        n_train = round(len(whole) * 400 / 3400)
        table, fresh = whole.iloc[:n_train], whole.iloc[n_train:].reset_index(drop=True)
        lesions, rows = _lesions(table, rng)
        result = evaluate(
            lesions,
            table["label"].to_numpy()[rows],
            groups=table["subject_id"].to_numpy()[rows],
            batch=table["scanner"].to_numpy()[rows],
            harmonize=ComBat(),
            model="logistic_l2",
            conformal_level=LEVEL,
            n_bootstrap=100,
            volume=None,
            random_state=seed,
        )
        oof = result.predictions
        patient = oof.groupby("group").agg(covered=("covered", "all"), y=("y_true", "first"))
        fresh_lesions, fresh_rows = _lesions(fresh, rng)
        fresh_sets = result.model.conformal_sets(
            fresh_lesions, batch=fresh["scanner"].to_numpy()[fresh_rows]
        )
        fresh_truth = np.searchsorted(result.model.classes_, fresh["label"].to_numpy()[fresh_rows])
        fresh_covered = (
            pd.Series(fresh_sets[np.arange(len(fresh_truth)), fresh_truth])
            .groupby(fresh_rows)
            .all()
        )
        out.append(
            {
                "seed": seed,
                "patients": len(patient),
                "lesions": len(oof),
                "class1_share": float((patient["y"] == 1).mean()),
                "mondrian": result.mondrian,
                "patient_coverage": float(patient["covered"].mean()),
                "class0_coverage": float(patient.loc[patient["y"] == 0, "covered"].mean()),
                "class1_coverage": float(patient.loc[patient["y"] == 1, "covered"].mean()),
                "lesion_coverage": float(oof["covered"].mean()),
                "mean_set_size": float(oof["set_size"].mean()),
                "deployed_fresh_patients": len(fresh_covered),
                "deployed_fresh_coverage": float(fresh_covered.mean()),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def new_site(shifts: tuple[float, ...]) -> list[dict]:
    out = []
    for shift in shifts:
        table = make_feature_table(
            320, n_features=12, n_scanners=4, scanner_shift=0.0, scanner_scale=0.0, seed=7
        )
        X = _features(table)
        sites = table["scanner"].to_numpy()
        X.loc[sites == "scanner_D"] += shift
        result = evaluate(
            X,
            table["label"],
            sites=sites,
            cv="leave-one-site-out",
            model="logistic_l2",
            n_bootstrap=100,
            volume=None,
        )
        for site, row in result.per_site.iterrows():
            out.append(
                {
                    "shift_of_site_D_sd": shift,
                    "held_out_site": site,
                    "coverage": float(row["coverage"]),
                    "roc_auc": float(row["roc_auc"]),
                    "domain_share_p_below_0.05": float(row["domain_share_p_below_0.05"]),
                    "domain_shift": bool(row["domain_shift"]),
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


def calibration(seeds: int) -> list[dict]:
    def sparse(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, 400))
        y = (X[:, :3].sum(axis=1) * 0.6 + rng.normal(size=n) > 0).astype(int)
        return pd.DataFrame(X, columns=[f"f{j:03d}" for j in range(400)]), y

    fresh_X, fresh_y = sparse(3000, 999)
    out = []
    for seed in range(seeds):
        X, y = sparse(120, seed)
        ours = build_pipeline("logistic_l2", calibration="sigmoid").fit(X, y)
        old = build_pipeline("logistic_l2", calibration=None)
        old.steps[-1] = (
            "clf",
            CalibratedClassifierCV(old.steps[-1][1], method="sigmoid", cv=3, ensemble=False),
        )
        old.fit(X, y)
        row = {"seed": seed}
        for name, model in (("whole_pipeline", ours), ("classifier_only", old)):
            metrics = classification_metrics(fresh_y, model.predict_proba(fresh_X), [0, 1])
            row[f"{name}_slope"] = metrics["calibration_slope"]
            row[f"{name}_auc"] = metrics["roc_auc"]
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "model_coverage"
    )
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {
            "coverage": coverage(args.seeds),
            "new_site": new_site((0.0, 1.0, 3.0)),
            "calibration": calibration(args.seeds),
        }
    cov = pd.DataFrame(results["coverage"])
    cal = pd.DataFrame(results["calibration"])
    site = pd.DataFrame(results["new_site"])
    results["summary"] = {
        "level": LEVEL,
        "mean_patient_coverage": float(cov["patient_coverage"].mean()),
        "min_patient_coverage": float(cov["patient_coverage"].min()),
        "mean_class1_coverage": float(cov["class1_coverage"].mean()),
        "mean_deployed_fresh_coverage": float(cov["deployed_fresh_coverage"].mean()),
        "median_slope_whole_pipeline": float(cal["whole_pipeline_slope"].median()),
        "median_slope_classifier_only": float(cal["classifier_only_slope"].median()),
        "geometric_mean_slope_whole_pipeline": float(
            np.exp(np.log(cal["whole_pipeline_slope"]).mean())
        ),
        "geometric_mean_slope_classifier_only": float(
            np.exp(np.log(cal["classifier_only_slope"]).mean())
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"Coverage at level {LEVEL} ({len(cov)} seeds, patient level, imbalanced, ComBat on):",
        "",
        cov.round(3).pipe(_markdown),
        "",
        "Leave-one-site-out, site D shifted:",
        "",
        site.round(3).pipe(_markdown),
        "",
        "Calibration slope on fresh data (120 x 400, 3 informative):",
        "",
        cal.round(3).pipe(_markdown),
        "",
        json.dumps(results["summary"], indent=2),
    ]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
