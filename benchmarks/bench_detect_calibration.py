"""The calibration claim on the synthetic brain cohort, measured on held-out healthy subjects.

Usage::

    python benchmarks/bench_detect_calibration.py [--references 15] [--healthy 40]
        [--patients 24] [--voxel-mm 2.0] [--out benchmarks/results] [--name detect_calibration]

A detector is fitted on reference healthy subjects (three scanners). The subjects it is then
applied to were never used: held-out healthy subjects measure the false lesions per subject at
each target (mean, exact Poisson 95 % interval), patients (MS-like lesions or a tumour) the
lesion-wise sensitivity. The FLAIR baseline and the multichannel mixture model are calibrated
and measured the same way. With
``target="voxel_fdr"`` the realised false discovery proportion of voxels is measured on the
patients (known truth) and the share of held-out healthy subjects with any detection.

Writes ``<name>.json`` and ``<name>.md`` (default name ``detect_calibration``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHANNELS = ["FLAIR", "T1", "T2"]
RATES = (0.5, 1.0, 2.0)
LARGE_MS_MM3 = 100.0
FDR_LEVELS = (0.05, 0.1)


def _subjects(cohort: Any, rows: pd.DataFrame) -> list[Any]:
    """(row, loaded subject, lesion labels or None) of each manifest row."""
    import SimpleITK as sitk

    from radharmony.detect._subject import load_subject

    subjects = []
    for row in rows.to_dict("records"):
        images = {c: str(cohort.out_dir / row[c]) for c in CHANNELS}
        lesion = str(cohort.out_dir / row["lesion_mask"]) if row["lesion_mask"] else None
        subject = load_subject(
            images, CHANNELS, brain_mask=str(cohort.out_dir / row["brain_mask"]), lesion_mask=lesion
        )
        labels = sitk.GetArrayFromImage(sitk.ReadImage(lesion)) if lesion else None
        subjects.append((row, subject, labels))
    return subjects


def _measure(
    detector: Any, healthy: list[Any], patients: list[Any], truth: pd.DataFrame
) -> dict[str, Any]:
    from scipy import ndimage

    from radharmony.detect import poisson_rate_interval
    from radharmony.detect._work import detect_subject_lesions

    false_counts, any_detection = [], []
    for row, subject, _ in healthy:
        _, clusters, _, _ = detect_subject_lesions(subject, row["subject_id"], detector)
        false_counts.append(int(clusters.peaks.size))
        any_detection.append(clusters.peaks.size > 0)
    found = {"ms": [0, 0], "tumour": [0, 0], "ms_large": [0, 0]}
    proportions, patient_false = [], []
    for row, subject, reference in patients:
        _, clusters, _, _ = detect_subject_lesions(subject, row["subject_id"], detector)
        labels = clusters.labels
        for lesion in truth[truth["subject_id"] == row["subject_id"]].itertuples():
            inside = reference == lesion.lesion_id
            hit = int((labels[inside] > 0).any())
            found[lesion.lesion_class][1] += 1
            found[lesion.lesion_class][0] += hit
            if lesion.lesion_class == "ms" and lesion.volume_mm3 >= LARGE_MS_MM3:
                found["ms_large"][1] += 1
                found["ms_large"][0] += hit
        detected = labels > 0
        if detected.any():
            proportions.append(float((detected & (reference == 0)).sum() / detected.sum()))
        touching = np.unique(
            labels[ndimage.binary_dilation(reference > 0, iterations=1) & detected]
        )
        patient_false.append(int(clusters.peaks.size - (touching > 0).sum()))
    total = int(sum(false_counts))
    low, high = poisson_rate_interval(total, len(false_counts))
    return {
        "false_lesions_per_healthy_subject": total / len(false_counts),
        "ci_low": low,
        "ci_high": high,
        "healthy_with_any_detection": float(np.mean(any_detection)),
        "sensitivity_ms": found["ms"][0] / found["ms"][1] if found["ms"][1] else float("nan"),
        "ms_lesions": found["ms"][1],
        "sensitivity_ms_large": (
            found["ms_large"][0] / found["ms_large"][1] if found["ms_large"][1] else float("nan")
        ),
        "ms_lesions_large": found["ms_large"][1],
        "sensitivity_tumour": (
            found["tumour"][0] / found["tumour"][1] if found["tumour"][1] else float("nan")
        ),
        "tumours": found["tumour"][1],
        "voxel_fdp_patients": float(np.mean(proportions)) if proportions else float("nan"),
        "false_lesions_per_patient": float(np.mean(patient_false)),
    }


def run(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    from radharmony.datasets import make_brain_cohort
    from radharmony.detect import HealthyTissueDetector

    cohort = make_brain_cohort(
        args.references + args.healthy,
        args.patients,
        n_scanners=3,
        seed=args.seed,
        out_dir=folder / "cohort",
        voxel_mm=args.voxel_mm,
    )
    manifest = cohort.manifest
    reference = manifest.iloc[: args.references]
    healthy = _subjects(cohort, manifest.iloc[args.references : args.references + args.healthy])
    patients = _subjects(cohort, manifest[manifest["group"] == "patient"])
    rows = []
    methods = {
        "baseline": {"model": "intensity"},
        "detector": {},
        "mixture": {"model": "mixture", "hyperintense": ["FLAIR"]},
    }
    for method, settings in methods.items():
        start = time.perf_counter()
        fitted = HealthyTissueDetector(CHANNELS, **settings).fit(
            reference, base_dir=cohort.out_dir, n_jobs=args.jobs
        )
        fit_s = time.perf_counter() - start
        for rate in RATES:
            detector = fitted.retarget(target="false_lesions", false_lesion_rate=rate)
            check = pd.DataFrame(detector.calibration_.check).iloc[-1]
            rows.append(
                {
                    "method": method,
                    "target": f"{rate:g} false lesion(s) per subject",
                    "reference_check": float(check["false_events"]),
                    "fit_s": fit_s,
                    **_measure(detector, healthy, patients, cohort.ground_truth),
                }
            )
            print(json.dumps(rows[-1], default=float), flush=True)
        for level in FDR_LEVELS:
            detector = fitted.retarget(target="voxel_fdr", fdr_level=level)
            rows.append(
                {
                    "method": method,
                    "target": f"voxel FDR {level:g}",
                    "reference_check": float("nan"),
                    "fit_s": fit_s,
                    **_measure(detector, healthy, patients, cohort.ground_truth),
                }
            )
            print(json.dumps(rows[-1], default=float), flush=True)
    return rows


def _markdown(rows: pd.DataFrame, args: argparse.Namespace) -> str:
    lines = [
        f"Synthetic brain cohort, {args.voxel_mm:g} mm, 3 scanners: {args.references} reference "
        f"healthy subjects; measured on {args.healthy} held-out healthy subjects and "
        f"{args.patients} patients.",
        "",
        "| method | target | false lesions per held-out healthy subject (95 % CI) | held-out "
        "healthy subjects with any detection | sensitivity MS-like lesions (>= 100 mm³) | "
        "sensitivity tumours | voxel FDP in patients |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.itertuples():
        lines.append(
            f"| {r.method} | {r.target} | {r.false_lesions_per_healthy_subject:.2f} "
            f"({r.ci_low:.2f}-{r.ci_high:.2f}) | {r.healthy_with_any_detection:.0%} | "
            f"{r.sensitivity_ms:.2f} of {r.ms_lesions} ({r.sensitivity_ms_large:.2f} of "
            f"{r.ms_lesions_large}) | {r.sensitivity_tumour:.2f} (of "
            f"{r.tumours}) | {r.voxel_fdp_patients:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=15)
    parser.add_argument("--healthy", type=int, default=40)
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="detect_calibration", help="stem of the output files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = pd.DataFrame(run(args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps(rows.to_dict("records"), indent=2, default=float) + "\n", encoding="utf-8"
    )
    (args.out / f"{args.name}.md").write_text(_markdown(rows, args), encoding="utf-8")
    print(_markdown(rows, args))


if __name__ == "__main__":
    main()
