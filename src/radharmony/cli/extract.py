"""``radharmony extract``: a cohort manifest to a per-lesion feature table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from radharmony.cli._output import verbose_of


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` command."""
    parser = subparsers.add_parser(
        "extract",
        help="extract per-lesion radiomic features from a cohort manifest",
        description=(
            "Extract per-lesion radiomic features for every image of a manifest. Results are "
            "cached per case beside the output, so re-running the same command after an "
            "interruption recomputes only what is missing. Failing cases never stop the run: "
            "they are listed in <out>.failures.csv."
        ),
    )
    parser.add_argument(
        "manifest",
        type=Path,
        nargs="?",
        help="CSV with subject_id, image, mask, scanner (or give --bids ROOT)",
    )
    bids = parser.add_argument_group("BIDS input (instead of a manifest)")
    bids.add_argument(
        "--bids", type=Path, metavar="ROOT", help="build the manifest from a BIDS dataset"
    )
    bids.add_argument(
        "--bids-suffix",
        action="append",
        metavar="SUFFIX",
        help="modality to take (T1w, FLAIR, ...); repeat for several; default: all",
    )
    bids.add_argument(
        "--bids-derivatives",
        metavar="NAME",
        help="derivatives dataset holding the masks (default: the only one with masks)",
    )
    bids.add_argument(
        "--bids-mask",
        action="append",
        metavar="KEY=VALUE",
        help="entity a mask must have, e.g. desc=lesion; repeat for several",
    )
    bids.add_argument(
        "--bids-out",
        type=Path,
        metavar="DIR",
        help="also write the features as a BIDS derivatives dataset in DIR",
    )
    parser.add_argument("--out", type=Path, required=True, help="output table (.parquet or .csv)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (-1: all cores)")
    parser.add_argument(
        "--settings", default="default", help="preset name or YAML/JSON settings file"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="cache folder (default: <out>.cache)"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache per-case results")
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26)
    parser.add_argument("--min-lesion-voxels", type=int, default=1)
    parser.add_argument(
        "--strict", action="store_true", help="exit with code 1 when any case or lesion failed"
    )
    parser.set_defaults(func=run)


def default_cache_dir(out: Path) -> Path:
    """Return the cache folder used beside an output table."""
    return out.with_name(f"{out.name}.cache")


def run(args: argparse.Namespace) -> int:
    """Run ``radharmony extract``."""
    from radharmony.extract import extract_features, failures_of, write_features
    from radharmony.io import write_bids_derivatives

    cache = None if args.no_cache else (args.cache_dir or default_cache_dir(args.out))
    features = extract_features(
        _manifest(args),
        settings=args.settings,
        n_jobs=args.jobs,
        cache_dir=cache,
        connectivity=args.connectivity,
        min_lesion_voxels=args.min_lesion_voxels,
        verbose=verbose_of(args),
    )
    paths = write_features(features, args.out)
    print(summary_line(features))
    print(f"features: {paths['features']}")
    print(f"failures: {paths['failures']}")
    if args.bids_out is not None:
        write_bids_derivatives(features, args.bids_out, source=args.bids)
        print(f"BIDS derivatives: {args.bids_out}")
    failures = failures_of(features)
    if len(failures):
        print(
            f"warning: {len(failures)} case(s)/lesion(s) failed; see {paths['failures']}",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    return 0


def _manifest(args: argparse.Namespace) -> Any:
    from radharmony.errors import ManifestError
    from radharmony.io import read_bids

    if (args.manifest is None) == (args.bids is None):
        raise ManifestError("give either a manifest CSV or --bids ROOT (one of them)")
    if args.bids is None:
        if args.bids_out is not None:
            raise ManifestError("--bids-out writes BIDS derivatives of a --bids dataset only")
        return args.manifest
    entities = {}
    for item in args.bids_mask or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ManifestError(f"--bids-mask {item!r}: write it as KEY=VALUE, e.g. desc=lesion")
        entities[key.strip()] = value.strip()
    return read_bids(
        args.bids,
        suffixes=args.bids_suffix,
        derivatives=args.bids_derivatives,
        mask_entities=entities,
    )


def summary_line(features) -> str:  # noqa: ANN001 - a feature DataFrame
    """Return a one-line summary of an extraction result."""
    from radharmony.extract import failures_of

    n_failed = len(failures_of(features))
    n_cases = features["case_id"].nunique() if "case_id" in features else 0
    dropped = features.attrs.get("dropped_lesions", 0)
    return (
        f"{len(features)} lesion(s) from {n_cases} case(s); {n_failed} failure(s); "
        f"{dropped} lesion(s) below the minimum size dropped"
    )
