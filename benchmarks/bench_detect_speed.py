"""Time to examine one 1 mm brain with 4 channels, as a ratio to the FLAIR baseline.

Usage::

    python benchmarks/bench_detect_speed.py [--data ../shared/data/brain_mr] [--repeat 3]

The subject is MSLUB patient07 (182 x 218 x 182 voxels of 1 mm, FLAIR/T1/T1POST/T2) examined by
detectors fitted on patient26, when the shared data are present; otherwise a synthetic 1 mm
brain with the same four channel count. Each method reads the four channels, scores every brain
voxel, forms and keeps the lesions and tabulates them (``score_subject``); the best of
``--repeat`` runs is reported, in the same process, next to the baseline's. The machine's cores
are used as NumPy/SciPy use them (no per-case pinning).

Writes ``detect_speed.json`` and ``detect_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

METHODS = {
    "baseline": {"model": "intensity"},
    "detector": {},
    "mixture (4 channels)": {"model": "mixture", "hyperintense": ["FLAIR"]},
}


def _subjects(data: Path, folder: Path) -> tuple[list[str], dict[str, Any], dict[str, Any], str]:
    mslub = data / "mslub_mni"
    if (mslub / "patient07").is_dir():
        channels = ["FLAIR", "T1", "T1POST", "T2"]

        def row(name: str) -> dict[str, Any]:
            base = mslub / name
            return {
                "subject_id": name,
                **{c: str(base / f"{c}.nii.gz") for c in channels},
                "lesion_mask": str(base / "GOLD_STANDARD.nii.gz"),
            }

        return channels, row("patient26"), row("patient07"), "MSLUB patient07, 182x218x182"
    from radharmony.datasets import make_brain_cohort

    cohort = make_brain_cohort(1, 1, n_scanners=1, seed=0, out_dir=folder, voxel_mm=1.0)
    channels = ["FLAIR", "T1", "T2", "T1c"]
    rows = [
        {
            k: (str(folder / v) if k in [*channels, "brain_mask", "lesion_mask"] and v else v)
            for k, v in r.items()
        }
        for r in cohort.manifest.to_dict("records")
    ]
    return channels, rows[0], rows[1], "synthetic 1 mm brain, 150x180x140"


def main() -> None:
    from radharmony.detect import HealthyTissueDetector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain_mr"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        channels, reference, subject, label = _subjects(args.data, Path(tmp))
        results = {"subject": label, "cores": os.cpu_count(), "methods": {}}
        for name, settings in METHODS.items():
            detector = HealthyTissueDetector(channels, **settings)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # one reference subject
                detector.fit(__import__("pandas").DataFrame([reference]))
            images = {c: subject[c] for c in channels}
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                detector.score_subject(images, brain_mask=subject.get("brain_mask") or None)
                times.append(time.perf_counter() - start)
            results["methods"][name] = min(times)
            print(name, f"{min(times):.2f} s", flush=True)
    base = results["methods"]["baseline"]
    lines = [
        f"Examining one subject ({label}, 4 channels, {results['cores']} cores): read, score, "
        "lesions, table; best of "
        f"{args.repeat}.",
        "",
        "| method | seconds | ratio to baseline |",
        "|---|---|---|",
    ]
    for name, seconds in results["methods"].items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detect_speed.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    (args.out / "detect_speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
