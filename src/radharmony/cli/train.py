"""``radharmony train``: nested-CV evaluation, explanations and a saved model from a feature table."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from radharmony.cli._output import verbose_of
from radharmony.errors import ModelError

_MODELS = (
    "auto",
    "logistic_l2",
    "logistic_l1",
    "logistic_elasticnet",
    "random_forest",
    "gradient_boosting",
    "svm",
)


_MONDRIAN: dict[str, bool | str] = {"auto": "auto", "yes": True, "no": False}


def register(subparsers: Any) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="evaluate a classifier with nested CV, explain it and save it",
        description=(
            "Nested, patient-grouped cross-validation of a radiomic classifier (every fitted "
            "step inside the training folds), with bootstrap confidence intervals, calibrated "
            "probabilities, CV+ conformal prediction sets, a domain check, SHAP explanations and "
            "a volume check. Writes metrics.json, metrics.csv, predictions.csv, "
            "conformal_coverage.csv, model_search.csv, per_site.csv, shap_importance.csv, "
            "volume_correlations.csv, SHAP figures and model.skops (for radharmony predict) to "
            "--out."
        ),
    )
    parser.add_argument("features", type=Path, help="feature table (CSV, CSV.gz, TSV or parquet)")
    parser.add_argument("--target", required=True, help="column holding the class")
    parser.add_argument("--id", dest="id_column", help="column identifying each row (lesion)")
    parser.add_argument("--group", help="column identifying the patient (rows kept together)")
    parser.add_argument("--batch", help="column of the scanner/protocol (ComBat batch)")
    parser.add_argument("--site", help="column of the site for per-site metrics (default: --batch)")
    parser.add_argument(
        "--covariates", default="", help="comma-separated covariate columns ComBat preserves"
    )
    parser.add_argument(
        "--drop", default="", help="comma-separated columns that are not features (e.g. age)"
    )
    parser.add_argument(
        "--model",
        default="auto",
        choices=_MODELS,
        help="classifier family, or 'auto' (default) to compare families in the inner loop",
    )
    parser.add_argument(
        "--selection", default="univariate", choices=("univariate", "l1", "mrmr", "none")
    )
    parser.add_argument("--n-features", type=int, default=10, help="features kept by selection")
    parser.add_argument(
        "--calibration", default="sigmoid", choices=("sigmoid", "isotonic", "temperature", "none")
    )
    parser.add_argument(
        "--cv", default="5", help="outer folds (integer) or 'leave-one-site-out' (default: 5)"
    )
    parser.add_argument(
        "--inner-cv", type=int, default=5, help="ensemble members / inner folds (default: 5)"
    )
    parser.add_argument("--conformal-level", type=float, default=0.9)
    parser.add_argument(
        "--mondrian",
        default="auto",
        choices=("auto", "yes", "no"),
        help="class-conditional conformal sets (auto: for imbalanced classes)",
    )
    parser.add_argument(
        "--jobs", type=int, default=-1, help="parallel jobs (-1: all cores; same results)"
    )
    parser.add_argument(
        "--volume",
        default="auto",
        help="volume column for the volume check, 'auto' (find by name) or 'none'",
    )
    parser.add_argument(
        "--no-harmonize", action="store_true", help="do not run ComBat even with --batch"
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and write every output.

    Returns 0 on success and 1 when everything but the model file was written (the model holds
    a step skops cannot store; a message says so).
    """
    import matplotlib

    matplotlib.use("Agg")
    from threadpoolctl import threadpool_limits

    from radharmony.model import VolumeConfoundWarning

    # Many small fits: extra BLAS/OpenMP threads only contend with each other.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # The summary prints the volume check's conclusion; the warning would repeat it.
        warnings.simplefilter("ignore", VolumeConfoundWarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Body of :func:`run`."""
    import matplotlib.pyplot as plt

    from radharmony.explain import (
        explain,
        explain_out_of_fold,
        global_importance,
        plot_bar,
        plot_beeswarm,
        plot_waterfall,
        top_contributions,
    )
    from radharmony.model import data_provenance, evaluate, save_model

    started = time.perf_counter()
    table = _read_table(args.features)
    roles = _column_roles(table, args)
    features = table[roles["features"]]
    if args.id_column:
        features = features.set_axis(table[args.id_column].astype(str), axis=0)
    covariates = table[roles["covariates"]].reset_index(drop=True) if roles["covariates"] else None
    batch = table[args.batch].to_numpy() if args.batch else None
    sites = table[args.site].to_numpy() if args.site else None
    groups = table[args.group].to_numpy() if args.group else None
    volume: str | None = None if args.volume.lower() == "none" else args.volume
    cv: int | str = int(args.cv) if args.cv.isdigit() else args.cv
    print(
        f"radharmony train: {len(features)} rows, {features.shape[1]} features, "
        f"target {args.target!r}; ignored columns: {roles['ignored'] or 'none'}"
    )
    result = evaluate(
        features,
        table[args.target].rename(args.target),
        groups=groups,
        batch=batch,
        covariates=covariates,
        sites=sites,
        volume=volume,
        model=args.model,
        harmonize=False if args.no_harmonize else "auto",
        cv=cv,
        inner_cv=args.inner_cv,
        conformal_level=args.conformal_level,
        mondrian=_MONDRIAN[args.mondrian],
        n_bootstrap=args.n_bootstrap,
        n_jobs=args.jobs,
        random_state=args.seed,
        selection=args.selection,
        n_features=args.n_features,
        calibration=None if args.calibration == "none" else args.calibration,
        verbose=verbose_of(args),
    )
    harmonized = result.settings["harmonize"]
    meta_batch = batch if harmonized else None
    meta_cov = covariates if harmonized else None

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    oof_explanation = explain_out_of_fold(
        result, features, batch=meta_batch, covariates=meta_cov, verbose=verbose_of(args)
    )
    contributions = top_contributions(oof_explanation, n=3, index=features.index)
    predictions = result.predictions.join(contributions)
    predictions.index.name = args.id_column or "row"
    predictions.to_csv(out / "predictions.csv")
    result.metrics.to_csv(out / "metrics.csv")
    result.coverage.to_csv(out / "conformal_coverage.csv", index=False)
    result.search.to_csv(out / "model_search.csv", index=False)
    if result.per_site is not None:
        result.per_site.to_csv(out / "per_site.csv")

    explanation = explain(
        result.model, features, batch=meta_batch, covariates=meta_cov, verbose=verbose_of(args)
    )
    global_importance(explanation).to_csv(out / "shap_importance.csv")
    for name, figure in _figures(explanation, result, plot_beeswarm, plot_bar, plot_waterfall):
        figure.savefig(out / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
    if result.volume_check is not None:
        result.volume_check.correlations.to_csv(out / "volume_correlations.csv")

    summary = result.summary()
    summary["runtime_seconds"] = round(time.perf_counter() - started, 1)
    summary["input"] = str(args.features)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    provenance = data_provenance(features, table[args.target], source=args.features)
    provenance.update(
        {
            "target": args.target,
            "command_line_settings": {k: str(v) for k, v in vars(args).items() if k != "func"},
            "final_params": summary["final_params"],
            "final_features": summary["final_features"],
            "classes": summary["classes"],
            "conformal_level": result.conformal_level,
            "conformal_mondrian": result.mondrian,
        }
    )
    _print_summary(summary, out)
    try:
        save_model(result.model, out / "model.skops", provenance=provenance)
    except ModelError as err:
        # Every other output is written; say clearly that the model file is missing.
        print(f"radharmony train: warning: model not saved: {err}", file=sys.stderr)
        return 1
    return 0


def _read_table(path: Path) -> Any:
    """Read a CSV (optionally compressed), TSV or parquet table."""
    import pandas as pd

    if not path.is_file():
        raise ModelError(f"feature table {path} does not exist")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    separator = "\t" if ".tsv" in suffixes else ","
    compression = "gzip" if suffixes.endswith(".gz") else "infer"
    return pd.read_csv(path, sep=separator, compression=compression)


def _column_roles(table: Any, args: argparse.Namespace) -> dict[str, list[str]]:
    """Split the columns into features, covariates and ignored; check the named ones exist."""
    import pandas as pd

    covariates = [c for c in args.covariates.split(",") if c]
    dropped = [c for c in args.drop.split(",") if c]
    named = [args.target, args.id_column, args.group, args.batch, args.site, *covariates, *dropped]
    missing = [c for c in named if c and c not in table.columns]
    if missing:
        raise ModelError(
            f"column(s) {missing} not found in the feature table; available columns start with "
            f"{list(table.columns[:8])}"
        )
    if args.target in covariates:
        raise ModelError(
            f"--covariates includes the target {args.target!r}; preserving the target in ComBat "
            "leaks the labels. Remove it"
        )
    reserved = {c for c in named if c}
    features, ignored = [], []
    for column in table.columns:
        if column in reserved:
            continue
        if pd.api.types.is_numeric_dtype(table[column]):
            features.append(column)
        else:
            ignored.append(str(column))
    if not features:
        raise ModelError("no numeric feature column left after removing the named columns")
    return {"features": features, "covariates": covariates, "ignored": ignored}


def _figures(explanation: Any, result: Any, beeswarm: Any, bar: Any, waterfall: Any) -> Any:
    """Yield (file name, figure): beeswarm, bar, and waterfalls of up to three typical cases."""
    yield "shap_beeswarm.png", beeswarm(explanation)
    yield "shap_bar.png", bar(explanation)
    confidence = result.predictions["confidence"].to_numpy()
    refer = result.predictions["refer"].to_numpy()
    chosen = {"most_confident": int(confidence.argmax())}
    if refer.any():
        chosen["refer"] = int(refer.nonzero()[0][0])
    chosen["least_confident"] = int(confidence.argmin())
    for label, position in chosen.items():
        case = str(result.predictions.index[position]).replace("/", "_")
        yield f"shap_waterfall_{label}_{case}.png", waterfall(explanation, position)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    def fmt(key: str) -> str:
        value = summary.get(key)
        return "nan" if value is None else f"{value:.3f}"

    print(
        f"ROC AUC {fmt('roc_auc')} (95% CI {fmt('roc_auc_ci_low')}-{fmt('roc_auc_ci_high')}); "
        f"balanced accuracy {fmt('balanced_accuracy')}; Brier {fmt('brier')}; ECE {fmt('ece')}"
    )
    print(
        f"conformal coverage {fmt('conformal_coverage')} at level {summary['conformal_level']}; "
        f"refer rate {fmt('refer_rate')}"
    )
    if "volume_only_roc_auc" in summary:
        print(f"volume check: {summary['volume_message']}")
    print(f"wrote {out} in {summary['runtime_seconds']} s")
