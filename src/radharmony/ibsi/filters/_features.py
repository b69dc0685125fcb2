"""Features of filtered images: the columns ``<filter label>__<IBSI tag>`` of an extraction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radharmony.ibsi.filters._base import ImageFilter

if TYPE_CHECKING:
    from radharmony.ibsi.processing import ProcessedLesion
    from radharmony.ibsi.settings import ExtractionSettings

#: Separator between the filter label and the IBSI feature tag in a column name.
SEPARATOR = "__"
_DIMENSION_SUFFIX = {"3D": "3D", "2.5D": "2_5D", "2D": "2D"}


def filtered_features(lesion: ProcessedLesion, settings: ExtractionSettings) -> dict[str, float]:
    """Feature columns of every filter of ``settings`` for one processed lesion.

    Parameters
    ----------
    lesion : ProcessedLesion
        Output of :func:`radharmony.ibsi.process_lesion` with the same filters, which holds
        their response maps.
    settings : ExtractionSettings
        Filters, texture dimension and aggregation, and ``bin_count`` (the fixed bin number of
        the texture and histogram families of filtered images).

    Returns
    -------
    dict
        ``<filter label>__<IBSI tag>`` -> value, filters in settings order.
    """
    values: dict[str, float] = {}
    for image_filter in settings.filters:
        if image_filter.label not in lesion.responses:
            raise ValueError(
                f"the lesion was processed without the filter {image_filter.label}; process it "
                "with the settings that list this filter"
            )
        tags = response_features(
            lesion.responses[image_filter.label], lesion, image_filter, settings
        )
        values.update({f"{image_filter.label}{SEPARATOR}{tag}": v for tag, v in tags.items()})
    return values


def response_features(
    response: np.ndarray,
    lesion: ProcessedLesion,
    image_filter: ImageFilter,
    settings: ExtractionSettings,
) -> dict[str, float]:
    """IBSI tag -> value of the filter's feature families on one response map.

    Intensity statistics use the response inside the re-segmented ROI (re-segmented on the
    unfiltered intensities, as IBSI 2 specifies). The other families discretise the response
    inside that ROI into ``settings.bin_count`` bins of equal width between its minimum and
    maximum; texture tags are those of the settings' dimension and aggregation.
    """
    from radharmony.ibsi.families import compute_families, statistics_features

    mask = lesion.intensity_mask
    values: dict[str, float] = {}
    if "statistics" in image_filter.features:
        values.update(statistics_features(response, mask))
    others = [f for f in image_filter.features if f != "statistics"]
    if not others:
        return values
    n_bins = int(settings.bin_count)
    texture_dimension = "3D" if settings.dimension == "3D" else "2D"
    tags = compute_families(
        response,
        fixed_bin_number_levels(response, mask, n_bins),
        mask,
        lesion.morphological_mask,
        (float(lesion.spacing[2]), float(lesion.spacing[1]), float(lesion.spacing[0])),
        texture_dimension,
        n_levels=n_bins,
        families=others,
    )
    values.update({tag: v for tag, v in tags.items() if _selected(tag, settings)})
    return values


def fixed_bin_number_levels(values: np.ndarray, mask: np.ndarray, n_bins: int) -> np.ndarray:
    """IBSI fixed-bin-number grey levels (1..n_bins) inside ``mask``, 0 outside."""
    levels = np.zeros(values.shape, dtype=np.int64)
    inside = values[mask]
    low, high = float(inside.min()), float(inside.max())
    if high == low:
        levels[mask] = 1
        return levels
    scaled = np.floor(n_bins * (inside - low) / (high - low)).astype(np.int64)
    levels[mask] = np.minimum(scaled, n_bins - 1) + 1
    return levels


def _selected(tag: str, settings: ExtractionSettings) -> bool:
    """Keep texture tags of the settings' dimension and aggregation, and all others."""
    dimension = _DIMENSION_SUFFIX[settings.dimension]
    aggregation = "avg" if settings.texture_aggregation == "averaged" else "comb"
    suffixes = ("_3D", "_2D", "_2_5D")
    if not any(tag.endswith(s) or f"{s}_" in tag for s in suffixes):
        return True
    return tag.endswith(f"_{dimension}") or tag.endswith(f"_{dimension}_{aggregation}")
