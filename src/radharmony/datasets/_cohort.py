"""Synthetic multi-scanner 3D image cohort with lesion masks, a manifest and the ground truth."""

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
from radharmony.datasets import _phantom as ph
from radharmony.errors import SettingsError

MANIFEST_COLUMNS: tuple[str, ...] = ("subject_id", "image", "mask", "scanner", "age", "sex")
SCANNER_COLUMNS: tuple[str, ...] = (
    "spacing_x_mm",
    "spacing_y_mm",
    "spacing_z_mm",
    "noise_sd_hu",
    "intensity_scale",
    "intensity_offset_hu",
    "blur_fwhm_mm",
)
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_id",
    "lesion_class",
    "label",
    "scanner",
    "age",
    "sex",
    "true_volume_mm3",
    "mask_volume_mm3",
    "n_voxels",
    "centre_x_mm",
    "centre_y_mm",
    "centre_z_mm",
    "max_radius_mm",
    "lesion_mean_hu",
    "age_effect_hu",
    "texture_sd_hu",
    "texture_corr_mm",
    "irregularity",
    "elongation",
    "tissue_mean_hu",
    *SCANNER_COLUMNS,
)
#: Columns of ``labels.csv``, the per-lesion labels file a study configuration names.
LABEL_COLUMNS: tuple[str, ...] = ("subject_id", "lesion_id", "lesion_class")

# Independent random streams: scanners get one, subject i gets (_SUBJECT_STREAM, i), so a subject
# never depends on how many subjects are generated.
_SCANNER_STREAM = 0
_SUBJECT_STREAM = 1
_MAX_SCANNERS = 26


@dataclass(frozen=True)
class SyntheticCohort:
    """Paths and tables of a cohort written by :func:`make_cohort`.

    Attributes
    ----------
    out_dir : pathlib.Path
        Folder holding everything below.
    manifest_path, ground_truth_path, scanners_path, metadata_path : pathlib.Path
        ``manifest.csv``, ``ground_truth.csv``, ``scanners.csv`` and ``cohort.json``. The
        folder also holds ``labels.csv`` (``subject_id, lesion_id, lesion_class``: the
        ``labels`` file of a study configuration, columns as in ``ground_truth.csv``).
    manifest : pandas.DataFrame
        One row per image: ``subject_id, image, mask, scanner, age, sex`` (paths relative to
        ``out_dir``).
    ground_truth : pandas.DataFrame
        One row per lesion with its class, true volume, texture and shape parameters and the
        parameters of the scanner that imaged it.
    scanners : pandas.DataFrame
        One row per scanner with its acquisition parameters and designed class mix.
    """

    out_dir: Path
    manifest_path: Path
    ground_truth_path: Path
    scanners_path: Path
    metadata_path: Path
    manifest: pd.DataFrame
    ground_truth: pd.DataFrame
    scanners: pd.DataFrame


