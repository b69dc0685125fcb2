"""Feature families computed by :mod:`radharmony.ibsi.families` on a processed lesion.

These are the IBSI families pyradiomics lacks (morphology extras, spatial autocorrelation, local
intensity, statistics extras, intensity histogram, intensity-volume histogram, distance zone
matrix, dependence matrix extras) and the per-slice 2D aggregation of the texture families
pyradiomics does have. They read the same :class:`~radharmony.ibsi.processing.ProcessedLesion`
as the pyradiomics classes, so every family sees one image-processing chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import numpy as np

from radharmony.ibsi.names import FEATURES_BY_COLUMN, family_columns
from radharmony.ibsi.processing import ProcessedLesion
from radharmony.ibsi.settings import ExtractionSettings

#: Families of this module, in the order their columns are returned.
NATIVE_CLASSES: tuple[str, ...] = (
    "morphology",
    "spatial_autocorrelation",
    "local_intensity",
    "statistics",
    "intensity_histogram",
    "ivh",
    "gldzm",
    "ngldm",
)
#: pyradiomics texture classes that the numpy families compute when ``dimension="2D"``.
TEXTURE_2D_CLASSES: tuple[str, ...] = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


class _Computed:
    """Results of the numpy families for one lesion, each computed at most once per call."""

    def __init__(self, lesion: ProcessedLesion, settings: ExtractionSettings) -> None:
        self.lesion = lesion
        self.settings = settings
        x, y, z = lesion.spacing
        self.spacing = (float(z), float(y), float(x))
        self._results: dict[tuple[str, str], dict[str, float]] = {}

    def get(self, key: str, dimension: str, compute: Callable[[], dict[str, float]]) -> dict:
        if (key, dimension) not in self._results:
            self._results[(key, dimension)] = compute()
        return self._results[(key, dimension)]


def native_features(
    lesion: ProcessedLesion,
    settings: ExtractionSettings,
    families: Collection[str],
    mesh: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Columns of ``families`` that the numpy IBSI families compute.

    These are the families of :data:`NATIVE_CLASSES` and, for ``dimension="2D"`` (per-slice
    features averaged over slices, which pyradiomics cannot aggregate), the pyradiomics texture
    classes of :data:`TEXTURE_2D_CLASSES`; ``glcm_MCC``, not IBSI-defined, has no 2D value.

    Parameters
    ----------
    lesion : ProcessedLesion
        Output of :func:`radharmony.ibsi.process_lesion`.
    settings : ExtractionSettings
        Settings of the texture dimension, discretisation and IVH.
    families : collection of str
        Feature classes requested; those not in :data:`NATIVE_CLASSES` are ignored.
    mesh : (area, volume), optional
        Marching-cubes surface area and volume already computed by pyradiomics' shape class.

    Returns
    -------
    dict
        Column (see ``data_dictionary/features.csv``) to value.
    """
    computed = _Computed(lesion, settings)
    values: dict[str, float] = {}
    if settings.dimension == "2D":
        for family in TEXTURE_2D_CLASSES:
            if family in families:
                tags = _TEXTURE_RUNNERS[family](computed, "2D")
                values.update(_columns(family, tags, settings))
    for family in NATIVE_CLASSES:
        if family not in families:
            continue
        if family in ("morphology", "spatial_autocorrelation"):
            tags = _morphology(computed, families, mesh)
        else:
            tags = _RUNNERS[family](computed)
        values.update(_columns(family, tags, settings))
    return values


def _columns(family: str, tags: dict[str, float], settings: ExtractionSettings) -> dict:
    """Pick the values of a family's columns, under the tags the settings give them."""
    out = {}
    for column in family_columns(family):
        info = FEATURES_BY_COLUMN[column]
        column_tags = info.ibsi_tags(settings)
        if column_tags and column_tags[0] in tags:
            out[column] = float(tags[column_tags[0]])
    return out


def _texture_dimension(settings: ExtractionSettings) -> str:
    # the numpy families return the 2D and 2.5D aggregations from one per-slice computation
    return "3D" if settings.dimension == "3D" else "2D"


def n_grey_levels(lesion: ProcessedLesion) -> int:
    """Number of grey levels of the discretisation (bins, empty top bins included).

    Fixed bin number has ``bin_count`` levels. Fixed bin size spans the re-segmentation range
    when it is bounded above (36 levels for [-500, 400] HU in 25 HU bins), else the ROI.
    """
    settings = lesion.settings
    present = int(lesion.grey_levels[lesion.intensity_mask].max())
    if settings.discretisation == "fixed_bin_number":
        return max(present, int(settings.bin_count))
    high = None if settings.resegment_range is None else settings.resegment_range[1]
    if high is None or lesion.bin_width is None:
        return present
    span = (high - lesion.discretisation_lower_bound) / lesion.bin_width
    return max(present, math.ceil(round(span, 9)))


