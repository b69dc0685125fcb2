"""Synthetic follow-up brain MR: repeated visits with known lesion changes, scanners and poses."""

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
from radharmony.datasets import _longitudinal_anatomy as an
from radharmony.errors import SettingsError

LONGITUDINAL_MANIFEST_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "timepoint",
    "image",
    "T2",
    "mask",
    "transform",
    "brain_mask",
    "scanner",
    "age",
    "sex",
)
LONGITUDINAL_TRUTH_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_track_id",
    "timepoint",
    "status",
    "volume_mm3",
    "radius_mm",
    "centre_x_mm",
    "centre_y_mm",
    "centre_z_mm",
)
_SCANNER_STREAM = 0
_SUBJECT_STREAM = 1


@dataclass(frozen=True)
class SyntheticFollowUpCohort:
    """Paths and tables of a cohort written by :func:`make_longitudinal_cohort`.

    Attributes
    ----------
    out_dir : pathlib.Path
        Folder holding everything below.
    manifest_path, truth_path, metadata_path : pathlib.Path
        ``manifest.csv`` (a ``radharmony longitudinal`` manifest), ``lesion_truth.csv`` and
        ``cohort.json``.
    manifest : pandas.DataFrame
        One row per visit, columns ``LONGITUDINAL_MANIFEST_COLUMNS`` (paths relative to
        ``out_dir``; ``transform`` empty when transforms were not written).
    truth : pandas.DataFrame
        One row per lesion and visit with the designed status (``present`` at the first visit,
        then ``new``, ``enlarging``, ``stable``, ``shrinking`` or ``disappeared``), true volume
        and centre in the common space (the first visit's world coordinates).
    change_masks : dict
        ``{subject_id: {(t0, t1): path}}``: label images on the first visit's grid, 1 where a
        lesion appeared or grew between the two visits, 2 where one shrank or disappeared.
    scanners : pandas.DataFrame
        One row per scanner with its acquisition parameters.
    """

    out_dir: Path
    manifest_path: Path
    truth_path: Path
    metadata_path: Path
    manifest: pd.DataFrame
    truth: pd.DataFrame
    change_masks: dict[str, dict[tuple[str, str], Path]]
    scanners: pd.DataFrame


