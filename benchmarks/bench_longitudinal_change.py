"""Change detection on the shared longitudinal MS patients versus naive subtraction.

Usage::

    python benchmarks/bench_longitudinal_change.py [--data ../shared/data] [--out DIR]

Per patient of ``brain_mr/ms_longitudinal`` (two visits, ITK transforms into a common space, a
brain mask and a ground-truth lesion-change mask on the common grid):

- **naive**: follow-up minus baseline FLAIR, each divided by its median in the brain (the
  anchor of the issue; its published voxel AUPRC on four patients: 0.37, 0.003, 0.001, 0.15);
- **radharmony** (FLAIR, and FLAIR + T2): the change score of ``analyse_followups``.

Metrics inside the brain mask (radharmony's score counts as 0 where it does not measure):
voxel AUPRC of the signed score (growth positive, as the anchor) and of its absolute value (the
ground truth marks growth and shrinkage alike), and voxel Dice of the thresholded change
(growth or shrinkage). Thresholds never see the patient's own labels:

- radharmony, label-free: the default per-subject mirror FDR at 0.05 (``mirror``);
- radharmony, reference: the other patient's unchanged voxels (its ground truth left out)
  calibrate a voxel FDR of 0.05 with conformal p-values (``reference``);
- both methods, *other-patient best*: the threshold (on the absolute score) that maximises
  Dice on the other patient, applied unchanged (the usual "tuned on training data" protocol).

Run time per patient (alignment, score, thresholds) is reported against the naive subtraction.
The shared patients check the method; other patients of the same set will judge it, so nothing
here was tuned on them (the score's settings were chosen on the synthetic cohort, see
``bench_longitudinal_synthetic.py``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.metrics import average_precision_score

PATIENTS = ("patient01", "patient03")


def manifest(root: Path, channels: bool) -> pd.DataFrame:
    """Return the longitudinal manifest of the shared patients (paths absolute)."""
    rows = []
    for patient in PATIENTS:
        folder = root / patient
        for study in (1, 2):
            row = {
                "subject_id": patient,
                "timepoint": study,
                "image": str(folder / f"study{study}_FLAIR.nii.gz"),
                "transform": str(folder / f"study{study}_FLAIR_to_common_space.txt"),
                "reference_grid": str(folder / "gt.nii.gz"),
                "brain_mask": str(folder / "brainmask_common_space.nii.gz"),
                "change_mask": str(folder / "gt.nii.gz") if study == 2 else "",
            }
            if channels:
                row["T2"] = str(folder / f"study{study}_T2W.nii.gz")
                row["T2_transform"] = str(folder / f"study{study}_T2W_intrastudy_to_FLAIR.txt")
            rows.append(row)
    return pd.DataFrame(rows)


def naive(root: Path, patient: str) -> np.ndarray:
    """Return the naive difference of median-normalised FLAIR on the common grid."""
    folder = root / patient
    grid = sitk.ReadImage(str(folder / "gt.nii.gz"))
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz")))
    images = []
    for study in (1, 2):
        image = sitk.Cast(sitk.ReadImage(str(folder / f"study{study}_FLAIR.nii.gz")), 8)
        transform = sitk.ReadTransform(str(folder / f"study{study}_FLAIR_to_common_space.txt"))
        array = sitk.GetArrayFromImage(sitk.Resample(image, grid, transform, sitk.sitkLinear, 0))
        images.append(array / np.median(array[brain > 0]))
    return images[1] - images[0]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.sum(a & b) / max(np.sum(a) + np.sum(b), 1))


def best_threshold(score: np.ndarray, truth: np.ndarray) -> float:
    """Return the threshold on |score| maximising Dice (searched over quantiles)."""
    values = np.abs(score)
    candidates = np.quantile(values[values > 0], np.linspace(0.9, 0.99999, 400))
    scores = [dice(values >= t, truth) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def run(root: Path, out: Path) -> pd.DataFrame:
    from radharmony.longitudinal import analyse_followups, calibrate_change

    rows = []
    maps: dict[tuple[str, str], np.ndarray] = {}
    info: dict[tuple[str, str], dict] = {}
    truths, brains = {}, {}
    for patient in PATIENTS:
        folder = root / patient
        truths[patient] = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "gt.nii.gz"))) > 0
        brains[patient] = (
            sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz")))
            > 0
        )
        start = time.perf_counter()
        maps[(patient, "naive")] = naive(root, patient)
        info[(patient, "naive")] = {"seconds": time.perf_counter() - start}
    for label, channels in (("FLAIR", []), ("FLAIR+T2", ["T2"])):
        table = manifest(root, bool(channels))
        for patient in PATIENTS:
            start = time.perf_counter()
            result = analyse_followups(
                table[table["subject_id"] == patient], out / label, channels=channels
            )
            seconds = time.perf_counter() - start
            if len(result.failures):
                raise RuntimeError(result.failures.to_string())
            pair = result.pairs.iloc[0]
            maps[(patient, label)] = sitk.GetArrayFromImage(sitk.ReadImage(pair.change_map))
            other = table[table["subject_id"] != patient]
            reference = calibrate_change(other, target="fdr", level=0.05, channels=channels)
            score = maps[(patient, label)]
            inside = score != 0
            grow, shrink = reference.thresholds(score[inside])
            info[(patient, label)] = {
                "seconds": seconds,
                "mirror": (pair.threshold_growth, pair.threshold_shrinkage),
                "reference": (grow, shrink),
                "qc_lncc": float(result.registration["qc_lncc"].dropna().iloc[0]),
                "qc_pass": bool(result.registration["qc_pass"].dropna().iloc[0]),
            }
    for method in ("naive", "FLAIR", "FLAIR+T2"):
        for patient in PATIENTS:
            other = PATIENTS[1 - PATIENTS.index(patient)]
            brain, truth = brains[patient], truths[patient] & brains[patient]
            score = maps[(patient, method)]
            row = {
                "patient": patient,
                "method": method,
                "auprc_signed": average_precision_score(truth[brain], score[brain]),
                "auprc_abs": average_precision_score(truth[brain], np.abs(score[brain])),
                "prevalence": float(truth[brain].mean()),
                "seconds": info[(patient, method)]["seconds"],
            }
            cut = best_threshold(maps[(other, method)] * brains[other], truths[other])
            row["dice_other_patient_best"] = dice((np.abs(score) >= cut) & brain, truth)
            if method != "naive":
                for name in ("mirror", "reference"):
                    grow, shrink = info[(patient, method)][name]
                    found = ((score >= grow) | (score <= -shrink)) & brain
                    row[f"dice_{name}"] = dice(found, truth)
                    row[f"threshold_{name}"] = f"{grow:.2f}/{shrink:.2f}"
                row["qc_lncc"] = info[(patient, method)]["qc_lncc"]
                row["qc_pass"] = info[(patient, method)]["qc_pass"]
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = args.data / "brain_mr" / "ms_longitudinal"
    if not root.is_dir():
        raise SystemExit(f"{root} not found: the shared data are needed")
    with tempfile.TemporaryDirectory() as tmp:
        table = run(root, args.out or Path(tmp))
    pd.set_option("display.width", 200)
    print(table.round(4).to_string(index=False))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "longitudinal_change.json").write_text(
            json.dumps(table.to_dict("records"), indent=2, default=str), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
