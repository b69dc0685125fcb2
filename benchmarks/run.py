"""Performance benchmark of radharmony, reported as ratios against baselines timed in the same run.

Run from a checkout with the package installed::

    python benchmarks/run.py [--out benchmarks/results] [--quick]

Sections (each timed against its own baseline, on this machine, in this run):

1. extraction (200 subjects): ``extract_features`` with ``n_jobs=1`` and ``n_jobs=<all cores>`` versus a plain
   sequential loop calling pyradiomics' ``RadiomicsFeatureExtractor.execute`` once per lesion
   with equivalent settings; overhead at one job, speed-up and parallel efficiency;
2. multi-lesion images: reading each image once versus once per lesion;
3. ComBat fit + transform versus neuroCombat alone, time and peak traced memory;
4. SHAP values of the default model versus the plain SHAP explainer on the bare classifier;
5. scaling: extraction time versus cohort size (time per subject should stay flat).

Writes ``results.json`` and ``results.md`` (the table quoted in README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def _peak_memory(func: Callable[[], Any]) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 2**20


def _cohort(folder: Path, n_subjects: int) -> Path:
    from radharmony.datasets import make_cohort

    return make_cohort(n_subjects, 3, 0, folder).manifest_path


def _plain_pyradiomics_loop(manifest: Path) -> int:
    """Baseline: the loop a pyradiomics user writes, one ``execute`` per lesion label."""
    import logging

    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(
        binCount=32, resampledPixelSpacing=[1.0, 1.0, 1.0], interpolator="sitkLinear"
    )
    table = pd.read_csv(manifest)
    n = 0
    for row in table.itertuples():
        image = sitk.ReadImage(str(manifest.parent / row.image))
        mask = sitk.ReadImage(str(manifest.parent / row.mask))
        labels = np.unique(sitk.GetArrayViewFromImage(mask))
        for label in labels[labels > 0]:
            extractor.execute(image, mask, label=int(label))
            n += 1
    return n


def bench_extraction(folder: Path, n_subjects: int) -> dict[str, Any]:
    from radharmony import extract_features

    manifest = _cohort(folder / "extraction", n_subjects)
    cores = os.cpu_count() or 1
    t_plain, n_lesions = _timed(lambda: _plain_pyradiomics_loop(manifest))
    t_one, _ = _timed(lambda: extract_features(manifest, n_jobs=1, progress=False))
    t_all, _ = _timed(lambda: extract_features(manifest, n_jobs=cores, progress=False))
    return {
        "subjects": n_subjects,
        "lesions": n_lesions,
        "cores": cores,
        "plain_pyradiomics_s": t_plain,
        "radharmony_1_job_s": t_one,
        "radharmony_all_jobs_s": t_all,
        "overhead_1_job": t_one / t_plain - 1.0,
        "speedup_all_jobs": t_one / t_all,
        "parallel_efficiency": t_one / t_all / cores,
    }


def bench_multi_lesion_reads(folder: Path) -> dict[str, Any]:
    from radharmony.io import read_image

    manifest = _cohort(folder / "extraction", 40)
    table = pd.read_csv(manifest)
    lesions = pd.read_csv(manifest.parent / "ground_truth.csv").groupby("subject_id").size()
    paths = [(manifest.parent / r.image, lesions[r.subject_id]) for r in table.itertuples()]
    t_once, _ = _timed(lambda: [read_image(p) for p, _ in paths], repeat=3)
    t_each, _ = _timed(lambda: [read_image(p) for p, k in paths for _ in range(k)], repeat=3)
    return {
        "images": len(paths),
        "lesions": int(sum(k for _, k in paths)),
        "read_once_s": t_once,
        "read_per_lesion_s": t_each,
        "saving_ratio": t_each / t_once,
    }


def bench_combat(n_rows: int, n_features: int = 1000) -> dict[str, Any]:
    import contextlib
    import io

    from neuroCombat import neuroCombat

    from radharmony.harmonize import ComBat

    rng = np.random.default_rng(0)
    batch = np.repeat(["a", "b", "c", "d"], n_rows // 4)
    shift = rng.normal(0, 1, (4, n_features))[pd.factorize(batch)[0]]
    data = rng.normal(0, 1, (n_rows, n_features)) + shift
    covars = pd.DataFrame({"batch": batch})

    def engine() -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return neuroCombat(dat=data.T.copy(), covars=covars, batch_col="batch")

    def ours() -> Any:
        return ComBat().fit(data, batch=batch).transform(data, batch=batch)

    t_engine, mem_engine = _peak_memory(engine)
    t_ours, mem_ours = _peak_memory(ours)
    return {
        "rows": n_rows,
        "features": n_features,
        "neurocombat_s": t_engine,
        "radharmony_s": t_ours,
        "time_ratio": t_ours / t_engine,
        "neurocombat_peak_mib": mem_engine,
        "radharmony_peak_mib": mem_ours,
        "memory_ratio": mem_ours / mem_engine,
    }


def bench_shap(n_rows: int = 1000, n_features: int = 100) -> dict[str, Any]:
    import shap

    from radharmony import build_pipeline, explain
    from radharmony.datasets import make_feature_table

    table = make_feature_table(n_rows, n_features=n_features, n_scanners=1, seed=0)
    X = table.filter(regex=r"^f\d+$")
    y = table["label"].to_numpy()
    model = build_pipeline("logistic_l2", harmonize=None).fit(X, y)
    t_ours, _ = _timed(lambda: explain(model, X))
    # The plain user's baseline: SHAP's own explainer on the fitted classifier, on the features
    # the pipeline hands it (the calibrated model wraps the fitted pipeline).
    fitted = model.pipeline_
    classifier = fitted[-1]
    transformed = fitted[:-1].transform(X)
    t_plain, _ = _timed(lambda: shap.Explainer(classifier, transformed)(transformed))
    return {
        "rows": n_rows,
        "features": n_features,
        "radharmony_explain_s": t_ours,
        "plain_shap_on_classifier_s": t_plain,
        "time_ratio": t_ours / t_plain,
    }


def bench_scaling(folder: Path, sizes: list[int]) -> dict[str, Any]:
    from radharmony import extract_features

    cores = os.cpu_count() or 1
    rows = []
    for n in sizes:
        manifest = _cohort(folder / f"scaling_{n}", n)
        seconds, _ = _timed(lambda m=manifest: extract_features(m, n_jobs=cores, progress=False))
        rows.append({"subjects": n, "seconds": seconds, "seconds_per_subject": seconds / n})
    per_subject = [r["seconds_per_subject"] for r in rows]
    return {"points": rows, "per_subject_max_over_min": max(per_subject) / min(per_subject)}


def _markdown(results: dict[str, Any]) -> str:
    lines = ["| benchmark | baseline | radharmony | ratio | target |", "|---|---|---|---|---|"]
    ext = results.get("extraction")
    if ext:
        lines.append(
            f"| extraction, {ext['lesions']} lesions, 1 job | plain pyradiomics loop "
            f"{ext['plain_pyradiomics_s']:.1f} s | {ext['radharmony_1_job_s']:.1f} s | "
            f"overhead {ext['overhead_1_job']:+.1%} | < +10 % |"
        )
        lines.append(
            f"| extraction, {ext['cores']} jobs | radharmony 1 job {ext['radharmony_1_job_s']:.1f} s "
            f"| {ext['radharmony_all_jobs_s']:.1f} s | speed-up {ext['speedup_all_jobs']:.2f}x, "
            f"efficiency {ext['parallel_efficiency']:.0%} | >= 85 % |"
        )
    reads = results.get("multi_lesion_reads")
    if reads:
        lines.append(
            f"| {reads['images']} images / {reads['lesions']} lesions | read per lesion "
            f"{reads['read_per_lesion_s']:.2f} s | read once {reads['read_once_s']:.2f} s | "
            f"{reads['saving_ratio']:.2f}x fewer seconds | read once |"
        )
    for item in results.get("combat", []):
        lines.append(
            f"| ComBat fit+transform {item['rows']} x {item['features']} | neuroCombat "
            f"{item['neurocombat_s']:.2f} s, {item['neurocombat_peak_mib']:.0f} MiB | "
            f"{item['radharmony_s']:.2f} s, {item['radharmony_peak_mib']:.0f} MiB | time "
            f"{item['time_ratio']:.2f}x, memory {item['memory_ratio']:.2f}x | <= 1.5x |"
        )
    shap_result = results.get("shap")
    if shap_result:
        lines.append(
            f"| SHAP {shap_result['rows']} x {shap_result['features']} | plain SHAP "
            f"{shap_result['plain_shap_on_classifier_s']:.2f} s | "
            f"{shap_result['radharmony_explain_s']:.2f} s | {shap_result['time_ratio']:.2f}x | - |"
        )
    scaling = results.get("scaling")
    if scaling:
        points = ", ".join(f"{p['subjects']}: {p['seconds']:.1f} s" for p in scaling["points"])
        lines.append(
            f"| scaling (subjects: time) | - | {points} | per-subject time max/min "
            f"{scaling['per_subject_max_over_min']:.2f} | ~1 (linear) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="sections to run: extraction reads combat shap scaling",
    )
    args = parser.parse_args()
    sections = set(args.only or ["extraction", "reads", "combat", "shap", "scaling"])
    results: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {
        "extraction": lambda folder: bench_extraction(folder, 12 if args.quick else 200),
        "reads": lambda folder: bench_multi_lesion_reads(folder),
        "combat": lambda folder: [
            bench_combat(n) for n in ([1000] if args.quick else [1000, 10000])
        ],
        "shap": lambda folder: bench_shap(200 if args.quick else 1000),
        "scaling": lambda folder: bench_scaling(
            folder, [10, 20, 40] if args.quick else [50, 100, 200, 400]
        ),
    }
    keys = {"reads": "multi_lesion_reads"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in runs.items():
            if name in sections:
                results[keys.get(name, name)] = run(Path(tmp))
                # Written after every section, so a failure late in the run keeps the rest.
                _write(args.out, results)
    print(_markdown(results))


def _write(out: Path, results: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(_markdown(results), encoding="utf-8")


if __name__ == "__main__":
    main()