def make_longitudinal_cohort(
    n_subjects: int,
    *,
    n_visits: int = 2,
    n_scanners: int = 2,
    seed: int = 0,
    out_dir: str | os.PathLike[str],
    voxel_mm: float = 2.5,
    scanner_change: float = 0.5,
    max_rotation_deg: float = 4.0,
    max_shift_mm: float = 5.0,
    write_transforms: bool = True,
) -> SyntheticFollowUpCohort:
    """Write a synthetic follow-up cohort of brain-like FLAIR and T2 images with known changes.

    **Anatomy** (procedural, in mm): an ellipsoidal brain with a cortical ribbon, white matter,
    two lateral ventricles and a thin outer CSF layer, each tissue with a smooth texture.
    FLAIR shows lesions bright and CSF dark; T2 shows both bright.

    **Lesions**: 3 to 7 white-matter lesions (ellipsoids, radius 2.5-6 mm) at the first
    visit. Between consecutive visits each lesion independently stays (``stable``, volume
    within +/-10 %), grows (``enlarging``, volume x3 to x4), shrinks (``shrinking``, volume x0.2
    to x0.3) or vanishes (``disappeared``), and 1 to 2 ``new`` lesions appear; changes and
    sizes are chosen large enough for a half-voxel-shell volume-error rule at ``voxel_mm`` to
    recognise them. ``lesion_truth.csv`` lists the design, ``change_<t0>_<t1>.nii.gz`` the
    voxels that changed.

    **Visits**: each visit is imaged on its own grid (the scanner's spacing), with the head in
    a new position (a random rotation up to ``max_rotation_deg`` and shift up to
    ``max_shift_mm``), so follow-ups must be aligned. With ``write_transforms`` the exact ITK
    transform mapping the common space (the first visit's world coordinates) to each visit is
    written and listed in the ``transform`` column, usable with
    ``SimpleITK.Resample(image, grid, transform)``. A subject moves to another scanner
    between visits with probability ``scanner_change``; scanners differ in intensity scale and
    offset, noise, blur and bias field.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (at least 1).
    n_visits : int
        Visits per subject (at least 2); time points are ``1``, ``2``, ...
    n_scanners : int
        Number of scanners (1 to 26).
    seed : int
        Non-negative seed: the same seed gives identical files.
    out_dir : str or os.PathLike
        Output folder (created; files of the same names are overwritten).
    voxel_mm : float
        In-plane voxel size of the first scanner in mm (1.5 to 4).
    scanner_change : float
        Probability of changing scanner between visits.
    max_rotation_deg, max_shift_mm : float
        Largest head rotation (about each axis) and shift between visits.
    write_transforms : bool
        Write the true transforms and fill the ``transform`` column.

    Returns
    -------
    SyntheticFollowUpCohort
    """
    _check(n_subjects, n_visits, n_scanners, seed, voxel_mm, scanner_change, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scanners = an.make_scanners(n_scanners, float(voxel_mm), _stream(seed, _SCANNER_STREAM))
    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    change_masks: dict[str, dict[tuple[str, str], Path]] = {}
    for index in range(n_subjects):
        subject_id = f"sub-{index + 1:03d}"
        rng = _stream(seed, _SUBJECT_STREAM, index)
        anatomy = an.make_anatomy(rng)
        histories = an.lesion_histories(rng, anatomy, n_visits)
        age = float(np.clip(round(rng.normal(40.0, 10.0)), 20, 70))
        sex = "F" if rng.random() < 0.7 else "M"
        scanner_index = int(rng.integers(n_scanners))
        folder = out / subject_id
        folder.mkdir(exist_ok=True)
        baseline_grid: sitk.Image | None = None
        for visit in range(n_visits):
            if visit and n_scanners > 1 and rng.random() < scanner_change:
                scanner_index = int((scanner_index + rng.integers(1, n_scanners)) % n_scanners)
            scanner = scanners[scanner_index]
            pose = an.random_pose(
                rng, max_rotation_deg if visit else 0.0, max_shift_mm * bool(visit)
            )
            lesions = [h.at(visit) for h in histories]
            images, labels, grid = an.acquire_visit(rng, anatomy, lesions, scanner, pose)
            timepoint = str(visit + 1)
            row: dict[str, Any] = {"subject_id": subject_id, "timepoint": timepoint}
            for channel, array in images.items():
                name = "image" if channel == "FLAIR" else channel
                row[name] = f"{subject_id}/visit{timepoint}_{channel}.nii.gz"
                _write(array, grid, out / row[name])
            row["mask"] = f"{subject_id}/visit{timepoint}_lesions.nii.gz"
            _write(labels, grid, out / row["mask"])
            row["transform"] = ""
            if write_transforms:
                row["transform"] = f"{subject_id}/visit{timepoint}_to_common.tfm"
                sitk.WriteTransform(an.common_to_visit(pose), str(out / row["transform"]))
            if baseline_grid is None:
                baseline_grid = grid
                brain = an.brain_mask_on(anatomy, grid)
                _write(brain, grid, folder / "brain_mask.nii.gz")
            row["brain_mask"] = f"{subject_id}/brain_mask.nii.gz"
            rows.append(row | {"scanner": scanner.name, "age": age + 0.5 * visit, "sex": sex})
            truth += an.truth_rows(subject_id, timepoint, histories, visit)
        assert baseline_grid is not None
        change_masks[subject_id] = {}
        for visit in range(1, n_visits):
            t0, t1 = str(visit), str(visit + 1)
            path = folder / f"change_{t0}_{t1}.nii.gz"
            before = [h.at(visit - 1) for h in histories]
            after = [h.at(visit) for h in histories]
            _write(an.change_mask_on(before, after, baseline_grid), baseline_grid, path)
            change_masks[subject_id][(t0, t1)] = path
    manifest = pd.DataFrame(rows, columns=list(LONGITUDINAL_MANIFEST_COLUMNS))
    truth_table = pd.DataFrame(truth, columns=list(LONGITUDINAL_TRUTH_COLUMNS))
    scanner_table = pd.DataFrame([an.scanner_row(s) for s in scanners])
    cohort = SyntheticFollowUpCohort(
        out_dir=out,
        manifest_path=out / "manifest.csv",
        truth_path=out / "lesion_truth.csv",
        metadata_path=out / "cohort.json",
        manifest=manifest,
        truth=truth_table,
        change_masks=change_masks,
        scanners=scanner_table,
    )
    manifest.to_csv(cohort.manifest_path, index=False)
    truth_table.to_csv(cohort.truth_path, index=False)
    arguments = {
        "n_subjects": n_subjects,
        "n_visits": n_visits,
        "n_scanners": n_scanners,
        "seed": seed,
        "voxel_mm": voxel_mm,
        "scanner_change": scanner_change,
        "max_rotation_deg": max_rotation_deg,
        "max_shift_mm": max_shift_mm,
        "write_transforms": write_transforms,
    }
    cohort.metadata_path.write_text(
        json.dumps(
            {
                "generator": "radharmony.datasets.make_longitudinal_cohort",
                "arguments": arguments,
                "radharmony_version": __version__,
                "numpy_version": np.__version__,
                "scanners": scanner_table.to_dict("records"),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return cohort


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _write(array: np.ndarray, grid: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    sitk.WriteImage(image, str(path), True)


def _check(
    n_subjects: int,
    n_visits: int,
    n_scanners: int,
    seed: int,
    voxel_mm: float,
    scanner_change: float,
    out_dir: str | os.PathLike[str],
) -> None:
    for name, value, low in (("n_subjects", n_subjects, 1), ("n_visits", n_visits, 2)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise SettingsError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(n_scanners, bool) or not isinstance(n_scanners, int | np.integer):
        raise SettingsError(f"n_scanners must be an integer, got {n_scanners!r}")
    if not 1 <= n_scanners <= 26:
        raise SettingsError(f"n_scanners must be between 1 and 26, got {n_scanners}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1.5 <= float(voxel_mm) <= 4.0:
        raise SettingsError(f"voxel_mm must be between 1.5 and 4 mm, got {voxel_mm!r}")
    if not 0.0 <= float(scanner_change) <= 1.0:
        raise SettingsError(f"scanner_change must be in [0, 1], got {scanner_change!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise SettingsError(f"out_dir {str(out_dir)!r} is an existing file; pass a folder path")
