"""``radharmony ibsi-check``: verify the feature engine and the filters against IBSI references."""

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
_IBSI2_CONFIGURATIONS = ("A", "B")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ibsi-check`` command."""
    parser = subparsers.add_parser(
        "ibsi-check",
        help="compare extracted features and filter responses with IBSI reference values",
        description=(
            "IBSI chapter 1 (--config): extract features from an IBSI benchmark image with one "
            "IBSI configuration and compare every value of an IBSI reference CSV (reference "
            "value;tolerance;tag). IBSI chapter 2 phase 1 (--filter-test): filter a digital "
            "phantom and compare with the consensus response map (every voxel within 1 % of "
            "the map's range). IBSI chapter 2 phase 2 (--ibsi2-config A|B): the 18 intensity "
            "statistics of the 9 filter configurations on the CT radiomics phantom, compared "
            "with a reference CSV (filter_id;feature;feature_tag;consensus_value;tolerance). "
            "Prints one row per value and a summary line; exits with code 1 if any computed "
            "value is outside its tolerance."
        ),
    )
    parser.add_argument("--image", type=Path, required=True, help="benchmark image (e.g. NIfTI)")
    parser.add_argument("--mask", type=Path, default=None, help="ROI mask on the same grid")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--config", choices=_CONFIGURATIONS, help="IBSI 1 configuration")
    mode.add_argument(
        "--filter-test",
        metavar="TEST",
        help="IBSI 2 phase-1 test, e.g. 2.b (the phantom as --image)",
    )
    mode.add_argument(
        "--ibsi2-config", choices=_IBSI2_CONFIGURATIONS, help="IBSI 2 phase-2 configuration"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference CSV (IBSI 1, IBSI 2 phase 2) or consensus response map (phase 1); "
        "optional for --ibsi2-config, whose values are then reported without comparison",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony ibsi-check``."""
    from radharmony.errors import SettingsError

    if args.filter_test is not None:
        if args.reference is None:
            raise SettingsError("--filter-test needs --reference MAP.nii.gz (the consensus map)")
        return _run_filter_test(args)
    if args.mask is None:
        raise SettingsError("--config and --ibsi2-config need --mask (the ROI mask)")
    if args.ibsi2_config is not None:
        return _run_phase2(args)
    if args.reference is None:
        raise SettingsError("--config needs --reference (the IBSI reference CSV)")
    return _run_ibsi1(args)


def _run_ibsi1(args: argparse.Namespace) -> int:
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


def _run_filter_test(args: argparse.Namespace) -> int:
    from radharmony.ibsi.filters.ibsi2 import check_response_map

    result = check_response_map(args.filter_test, args.image, args.reference)
    print(
        f"IBSI 2 test {result['test_id']} ({result['family']}, {result['filter']}): "
        f"{result['status']}: largest |difference| {result['max_error']:.4g}, tolerance "
        f"{result['tolerance']:.4g} (1 % of the reference map's range); "
        f"{result['failing_voxels']} of {result['voxels']} voxels outside"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if result["status"] == "pass" else 1


def _run_phase2(args: argparse.Namespace) -> int:
    from radharmony.ibsi.filters.ibsi2 import check_phase2, phase2_summary

    result = check_phase2(args.image, args.mask, args.ibsi2_config, args.reference)
    print(f"{'filter_id':<9} {'tag':<12} {'reference':>12} {'tolerance':>10} {'value':>14}  status")
    for row in result.itertuples(index=False):
        cells = [_cell(v, ".6g") for v in (row.reference, row.tolerance, row.value)]
        print(
            f"{row.filter_id:<9} {row.tag:<12} {cells[0]:>12} {cells[1]:>10} {cells[2]:>14}  "
            f"{row.status.replace('_', ' ')}"
        )
    print(phase2_summary(result, args.ibsi2_config))
    if args.json is not None:
        rows = [
            {
                "filter_id": row.filter_id,
                "tag": row.tag,
                "reference": _number(row.reference),
                "tolerance": _number(row.tolerance),
                "value": _number(row.value),
                "status": row.status,
            }
            for row in result.itertuples(index=False)
        ]
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 1 if (result["status"] == "fail").any() else 0


def _cell(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


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
