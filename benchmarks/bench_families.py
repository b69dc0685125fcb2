"""Time the numpy IBSI families against pyradiomics' own feature classes on the same lesions.

Usage::

    python benchmarks/bench_families.py [CASE_DIR] [--repeat N]

For every ``<case>_image.nrrd`` / ``<case>_label.nrrd`` pair (label 1) in CASE_DIR (default:
the pyradiomics example cases of the shared data folder) it reports the wall time of
pyradiomics' ``RadiomicsFeatureExtractor`` with its default settings and feature classes, the
time of :func:`radharmony.ibsi.families.compute_families` (3D and 2D texture) on the same
image, mask and grey levels (fixed bin width 25, as pyradiomics' default), per-family times,
and the ratio of the two. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyradiomics_cases"


def _best_time(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _lesion_arrays(image_path: Path, label_path: Path) -> dict[str, object]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(image_path))
    label = sitk.ReadImage(str(label_path))
    values = sitk.GetArrayFromImage(image).astype(float)
    mask = sitk.GetArrayFromImage(label) == 1
    # pyradiomics' default discretisation: fixed bin width 25 anchored at 0
    low = np.floor(values[mask].min() / 25.0)
    levels = np.zeros(values.shape, dtype=np.int64)
    levels[mask] = (np.floor(values[mask] / 25.0) - low + 1).astype(np.int64)
    return {
        "values": values,
        "mask": mask,
        "levels": levels,
        "spacing": tuple(float(s) for s in image.GetSpacing()[::-1]),
    }


def _time_case(
    extractor: object, image_path: Path, label_path: Path, repeat: int
) -> tuple[int, float, float, dict[str, float]]:
    """Voxel count, pyradiomics time, families time (3D + 2D texture) and per-family times."""
    from functools import partial

    from radharmony.ibsi.families import FAMILIES, compute_families

    t_pyrad = _best_time(partial(extractor.execute, str(image_path), str(label_path)), repeat)
    arrays = _lesion_arrays(image_path, label_path)
    run = partial(
        compute_families,
        arrays["values"],
        arrays["levels"],
        arrays["mask"],
        arrays["mask"],
        arrays["spacing"],
    )
    texture = list(FAMILIES)[5:]
    t_fam = _best_time(lambda: (run("3D"), run("2D", families=texture)), repeat)
    per_family = {
        name: _best_time(partial(run, "3D", families=[name]), repeat) for name in FAMILIES
    }
    return int(arrays["mask"].sum()), t_pyrad, t_fam, per_family


def main() -> int:
    """Run the benchmark and print one line per lesion plus the overall ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import logging

    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.logger.setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor()  # default settings and feature classes
    total_pyrad = total_fam = 0.0
    family_totals: dict[str, float] = {}
    print(f"{'case':<10}{'voxels':>9}{'pyradiomics s':>15}{'families s':>12}{'ratio':>8}")
    for image_path in sorted(args.cases.glob("*_image.nrrd")):
        case = image_path.name.removesuffix("_image.nrrd")
        label_path = image_path.with_name(f"{case}_label.nrrd")
        if not label_path.exists():
            continue
        n_vox, t_pyrad, t_fam, per_family = _time_case(
            extractor, image_path, label_path, args.repeat
        )
        total_pyrad += t_pyrad
        total_fam += t_fam
        for name, seconds in per_family.items():
            family_totals[name] = family_totals.get(name, 0.0) + seconds
        print(f"{case:<10}{n_vox:>9}{t_pyrad:>15.2f}{t_fam:>12.2f}{t_fam / t_pyrad:>8.2f}")
    if total_pyrad == 0:
        print(f"no *_image.nrrd / *_label.nrrd pairs found in {args.cases}")
        return 1
    print(
        f"{'total':<10}{'':>9}{total_pyrad:>15.2f}{total_fam:>12.2f}{total_fam / total_pyrad:>8.2f}"
    )
    print(
        "per family (3D texture), s: " + ", ".join(f"{k} {v:.2f}" for k, v in family_totals.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
