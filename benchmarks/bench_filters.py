"""Time filtered-image features per lesion: radharmony's IBSI 2 filters against pyradiomics.

Usage::

    python benchmarks/bench_filters.py [--cases DIR] [--ibsi2 DIR] [--repeat N] [--out FILE]

1. Same lesions, same filters as pyradiomics' ``LoG`` (sigma 1, 2, 3 mm) and ``Wavelet`` (the 8
   level-1 sub-bands of coif1) image types, first-order statistics of each filtered image, both
   after resampling to 1 mm (linear): pyradiomics' ``RadiomicsFeatureExtractor`` with only those
   image types and the ``firstorder`` class enabled, against
   :func:`radharmony.ibsi.compute_lesion_features` with the IBSI LoG (3D, truncated at 4 sigma,
   no scale normalisation) and the 8 undecimated coif1 sub-bands (mirror boundary), each giving
   the 18 IBSI intensity statistics. Lesions: the pyradiomics example cases (label 1) and the
   GTV of the IBSI 2 CT radiomics phantom. Ratio = radharmony time / pyradiomics time (best of
   ``--repeat`` runs, both in this process, one thread).
2. The full IBSI 2 phase-2 check of configurations A and B (``radharmony ibsi-check
   --ibsi2-config``): wall time and, per filter, the time of its response on the lesion.

The two sides differ in what they compute: pyradiomics filters the resampled bounding box plus
5 voxels (its LoG is a recursive Gaussian with scale normalisation, its wavelet periodic),
radharmony a crop as wide as each filter's support, so that no crop edge reaches the lesion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIGMAS = (1.0, 2.0, 3.0)
SUBBANDS = ("LLL", "LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH")


def _best(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _lesions(cases: Path, ibsi2: Path) -> list[tuple[str, Path, Path]]:
    found = [
        (
            path.name.removesuffix("_image.nrrd"),
            path,
            path.with_name(path.name.replace("_image", "_label")),
        )
        for path in sorted(cases.glob("*_image.nrrd"))
    ]
    phantom = ibsi2 / "phantoms" / "ibsi_2_ct_radiomics_phantom"
    if phantom.is_dir():
        found.append(
            ("ibsi2_ct_gtv", phantom / "image" / "phantom.nii.gz", phantom / "mask" / "mask.nii.gz")
        )
    return found


def _pyradiomics_extractor() -> object:
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(
        resampledPixelSpacing=[1.0, 1.0, 1.0], interpolator="sitkLinear", binCount=32
    )
    extractor.disableAllImageTypes()
    extractor.enableImageTypes(LoG={"sigma": list(SIGMAS)}, Wavelet={})
    extractor.disableAllFeatures()
    extractor.enableFeatureClassByName("firstorder")
    return extractor


def _radharmony_settings() -> object:
    from radharmony.ibsi import ExtractionSettings

    filters = [{"filter": "log", "sigma_mm": s} for s in SIGMAS]
    filters += [{"filter": "wavelet", "wavelet": "coif1", "subband": b} for b in SUBBANDS]
    return ExtractionSettings(
        name="bench_filters",
        resampled_spacing=(1.0, 1.0, 1.0),
        image_interpolator="linear",
        feature_classes=("statistics",),
        filters=tuple(filters),  # type: ignore[arg-type]
    )


def compare_with_pyradiomics(cases: Path, ibsi2: Path, repeat: int) -> list[dict]:
    """Per lesion: seconds for pyradiomics and radharmony, and their ratio."""
    import SimpleITK as sitk

    from radharmony.ibsi import compute_lesion_features

    extractor = _pyradiomics_extractor()
    settings = _radharmony_settings()
    rows = []
    for name, image_path, mask_path in _lesions(cases, ibsi2):
        image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
        mask = sitk.Cast(sitk.ReadImage(str(mask_path)) > 0, sitk.sitkUInt8)
        mask.CopyInformation(image)
        py_columns = extractor.execute(image, mask, label=1)  # type: ignore[attr-defined]
        ours = compute_lesion_features(image, mask, settings)  # type: ignore[arg-type]
        py_time = _best(lambda: extractor.execute(image, mask, label=1), repeat)  # type: ignore[attr-defined]  # noqa: B023
        our_time = _best(lambda: compute_lesion_features(image, mask, settings), repeat)  # type: ignore[arg-type]  # noqa: B023
        rows.append(
            {
                "lesion": name,
                "voxels": int(sitk.GetArrayViewFromImage(mask).sum()),
                "pyradiomics_s": round(py_time, 3),
                "radharmony_s": round(our_time, 3),
                "ratio": round(our_time / py_time, 2),
                "pyradiomics_features": sum(
                    1 for c in py_columns if c.startswith(("log-", "wavelet-"))
                ),
                "radharmony_features": sum(1 for c in ours if "__" in c),
            }
        )
        print(rows[-1], flush=True)
    return rows


def time_phase2(ibsi2: Path) -> dict:
    """Wall time of the phase-2 check (A, B) and per-filter response time on the lesion."""
    import SimpleITK as sitk

    from radharmony.ibsi.filters.ibsi2 import check_phase2, phase2_settings
    from radharmony.ibsi.processing import process_lesion

    phantom = ibsi2 / "phantoms" / "ibsi_2_ct_radiomics_phantom"
    image_path, mask_path = phantom / "image" / "phantom.nii.gz", phantom / "mask" / "mask.nii.gz"
    reference = ibsi2 / "phase2_reference_values" / "reference_values_config_A.csv"
    image = sitk.ReadImage(str(image_path), sitk.sitkFloat64)
    mask = sitk.Cast(sitk.ReadImage(str(mask_path)) > 0, sitk.sitkUInt8)
    out: dict = {}
    for config in ("A", "B"):
        start = time.perf_counter()
        result = check_phase2(image_path, mask_path, config, reference)
        total = time.perf_counter() - start
        settings = phase2_settings(config)
        base = _best(
            lambda s=settings: process_lesion(image, mask, dataclasses.replace(s, filters=())), 1
        )
        per_filter = {}
        for image_filter in settings.filters:
            one = dataclasses.replace(settings, filters=(image_filter,))
            elapsed = _best(lambda one=one: process_lesion(image, mask, one), 1)
            per_filter[image_filter.label] = round(elapsed - base, 2)
        out[config] = {
            "total_s": round(total, 1),
            "statuses": result["status"].value_counts().to_dict(),
            "processing_without_filters_s": round(base, 2),
            "filter_s": per_filter,
        }
        print(config, out[config], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=SHARED / "pyradiomics_cases")
    parser.add_argument("--ibsi2", type=Path, default=SHARED / "ibsi2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        rows = compare_with_pyradiomics(args.cases, args.ibsi2, args.repeat)
        total_py = sum(r["pyradiomics_s"] for r in rows)
        total_ours = sum(r["radharmony_s"] for r in rows)
        print(
            f"all lesions: pyradiomics {total_py:.2f} s, radharmony {total_ours:.2f} s, "
            f"ratio {total_ours / total_py:.2f}"
        )
        phase2 = time_phase2(args.ibsi2) if args.ibsi2.is_dir() else {}
    if args.out is not None:
        args.out.write_text(
            json.dumps({"lesions": rows, "phase2": phase2}, indent=1) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
