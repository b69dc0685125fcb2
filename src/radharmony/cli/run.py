"""``radharmony run CONFIG.yaml``: a whole study on a user's cohort, configured in one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from radharmony.cli._output import verbose_of

EXAMPLE = """\
manifest: cohort/manifest.csv      # subject_id, image, mask, scanner, covariates
out: study-output
target: lesion_class               # column of `labels` (per lesion) or of the manifest
labels: cohort/labels.csv          # subject_id, lesion_id, lesion_class
covariates: [age, sex]             # preserved by ComBat (never the target)
settings: default                  # preset name, mapping or YAML file
model: logistic_l2
cv: 5
leave_one_scanner_out: true
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser(
        "run",
        help="run a whole study configured in one YAML file",
        description=(
            "Extract, check, harmonise, evaluate, explain and report a study configured in one "
            "YAML file (validated before anything runs). Extraction and the analysis are cached "
            "in the output folder, so running the same command again resumes an interrupted "
            "study and recomputes nothing that is unchanged (--no-cache: compute again).\n\n"
            "Example configuration:\n\n" + EXAMPLE
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, help="study configuration (YAML)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="compute extraction and analysis again, ignoring (and not writing) the caches",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony run``."""
    from radharmony.study import load_study_config, run_study

    config = load_study_config(args.config)
    result = run_study(config, verbose=verbose_of(args), cache=not args.no_cache)
    print(f"report: {result.files['report'].resolve()}")
    return 0
