"""Synthetic multi-channel brain MR cohort: healthy subjects and patients from several scanners."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony._version import __version__
from radharmony.datasets import _brain_anatomy as an
from radharmony.errors import SettingsError

BRAIN_MANIFEST_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "group",
    "diagnosis",
    "FLAIR",
    "T1",
    "T2",
    "T1c",
    "brain_mask",
    "lesion_mask",
    "scanner",
    "age",
    "sex",
)
BRAIN_GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_id",
    "lesion_class",
    "scanner",
    "n_voxels",
    "volume_mm3",
    "centre_x_mm",
    "centre_y_mm",
    "centre_z_mm",
    "radius_mm",
    "contrast",
)
_SCANNER_STREAM = 0
_SUBJECT_STREAM = 1
_MAX_SCANNERS = 26


@dataclass(frozen=True)
class SyntheticBrainCohort:
    """Paths and tables of a cohort written by :func:`make_brain_cohort`.

    Attributes
    ----------
    out_dir : pathlib.Path
        Folder holding everything below.
    manifest_path, healthy_path, patients_path, ground_truth_path, metadata_path : Path
        ``subjects.csv`` (every subject), ``healthy.csv`` and ``patients.csv`` (the same rows
        split by group; usable as ``radharmony detect`` manifests), ``ground_truth.csv`` and
        ``cohort.json``.
    manifest : pandas.DataFrame
        One row per subject (paths relative to ``out_dir``), see ``BRAIN_MANIFEST_COLUMNS``:
        ``group`` (healthy / patient) and ``diagnosis`` (healthy, ms or tumour) are covariates
        a study can use as its target.
    ground_truth : pandas.DataFrame
        One row per inserted lesion: label in the subject's ``lesion_mask``, class, size, centre.
    scanners : pandas.DataFrame
        One row per scanner with its acquisition parameters.
    channels : tuple of str
        Channel column names.
    """

    out_dir: Path
    manifest_path: Path
    healthy_path: Path
    patients_path: Path
    ground_truth_path: Path
    metadata_path: Path
    manifest: pd.DataFrame
    ground_truth: pd.DataFrame
    scanners: pd.DataFrame
    channels: tuple[str, ...]


def make_brain_cohort(
    n_healthy: int,
    n_patients: int,
    *,
    n_scanners: int = 2,
    seed: int = 0,
    out_dir: str | os.PathLike[str],
    voxel_mm: float = 2.0,
    tumour_fraction: float = 0.5,
) -> SyntheticBrainCohort:
    """Write a synthetic multi-channel brain MR cohort with known lesions.

    Every subject has co-registered FLAIR, T1, T2 and post-contrast T1 (``T1c``) images, a brain
    mask and a lesion mask (``sub-XXXX/<channel>.nii.gz``, int16 like scanner output; masks
    uint8), skull-stripped (background 0), on the grid of its scanner.

    **Anatomy** (procedural, defined in millimetres): an ellipsoidal brain of random size with
    a bumpy surface; a cortical ribbon of varying thickness; sulci as thin CSF sheets flanked by
    cortex; lateral ventricles that grow with age; deep grey-matter nuclei; thin (up to 2 mm)
    normal periventricular caps at the ventricles' horns that are bright on FLAIR (as in real
    scans, where FLAIR also shows cortex brighter than white matter). Tissue boundaries give partial-volume voxels, and each
    tissue carries a smooth texture (2.5 % SD, 8 mm grain).

    **Lesions** (patients only, multi-label ``lesion_mask``, one label per lesion, listed in the
    ground truth): ``"ms"`` lesions, 3 to 10 small ellipsoids (radius 1.5-5 mm) in white matter,
    more often near the ventricles, bright on FLAIR and T2, dark on T1, with a contrast factor
    drawn in 0.6-1.0; or, for a share ``tumour_fraction`` of the patients, one ``"tumour"``
    (radius 10-17 mm, irregular margin) made of a necrotic core, an enhancing ring (bright on
    T1c) and surrounding oedema (bright on FLAIR). The mask holds voxels more than half lesion.

    **Scanners**: each has its own slice thickness (1-1.5 x ``voxel_mm``), blur, noise, bias
    field amplitude and per-channel intensity mapping ``scale * value ** gamma + offset``
    (non-linear, so the raw intensities of two scanners are not comparable); parameters take
    evenly spaced values over their ranges, paired at random for the seed. Subject ``i`` is
    imaged on scanner ``i mod n_scanners``; healthy subjects come first.

    Parameters
    ----------
    n_healthy, n_patients : int
        Numbers of subjects without and with lesions (at least one subject in all).
    n_scanners : int
        1 to 26 scanners (``scanner_A``, ...).
    seed : int
        Non-negative seed; the same seed gives identical files. Subject ``i``'s images depend
        only on the seed, ``i``, its group and its scanner.
    out_dir : str or os.PathLike
        Output folder (created; files of the same names are overwritten).
    voxel_mm : float
        In-plane voxel size in mm (2 mm: about 75 x 90 x 70 voxels and 0.3 s per subject).
    tumour_fraction : float
        Share of patients with a tumour instead of MS-like lesions.

    Returns
    -------
    SyntheticBrainCohort
    """
    _check(n_healthy, n_patients, n_scanners, seed, voxel_mm, tumour_fraction, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scanners = an.make_brain_scanners(n_scanners, float(voxel_mm), _stream(seed, _SCANNER_STREAM))
    rows, truth = [], []
    n_subjects = n_healthy + n_patients
    for index in range(n_subjects):
        scanner = scanners[index % n_scanners]
        subject_id = f"sub-{index + 1:04d}"
        patient = index >= n_healthy
        rng = _stream(seed, _SUBJECT_STREAM, index)
        lesion_class = None
        if patient:
            lesion_class = "tumour" if rng.random() < tumour_fraction else "ms"
        images, brain, labels, subject, lesions = synthesise_brain(rng, scanner, lesion_class)
        folder = out / subject_id
        folder.mkdir(exist_ok=True)
        row: dict[str, Any] = {
            "subject_id": subject_id,
            "group": "patient" if patient else "healthy",
            "diagnosis": lesion_class or "healthy",
        }
        for channel, image in images.items():
            row[channel] = f"{subject_id}/{channel}.nii.gz"
            _write(image, scanner, out / row[channel])
        row["brain_mask"] = f"{subject_id}/brain_mask.nii.gz"
        _write(brain.astype(np.uint8), scanner, out / row["brain_mask"])
        row["lesion_mask"] = f"{subject_id}/lesion_mask.nii.gz" if patient else ""
        if patient:
            _write(labels, scanner, out / row["lesion_mask"])
        rows.append(row | {"scanner": scanner.name, **subject})
        truth += [
            {"subject_id": subject_id, "scanner": scanner.name, **lesion} for lesion in lesions
        ]
    manifest = pd.DataFrame(rows, columns=list(BRAIN_MANIFEST_COLUMNS))
    ground_truth = pd.DataFrame(truth, columns=list(BRAIN_GROUND_TRUTH_COLUMNS))
    scanner_table = pd.DataFrame([_scanner_row(s) for s in scanners])
    cohort = SyntheticBrainCohort(
        out_dir=out,
        manifest_path=out / "subjects.csv",
        healthy_path=out / "healthy.csv",
        patients_path=out / "patients.csv",
        ground_truth_path=out / "ground_truth.csv",
        metadata_path=out / "cohort.json",
        manifest=manifest,
        ground_truth=ground_truth,
        scanners=scanner_table,
        channels=an.CHANNELS,
    )
    manifest.to_csv(cohort.manifest_path, index=False)
    manifest[manifest["group"] == "healthy"].to_csv(cohort.healthy_path, index=False)
    manifest[manifest["group"] == "patient"].to_csv(cohort.patients_path, index=False)
    ground_truth.to_csv(cohort.ground_truth_path, index=False)
    cohort.metadata_path.write_text(
        json.dumps(
            {
                "generator": "radharmony.datasets.make_brain_cohort",
                "arguments": {
                    "n_healthy": n_healthy,
                    "n_patients": n_patients,
                    "n_scanners": n_scanners,
                    "seed": seed,
                    "voxel_mm": voxel_mm,
                    "tumour_fraction": tumour_fraction,
                },
                "radharmony_version": __version__,
                "numpy_version": np.__version__,
                "tissue_intensity": an.TISSUE_INTENSITY,
                "lesion_intensity": an.LESION_INTENSITY,
                "channels": list(an.CHANNELS),
                "scanners": scanner_table.to_dict("records"),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return cohort


def synthesise_brain(
    rng: np.random.Generator, scanner: an.BrainScanner, lesion_class: str | None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """Images per channel, brain mask, lesion labels, covariates and lesion truth of a subject."""
    age = float(np.clip(round(rng.normal(45.0, 12.0)), 20, 80))
    sex = "F" if rng.random() < 0.5 else "M"
    anatomy = an.make_anatomy(rng, scanner, age)
    labels = np.zeros(anatomy.brain.shape, dtype=np.uint8)
    lesions: list[dict[str, Any]] = []
    if lesion_class == "tumour":
        labels, lesions = an.insert_lesions(rng, anatomy, "tumour", 1)
    elif lesion_class == "ms":
        labels, lesions = an.insert_lesions(rng, anatomy, "ms", int(rng.integers(3, 11)))
    bias = an.bias_field(rng, anatomy, scanner.bias_amplitude)
    brain_fraction = anatomy.brain.astype(np.float32)
    texture = an.tissue_texture(rng, anatomy)
    images = {}
    for index, channel in enumerate(an.CHANNELS):
        true = an.true_intensities(anatomy, index, texture)
        images[channel] = an.acquire(rng, true, brain_fraction, scanner, index, bias)
    return images, anatomy.brain, labels, {"age": age, "sex": sex}, lesions


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _write(array: np.ndarray, scanner: an.BrainScanner, path: Path) -> None:
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing(scanner.spacing)
    volume.SetOrigin(scanner.origin)
    sitk.WriteImage(volume, str(path), True)


def _scanner_row(scanner: an.BrainScanner) -> dict[str, Any]:
    row: dict[str, Any] = {
        "scanner": scanner.name,
        "spacing_x_mm": scanner.spacing[0],
        "spacing_y_mm": scanner.spacing[1],
        "spacing_z_mm": scanner.spacing[2],
        "blur_fwhm_mm": scanner.blur_fwhm_mm,
        "noise_sd": scanner.noise_sd,
        "bias_amplitude": scanner.bias_amplitude,
    }
    for k, channel in enumerate(an.CHANNELS):
        row[f"scale_{channel}"] = scanner.scale[k]
        row[f"offset_{channel}"] = scanner.offset[k]
        row[f"gamma_{channel}"] = scanner.gamma[k]
    return row


def _check(
    n_healthy: int,
    n_patients: int,
    n_scanners: int,
    seed: int,
    voxel_mm: float,
    tumour_fraction: float,
    out_dir: str | os.PathLike[str],
) -> None:
    for name, value, low in (("n_healthy", n_healthy, 0), ("n_patients", n_patients, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise SettingsError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_healthy + n_patients < 1:
        raise SettingsError("the cohort needs at least one subject (n_healthy + n_patients >= 1)")
    if isinstance(n_scanners, bool) or not isinstance(n_scanners, int | np.integer):
        raise SettingsError(f"n_scanners must be an integer, got {n_scanners!r}")
    if not 1 <= n_scanners <= _MAX_SCANNERS:
        raise SettingsError(f"n_scanners must be between 1 and {_MAX_SCANNERS}, got {n_scanners}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.5 <= float(voxel_mm) <= 4.0:
        raise SettingsError(f"voxel_mm must be between 0.5 and 4 mm, got {voxel_mm!r}")
    if not 0.0 <= float(tumour_fraction) <= 1.0:
        raise SettingsError(f"tumour_fraction must be in [0, 1], got {tumour_fraction!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise SettingsError(f"out_dir {str(out_dir)!r} is an existing file; pass a folder path")
