"""``radharmony longitudinal``: follow-up scans to change maps, lesion tracks and delta features."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radharmony.cli._output import verbose_of


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``longitudinal`` command."""
    parser = subparsers.add_parser(
        "longitudinal",
        help="compare follow-up scans: change maps, new lesions, lesion tracks, delta features",
        description=(
            "Bring every visit of each subject into its common space, compute a signed change "
            "map between consecutive visits, threshold it into new or enlarging lesions "
            "(thresholds chosen without the subject's labels), match the visits' lesion masks "
            "into tracks and extract features per matched lesion and visit. One bad subject "
            "never stops the others: it is listed in DIR/failures.csv. Results are cached "
            "per subject, so re-running the command resumes an interrupted run."
        ),
    )
    parser.add_argument(
        "manifest", type=Path, help="CSV with subject_id, timepoint, image (+ optional columns)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--channels", default="", help="extra channel columns, comma-separated (e.g. T2)"
    )
    parser.add_argument(
        "--dark-channels",
        default="",
        help="channels on which lesions are dark (e.g. T1), comma-separated",
    )
    parser.add_argument(
        "--register",
        action="store_true",
        help="register visits without a transform to the baseline (rigid then affine)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="longitudinal manifest of reference subjects to calibrate thresholds on",
    )
    parser.add_argument(
        "--target",
        choices=("fdr", "false_lesions"),
        default="fdr",
        help="voxel false discovery rate, or false new lesions per follow-up (needs --reference)",
    )
    parser.add_argument("--level", type=float, default=0.05, help="value of the target")
    parser.add_argument("--min-lesion-mm3", type=float, default=10.0)
    parser.add_argument(
        "--settings", default="default", help="extraction preset or YAML/JSON settings file"
    )
    parser.add_argument(
        "--no-features", action="store_true", help="skip the delta-radiomics extraction"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (-1: all cores)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: DIR/cache")
    parser.add_argument("--no-cache", action="store_true", help="do not cache per-subject results")
    parser.add_argument("--no-report", action="store_true", help="do not write DIR/report.html")
    parser.add_argument(
        "--strict", action="store_true", help="exit with code 1 when any subject failed"
    )
    parser.set_defaults(func=run)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony longitudinal``."""
    import pandas as pd

    from radharmony.extract import write_features
    from radharmony.longitudinal import (
        analyse_followups,
        calibrate_change,
        delta_radiomics,
        write_longitudinal,
    )
    from radharmony.longitudinal._calibrate import ChangeCalibration

    channels = _names(args.channels)
    dark = _names(args.dark_channels)
    unknown = sorted(set(dark) - {"image", *channels})
    if unknown:
        print(f"--dark-channels names channels not in --channels: {unknown}", file=sys.stderr)
        return 2
    signs = {name: -1.0 for name in dark}
    cache = None if args.no_cache else (args.cache_dir or args.out / "cache")
    common = {
        "channels": channels,
        "channel_signs": signs,
        "register": args.register,
        "min_lesion_mm3": args.min_lesion_mm3,
        "n_jobs": args.jobs,
        "cache_dir": cache,
        "verbose": verbose_of(args),
    }
    if args.reference is not None:
        calibration = calibrate_change(
            args.reference, target=args.target, level=args.level, **common
        )
    elif args.target != "fdr":
        print("--target false_lesions needs --reference", file=sys.stderr)
        return 2
    else:
        calibration = ChangeCalibration.mirror(args.level)
    result = analyse_followups(args.manifest, args.out, calibration=calibration, **common)
    paths = write_longitudinal(result, args.out)
    delta = None
    if not args.no_features:
        delta = delta_radiomics(
            args.manifest,
            result.tracks,
            args.settings,
            n_jobs=args.jobs,
            cache_dir=None if cache is None else Path(cache) / "features",
            verbose=verbose_of(args),
        )
        write_features(delta, args.out / "delta_features.parquet")
        extraction_failures = pd.DataFrame(delta.attrs.get("failures", []))
        if len(extraction_failures):
            print(
                f"warning: {len(extraction_failures)} lesion(s) failed feature extraction; see "
                f"{args.out / 'delta_features.failures.csv'}",
                file=sys.stderr,
            )
    if not args.no_report:
        from radharmony.report import make_longitudinal_report

        make_longitudinal_report(result, delta).save_as_html(args.out / "report.html")
    print(result.summary())
    print(f"tables: {paths['lesion_tracks'].parent}")
    if len(result.failures):
        print(
            f"warning: {len(result.failures)} subject(s) or part(s) failed; see "
            f"{paths['failures']}",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    return 0
