"""Time the IBSI families of radharmony against pyradiomics' own families on the same lesions.

Usage::

    python benchmarks/bench_families.py [CASE_DIR] [--preset NAME] [--repeat N]

For every ``<case>_image.nrrd`` / ``<case>_label.nrrd`` pair (label 1) in CASE_DIR (default:
the pyradiomics example cases of the shared data folder) the lesion is processed once with the
extraction preset (default: ``default``), then every feature family is computed on it alone
through :func:`radharmony.ibsi.features_from_processed`, as an extraction does (morphology
with the mesh of the shape class, as in an extraction: its time is that of shape + morphology
minus that of shape). The
report gives per lesion the time of pyradiomics' families (shape, firstorder and texture), of
the IBSI families enabled by default, of the opt-in spatial autocorrelation, and their ratio to
pyradiomics; then the per-family totals. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyradiomics_cases"


def _best_time(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _family_times(image_path: Path, label_path: Path, preset: str, repeat: int) -> dict:
    """Voxel count, processing time and the time of each family on one lesion."""
    import SimpleITK as sitk

    from radharmony.ibsi import FEATURE_CLASSES, PRESETS, features_from_processed, process_lesion

    image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
    mask = sitk.Cast(sitk.ReadImage(str(label_path)) == 1, sitk.sitkUInt8)
    mask.CopyInformation(image)
    settings = dataclasses.replace(PRESETS[preset], feature_classes=FEATURE_CLASSES)
    lesion = process_lesion(image, mask, settings)
    times = {"processing": _best_time(lambda: process_lesion(image, mask, settings), repeat)}
    for family in FEATURE_CLASSES:
        only = dataclasses.replace(settings, feature_classes=(family,))
        times[family] = _best_time(lambda only=only: features_from_processed(lesion, only), repeat)
    # in an extraction the morphology family reuses the mesh of pyradiomics' shape class
    with_shape = dataclasses.replace(settings, feature_classes=("shape", "morphology"))
    both = _best_time(lambda: features_from_processed(lesion, with_shape), repeat)
    times["morphology"] = max(0.0, both - times["shape"])
    return {"voxels": int(lesion.intensity_mask.sum()), "times": times}


def main() -> int:
    """Run the benchmark and print one line per lesion, the totals and per-family times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    from radharmony.ibsi.settings import IBSI_CLASSES, OPT_IN_CLASSES, PYRADIOMICS_CLASSES

    default_new = [c for c in IBSI_CLASSES if c not in OPT_IN_CLASSES]
    totals: dict[str, float] = {}
    header = f"{'case':<10}{'voxels':>8}{'pyradiomics s':>15}{'IBSI default s':>16}"
    print(header + f"{'ratio':>7}{'opt-in s':>10}{'ratio':>7}")
    for image_path in sorted(args.cases.glob("*_image.nrrd")):
        case = image_path.name.removesuffix("_image.nrrd")
        label_path = image_path.with_name(f"{case}_label.nrrd")
        if not label_path.exists():
            continue
        result = _family_times(image_path, label_path, args.preset, args.repeat)
        times = result["times"]
        for name, seconds in times.items():
            totals[name] = totals.get(name, 0.0) + seconds
        t_pyrad = sum(times[c] for c in PYRADIOMICS_CLASSES)
        t_new = sum(times[c] for c in default_new)
        t_opt = sum(times[c] for c in OPT_IN_CLASSES)
        print(
            f"{case:<10}{result['voxels']:>8}{t_pyrad:>15.2f}{t_new:>16.2f}"
            f"{t_new / t_pyrad:>7.2f}{t_opt:>10.2f}{t_opt / t_pyrad:>7.2f}"
        )
    if not totals:
        print(f"no *_image.nrrd / *_label.nrrd pairs found in {args.cases}")
        return 1
    t_pyrad = sum(totals[c] for c in PYRADIOMICS_CLASSES)
    t_new = sum(totals[c] for c in default_new)
    t_opt = sum(totals[c] for c in OPT_IN_CLASSES)
    print(
        f"{'total':<10}{'':>8}{t_pyrad:>15.2f}{t_new:>16.2f}{t_new / t_pyrad:>7.2f}"
        f"{t_opt:>10.2f}{t_opt / t_pyrad:>7.2f}"
    )
    print("per family, s: " + ", ".join(f"{k} {v:.2f}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
