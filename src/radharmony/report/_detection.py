"""Report section of the detection stage: calibration check, counts, overlays per subject."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony.report._html import escape, figure_html, table_html

_MAX_OVERLAYS = 24
_PER_FIGURE = 12
_SUBJECT_COLUMNS = [
    "subject_id",
    "status",
    "n_lesions",
    "lesion_volume_mm3",
    "voxel_dice",
    "lesion_recall",
    "lesion_precision",
]


def detection_section_body(detection: Any) -> str:
    """Return the HTML of the detection section of a ``DetectionResult``."""
    detector = detection.detector
    calibration = detector.calibration_
    parts = [f"<p>{escape(detection_methods(detection))}</p>"]
    parts.append(_calibration_html(detection, calibration))
    subjects = detection.subjects[[c for c in _SUBJECT_COLUMNS if c in detection.subjects]]
    parts.append("<h3>Subjects</h3>")
    if subjects["voxel_dice"].notna().any():
        scored = subjects[subjects["voxel_dice"].notna()]
        parts.append(
            f"<p>Against the reference masks given ({len(scored)} subject(s)): mean voxel Dice "
            f"{scored['voxel_dice'].mean():.3f}, lesion-wise recall "
            f"{scored['lesion_recall'].mean():.3f}, precision "
            f"{scored['lesion_precision'].mean():.3f} (means over subjects).</p>"
        )
    parts.append(table_html(subjects))
    if len(detection.failures):
        parts.append(
            f"<div class='warning'>{len(detection.failures)} subject(s) could not be processed:"
            "</div>"
        )
        parts.append(table_html(detection.failures))
    overlays = overlay_figures(detection)
    if overlays:
        parts.append("<h3>Detections (red) and reference lesions (green)</h3>")
        parts += [
            figure_html(figure, "Axial slice through each subject's largest detection.")
            for figure in overlays
        ]
    return "".join(parts)


def detection_methods(detection: Any) -> str:
    """Return a methods paragraph describing the detection and its calibration."""
    detector = detection.detector
    calibration = detector.calibration_
    params = detector.get_params()
    hyper = detector.hyperintense_
    model = {
        "tail": f"the healthy distribution of the locally averaged intensity (Gaussian, SD "
        f"{params['neighbourhood_mm']} mm) of {', '.join(hyper)} (one-dimensional Gaussian "
        "mixtures; evidence added over channels)",
        "mixture": "a Gaussian mixture of the locally averaged intensities of all channels "
        "(negative log-density)",
        "intensity": f"the standardised intensity of {params['channels'][0]}",
    }[params["model"]]
    if params["target"] == "voxel_fdr":
        rule = (
            f"voxels rejected by the Benjamini-Hochberg procedure at a false discovery rate of "
            f"{params['fdr_level']:g} on conformal p-values against held-out healthy voxels"
        )
    else:
        rule = (
            f"components whose mass (sum of the scores' excess over the extent threshold) reached "
            f"the threshold at which held-out reference subjects "
            f"averaged {params['false_lesion_rate']:g} false lesion(s) per subject"
        )
    folds = "cross-fitted" if calibration.cross_fitted else "in-sample (one reference subject)"
    return (
        f"Lesions were detected as regions diverging from a model of healthy tissue learnt on "
        f"{len(calibration.subjects)} reference subject(s), voxels of their lesion masks "
        f"excluded. Channels ({', '.join(map(str, params['channels']))}) were "
        f"histogram-standardised (Nyúl and Udupa; landmarks at the "
        f"{', '.join(f'{p:g}' for p in params['landmarks'])} percentiles). The abnormality of "
        f"a voxel was derived from {model}. Candidate lesions were the "
        f"{params['connectivity']}-connected components of voxels above the "
        f"{params['extent_quantile']:.0%} quantile of held-out healthy voxel scores and at "
        f"least {params['min_lesion_mm3']:g} mm³ (peak and mass counted deeper than "
        f"{params['edge_margin_mm']:g} mm in the brain mask); reported lesions were the {rule}. "
        f"Held-out scores were {folds}. Each lesion's p-value is the conformal p-value of its "
        "mass among the false lesions of held-out reference subjects."
    )


def _calibration_html(detection: Any, calibration: Any) -> str:
    check = detection.calibration
    parts = ["<h3>Calibration on held-out reference subjects</h3>"]
    if len(check) and (check["subject_id"] == "all").any():
        summary = check[check["subject_id"] == "all"].iloc[0]
        css = "ok" if summary["holds"] else "warning"
        verdict = "consistent with" if summary["holds"] else "above"
        parts.append(
            f"<div class='{css}'>False lesions per reference subject, each counted at a "
            f"threshold chosen without it: {summary['false_events']:.2f} (95 % CI "
            f"{summary['ci_low']:.2f}–{summary['ci_high']:.2f}, exact Poisson), "
            f"{verdict} the target of {summary['target']:g}.</div>"
        )
        parts.append(table_html(check.drop(columns=["holds"], errors="ignore")))
    else:
        parts.append(
            "<div class='warning'>Fewer than two reference subjects: the false-lesion rate "
            "could not be measured on held-out subjects.</div>"
        )
    if calibration.fdr_check:
        parts.append(
            "<p>Voxel-level Benjamini-Hochberg procedure on each held-out reference subject "
            "(false = outside its lesion mask):</p>"
        )
        parts.append(table_html(pd.DataFrame(calibration.fdr_check)))
    return "".join(parts)


def overlay_figures(detection: Any) -> list[Any]:
    """Return figures of each subject's largest detection over its first channel."""
    manifest_path = detection.files.get("manifest")
    if manifest_path is None or not Path(manifest_path).is_file():
        return []
    manifest = pd.read_csv(manifest_path)
    if manifest.empty:
        return []
    folder = Path(manifest_path).parent
    rows = manifest.head(_MAX_OVERLAYS).to_dict("records")
    return [
        _overlay_figure(rows[start : start + _PER_FIGURE], folder, detection.lesions)
        for start in range(0, len(rows), _PER_FIGURE)
    ]


def _overlay_figure(rows: list[dict[str, Any]], folder: Path, lesions: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    columns = min(4, len(rows))
    lines = int(np.ceil(len(rows) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(3.0 * columns, 3.0 * lines), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, row in zip(axes.ravel(), rows, strict=False):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["image"])))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["mask"])))
        reference = None
        if isinstance(row.get("reference_mask"), str) and row["reference_mask"]:
            reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["reference_mask"])))
        own = lesions[lesions["subject_id"].astype(str) == str(row["subject_id"])]
        largest = int(own.loc[own["voxels"].idxmax(), "lesion_id"]) if len(own) else 1
        z = int(np.argmax((labels == largest).sum(axis=(1, 2))))
        low, high = np.percentile(image[image != 0], [1, 99]) if (image != 0).any() else (0, 1)
        axis.imshow(image[z], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        axis.contour(labels[z] > 0, levels=[0.5], colors="#e74c3c", linewidths=0.8)
        if reference is not None and (reference[z] != 0).any():
            axis.contour(reference[z] != 0, levels=[0.5], colors="#2ecc71", linewidths=0.8)
        axis.set_title(f"{row['subject_id']} (z={z})", fontsize=8)
    figure.tight_layout()
    return figure
