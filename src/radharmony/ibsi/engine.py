"""Per-lesion feature computation: the IBSI chain, pyradiomics feature classes, corrections.

The image processing (interpolation, rounding, re-segmentation, discretisation) is done by
:mod:`radharmony.ibsi.processing`; pyradiomics only computes feature values, on images that
need no further processing:

- morphology on the morphological mask (before re-segmentation), as IBSI defines it;
- intensity statistics on the re-segmented but undiscretised intensities;
- texture and histogram entropy/uniformity on the IBSI grey levels, handed to pyradiomics as
  they are (its own binning, which renumbers the lowest grey level present to 1, is bypassed).

Then the values pyradiomics computes differently from IBSI are corrected (see
:mod:`radharmony.ibsi.names` for the list). The IBSI families pyradiomics lacks, and the
per-slice (IBSI 2D) texture aggregation, are computed from the same processed lesion by
:mod:`radharmony.ibsi.families` (see :mod:`radharmony.ibsi._native`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import SimpleITK as sitk

from radharmony._progress import scoped_logger_level
from radharmony.ibsi._native import NATIVE_CLASSES, native_features
from radharmony.ibsi.names import family_columns
from radharmony.ibsi.processing import ProcessedLesion, process_lesion
from radharmony.ibsi.settings import ExtractionSettings

_LOGGER_NAME = "radiomics"
_TEXTURE_CLASSES = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")
_PCA_AXES = ("MajorAxisLength", "MinorAxisLength", "LeastAxisLength")


def engine_versions() -> dict[str, str]:
    """Return the versions of the feature engines (pyradiomics, scipy) and image library."""
    import radiomics
    import scipy

    return {
        "pyradiomics": str(radiomics.__version__),
        "scipy": str(scipy.__version__),
        "SimpleITK": sitk.Version.VersionString(),
    }


def compute_lesion_features(
    image: sitk.Image, mask: sitk.Image, settings: ExtractionSettings
) -> dict[str, float]:
    """Compute the IBSI-compliant radiomic features of one lesion.

    Parameters
    ----------
    image : SimpleITK.Image
        Whole 3D intensity image.
    mask : SimpleITK.Image
        Binary mask of one lesion (1 inside, 0 outside) on the same grid as ``image``.
    settings : ExtractionSettings
        Image processing and feature settings.

    Returns
    -------
    dict
        Feature column to value: ``<family>_<Feature>`` for pyradiomics' classes (e.g.
        ``glcm_JointEntropy``), the IBSI tag without dimension suffix for the other IBSI
        families (e.g. ``ih_mean``, ``dzm_sde``), then ``<filter label>__<IBSI tag>`` for each
        filter of ``settings.filters`` (e.g. ``log_sigma1p5mm_3D__stat_mean``). Every column
        is described in ``data_dictionary/features.csv`` and
        ``data_dictionary/filtered_features.csv``.

    Raises
    ------
    radharmony.errors.EmptyMaskError
        If the lesion is empty or vanishes after interpolation or re-segmentation.
    """
    return features_from_processed(process_lesion(image, mask, settings))


def features_from_processed(
    lesion: ProcessedLesion, settings: ExtractionSettings | None = None
) -> dict[str, float]:
    """Compute features of an already processed lesion.

    Parameters
    ----------
    lesion : ProcessedLesion
        Output of :func:`radharmony.ibsi.process_lesion`.
    settings : ExtractionSettings, optional
        Feature settings (dimension, texture aggregation, families); defaults to the settings
        the lesion was processed with. Only settings that do not change the processing should
        differ.

    Returns
    -------
    dict
        Column name to value.
    """
    import radiomics  # noqa: F401  (its first import sets its own logger level)

    settings = lesion.settings if settings is None else settings
    # pyradiomics logs every feature class; it is quiet while our call runs, and the level the
    # user set for the "radiomics" logger is back when it returns.
    with scoped_logger_level(_LOGGER_NAME, logging.ERROR):
        return _features(lesion, settings)


def _features(lesion: ProcessedLesion, settings: ExtractionSettings) -> dict[str, float]:
    families = set(settings.feature_classes)
    values: dict[str, float] = {}
    if "shape" in families:
        values.update(_shape_features(lesion))
    if "firstorder" in families:
        values.update(_firstorder_features(lesion))
    if settings.dimension != "2D":  # pyradiomics has no per-slice aggregation
        for family in _TEXTURE_CLASSES:
            if family in families:
                values.update(_texture_features(lesion, family, settings))
    mesh = None
    if "shape_SurfaceArea" in values:
        mesh = (values["shape_SurfaceArea"], values["shape_MeshVolume"])
    values.update(native_features(lesion, settings, families, mesh))
    if settings.filters:
        from radharmony.ibsi.filters._features import filtered_features

        values.update(filtered_features(lesion, settings))
    return values


def _pyradiomics_settings(settings: ExtractionSettings) -> dict[str, Any]:
    return {
        "label": 1,
        "force2D": settings.dimension == "2.5D",
        "force2Ddimension": 0,  # numpy axis 0 is z: in-plane means axial
        "distances": [1],
        "symmetricalGLCM": True,
        "gldm_a": 0,
        "voxelArrayShift": 0,
        "weightingNorm": None if settings.texture_aggregation == "averaged" else "no_weighting",
    }


def _shape_features(lesion: ProcessedLesion) -> dict[str, float]:
    from radiomics.shape import RadiomicsShape

    # pyradiomics' mesh volume drifts with the distance between the ROI and the array corner
    # (about 0.04 % per voxel of padding on a real lesion), so the mask is given tightly cropped,
    # exactly as pyradiomics' own extractor does; this keeps its reference values reproducible.
    tight = _tight_box(lesion.morphological_mask)
    mask = sitk.GetImageFromArray(lesion.morphological_mask[tight].astype(np.uint8))
    mask.SetSpacing(lesion.spacing)
    raw = _execute(RadiomicsShape(mask, mask, **_pyradiomics_settings(lesion.settings)))
    n_voxels = int(lesion.morphological_mask.sum())
    # pyradiomics' covariance divides by N; IBSI's principal axes use the N - 1 estimator.
    factor = math.sqrt(n_voxels / (n_voxels - 1)) if n_voxels > 1 else 1.0
    for axis in _PCA_AXES:
        raw[axis] *= factor
    return _prefixed("shape", raw)


def _tight_box(mask: np.ndarray) -> tuple[slice, ...]:
    where = np.nonzero(mask)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in where)


def _firstorder_features(lesion: ProcessedLesion) -> dict[str, float]:
    from radiomics.firstorder import RadiomicsFirstOrder

    extractor_class = _with_grey_levels(RadiomicsFirstOrder)
    mask = lesion.to_image(lesion.intensity_mask.astype(np.uint8))
    image = lesion.to_image(lesion.intensities)
    raw = _execute(
        extractor_class(image, mask, lesion.grey_levels, **_pyradiomics_settings(lesion.settings))
    )
    raw["Kurtosis"] -= 3.0  # pyradiomics reports kurtosis; IBSI defines excess kurtosis
    return _prefixed("firstorder", raw)


def _texture_features(
    lesion: ProcessedLesion, family: str, settings: ExtractionSettings
) -> dict[str, float]:
    import importlib

    module = importlib.import_module(f"radiomics.{family}")
    base = getattr(module, f"Radiomics{family.upper()}")
    mask = lesion.to_image(lesion.intensity_mask.astype(np.uint8))
    image = lesion.to_image(lesion.grey_levels.astype(np.float64))
    instance = _with_grey_levels(base)(
        image, mask, lesion.grey_levels, **_pyradiomics_settings(settings)
    )
    return _prefixed(family, _execute(instance))


_PREDISCRETISED_CLASSES: dict[type, type] = {}


def _with_grey_levels(base: type) -> type:
    """Subclass of a pyradiomics feature class that takes IBSI grey levels as they are.

    pyradiomics discretises inside every feature class, and its fixed-bin-width scheme
    renumbers the lowest grey level present to 1, which would shift IBSI levels anchored at the
    re-segmentation bound. The subclass replaces that step by the levels computed upstream.
    """
    if base not in _PREDISCRETISED_CLASSES:

        class _Prediscretised(base):  # type: ignore[misc, valid-type]
            def __init__(
                self, image: sitk.Image, mask: sitk.Image, grey_levels: np.ndarray, **kwargs: Any
            ) -> None:
                self._grey_levels = grey_levels
                super().__init__(image, mask, **kwargs)

            def _applyBinning(self, matrix: np.ndarray) -> np.ndarray:  # noqa: N802
                levels = np.where(self.maskArray, self._grey_levels, 0).astype(np.int64)
                present = np.unique(levels[self.maskArray])
                self.coefficients["grayLevels"] = present
                self.coefficients["Ng"] = int(present.max())
                return levels

        _Prediscretised.__name__ = base.__name__
        # pyradiomics names its loggers after the module; keep them in its logger tree.
        _Prediscretised.__module__ = base.__module__
        _PREDISCRETISED_CLASSES[base] = _Prediscretised
    return _PREDISCRETISED_CLASSES[base]


def _execute(feature_class: Any) -> dict[str, float]:
    feature_class.enableAllFeatures()
    return {name: _scalar(value) for name, value in feature_class.execute().items()}


def _scalar(value: Any) -> float:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    return float(array[0]) if array.size else float("nan")


def _prefixed(family: str, raw: dict[str, float]) -> dict[str, float]:
    return {f"{family}_{name}": value for name, value in raw.items()}


def feature_columns(families: Iterable[str]) -> list[str]:
    """Return the columns the engine computes for the given feature families, in order.

    Parameters
    ----------
    families : iterable of str
        Feature families (see ``FEATURE_CLASSES``).

    Returns
    -------
    list of str
        With ``dimension="2D"`` the engine leaves out ``glcm_MCC``, which has no IBSI 2D value.
    """
    import importlib

    columns = []
    for family in families:
        if family in NATIVE_CLASSES:
            columns += family_columns(family)
            continue
        module = importlib.import_module(f"radiomics.{family}")
        class_name = {"shape": "RadiomicsShape", "firstorder": "RadiomicsFirstOrder"}.get(
            family, f"Radiomics{family.upper()}"
        )
        names = getattr(module, class_name).getFeatureNames()
        columns += [f"{family}_{n}" for n, deprecated in sorted(names.items()) if not deprecated]
    return columns