def make_cohort(
    n_subjects: int, n_scanners: int, seed: int, out_dir: str | os.PathLike[str]
) -> SyntheticCohort:
    """Write a synthetic multi-scanner CT-like cohort of 3D images with multi-label lesion masks.

    Each subject has one image (``images/sub-XXXX.nii.gz``, int16) and one mask
    (``masks/sub-XXXX.nii.gz``, uint8, same size, spacing, origin and identity direction) holding
    1 to 3 lesions labelled 1..k that never touch, not even diagonally. The field of view is
    80 x 80 x 64 mm centred on the origin. Intensities are CT-like Hounsfield units: soft tissue
    around 40 HU with a smooth texture (SD 8 HU, 5 mm grain), lesions around 80 HU.

    **Lesion classes.** ``"benign"`` lesions have a smooth, near-ellipsoidal margin and faint,
    coarse internal texture; ``"malignant"`` lesions have a lobulated margin and strong, finer
    texture. Per lesion, texture SD (median 8 vs 18 HU), texture grain (3.5 vs 2.5 mm) and margin
    irregularity (0.05 vs 0.15, RMS of the log-radius) are drawn from overlapping log-normal laws.
    Both classes share one volume law (log-normal, median 1800 mm3, 400-6000 mm3), so volume
    alone carries no class information. Classes are drawn per lesion.

    **Scanners.** Each scanner has its own voxel spacing (0.7-1.0 mm in-plane, 1-3 mm slices),
    Gaussian blur (FWHM 0.8-2.4 mm), intensity scale (0.9-1.1) and offset (-25 to +25 HU), white
    noise (SD 5-15 HU) and fraction of malignant lesions (0.25-0.75), so raw features carry a
    scanner effect and the class mix is confounded with the scanner, as in multi-centre data.
    Every parameter takes evenly spaced values over its range across the scanners, paired at
    random for the seed; with one scanner each takes the middle of its range. The scanner blurs
    the true image, applies ``scale * value + offset``, adds noise and rounds to int16. Subject
    ``i`` is imaged on scanner ``i mod n_scanners``.

    **Covariates.** ``age`` (years, about N(62, 11) clipped to 30-90) raises the true mean lesion
    attenuation by 0.4 HU per year from age 60 (``age_effect_hu`` in the ground truth); ``sex``
    has no effect.

    A subject takes about 0.1 s to generate and, with pyradiomics' default feature classes on
    the original image, about 0.15 s of one core to extract.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (one image each), at least 1.
    n_scanners : int
        Number of scanners, 1 to 26 (named ``scanner_A``, ``scanner_B``, ...).
    seed : int
        Non-negative seed. The same seed gives identical arrays, and the first ``m`` subjects of
        a cohort of ``n > m`` subjects are identical to a cohort of ``m`` subjects.
    out_dir : str or os.PathLike
        Output folder, created if needed; existing files of the same names are overwritten.

    Returns
    -------
    SyntheticCohort
        Paths of ``manifest.csv``, ``ground_truth.csv``, ``scanners.csv`` and ``cohort.json`` and
        the three tables as DataFrames (``labels.csv`` is written next to them).

    Raises
    ------
    radharmony.errors.SettingsError
        If an argument is out of range or ``out_dir`` is an existing file.

    Examples
    --------
    >>> cohort = make_cohort(n_subjects=6, n_scanners=3, seed=0, out_dir=tmp_dir)  # doctest: +SKIP
    >>> cohort.manifest.columns.tolist()  # doctest: +SKIP
    ['subject_id', 'image', 'mask', 'scanner', 'age', 'sex']
    """
    _check_arguments(n_subjects, n_scanners, seed, out_dir)
    n_subjects, n_scanners, seed = int(n_subjects), int(n_scanners), int(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)

    scanners = ph.make_scanners(n_scanners, _stream(seed, _SCANNER_STREAM))
    manifest_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    for index in range(n_subjects):
        scanner = scanners[index % n_scanners]
        subject_id = f"sub-{index + 1:04d}"
        image, mask, subject, lesions = synthesise_subject(seed, index, scanner)
        row = {
            "subject_id": subject_id,
            "image": f"images/{subject_id}.nii.gz",
            "mask": f"masks/{subject_id}.nii.gz",
            "scanner": scanner.name,
            "age": subject["age"],
            "sex": subject["sex"],
        }
        _write_volume(image, scanner, out / row["image"])
        _write_volume(mask, scanner, out / row["mask"])
        manifest_rows.append(row)
        for lesion in lesions:
            lesion_rows.append(
                {"subject_id": subject_id, "scanner": scanner.name, **lesion, **subject}
            )

    manifest = pd.DataFrame(manifest_rows, columns=list(MANIFEST_COLUMNS))
    scanner_table = _scanner_table(scanners)
    ground_truth = _ground_truth_table(lesion_rows, scanner_table)
    cohort = SyntheticCohort(
        out_dir=out,
        manifest_path=out / "manifest.csv",
        ground_truth_path=out / "ground_truth.csv",
        scanners_path=out / "scanners.csv",
        metadata_path=out / "cohort.json",
        manifest=manifest,
        ground_truth=ground_truth,
        scanners=scanner_table,
    )
    manifest.to_csv(cohort.manifest_path, index=False)
    ground_truth.to_csv(cohort.ground_truth_path, index=False)
    scanner_table.to_csv(cohort.scanners_path, index=False)
    # The study configuration's ``labels`` file: the ground-truth class of each lesion only.
    ground_truth[list(LABEL_COLUMNS)].to_csv(out / "labels.csv", index=False)
    cohort.metadata_path.write_text(
        json.dumps(_metadata(n_subjects, n_scanners, seed), indent=2) + "\n", encoding="utf-8"
    )
    return cohort


