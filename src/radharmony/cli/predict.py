"""``radharmony predict MODEL FEATURES --out DIR``: a saved model applied to new patients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from radharmony.cli._output import verbose_of
from radharmony.errors import ModelError


def register(subparsers: Any) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict",
        help="apply a saved model to new cases (probability, conformal set, refer, SHAP)",
        description=(
            "Apply a model written by `radharmony train` or `radharmony run` (model.skops) to "
            "the rows of a feature table. Writes predictions.csv (per case: probabilities, "
            "conformal set, refer flag, domain check, top SHAP contributions, reader "
            "agreement), cases.html (one card per case) and summary.json to --out. Cases are "
            "harmonised with their scanner's fitted parameters; an unseen scanner is an error."
        ),
    )
    parser.add_argument("model", type=Path, help="model file (model.skops)")
    parser.add_argument("features", type=Path, help="feature table (CSV, CSV.gz, TSV, parquet)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--id", dest="id_column", help="column identifying each row (lesion)")
    parser.add_argument("--batch", help="column of the scanner (needed if the model harmonises)")
    parser.add_argument("--site", help="column of the site for the per-site domain test")
    parser.add_argument(
        "--covariates", default="", help="comma-separated covariate columns used in training"
    )
    parser.add_argument("--reader", help="column holding a human reading of each case")
    parser.add_argument("--top", type=int, default=3, help="SHAP contributions per case")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony predict``."""
    import matplotlib

    matplotlib.use("Agg")
    from threadpoolctl import threadpool_limits

    from radharmony.cli.train import _read_table
    from radharmony.explain import predict
    from radharmony.model import load_model, reader_agreement
    from radharmony.report._explain import prediction_page

    model, _ = load_model(args.model)
    table = _read_table(args.features)
    covariates = [c for c in args.covariates.split(",") if c]
    named = [args.id_column, args.batch, args.site, args.reader, *covariates]
    missing = [c for c in named if c and c not in table.columns]
    if missing:
        raise ModelError(f"column(s) {missing} not found in {args.features}")
    features = table
    if args.id_column:
        features = table.set_axis(table[args.id_column].astype(str), axis=0)
    with threadpool_limits(limits=1):
        predictions, explanation = predict(
            model,
            features,
            batch=None if not args.batch else table[args.batch].astype(str).to_numpy(),
            covariates=table[covariates].reset_index(drop=True) if covariates else None,
            sites=None if not args.site else table[args.site].astype(str).to_numpy(),
            reader=None if not args.reader else table[args.reader].to_numpy(),
            n_top=args.top,
            return_explanation=True,
            verbose=verbose_of(args),
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    predictions.index.name = args.id_column or "row"
    predictions.to_csv(out / "predictions.csv")
    summary: dict[str, Any] = {
        "n_cases": len(predictions),
        "n_refer": int(predictions["refer"].sum()),
        "n_domain_shift": int(predictions["domain_shift"].sum()),
        "model": str(args.model),
        "input": str(args.features),
    }
    if args.reader:
        agreement = reader_agreement(predictions)
        agreement.to_csv(out / "reader_agreement.csv", index=False)
        summary["reader"] = dict(zip(agreement["quantity"], agreement["value"], strict=True))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    prediction_page(predictions, explanation, source=str(args.features)).save_as_html(
        out / "cases.html"
    )
    print(
        f"radharmony predict: {summary['n_cases']} case(s), {summary['n_refer']} referred, "
        f"{summary['n_domain_shift']} outside the validated domain; wrote {out}"
    )
    return 0
