"""Follow-up analysis on simulated visits with known truth: matching, change maps, alignment check.

Usage::

    python benchmarks/bench_longitudinal_synthetic.py [matching|change|registration|all]
        [--subjects 10] [--visits 3] [--voxel 2.0] [--seed 21]

- ``matching``: lesion statuses of ``analyse_followups`` (masks given at every visit) against
  the designed statuses of ``make_longitudinal_cohort`` (new, enlarging, stable, shrinking,
  disappeared), with the given transforms and with registration instead of them.
- ``change``: voxel AUPRC of the change score against the designed change masks for a grid of
  smoothing and neighbourhood sizes (how the defaults were chosen), with one channel (FLAIR) or
  two (FLAIR + T2), against naive subtraction; Dice at the default mirror-FDR threshold.
- ``registration``: the alignment check on true alignments and on the same visits misaligned by
  known shifts and rotations (share passing), and the error of the registration in mm.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.metrics import average_precision_score


def cohort(folder: Path, args: argparse.Namespace):
    from radharmony.datasets import make_longitudinal_cohort

    return make_longitudinal_cohort(
        args.subjects, n_visits=args.visits, seed=args.seed, voxel_mm=args.voxel, out_dir=folder
    )


def matching(data, out: Path) -> pd.DataFrame:
    from radharmony.longitudinal import analyse_followups

    rows = []
    for label, register in (("given transforms", False), ("registration", True)):
        manifest = data.manifest.copy()
        if register:
            manifest["transform"] = ""
        start = time.perf_counter()
        result = analyse_followups(
            manifest, out / label, channels=["T2"], register=register, base_dir=data.out_dir
        )
        seconds = time.perf_counter() - start
        tracks = result.tracks
        for row in data.truth[data.truth["status"] != "present"].itertuples():
            here = tracks[
                (tracks["subject_id"] == row.subject_id) & (tracks["timepoint"] == row.timepoint)
            ]
            if row.status == "disappeared":
                found = here[
                    here["lesion_id"].isna()
                    & here["matched_lesion_ids"]
                    .str.split(";")
                    .apply(lambda ids, t=row.lesion_track_id: str(t) in ids)
                ]
            else:
                found = here[here["lesion_id"] == row.lesion_track_id]
            status = found["status"].iloc[0] if len(found) else "not found"
            rows.append({"alignment": label, "truth": row.status, "found": status})
        failed = len(result.failures)
        print(f"{label}: {seconds:.1f} s for {args.subjects} subjects, {failed} failure(s)")
    table = pd.DataFrame(rows)
    summary = (
        table.assign(correct=table["truth"] == table["found"])
        .groupby(["alignment", "truth"])["correct"]
        .agg(["mean", "size"])
        .rename(columns={"mean": "recovered", "size": "lesions"})
    )
    confusion = pd.crosstab([table["alignment"], table["truth"]], table["found"])
    print(confusion.to_string())
    return summary.reset_index()


def change(data) -> pd.DataFrame:
    from radharmony.longitudinal import ChangeSettings, change_score
    from radharmony.longitudinal._calibrate import mirror_fdr_threshold
    from radharmony.longitudinal._manifest import read_longitudinal_manifest
    from radharmony.longitudinal._subject import SubjectOptions, _lesion_like
    from radharmony.longitudinal._visits import load_subject

    table = read_longitudinal_manifest(data.manifest_path, channels=["T2"])
    rows = []
    for subject_id, group in table.groupby("subject_id", sort=False):
        subject = load_subject(subject_id, group.to_dict("records"), ["T2"], register_missing=False)
        mask = subject.analysis
        for k in range(1, len(subject.visits)):
            t0, t1 = subject.visits[k - 1].timepoint, subject.visits[k].timepoint
            path = data.change_masks[subject_id][(t0, t1)]
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[mask]
            before, after = subject.visits[k - 1].arrays, subject.visits[k].arrays
            naive = after[0][mask] / np.median(after[0][mask]) - before[0][mask] / np.median(
                before[0][mask]
            )
            rows.append(
                {"method": "naive", "channels": 1, "auprc_abs": _ap(truth > 0, np.abs(naive))}
            )
            for smoothing in (0.5, 1.0, 2.0):
                for hood in (5.0, 10.0, 20.0):
                    for n in (1, 2):
                        score = change_score(
                            before[:n],
                            after[:n],
                            mask,
                            subject.spacing,
                            ChangeSettings(smoothing, hood),
                        )[mask]
                        row = {
                            "method": f"smoothing {smoothing:g} mm, neighbourhood {hood:g} mm",
                            "channels": n,
                            "auprc_abs": _ap(truth > 0, np.abs(score)),
                            "auprc_growth": _ap(truth == 1, score),
                            "auprc_shrinkage": _ap(truth == 2, -score),
                        }
                        if (smoothing, hood) == (1.0, 10.0):
                            options = SubjectOptions(out_dir=".", signs=(1.0,) * n)
                            full = np.zeros(mask.shape, dtype=np.float32)
                            full[mask] = score
                            grow = mirror_fdr_threshold(
                                score, 0.05, full[mask & ~_lesion_like(subject, k - 1, options)]
                            )
                            found = score >= grow
                            row["dice_growth_mirror"] = (
                                2
                                * np.sum(found & (truth == 1))
                                / max(found.sum() + np.sum(truth == 1), 1)
                            )
                        rows.append(row)
    table = pd.DataFrame(rows)
    return table.groupby(["method", "channels"]).mean().reset_index()


def _ap(truth: np.ndarray, score: np.ndarray) -> float:
    return float(average_precision_score(truth, score)) if truth.any() else float("nan")


def registration(data) -> pd.DataFrame:
    from radharmony.longitudinal._align import alignment_quality, register, resample

    rows = []
    for subject_id in data.manifest["subject_id"].unique():
        folder = data.out_dir / subject_id
        fixed = sitk.ReadImage(str(folder / "visit1_FLAIR.nii.gz"))
        brain = sitk.ReadImage(str(folder / "brain_mask.nii.gz"))
        inside = sitk.GetArrayFromImage(brain) > 0
        baseline = sitk.GetArrayFromImage(fixed).astype(np.float32)
        moving = sitk.ReadImage(str(folder / "visit2_FLAIR.nii.gz"))
        true = sitk.ReadTransform(str(folder / "visit2_to_common.tfm"))
        for shift, angle in ((0, 0), (1, 0), (2, 0), (3, 0), (0, 2), (0, 3), (5, 5)):
            offset = sitk.Euler3DTransform()
            offset.SetRotation(np.deg2rad(angle), np.deg2rad(angle) / 2, 0.0)
            offset.SetTranslation((float(shift), shift / 2.0, 0.0))
            aligned = resample(moving, fixed, sitk.CompositeTransform([true, offset]))
            mask = inside & (baseline > 0) & (np.nan_to_num(aligned) > 0)
            lncc, margin = alignment_quality(baseline, aligned, mask, fixed)
            rows.append(
                {
                    "misalignment": f"{shift} mm, {angle} deg",
                    "lncc": lncc,
                    "margin": margin,
                    "passes": bool(margin > 0 and lncc >= 0.5),
                }
            )
        start = time.perf_counter()
        found = register(fixed, moving, sitk.Cast(brain, sitk.sitkUInt8))
        seconds = time.perf_counter() - start
        points = np.argwhere(inside)[::40][:, ::-1].astype(float)
        errors = [
            np.linalg.norm(
                np.subtract(
                    found.transform.TransformPoint(
                        fixed.TransformContinuousIndexToPhysicalPoint(p)
                    ),
                    true.TransformPoint(fixed.TransformContinuousIndexToPhysicalPoint(p)),
                )
            )
            for p in points.tolist()
        ]
        aligned = resample(moving, fixed, found.transform)
        mask = inside & (baseline > 0) & (np.nan_to_num(aligned) > 0)
        lncc, margin = alignment_quality(baseline, aligned, mask, fixed)
        rows.append(
            {
                "misalignment": "registered",
                "lncc": lncc,
                "margin": margin,
                "passes": bool(margin > 0 and lncc >= 0.5),
                "error_mean_mm": float(np.mean(errors)),
                "error_max_mm": float(np.max(errors)),
                "seconds": seconds,
            }
        )
    table = pd.DataFrame(rows)
    return table.groupby("misalignment", sort=False).agg(
        {
            c: ["mean", "min", "max"] if c in ("lncc", "margin") else "mean"
            for c in table.columns[1:]
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", nargs="?", default="all")
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--voxel", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        data = cohort(Path(tmp) / "cohort", args)
        if args.section in ("matching", "all"):
            print(matching(data, Path(tmp)).round(3).to_string(index=False))
        if args.section in ("change", "all"):
            print(change(data).round(3).to_string(index=False))
        if args.section in ("registration", "all"):
            print(registration(data).round(3).to_string())
