"""Data dictionary of filtered-image feature columns (``<filter label>__<IBSI tag>``).

:func:`filtered_feature_dictionary` without settings returns the column grammar written to
``data_dictionary/filtered_features.csv``: one row per filter family (how its label spells the
parameters) and one row per feature that can follow the label. With settings it describes the
actual columns of that extraction, in IBSI filter and feature terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from radharmony.ibsi.filters._families import FILTER_FAMILIES
from radharmony.ibsi.filters._features import SEPARATOR

if TYPE_CHECKING:
    from radharmony.ibsi.settings import ExtractionSettings

HEADER = ["name", "type", "unit", "family", "description", "ibsi_tag", "ibsi_code", "notes"]
#: IBSI tag prefix of each feature family computed on filtered images.
TAG_PREFIXES: dict[str, str] = {
    "statistics": "stat_",
    "intensity_histogram": "ih_",
    "glcm": "cm_",
    "glrlm": "rlm_",
    "glszm": "szm_",
    "gldzm": "dzm_",
    "ngtdm": "ngt_",
    "ngldm": "ngl_",
}
_AGGREGATED = ("glcm", "glrlm")
_TEXTURE = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
_GENERIC_FILTER = "<filter>"

# How each family spells its parameters in the column label; tokens in brackets appear only
# when the parameter is set or differs from its default.
_LABEL_PATTERNS: dict[str, tuple[str, str]] = {
    "mean": ("mean_support<S>", "S: support in voxels (odd)"),
    "log": (
        "log_sigma<s>mm[_truncate<t>][_riesz<xyz>]",
        "s: sigma in mm; t: truncation in sigmas when not 4; riesz<xyz>: Riesz transform orders "
        "along x, y, z (not standardised by IBSI 2)",
    ),
    "laws": (
        "laws_<kernel>[_energy<d>][_rotinv<pooling>]",
        "kernel: 1D kernels for x, y[, z] (e.g. L5E5E5); energy<d>: energy map over delta d "
        "voxels; rotinv<pooling>: rotation invariance, pooled by max, mean or min",
    ),
    "gabor": (
        "gabor_sigma<s>mm_lambda<l>mm_gamma<g>_(theta<t>deg|thetastep<t>deg_rotinv<pooling>)"
        "[_<part>][_truncate<t>]",
        "s: envelope sigma in mm; l: wavelength in mm; g: aspect ratio; theta: one orientation "
        "in degrees, or thetastep: orientations every t degrees pooled (rotation invariance); "
        "part: real, imaginary or argument when not the modulus; in 3D pooled over the axial, "
        "coronal and sagittal planes",
    ),
    "wavelet": (
        "wavelet_<name>_<subband>_level<k>[_rotinv<pooling>]",
        "name: PyWavelets wavelet (db3, coif1, haar, ...); subband: L/H for x, y[, z]; k: "
        "decomposition level (a trous above 1); rotinv<pooling>: rotation invariance",
    ),
    "simoncelli": (
        "simoncelli_level<k>[_riesz<xyz>]",
        "k: decomposition level; riesz<xyz>: Riesz transform orders along x, y, z (not "
        "standardised by IBSI 2)",
    ),
}
_LABEL_COMMON = (
    "then _<boundary> when the boundary condition is not mirror (zero, nearest, periodic), "
    "then _2D (each axial slice) or _3D; numbers are written with p for the decimal point "
    "(1.5 -> 1p5); a filter given a 'name' uses that name instead"
)


def filtered_feature_dictionary(settings: ExtractionSettings | None = None) -> pd.DataFrame:
    """Describe filtered-image feature columns.

    Parameters
    ----------
    settings : ExtractionSettings, optional
        Without settings: the column grammar (``data_dictionary/filtered_features.csv``). With
        settings: one row per column an extraction with these settings writes for its filters.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, type, unit, family, description, ibsi_tag, ibsi_code, notes``.
    """
    features = _feature_rows()
    if settings is None:
        rows = [_family_row(family) for family in FILTER_FAMILIES]
        rows += [{**row, "name": f"{_GENERIC_FILTER}{SEPARATOR}{row['name']}"} for row in features]
        return pd.DataFrame(rows, columns=HEADER)
    dimension = {"3D": "3D", "2.5D": "2_5D", "2D": "2D"}[settings.dimension]
    aggregation = "avg" if settings.texture_aggregation == "averaged" else "comb"
    rows = []
    for image_filter in settings.filters:
        for row in features:
            if row["family"] not in image_filter.features:
                continue
            tag = row["ibsi_tag"].replace("<D>", dimension).replace("<agg>", aggregation)
            rows.append(
                {
                    **row,
                    "name": f"{image_filter.label}{SEPARATOR}{tag}",
                    "ibsi_tag": tag,
                    "description": f"{row['description']} of the response map: "
                    f"{image_filter.describe()}",
                    "notes": _filter_note(image_filter.ibsi_standard(), row["notes"]),
                }
            )
    return pd.DataFrame(rows, columns=HEADER)


def _family_row(family: str) -> dict[str, str]:
    cls = FILTER_FAMILIES[family]
    pattern, tokens = _LABEL_PATTERNS[family]
    return {
        "name": f"{pattern}_<2D|3D>{SEPARATOR}<feature>",
        "type": "float",
        "unit": "see the feature",
        "family": family,
        "description": f"Column prefix of the {cls.ibsi_name} (IBSI 2 filter {cls.ibsi_code}); "
        "<feature> is an IBSI tag listed below",
        "ibsi_tag": "",
        "ibsi_code": cls.ibsi_code,
        "notes": f"{tokens}; {_LABEL_COMMON}",
    }


def _feature_rows() -> list[dict[str, str]]:
    """One row per IBSI feature tag that can follow a filter label (suffix placeholders)."""
    from radharmony.ibsi.names import FEATURES

    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for family, prefix in TAG_PREFIXES.items():
        for info in FEATURES:
            for stem, code in zip(info.ibsi_stems, info.ibsi_codes, strict=False):
                if not stem.startswith(prefix) or stem in seen:
                    continue
                seen.add(stem)
                tag = stem
                if family in _TEXTURE:
                    tag += "_<D>_<agg>" if family in _AGGREGATED else "_<D>"
                rows.append(
                    {
                        "name": tag,
                        "type": "float",
                        "unit": _response_unit(info.unit),
                        "family": family,
                        "description": info.description,
                        "ibsi_tag": tag,
                        "ibsi_code": code,
                        "notes": _feature_note(family),
                    }
                )
    return rows


def _response_unit(unit: str) -> str:
    # a response map has the intensity unit of the image times the filter's gain
    return unit.replace("intensity", "response")


def _feature_note(family: str) -> str:
    note = "computed on the filtered image inside the ROI re-segmented on unfiltered intensities"
    if family != "statistics":
        note += "; grey levels by a fixed bin number (settings bin_count) over the ROI's response"
    if family in _TEXTURE:
        note += "; <D> is the texture dimension (3D, 2_5D, 2D)"
        if family in _AGGREGATED:
            note += ", <agg> the aggregation (avg, comb)"
    return note


def _filter_note(standard: bool, note: str) -> str:
    if standard:
        return f"IBSI 2 standardised filter; {note}"
    return f"Riesz-transformed filter: not standardised by IBSI 2 (no consensus values); {note}"
