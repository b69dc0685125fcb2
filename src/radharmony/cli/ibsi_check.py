"""``radharmony ibsi-check``: verify the feature engine against IBSI reference values."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# The IBSI benchmark configurations; kept here so that ``radharmony --help`` stays fast.
_CONFIGURATIONS = ("digital_phantom", "A", "B", "C", "D", "E")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ibsi-check`` command."""
    parser = subparsers.add_parser(
        "ibsi-check",
        help="compare extracted features with IBSI reference values",
        description=(
            "Extract features from an IBSI benchmark image with one IBSI configuration and "
            "compare every reference value of an IBSI reference CSV (reference value;tolerance;"
            "tag). Prints one row per reference tag and a summary line; exits with code 1 if "
            "any computed value is outside its tolerance."
        ),
    )
    parser.add_argument("--image", type=Path, required=True, help="benchmark image (e.g. NIfTI)")
    parser.add_argument("--mask", type=Path, required=True, help="ROI mask on the same grid")
    parser.add_argument(
        "--config", required=True, choices=_CONFIGURATIONS, help="IBSI configuration"
    )
    parser.add_argument("--reference", type=Path, required=True, help="IBSI reference CSV")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony ibsi-check``."""
    from radharmony.ibsi import check_compliance, summary_line

    result = check_compliance(args.image, args.mask, args.config, args.reference)
    print(f"{'tag':<34} {'reference':>12} {'tolerance':>10} {'value':>14}  status")
    for row in result.itertuples(index=False):
        value = "" if math.isnan(row.value) else f"{row.value:.6g}"
        status = row.status.replace("_", " ")
        print(f"{row.tag:<34} {row.reference:>12.6g} {row.tolerance:>10.4g} {value:>14}  {status}")
    print(summary_line(result, args.config))
    if args.json is not None:
        args.json.write_text(json.dumps(_json_rows(result), indent=1), encoding="utf-8")
    return 1 if (result["status"] == "fail").any() else 0


def _json_rows(result: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {
            "tag": row.tag,
            "reference": float(row.reference),
            "tolerance": float(row.tolerance),
            "value": None if math.isnan(row.value) else float(row.value),
            "status": row.status,
        }
        for row in result.itertuples(index=False)
    ]