def _morphology(
    computed: _Computed, families: Collection[str], mesh: tuple[float, float] | None
) -> dict[str, float]:
    from radharmony.ibsi.families import morphology_features
    from radharmony.ibsi.families.morphology import spatial_autocorrelation

    lesion = computed.lesion
    with_pairs = "spatial_autocorrelation" in families
    if "morphology" not in families:
        moran, geary = spatial_autocorrelation(
            lesion.intensities, lesion.intensity_mask, np.asarray(computed.spacing)
        )
        return {"morph_moran_i": moran, "morph_geary_c": geary}
    return computed.get(
        "morphology",
        "3D",
        lambda: morphology_features(
            lesion.intensities,
            lesion.intensity_mask,
            lesion.morphological_mask,
            computed.spacing,
            mesh,
            autocorrelation=with_pairs,
        ),
    )


def _local_intensity(computed: _Computed) -> dict[str, float]:
    from radharmony.ibsi.families import local_intensity_features

    lesion = computed.lesion
    # the crop keeps the sphere's neighbourhood in the image (see processing._crop_margins)
    return local_intensity_features(lesion.intensities, lesion.intensity_mask, computed.spacing)


def _statistics(computed: _Computed) -> dict[str, float]:
    from radharmony.ibsi.families import statistics_features

    return statistics_features(computed.lesion.intensities, computed.lesion.intensity_mask)


def _intensity_histogram(computed: _Computed) -> dict[str, float]:
    from radharmony.ibsi.families import intensity_histogram_features

    lesion = computed.lesion
    return intensity_histogram_features(
        lesion.grey_levels, lesion.intensity_mask, n_grey_levels(lesion)
    )


def _ivh(computed: _Computed) -> dict[str, float]:
    from radharmony.ibsi.families import ivh_features

    lesion, settings = computed.lesion, computed.settings
    if settings.ivh_discretisation == "fixed_bin_number":
        # arbitrary units: bins between the ROI extremes, the range is not used (IBSI)
        return ivh_features(
            lesion.intensities, lesion.intensity_mask, n_bins=settings.ivh_bin_count
        )
    width = settings.ivh_bin_width if settings.ivh_discretisation == "fixed_bin_size" else None
    return ivh_features(
        lesion.intensities, lesion.intensity_mask, settings.resegment_range, bin_width=width
    )


def _gldzm(computed: _Computed) -> dict[str, float]:
    from radharmony.ibsi.families import dzm_features

    lesion = computed.lesion
    dimension = _texture_dimension(computed.settings)
    return computed.get(
        "gldzm",
        dimension,
        lambda: dzm_features(
            lesion.grey_levels, lesion.intensity_mask, lesion.morphological_mask, dimension
        ),
    )


def _ngldm(computed: _Computed, dimension: str | None = None) -> dict[str, float]:
    from radharmony.ibsi.families import ngldm_features

    lesion = computed.lesion
    dimension = dimension or _texture_dimension(computed.settings)
    return computed.get(
        "ngldm",
        dimension,
        lambda: ngldm_features(lesion.grey_levels, lesion.intensity_mask, dimension),
    )


def _glcm(computed: _Computed, dimension: str) -> dict[str, float]:
    from radharmony.ibsi.families import glcm_features

    lesion = computed.lesion
    return glcm_features(
        lesion.grey_levels, lesion.intensity_mask, dimension, n_grey_levels(lesion)
    )


def _zone_runner(name: str) -> Callable[[_Computed, str], dict[str, float]]:
    def run(computed: _Computed, dimension: str) -> dict[str, float]:
        import radharmony.ibsi.families as families

        function = getattr(families, name)
        lesion = computed.lesion
        return function(lesion.grey_levels, lesion.intensity_mask, dimension)

    return run


_RUNNERS: dict[str, Callable[[_Computed], dict[str, float]]] = {
    "local_intensity": _local_intensity,
    "statistics": _statistics,
    "intensity_histogram": _intensity_histogram,
    "ivh": _ivh,
    "gldzm": _gldzm,
    "ngldm": _ngldm,
}

_TEXTURE_RUNNERS: dict[str, Callable[[_Computed, str], dict[str, float]]] = {
    "glcm": _glcm,
    "glrlm": _zone_runner("glrlm_features"),
    "glszm": _zone_runner("szm_features"),
    "gldm": _ngldm,
    "ngtdm": _zone_runner("ngtdm_features"),
}
