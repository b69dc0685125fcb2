"""``radharmony harmonize``: harmonise a feature table across scanners (exploratory use).

The command fits the harmoniser on every row of the table and applies it to the same rows. That
is fine for looking at the data, but a model evaluated on such a table has seen its test rows
during harmonisation (leakage). For modelling, put ``radharmony.default_harmonizer()`` (or
``radharmony.ComBat``) inside the scikit-learn Pipeline so it is refitted on each training fold.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Identifier, geometry and outcome columns of radharmony's tables: carried through unchanged.
_PASS_THROUGH = {
    "case_id",
    "subject_id",
    "lesion_id",
    "lesion_voxels",
    "lesion_volume_mm3",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "label",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``harmonize`` command."""
    parser = subparsers.add_parser(
        "harmonize",
        help="ComBat-harmonise a feature table across scanners (exploratory)",
        description=(
            "Fit ComBat on all rows of FEATURES and write the harmonised table. For exploration "
            "only: for modelling use the in-pipeline transformer (radharmony.default_harmonizer) "
            "so harmonisation is learned on training folds and never sees the test rows."
        ),
    )
    parser.add_argument("features", type=Path, help="feature table (.csv or .parquet)")
    parser.add_argument("--batch", required=True, help="column holding the scanner/site")
    parser.add_argument(
        "--covariates",
        default="",
        help="comma-separated columns whose effect is preserved (e.g. age,sex); never the outcome",
    )
    parser.add_argument("--out", type=Path, required=True, help="output table (.csv or .parquet)")
    parser.add_argument(
        "--method",
        choices=("default", "combat"),
        default="default",
        help="default: selective ComBat on de-skewed features; combat: exact ComBat on all",
    )
    parser.add_argument("--nonparametric", action="store_true", help="non-parametric priors")
    parser.add_argument("--ref-batch", default=None, help="reference batch (kept unchanged)")
    parser.add_argument(
        "--features",
        dest="feature_regex",
        default=None,
        help="regular expression selecting feature columns (default: every numeric column "
        "except identifiers, volume, label, batch and covariates)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="folder for diagnostic tables and figures"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony harmonize``."""
    import pandas as pd

    from radharmony.errors import HarmonizationError
    from radharmony.harmonize import ComBat, default_harmonizer, harmonization_report

    table = _read_table(args.features)
    covariate_names = [c.strip() for c in args.covariates.split(",") if c.strip()]
    missing = [c for c in [args.batch, *covariate_names] if c not in table.columns]
    if missing:
        raise HarmonizationError(
            f"column(s) {missing} are not in {args.features} (columns: {list(table.columns)[:20]})."
        )
    feature_names = _feature_columns(table, args.batch, covariate_names, args.feature_regex)
    if not feature_names:
        raise HarmonizationError(f"no numeric feature columns found in {args.features}.")
    options: dict[str, Any] = {
        "parametric": not args.nonparametric,
        "ref_batch": _ref_batch(table, args),
    }
    model = ComBat(**options) if args.method == "combat" else default_harmonizer(**options)
    covariates = table[covariate_names] if covariate_names else None
    batch = table[args.batch].to_numpy()
    harmonised = model.fit_transform(table[feature_names], batch=batch, covariates=covariates)
    out = table.copy()
    out[feature_names] = harmonised.to_numpy()
    _write_table(out, args.out)
    print(
        f"harmonised {len(feature_names)} features of {len(table)} rows across "
        f"{pd.Series(batch).nunique()} batches -> {args.out}"
    )
    if args.method == "default":
        print(f"features corrected (batch effect at FDR 5 %): {len(model.selected_features_)}")
    if args.report is not None:
        report = harmonization_report(
            table[feature_names], harmonised, batch, covariates, harmonizer=model
        )
        report.save(args.report)
        print(report.summary())
    return 0


def _feature_columns(
    table: pd.DataFrame, batch: str, covariates: list[str], regex: str | None
) -> list[str]:
    """Return the feature columns to harmonise."""
    import pandas as pd

    excluded = _PASS_THROUGH | {batch, *covariates}
    columns = [
        c
        for c in table.columns
        if c not in excluded
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]
    if regex is not None:
        pattern = re.compile(regex)
        columns = [c for c in columns if pattern.search(str(c))]
    return columns


def _ref_batch(table: pd.DataFrame, args: argparse.Namespace) -> object:
    """Return ``--ref-batch`` converted to the batch column's type."""
    if args.ref_batch is None:
        return None
    for value in table[args.batch].unique():
        if str(value) == args.ref_batch:
            return value
    return args.ref_batch


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    from radharmony.errors import HarmonizationError

    if not path.is_file():
        raise HarmonizationError(f"feature table {path} does not exist.")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _write_table(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
