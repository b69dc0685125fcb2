"""Report sections of the extraction stage: cohort and QC, settings in IBSI terms."""

from __future__ import annotations

from typing import Any

import pandas as pd

from radharmony._cases import failures_of
from radharmony.report._html import escape, figure_html, table_html


def cohort_summary(features: pd.DataFrame) -> pd.DataFrame:
    """Return one row per scanner (and a total): cases, lesions, failures and median volume.

    Parameters
    ----------
    features : pandas.DataFrame
        Output of :func:`radharmony.extract_features`.

    Returns
    -------
    pandas.DataFrame
        Columns ``scanner``, ``cases``, ``lesions``, ``median_volume_mm3``.
    """
    grouped = features.groupby("scanner", sort=True)
    summary = pd.DataFrame(
        {
            "cases": grouped["case_id"].nunique(),
            "lesions": grouped.size(),
            "median_volume_mm3": grouped["lesion_volume_mm3"].median(),
        }
    ).reset_index()
    total = pd.DataFrame(
        {
            "scanner": ["all"],
            "cases": [features["case_id"].nunique()],
            "lesions": [len(features)],
            "median_volume_mm3": [features["lesion_volume_mm3"].median()],
        }
    )
    return pd.concat([summary, total], ignore_index=True)


def settings_table(settings: dict[str, Any], versions: dict[str, str]) -> pd.DataFrame:
    """Return the image-processing chain in the terms of the IBSI reporting guidelines."""
    spacing = settings.get("resampled_spacing")
    reseg = settings.get("resegment_range")
    if settings.get("discretisation") == "fixed_bin_size":
        low = reseg[0] if reseg and reseg[0] is not None else "ROI minimum"
        discretisation = f"fixed bin size, width {settings['bin_width']:g}, first bin at {low}"
    else:
        discretisation = f"fixed bin number, {settings.get('bin_count')} bins"
    rows = [
        ("Software", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("Settings name", settings.get("name", "custom")),
        (
            "Image interpolation",
            "none (acquired grid)"
            if spacing is None
            else f"to {tuple(spacing)} mm, {settings.get('image_interpolator')}, grid centres aligned",
        ),
        ("Intensity rounding", "nearest integer" if settings.get("round_intensities") else "none"),
        (
            "ROI interpolation",
            "none"
            if spacing is None
            else f"linear, partial-volume threshold {settings.get('mask_threshold')}",
        ),
        ("Re-segmentation range", "none" if reseg is None else f"[{reseg[0]}, {reseg[1]}]"),
        (
            "Outlier re-segmentation",
            "none"
            if settings.get("resegment_sigma") is None
            else f"mean ± {settings['resegment_sigma']} SD",
        ),
        ("Discretisation", discretisation),
        (
            "Texture",
            f"{settings.get('dimension')}, {settings.get('texture_aggregation')} over directions",
        ),
        ("Feature families", ", ".join(settings.get("feature_classes", []))),
    ]
    if settings.get("filters"):
        from radharmony.ibsi.filters import filter_from_mapping

        described = [filter_from_mapping(f).describe() for f in settings["filters"]]
        rows.append(("Convolutional filters (IBSI 2)", "; ".join(described)))
    return pd.DataFrame(rows, columns=["item", "value"])


def volume_figure(features: pd.DataFrame) -> Any:
    """Return a figure of lesion volumes per scanner (log scale)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    scanners = sorted(features["scanner"].unique())
    data = [features.loc[features["scanner"] == s, "lesion_volume_mm3"] for s in scanners]
    axis.boxplot(data, tick_labels=scanners)
    axis.set_yscale("log")
    axis.set_ylabel("lesion volume (mm³)")
    axis.set_title("Lesion volume by scanner")
    figure.tight_layout()
    return figure


def cohort_section_body(features: pd.DataFrame) -> str:
    """Return the HTML of the cohort and quality-control section."""
    failures = failures_of(features)
    dropped = int(features.attrs.get("dropped_lesions", 0))
    parts = [table_html(cohort_summary(features))]
    parts.append(f"<p>{dropped} lesion(s) below the minimum lesion size were dropped.</p>")
    if len(failures):
        parts.append(
            f"<div class='warning'>{len(failures)} case(s) or lesion(s) failed and are not in "
            "the analysis:</div>"
        )
        parts.append(table_html(failures))
    else:
        parts.append("<div class='ok'>No case or lesion failed.</div>")
    if len(features):
        parts.append(figure_html(volume_figure(features), "Lesion volume by scanner."))
    return "".join(parts)


def settings_section_body(features: pd.DataFrame, compliance: pd.DataFrame | None) -> str:
    """Return the HTML of the extraction-settings section, with the IBSI compliance result."""
    provenance = features.attrs.get("provenance", {})
    table = settings_table(provenance.get("settings", {}), provenance.get("versions", {}))
    parts = [table_html(table)]
    if compliance is not None and len(compliance):
        counts = compliance["status"].value_counts()
        passed, failed = int(counts.get("pass", 0)), int(counts.get("fail", 0))
        missing = int(counts.get("not_computed", 0))
        css = "ok" if failed == 0 else "warning"
        parts.append(
            f"<div class='{css}'>IBSI compliance of this processing chain: {passed} passed, "
            f"{failed} failed, {missing} not computed of {len(compliance)} reference values."
            "</div>"
        )
    return "".join(parts)


def extraction_methods(features: pd.DataFrame) -> str:
    """Return a methods sentence describing lesion definition and feature extraction."""
    provenance = features.attrs.get("provenance", {})
    settings = provenance.get("settings", {})
    versions = provenance.get("versions", {})
    options = provenance.get("lesion_options", {})
    table = settings_table(settings, versions).set_index("item")["value"]
    return escape(
        f"Lesions were defined as the label values of multi-label masks or the "
        f"{options.get('connectivity', 26)}-connected components of binary masks (lesions "
        f"under {options.get('min_lesion_voxels', 1)} voxel(s) discarded). Radiomic features "
        f"were extracted per lesion with radharmony {versions.get('radharmony', '?')} on "
        f"pyradiomics {versions.get('pyradiomics', '?')} (SimpleITK "
        f"{versions.get('SimpleITK', '?')}) following the IBSI image-processing chain: image "
        f"interpolation {table['Image interpolation']}; intensity rounding "
        f"{table['Intensity rounding']}; ROI interpolation {table['ROI interpolation']}; "
        f"re-segmentation range {table['Re-segmentation range']}, outlier filtering "
        f"{table['Outlier re-segmentation']}; discretisation {table['Discretisation']}; "
        f"texture matrices {table['Texture']}. Feature families: "
        f"{table['Feature families']}."
    )
