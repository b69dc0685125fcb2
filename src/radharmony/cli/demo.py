"""``radharmony demo``: the whole study on the embedded synthetic multi-scanner cohort."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the study on the embedded synthetic multi-scanner cohort",
        description=(
            "Generate the synthetic multi-scanner cohort, extract per-lesion features and "
            "write the feature and failures tables into the output folder."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("radharmony-demo"), help="output folder")
    parser.add_argument("--subjects", type=int, default=100, help="number of subjects")
    parser.add_argument("--scanners", type=int, default=3, help="number of scanners")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort")
    parser.add_argument(
        "--jobs", type=int, default=-1, help="worker processes (default: all cores)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony demo``."""
    from radharmony.cli.extract import default_cache_dir, summary_line
    from radharmony.datasets import make_cohort
    from radharmony.extract import extract_features, write_features

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"writing the synthetic cohort ({args.subjects} subjects, {args.scanners} scanners)")
    cohort = make_cohort(args.subjects, args.scanners, args.seed, out / "cohort")
    table = out / "features.parquet"
    features = extract_features(
        cohort.manifest_path,
        n_jobs=args.jobs if args.jobs != 0 else (os.cpu_count() or 1),
        cache_dir=default_cache_dir(table),
        progress=True,
    )
    paths = write_features(features, table)
    print(summary_line(features))
    print(f"features:     {paths['features']}")
    print(f"failures:     {paths['failures']}")
    print(f"ground truth: {cohort.ground_truth_path}")
    return 0