def synthesise_subject(
    seed: int, index: int, scanner: ph.Scanner
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """Image (int16), mask (uint8), covariates and lesion truth of subject ``index``.

    Arrays are in NumPy ``(z, y, x)`` order on ``scanner``'s grid. Only the subject's own random
    stream is used, so the result does not depend on the other subjects.
    """
    rng = _stream(seed, _SUBJECT_STREAM, index)
    low, high = ph.AGE_RANGE_YEARS
    age = int(np.clip(round(rng.normal(ph.AGE_MEAN_YEARS, ph.AGE_SD_YEARS)), low, high))
    sex = "F" if rng.random() < 0.5 else "M"
    n_lesions = int(rng.integers(1, 4))
    drawn = [_draw_lesion(rng, scanner, age) for _ in range(n_lesions)]
    gap_mm = 2.0 * max(scanner.spacing) + 1.0
    placed = ph.place_lesions(rng, [shape for shape, _ in drawn], gap_mm)

    tissue_mean_hu = ph.TISSUE_HU + ph.TISSUE_SUBJECT_SD_HU * rng.standard_normal()
    texture = ph.coarse_smooth_field(rng, scanner, ph.TISSUE_TEXTURE_CORR_MM)
    true_hu = np.float32(tissue_mean_hu) + np.float32(ph.TISSUE_TEXTURE_SD_HU) * texture
    mask = np.zeros(true_hu.shape, dtype=np.uint8)
    voxel_mm3 = float(np.prod(scanner.spacing))
    lesions = []
    for label, (position, shape) in enumerate(placed.items(), start=1):
        params = drawn[position][1]
        box = ph.lesion_box(shape, scanner)
        inside = ph.lesion_inside(shape, scanner, box)
        field = ph.smooth_field(rng, inside.shape, scanner.spacing, params["texture_corr_mm"])
        # Standardised inside the lesion, so lesion_mean_hu and texture_sd_hu are exactly the mean
        # and SD of the true (pre-scanner) lesion voxels, not only their expected values.
        texture = field[inside]
        texture = (texture - texture.mean()) / texture.std()
        values = params["lesion_mean_hu"] + params["texture_sd_hu"] * texture
        true_hu[box][inside] = values
        mask[box][inside] = label
        n_voxels = int(inside.sum())
        lesions.append(
            {
                "lesion_id": label,
                **params,
                "centre_x_mm": float(shape.centre[0]),
                "centre_y_mm": float(shape.centre[1]),
                "centre_z_mm": float(shape.centre[2]),
                "max_radius_mm": shape.max_radius,
                "n_voxels": n_voxels,
                "mask_volume_mm3": n_voxels * voxel_mm3,
            }
        )
    image = ph.acquire(rng, true_hu, scanner)
    subject = {"age": age, "sex": sex, "tissue_mean_hu": float(tissue_mean_hu)}
    return image, mask, subject, lesions


def _draw_lesion(
    rng: np.random.Generator, scanner: ph.Scanner, age: int
) -> tuple[ph.LesionShape, dict[str, Any]]:
    """Class, true parameters and shape (centred at the origin) of one lesion."""
    label = int(rng.random() < scanner.malignant_fraction)
    lesion_class = ph.CLASS_NAMES[label]
    laws = ph.CLASS_LAWS[lesion_class]
    low, high = ph.VOLUME_RANGE_MM3
    volume = float(
        np.clip(ph.draw_lognormal(rng, (ph.VOLUME_MEDIAN_MM3, ph.VOLUME_SD_LOG)), low, high)
    )
    texture_sd = ph.draw_lognormal(rng, laws["texture_sd_hu"])
    texture_corr = ph.draw_lognormal(rng, laws["texture_corr_mm"])
    irregularity = min(ph.draw_lognormal(rng, laws["irregularity"]), ph.IRREGULARITY_MAX)
    elongation = float(rng.uniform(*ph.ELONGATION_RANGE))
    age_effect = ph.AGE_SLOPE_HU_PER_YEAR * (age - ph.AGE_REF_YEARS)
    lesion_mean = (
        ph.LESION_HU_AT_REF_AGE + age_effect + ph.LESION_MEAN_SD_HU * rng.standard_normal()
    )
    shape = ph.draw_lesion_shape(rng, volume, irregularity, elongation)
    params = {
        "lesion_class": lesion_class,
        "label": label,
        "true_volume_mm3": volume,
        "lesion_mean_hu": float(lesion_mean),
        "age_effect_hu": float(age_effect),
        "texture_sd_hu": texture_sd,
        "texture_corr_mm": texture_corr,
        "irregularity": irregularity,
        "elongation": elongation,
    }
    return shape, params


def _stream(seed: int, *key: int) -> np.random.Generator:
    """Random generator of the independent stream ``key`` of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _write_volume(array: np.ndarray, scanner: ph.Scanner, path: Path) -> None:
    """Write a ``(z, y, x)`` array as compressed NIfTI on ``scanner``'s grid."""
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing(scanner.spacing)
    volume.SetOrigin(scanner.origin)
    sitk.WriteImage(volume, str(path), True)


def _scanner_table(scanners: list[ph.Scanner]) -> pd.DataFrame:
    """One row per scanner: protocol parameters, grid size and designed malignant fraction."""
    rows = []
    for scanner in scanners:
        rows.append(
            {
                "scanner": scanner.name,
                "spacing_x_mm": scanner.spacing[0],
                "spacing_y_mm": scanner.spacing[1],
                "spacing_z_mm": scanner.spacing[2],
                "size_x": scanner.size[0],
                "size_y": scanner.size[1],
                "size_z": scanner.size[2],
                "noise_sd_hu": scanner.noise_sd_hu,
                "intensity_scale": scanner.intensity_scale,
                "intensity_offset_hu": scanner.intensity_offset_hu,
                "blur_fwhm_mm": scanner.blur_fwhm_mm,
                "malignant_fraction": scanner.malignant_fraction,
            }
        )
    return pd.DataFrame(rows)


def _ground_truth_table(lesion_rows: list[dict[str, Any]], scanners: pd.DataFrame) -> pd.DataFrame:
    """Lesion rows joined with the protocol of the scanner of their subject, in a fixed order."""
    lesions = pd.DataFrame(lesion_rows)
    table = lesions.merge(scanners[["scanner", *SCANNER_COLUMNS]], on="scanner", how="left")
    return table[list(GROUND_TRUTH_COLUMNS)]


def _metadata(n_subjects: int, n_scanners: int, seed: int) -> dict[str, Any]:
    """Content of ``cohort.json``: arguments, versions and the fixed design constants."""
    return {
        "generator": "radharmony.datasets.make_cohort",
        "arguments": {"n_subjects": n_subjects, "n_scanners": n_scanners, "seed": seed},
        "radharmony_version": __version__,
        "numpy_version": np.__version__,
        "intensity_unit": "HU (CT-like), int16 images; uint8 multi-label masks",
        "classes": {"0": ph.CLASS_NAMES[0], "1": ph.CLASS_NAMES[1]},
        "class_laws_lognormal_median_sdlog": ph.CLASS_LAWS,
        "field_of_view_mm": list(ph.FOV_MM),
        "tissue_hu": ph.TISSUE_HU,
        "lesion_hu_at_reference_age": ph.LESION_HU_AT_REF_AGE,
        "age_reference_years": ph.AGE_REF_YEARS,
        "age_slope_hu_per_year": ph.AGE_SLOPE_HU_PER_YEAR,
        "volume_lognormal_median_mm3": ph.VOLUME_MEDIAN_MM3,
        "volume_lognormal_sdlog": ph.VOLUME_SD_LOG,
        "volume_range_mm3": list(ph.VOLUME_RANGE_MM3),
        "scanner_ranges": {k: list(v) for k, v in ph.SCANNER_RANGES.items()},
    }


def _check_arguments(
    n_subjects: int, n_scanners: int, seed: int, out_dir: str | os.PathLike[str]
) -> None:
    """Raise SettingsError naming the argument that is out of range."""
    for name, value, low in (("n_subjects", n_subjects, 1), ("n_scanners", n_scanners, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise SettingsError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_scanners > _MAX_SCANNERS:
        raise SettingsError(
            f"n_scanners must be at most {_MAX_SCANNERS} (scanner_A..scanner_Z), got {n_scanners}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise SettingsError(f"out_dir {str(out_dir)!r} is an existing file; pass a folder path")
