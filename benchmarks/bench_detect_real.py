"""Detection on the shared real brain MR cases, leave one subject out, against the FLAIR baseline.

Usage::

    python benchmarks/bench_detect_real.py [--data ../shared/data/brain_mr] [--out benchmarks/results]

For each data set (MSLUB: 2 MS patients, FLAIR/T1/T1POST/T2 in MNI space; BraTS 2013: 3 glioma
cases, FLAIR/T1c) every subject is examined by a detector fitted on the other subjects of the
same set, their lesion masks left out (normal-appearing tissue as reference). Nothing is chosen
on these files: every method runs with the package defaults, and the decision threshold comes
from the reference subjects (target: 1 false lesion per reference subject).

Methods, all with the same standardisation, calibration, extent rule and minimum size:

- ``baseline``: histogram-standardised FLAIR intensity (``model="intensity"``), the
  thresholding baseline of Meissen et al. (2021);
- ``detector``: the default model (``model="tail"``: healthy distribution of the locally
  averaged FLAIR);
- ``mixture``: multichannel Gaussian mixture of healthy tissue (``model="mixture"``), gated on
  FLAIR, shown for transparency.

Per subject: voxel AUPRC of the score map in the brain, Dice and lesion-wise recall/precision of
the calibrated detections, localisation hit (the largest detection has more than half of its
voxels in the reference lesions), the best Dice any single voxel threshold reaches (tuned on the
test labels, optimistic: the number Meissen et al. report), and the time to examine the subject.

Writes ``detect_real.json`` and ``detect_real.md``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METHODS = {
    "baseline": {"model": "intensity"},
    "detector": {},
    "mixture": {"model": "mixture", "hyperintense": ["FLAIR"]},
}


def _datasets(root: Path) -> dict[str, pd.DataFrame]:
    mslub = sorted((root / "mslub_mni").glob("patient*"))
    brats = sorted((root / "brats2013").glob("pat*"))
    return {
        "MSLUB": pd.DataFrame(
            {
                "subject_id": [p.name for p in mslub],
                "FLAIR": [str(p / "FLAIR.nii.gz") for p in mslub],
                "T1": [str(p / "T1.nii.gz") for p in mslub],
                "T1POST": [str(p / "T1POST.nii.gz") for p in mslub],
                "T2": [str(p / "T2.nii.gz") for p in mslub],
                "lesion_mask": [str(p / "GOLD_STANDARD.nii.gz") for p in mslub],
            }
        ),
        "BraTS": pd.DataFrame(
            {
                "subject_id": [p.name for p in brats],
                "FLAIR": [str(p / "Flair_subtrMeanDivStd.nii.gz") for p in brats],
                "T1c": [str(p / "T1c_subtrMeanDivStd.nii.gz") for p in brats],
                "brain_mask": [str(p / "brainmask.nii.gz") for p in brats],
                "lesion_mask": [str(p / "OTMultiClass.nii.gz") for p in brats],
            }
        ),
    }


def _auprc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, score))


def _best_dice(truth: np.ndarray, score: np.ndarray) -> float:
    """Best voxel Dice over thresholds (tuned on the test labels: an optimistic bound)."""
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(truth[order])
    k = np.arange(1, score.size + 1)
    dice = 2 * hits / (k + truth.sum())
    return float(dice.max())


def _localisation(labels: np.ndarray, truth: np.ndarray, lesions: pd.DataFrame) -> float:
    if lesions.empty:
        return 0.0
    largest = int(lesions.loc[lesions["voxels"].idxmax(), "lesion_id"])
    inside = labels == largest
    return float(truth[inside].mean() > 0.5)


def examine(table: pd.DataFrame, channels: list[str], index: int, method: str) -> dict[str, Any]:
    """Fit on every subject but ``index``, examine ``index``; return its metrics."""
    import SimpleITK as sitk

    from radharmony.detect import HealthyTissueDetector
    from radharmony.detect._subject import load_subject

    reference = table.drop(index=index)
    row = table.iloc[index]
    detector = HealthyTissueDetector(channels, **METHODS[method])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one reference subject: in-sample
        detector.fit(reference)
    fit_s = time.perf_counter() - start
    images = {c: row[c] for c in channels}
    masks = {"brain_mask": row.get("brain_mask"), "lesion_mask": row["lesion_mask"]}
    start = time.perf_counter()
    found = detector.score_subject(images, subject_id=row["subject_id"], **masks)
    examine_s = time.perf_counter() - start
    subject = load_subject(images, channels, **masks)
    score = sitk.GetArrayFromImage(found.abnormality)[subject.brain]
    truth = subject.lesion[subject.brain]
    labels = sitk.GetArrayFromImage(found.labels)
    summary = found.summary
    return {
        "subject": row["subject_id"],
        "method": method,
        "reference_subjects": len(reference),
        "auprc": _auprc(truth, score),
        "dice": summary["voxel_dice"],
        "lesion_recall": summary["lesion_recall"],
        "lesion_precision": summary["lesion_precision"],
        "detections": summary["n_lesions"],
        "reference_lesions": summary["reference_lesions"],
        "localisation_hit": _localisation(labels, subject.lesion, found.lesions),
        "best_threshold_dice": _best_dice(truth, score),
        "fit_s": fit_s,
        "examine_s": examine_s,
    }


def _markdown(rows: pd.DataFrame) -> str:
    lines = [
        "| data | subject | method | AUPRC | Dice | lesion recall | lesion precision | "
        "largest detection in lesion | best-threshold Dice (tuned on test labels) | "
        "time per subject |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.itertuples():
        lines.append(
            f"| {r.data} | {r.subject} | {r.method} | {r.auprc:.3f} | {r.dice:.3f} | "
            f"{r.lesion_recall:.2f} | {r.lesion_precision:.2f} | {int(r.localisation_hit)} | "
            f"{r.best_threshold_dice:.3f} | {r.examine_s:.1f} s |"
        )
    means = rows.groupby(["data", "method"], sort=False)[
        ["auprc", "dice", "lesion_recall", "lesion_precision", "best_threshold_dice", "examine_s"]
    ].mean()
    lines += [
        "",
        "| data | method | mean AUPRC | mean Dice | mean lesion recall | mean lesion "
        "precision | mean best-threshold Dice | mean time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (data, method), r in means.iterrows():
        lines.append(
            f"| {data} | {method} | {r.auprc:.3f} | {r.dice:.3f} | {r.lesion_recall:.2f} | "
            f"{r.lesion_precision:.2f} | {r.best_threshold_dice:.3f} | {r.examine_s:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain_mr"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"shared brain MR data not found at {args.data}")
    rows = []
    for name, table in _datasets(args.data).items():
        channels = [
            c for c in table.columns if c not in ("subject_id", "brain_mask", "lesion_mask")
        ]
        for index in range(len(table)):
            for method in args.methods:
                result = examine(table, channels, index, method)
                rows.append({"data": name, **result})
                print(json.dumps(rows[-1], default=float), flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detect_real.json").write_text(
        json.dumps(frame.to_dict("records"), indent=2, default=float) + "\n", encoding="utf-8"
    )
    (args.out / "detect_real.md").write_text(_markdown(frame), encoding="utf-8")
    print(_markdown(frame))


if __name__ == "__main__":
    main()
