"""IBSI compliance check: extract with an IBSI configuration and compare with reference values."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony.errors import ImageReadError, SettingsError
from radharmony.ibsi.engine import features_from_processed
from radharmony.ibsi.names import column_to_tags, is_dimensional
from radharmony.ibsi.processing import (
    ProcessedLesion,
    interpolate_image,
    process_lesion,
    resampled_size,
)
from radharmony.ibsi.settings import ExtractionSettings

STATUSES = ("pass", "fail", "not_computed")
# Slack for the binary representation of decimal references (e.g. 0.977 mm stored as float32);
# far below every non-zero IBSI tolerance.
_FLOAT_SLACK = 1e-6
# IBSI prints reference values with 3 significant digits. A tolerance of 0 means the value must
# agree to the printed precision (at least 3 significant digits).
_MIN_SIGNIFICANT_DIGITS = 3


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read an IBSI reference CSV (``reference value;tolerance;tag``).

    Parameters
    ----------
    path : str or Path
        ``;``-separated file with header ``reference value;tolerance;tag``. Rows with a blank
        reference value (no IBSI consensus) are dropped.

    Returns
    -------
    pandas.DataFrame
        Columns ``tag``, ``reference``, ``tolerance`` (floats) and ``digits`` (significant
        digits of the printed reference, at least 3), in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"IBSI reference file {path} does not exist")
    raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    expected = ["reference value", "tolerance", "tag"]
    if [c.strip() for c in raw.columns] != expected:
        raise SettingsError(
            f"IBSI reference file {path} must have the header {';'.join(expected)}, "
            f"got {';'.join(raw.columns)}"
        )
    raw.columns = expected
    raw = raw[raw["reference value"].str.strip() != ""]
    try:
        return pd.DataFrame(
            {
                "tag": raw["tag"].str.strip().to_numpy(),
                "reference": raw["reference value"].astype(float).to_numpy(),
                "tolerance": raw["tolerance"].replace("", "0").astype(float).to_numpy(),
                "digits": [_significant_digits(v) for v in raw["reference value"]],
            }
        )
    except ValueError as err:
        raise SettingsError(f"IBSI reference file {path} holds a non-numeric value: {err}") from err


def check_compliance(
    image: str | Path | sitk.Image,
    mask: str | Path | sitk.Image,
    config: str | ExtractionSettings,
    reference: str | Path | pd.DataFrame,
) -> pd.DataFrame:
    """Extract features with an IBSI configuration and compare them with reference values.

    The lesion is processed once with ``config``; texture features are then computed for both
    IBSI aggregations (averaged and merged over directions) and in every dimension the
    reference sets tabulate: 3D, 2.5D and 2D for the digital phantom, 2.5D and 2D for the 2D
    configurations (A and B).

    Parameters
    ----------
    image, mask : path or SimpleITK.Image
        Image and ROI mask (non-zero inside). As the IBSI instructions for the benchmark data
        say, both are read as floating point and rounded to the nearest integer.
    config : str or ExtractionSettings
        IBSI configuration (``digital_phantom``, ``A`` ... ``E``) or any settings.
    reference : path or pandas.DataFrame
        IBSI reference CSV, or the output of :func:`read_reference`.

    Returns
    -------
    pandas.DataFrame
        One row per reference tag: ``tag``, ``reference``, ``tolerance``, ``value`` (NaN when
        not computed), ``column`` (the radharmony column or diagnostic that gave the value) and
        ``status`` (``pass``, ``fail`` or ``not_computed``).
    """
    settings = ExtractionSettings.from_any(config)
    table = reference if isinstance(reference, pd.DataFrame) else read_reference(reference)
    image_in, mask_in = _read_benchmark(image), _read_benchmark(mask)
    mask_binary = sitk.Cast(mask_in > 0.5, sitk.sitkUInt8)
    lesion = process_lesion(image_in, mask_binary, settings)
    computed = _computed_values(lesion, settings)
    computed.update(_diagnostics(image_in, mask_binary, lesion, settings))
    digits = table["digits"] if "digits" in table else [_MIN_SIGNIFICANT_DIGITS] * len(table)
    rows = []
    for tag, ref, tol, sig in zip(
        table["tag"], table["reference"], table["tolerance"], digits, strict=True
    ):
        column, value = computed.get(tag, ("", float("nan")))
        rows.append(
            {
                "tag": tag,
                "reference": ref,
                "tolerance": tol,
                "value": value,
                "column": column,
                "status": _status(value, ref, tol, int(sig)),
            }
        )
    return pd.DataFrame(rows)


def summary_line(result: pd.DataFrame, config: str) -> str:
    """Return ``IBSI <config>: <P> passed, <F> failed, <N> not computed of <T> reference values``."""
    counts = result["status"].value_counts()
    return (
        f"IBSI {config}: {counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, "
        f"{counts.get('not_computed', 0)} not computed of {len(result)} reference values"
    )


def _status(value: float, reference: float, tolerance: float, digits: int) -> str:
    if not np.isfinite(value):
        return "not_computed"
    slack = _FLOAT_SLACK * max(1.0, abs(reference))
    if abs(value - reference) <= tolerance + slack:
        return "pass"
    if tolerance == 0 and _rounded(value, digits) == _rounded(reference, digits):
        return "pass"
    return "fail"


def _rounded(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _significant_digits(text: str) -> int:
    """Significant digits of a printed number (trailing zeros of integers not counted)."""
    try:
        digits = len(Decimal(text.strip()).normalize().as_tuple().digits)
    except InvalidOperation:
        digits = 0
    return max(_MIN_SIGNIFICANT_DIGITS, digits)


def _read_benchmark(source: str | Path | sitk.Image) -> sitk.Image:
    if isinstance(source, sitk.Image):
        image = sitk.Cast(source, sitk.sitkFloat32)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(f"image file {path} does not exist")
        try:
            image = sitk.ReadImage(str(path), sitk.sitkFloat32)
        except RuntimeError as err:
            raise ImageReadError(f"cannot read image {path}: {err}") from err
    rounded = sitk.GetImageFromArray(np.rint(sitk.GetArrayViewFromImage(image)))
    rounded.CopyInformation(image)
    return rounded


# Only these texture classes have tags that depend on the direction aggregation.
_AGGREGATED_CLASSES = ("glcm", "glrlm")


def _texture_variants(
    settings: ExtractionSettings, texture_families: tuple[str, ...]
) -> list[ExtractionSettings]:
    if settings.name == "digital_phantom":
        dimensions: tuple[Literal["3D", "2.5D", "2D"], ...] = ("3D", "2.5D", "2D")
    elif settings.dimension == "3D":
        dimensions = ("3D",)
    else:
        dimensions = ("2.5D", "2D")
    variants = []
    for dimension in dimensions:
        for aggregation in ("averaged", "merged"):
            families = texture_families
            if aggregation == "merged":
                families = tuple(f for f in texture_families if f in _AGGREGATED_CLASSES)
            if families:
                variants.append(
                    dataclasses.replace(
                        settings,
                        dimension=dimension,
                        texture_aggregation=aggregation,
                        feature_classes=families,
                    )
                )
    return variants


def _computed_values(
    lesion: ProcessedLesion, settings: ExtractionSettings
) -> dict[str, tuple[str, float]]:
    computed: dict[str, tuple[str, float]] = {}
    base_families = tuple(f for f in settings.feature_classes if not is_dimensional(f))
    texture_families = tuple(f for f in settings.feature_classes if is_dimensional(f))
    if base_families:
        values = features_from_processed(
            lesion, dataclasses.replace(settings, feature_classes=base_families)
        )
        for tag, column in column_to_tags(list(values), settings).items():
            computed[tag] = (column, values[column])
    for variant in _texture_variants(settings, texture_families):
        values = features_from_processed(lesion, variant)
        for tag, column in column_to_tags(list(values), variant).items():
            computed.setdefault(tag, (column, values[column]))
    return computed


def _diagnostics(
    image: sitk.Image, mask: sitk.Image, lesion: ProcessedLesion, settings: ExtractionSettings
) -> dict[str, tuple[str, float]]:
    """IBSI diagnostic features of the initial image and of the ROI at each processing step."""
    values: dict[str, float] = {}
    image_array = sitk.GetArrayViewFromImage(image)
    mask_array = sitk.GetArrayViewFromImage(mask) > 0
    for axis, size, spacing in zip("xyz", image.GetSize(), image.GetSpacing(), strict=True):
        values[f"img_dim_{axis}_init_img"] = float(size)
        values[f"vox_dim_{axis}_init_img"] = float(spacing)
        values[f"int_mask_dim_{axis}_init_roi"] = float(size)
    values["mean_int_init_img"] = float(image_array.mean())
    values["min_int_init_img"] = float(image_array.min())
    values["max_int_init_img"] = float(image_array.max())
    interpolated = interpolate_image(image, settings)
    values["mean_int_interp_img"] = float(interpolated.mean())
    values["min_int_interp_img"] = float(interpolated.min())
    values["max_int_interp_img"] = float(interpolated.max())
    for axis, size, spacing in zip(
        "xyz", resampled_size(image, settings), lesion.spacing, strict=True
    ):
        values[f"img_dim_{axis}_interp_img"] = float(size)
        values[f"vox_dim_{axis}_interp_img"] = float(spacing)
        for step in ("interp", "reseg"):
            values[f"int_mask_dim_{axis}_{step}_roi"] = float(size)
    roi_steps = {
        "init": (image_array, mask_array, mask_array),
        "interp": (lesion.intensities, lesion.morphological_mask, lesion.morphological_mask),
        "reseg": (lesion.intensities, lesion.intensity_mask, lesion.morphological_mask),
    }
    for step, (intensities, intensity_mask, morphological_mask) in roi_steps.items():
        roi_values = np.asarray(intensities)[intensity_mask]
        values[f"int_mask_vox_count_{step}_roi"] = float(intensity_mask.sum())
        values[f"morph_mask_vox_count_{step}_roi"] = float(morphological_mask.sum())
        values[f"int_mask_mean_int_{step}_roi"] = float(roi_values.mean())
        values[f"int_mask_min_int_{step}_roi"] = float(roi_values.min())
        values[f"int_mask_max_int_{step}_roi"] = float(roi_values.max())
        for prefix, roi in (("int_mask", intensity_mask), ("morph_mask", morphological_mask)):
            for axis, extent in zip("zyx", _extent(roi), strict=True):
                values[f"{prefix}_bb_dim_{axis}_{step}_roi"] = float(extent)
    return {tag: ("diagnostic", value) for tag, value in values.items()}


def _extent(roi: np.ndarray) -> list[int]:
    extents = []
    for axis in range(roi.ndim):
        other = tuple(a for a in range(roi.ndim) if a != axis)
        hits = np.flatnonzero(roi.any(axis=other))
        extents.append(int(hits[-1] - hits[0] + 1) if hits.size else 0)
    return extents
