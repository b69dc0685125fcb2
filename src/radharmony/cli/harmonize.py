"""``radharmony harmonize``: harmonise a feature table across scanners (exploratory use).

The command fits the harmoniser on every row of the table and applies it to the same rows. That
is fine for looking at the data, but a model evaluated on such a table has seen its test rows
during harmonisation (leakage). For modelling, put ``radharmony.default_harmonizer()`` (or
``radharmony.ComBat``) inside the scikit-learn Pipeline so it is refitted on each training fold.

With ``--reference COL`` the command fits a normative model on the reference rows (where COL is
true) and writes every row's z-scores, plus the long deviations table and the per-site table.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
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
        choices=("default", "combat", "selective"),
        default="default",
        help="default: ShrinkageComBat (corrections shrunk where they are not reliably "
        "estimated); combat: exact ComBat on all features; selective: the previous default",
    )
    parser.add_argument(
        "--outcome",
        default=None,
        help="column of labels put in the design so their effect is kept (default method; "
        "used to estimate, never to adjust a row)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="column marking the reference population (true/1/yes): fit a normative model on "
        "those rows and write z-scores of every row instead of harmonised values",
    )
    parser.add_argument(
        "--spline",
        default="",
        help="comma-separated continuous covariates with a non-linear (B-spline) effect",
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
    parser.add_argument(
        "--splits",
        type=int,
        default=10,
        help="random half splits of the report's held-out scanner predictability (default 10)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony harmonize``."""
    import pandas as pd

    from radharmony.errors import HarmonizationError
    from radharmony.harmonize import harmonization_report

    table = _read_table(args.features)
    covariate_names = [c.strip() for c in args.covariates.split(",") if c.strip()]
    spline_names = [c.strip() for c in args.spline.split(",") if c.strip()]
    extra = [c for c in (args.outcome, args.reference) if c is not None]
    missing = [c for c in [args.batch, *covariate_names, *extra] if c not in table.columns]
    if missing:
        raise HarmonizationError(
            f"column(s) {missing} are not in {args.features} (columns: {list(table.columns)[:20]})."
        )
    feature_names = _feature_columns(
        table, args.batch, [*covariate_names, *extra], args.feature_regex
    )
    if not feature_names:
        raise HarmonizationError(f"no numeric feature columns found in {args.features}.")
    covariates = table[covariate_names] if covariate_names else None
    batch = table[args.batch].to_numpy()
    if args.reference is not None:
        return _normative(args, table, feature_names, covariates, batch, spline_names)
    model = _harmonizer(args, table, spline_names)
    label = None if args.outcome is None else table[args.outcome].to_numpy()
    model.fit(table[feature_names], label, batch=batch, covariates=covariates)
    harmonised = model.transform(table[feature_names], batch=batch, covariates=covariates)
    out = table.copy()
    out[feature_names] = harmonised.to_numpy()
    _write_table(out, args.out)
    print(
        f"harmonised {len(feature_names)} features of {len(table)} rows across "
        f"{pd.Series(batch).nunique()} batches -> {args.out}"
    )
    if hasattr(model, "correction_table"):
        factors = model.correction_table().groupby("batch")["location_applied"]
        print(
            f"features left unchanged: {len(model.unadjusted_features_)}; mean |location "
            "corrected| per batch (SD): "
            + ", ".join(f"{b} {v.abs().mean():.2f}" for b, v in factors)
        )
    elif hasattr(model, "selected_features_"):
        print(f"features corrected (batch effect at FDR 5 %): {len(model.selected_features_)}")
    if args.report is not None:
        report = harmonization_report(
            table[feature_names],
            harmonised,
            batch,
            covariates,
            label=label,
            harmonizer=model,
            n_splits=args.splits,
        )
        report.save(args.report)
        print(report.summary())
    return 0


def _harmonizer(args: argparse.Namespace, table: pd.DataFrame, splines: list[str]) -> Any:
    """Return the unfitted harmoniser chosen by ``--method``."""
    from radharmony.errors import HarmonizationError
    from radharmony.harmonize import ComBat, SelectiveComBat, ShrinkageComBat

    ref_batch = _ref_batch(table, args)
    options: dict[str, Any] = {"spline_covariates": splines or None}
    if args.method == "default":
        if ref_batch is not None or args.nonparametric:
            raise HarmonizationError(
                "--ref-batch and --nonparametric apply to --method combat or selective."
            )
        return ShrinkageComBat(outcome=args.outcome is not None, **options)
    if args.outcome is not None:
        raise HarmonizationError(
            "--outcome needs --method default: ComBat without the outcome in its design would "
            "remove the outcome's signal together with the scanner effect."
        )
    options.update(parametric=not args.nonparametric, ref_batch=ref_batch)
    return ComBat(**options) if args.method == "combat" else SelectiveComBat(**options)


def _normative(
    args: argparse.Namespace,
    table: pd.DataFrame,
    features: list[str],
    covariates: pd.DataFrame | None,
    batch: np.ndarray,
    splines: list[str],
) -> int:
    """Fit a normative model on the reference rows; write z-scores, deviations and sites."""
    from radharmony.harmonize import NormativeModel, harmonization_report

    reference = _truthy(table[args.reference], args.reference)
    model = NormativeModel(spline_covariates=splines or None)
    model.fit(table[features], batch=batch, covariates=covariates, reference=reference)
    z = model.transform(table[features], batch=batch, covariates=covariates)
    out = table.copy()
    out[features] = z.to_numpy()
    _write_table(out, args.out)
    stem = args.out.with_suffix("")
    deviations = model.deviation_table(
        table[features], batch=batch, covariates=covariates, ids=table.index
    )
    _write_table(deviations, stem.with_name(stem.name + ".deviations.csv"))
    _write_table(model.site_table(), stem.with_name(stem.name + ".sites.csv"))
    print(
        f"normative model of {len(features)} features fitted on {int(reference.sum())} reference "
        f"rows of {len(table)}; z-scores of every row -> {args.out}"
    )
    if args.report is not None:
        harmonised = model.set_params(output="harmonized").transform(
            table[features], batch=batch, covariates=covariates
        )
        report = harmonization_report(
            table[features],
            harmonised,
            batch,
            covariates,
            harmonizer=NormativeModel(spline_covariates=splines or None),
            reference=reference,
            n_splits=args.splits,
        )
        report.save(args.report)
        print(report.summary())
    return 0


def _truthy(column: pd.Series, name: str) -> np.ndarray:
    """Return a boolean mask from a column of booleans, 0/1 or yes/no/true/false text."""
    import numpy as np

    from radharmony.errors import HarmonizationError

    text = column.astype(str).str.strip().str.lower()
    yes, no = {"true", "1", "1.0", "yes", "y"}, {"false", "0", "0.0", "no", "n"}
    unknown = sorted(set(text) - yes - no)
    if unknown:
        raise HarmonizationError(
            f"reference column {name!r} must hold true/false, 1/0 or yes/no; found {unknown[:5]}."
        )
    return np.asarray(text.isin(yes))


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
