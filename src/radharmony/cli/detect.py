"""``radharmony detect``: lesions of new subjects against a model of healthy reference tissue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` command."""
    parser = subparsers.add_parser(
        "detect",
        help="detect lesions as regions that diverge from healthy reference tissue",
        description=(
            "Learn intensity standardisation, a model of healthy tissue and a calibrated "
            "threshold on reference subjects (healthy subjects, or patients whose lesion_mask "
            "is left out), then write, per subject, an abnormality map and a lesion label map, "
            "and lesions.csv, subjects.csv, calibration.csv, failures.csv and a manifest.csv that "
            "`radharmony extract` reads as is. Per-subject results are cached in <out>/cache, so "
            "re-running the command resumes an interrupted run. A subject that fails is listed "
            "in failures.csv; the others are processed."
        ),
    )
    parser.add_argument("subjects", type=Path, help="CSV: subject_id, one column per channel, ...")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--reference", type=Path, help="CSV of the reference subjects (same columns, lesion_mask)"
    )
    source.add_argument(
        "--detector", type=Path, help="a detector saved by an earlier run (detector.skops)"
    )
    parser.add_argument(
        "--channels", required=True, help="channel columns, first = output grid (e.g. FLAIR,T1,T2)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--hyperintense",
        default=None,
        help="channels in which lesions are brighter (default: the first channel)",
    )
    parser.add_argument("--model", choices=("tail", "mixture", "intensity"), default="tail")
    parser.add_argument("--target", choices=("false_lesions", "voxel_fdr"), default="false_lesions")
    parser.add_argument(
        "--false-lesion-rate",
        type=float,
        default=1.0,
        help="expected false lesions per healthy subject (target false_lesions)",
    )
    parser.add_argument(
        "--fdr", type=float, default=0.05, help="voxel false discovery rate (target voxel_fdr)"
    )
    parser.add_argument("--min-lesion-mm3", type=float, default=3.0)
    parser.add_argument(
        "--edge-margin-mm",
        type=float,
        default=3.0,
        help="only voxels deeper than this in the brain mask make a lesion (0: off)",
    )
    parser.add_argument("--neighbourhood-mm", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (-1: all cores)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: <out>/cache")
    parser.add_argument("--no-cache", action="store_true", help="do not cache per-subject results")
    parser.add_argument(
        "--strict", action="store_true", help="exit with code 1 when any subject failed"
    )
    parser.set_defaults(func=run)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony detect``."""
    from radharmony.detect import HealthyTissueDetector, load_detector

    channels = _names(args.channels) or []
    cache = None if args.no_cache else (args.cache_dir or args.out / "cache")
    options = {"n_jobs": args.jobs, "cache_dir": cache, "verbose": 0 if args.quiet else 1}
    if args.detector is not None:
        detector = load_detector(args.detector)
        if [str(c) for c in detector.channels] != channels:
            print(
                f"radharmony detect: error: the detector was fitted on channels "
                f"{list(detector.channels)}, not {channels}",
                file=sys.stderr,
            )
            return 2
    else:
        detector = HealthyTissueDetector(
            channels,
            model=args.model,
            hyperintense=_names(args.hyperintense),
            neighbourhood_mm=args.neighbourhood_mm,
            target=args.target,
            false_lesion_rate=args.false_lesion_rate,
            fdr_level=args.fdr,
            min_lesion_mm3=args.min_lesion_mm3,
            edge_margin_mm=args.edge_margin_mm,
        ).fit(args.reference, **options)
    result = detector.detect(args.subjects, args.out, **options)
    print(summary_line(result))
    for name in ("lesions", "subjects", "calibration", "manifest", "detector"):
        print(f"{name}: {result.files[name]}")
    if len(result.failures):
        print(
            f"warning: {len(result.failures)} subject(s) failed; see {result.files['failures']}",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    return 0


def summary_line(result) -> str:  # noqa: ANN001 - a DetectionResult
    """Return a one-line summary of a detection run."""
    subjects = result.subjects
    ok = int((subjects["status"] == "ok").sum())
    check = result.calibration
    measured = ""
    if len(check) and (check["subject_id"] == "all").any():
        row = check[check["subject_id"] == "all"].iloc[0]
        measured = (
            f"; held-out false lesions per reference subject {row['false_events']:.2f} "
            f"(95 % CI {row['ci_low']:.2f}-{row['ci_high']:.2f}, target {row['target']:g})"
        )
    return (
        f"{len(result.lesions)} lesion(s) in {ok} subject(s); {len(result.failures)} "
        f"failure(s){measured}"
    )
