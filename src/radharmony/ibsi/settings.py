"""Extraction settings: the IBSI image-processing chain made explicit, with named presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from radharmony.errors import SettingsError
from radharmony.ibsi.filters._base import ImageFilter
from radharmony.ibsi.filters._parse import resolve_filters

# pyradiomics' feature classes, then the IBSI families computed by radharmony.ibsi.families.
PYRADIOMICS_CLASSES: tuple[str, ...] = (
    "shape",
    "firstorder",
    "glcm",
    "glrlm",
    "glszm",
    "gldm",
    "ngtdm",
)
IBSI_CLASSES: tuple[str, ...] = (
    "morphology",
    "spatial_autocorrelation",
    "local_intensity",
    "statistics",
    "intensity_histogram",
    "ivh",
    "gldzm",
    "ngldm",
)
FEATURE_CLASSES: tuple[str, ...] = PYRADIOMICS_CLASSES + IBSI_CLASSES
# Moran's I and Geary's C sum over all pairs of ROI voxels: seconds per large lesion, more than
# every other family together, so everyday presets leave them out (the IBSI presets keep them).
OPT_IN_CLASSES: tuple[str, ...] = ("spatial_autocorrelation",)
DEFAULT_FEATURE_CLASSES: tuple[str, ...] = tuple(
    c for c in FEATURE_CLASSES if c not in OPT_IN_CLASSES
)


@dataclass(frozen=True)
class ExtractionSettings:
    """How images are processed and which features are computed, in IBSI terms.

    Parameters
    ----------
    name : str
        Label of the settings (the preset name, or ``"custom"``).
    dimension : {"3D", "2.5D", "2D"}
        Texture neighbourhoods in 3D, or in the axial plane only: with the per-slice matrices
        merged over all slices (IBSI 2.5D), or with features computed per slice and averaged
        over slices (IBSI 2D). Morphological, intensity and histogram features are always
        computed on the whole 3D ROI.
    resampled_spacing : tuple of (float or None) or None
        Target voxel spacing in mm (x, y, z). ``None`` keeps the acquired grid; a ``None`` entry
        keeps the acquired spacing along that axis (``(2, 2, None)`` is IBSI in-plane
        interpolation). Grids are aligned on their centres (IBSI).
    image_interpolator : {"linear", "bspline"}
        Interpolator of the intensity image: (tri)linear or cubic B-spline.
    mask_threshold : float
        Partial-volume threshold: the mask is interpolated linearly and voxels with a value at or
        above this are kept.
    round_intensities : bool
        Round interpolated intensities to the nearest integer (IBSI practice for CT).
    resegment_range : tuple of (float or None) or None
        Keep only ROI voxels whose intensity lies in ``[low, high]`` (either bound may be None).
    resegment_sigma : float or None
        After the range, drop ROI voxels outside mean +/- ``resegment_sigma`` standard deviations
        of what the range kept (IBSI outlier filtering).
    discretisation : {"fixed_bin_size", "fixed_bin_number"}
        Intensity discretisation of texture features and of the histogram entropy and uniformity.
        Fixed bin size anchors the first bin at the lower bound of ``resegment_range`` (or the ROI
        minimum when there is none), as IBSI defines it.
    bin_width : float
        Bin width for fixed-bin-size discretisation.
    bin_count : int
        Number of bins for fixed-bin-number discretisation.
    texture_aggregation : {"averaged", "merged"}
        Aggregation of GLCM/GLRLM over directions: features averaged over the per-direction
        matrices (IBSI ``avg``), or computed on the merged matrix (IBSI ``comb``).
    ivh_discretisation : {"none", "fixed_bin_size", "fixed_bin_number"}
        Discretisation of the intensity-volume histogram: ``"none"`` for calibrated discrete
        intensities (CT in HU; steps of 1 over the re-segmentation range), a fixed bin size
        ``ivh_bin_width`` over the re-segmentation range (calibrated continuous intensities),
        or ``ivh_bin_count`` bins between the ROI minimum and maximum (arbitrary units).
    ivh_bin_width : float
        IVH bin width for ``ivh_discretisation="fixed_bin_size"``.
    ivh_bin_count : int
        Number of IVH bins for ``ivh_discretisation="fixed_bin_number"`` (IBSI recommends 1000).
    feature_classes : tuple of str
        Feature families to compute (subset of ``FEATURE_CLASSES``). By default every family
        except the opt-in ``"spatial_autocorrelation"`` (Moran's I, Geary's C).
    filters : tuple of ImageFilter or mappings
        IBSI 2 convolutional filters (see :mod:`radharmony.ibsi.filters`), each given as a
        filter object or a mapping such as ``{"filter": "log", "sigma_mm": 1.5}``. Each is
        applied per lesion to the interpolated and rounded image, before re-segmentation and
        discretisation; its feature families (by default the 18 IBSI intensity statistics) are
        computed on the response inside the re-segmented ROI, in columns
        ``<filter label>__<IBSI tag>`` (e.g. ``log_sigma1p5mm_3D__stat_mean``). Texture and
        histogram families of filtered images use a fixed bin number (``bin_count``), because
        response maps have no calibrated intensity unit.
    """

    name: str = "custom"
    dimension: Literal["3D", "2.5D", "2D"] = "3D"
    resampled_spacing: tuple[float | None, float | None, float | None] | None = (1.0, 1.0, 1.0)
    image_interpolator: Literal["linear", "bspline"] = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = False
    resegment_range: tuple[float | None, float | None] | None = None
    resegment_sigma: float | None = None
    discretisation: Literal["fixed_bin_size", "fixed_bin_number"] = "fixed_bin_number"
    bin_width: float = 25.0
    bin_count: int = 32
    texture_aggregation: Literal["averaged", "merged"] = "averaged"
    ivh_discretisation: Literal["none", "fixed_bin_size", "fixed_bin_number"] = "fixed_bin_number"
    ivh_bin_width: float = 1.0
    ivh_bin_count: int = 1000
    feature_classes: tuple[str, ...] = field(default=DEFAULT_FEATURE_CLASSES)
    filters: tuple[ImageFilter, ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_any(cls, spec: SettingsLike | None = None) -> ExtractionSettings:
        """Build settings from a preset name, a mapping, a YAML/JSON file or settings object.

        Parameters
        ----------
        spec : str, path, mapping, ExtractionSettings or None
            ``None`` gives the ``"default"`` preset. A string is a preset name or the path of a
            YAML/JSON file. A mapping may hold ``preset`` (the base) plus fields to override.

        Returns
        -------
        ExtractionSettings
        """
        if spec is None:
            return PRESETS["default"]
        if isinstance(spec, ExtractionSettings):
            return spec
        if isinstance(spec, str | Path):
            text = str(spec)
            if text in PRESETS:
                return PRESETS[text]
            path = Path(text)
            if path.suffix.lower() in {".yaml", ".yml", ".json"}:
                return cls.from_any(_read_settings_file(path))
            raise SettingsError(
                f"unknown settings preset {text!r}; choose one of {sorted(PRESETS)} "
                "or give the path of a .yaml/.json settings file"
            )
        if isinstance(spec, Mapping):
            return _settings_from_mapping(dict(spec))
        raise SettingsError(
            f"settings must be a preset name, a mapping, a file path or ExtractionSettings, "
            f"got {type(spec).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict (tuples become lists).

        ``filters`` is left out when there are none, so that settings without filters keep
        the cache keys and provenance they had before filters existed.
        """
        values = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "filters"
        }
        if self.filters:
            values["filters"] = [image_filter.to_dict() for image_filter in self.filters]
        return json.loads(json.dumps(values))

    def fingerprint(self) -> str:
        """Return a stable SHA-256 hex digest of the settings (used as a cache key)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


SettingsLike = str | Path | Mapping[str, Any] | ExtractionSettings


def _validate(settings: ExtractionSettings) -> None:
    if settings.dimension not in ("3D", "2.5D", "2D"):
        raise SettingsError(f"dimension must be '3D', '2.5D' or '2D', got {settings.dimension!r}")
    if settings.resampled_spacing is not None:
        spacing = tuple(settings.resampled_spacing)
        if len(spacing) != 3 or any(s is not None and float(s) <= 0 for s in spacing):
            raise SettingsError(
                "resampled_spacing must be three positive numbers (mm, x y z; null keeps an "
                f"axis), got {spacing!r}"
            )
        object.__setattr__(
            settings,
            "resampled_spacing",
            None
            if all(s is None for s in spacing)
            else tuple(None if s is None else float(s) for s in spacing),
        )
    if settings.image_interpolator not in ("linear", "bspline"):
        raise SettingsError(
            f"image_interpolator must be 'linear' or 'bspline', got {settings.image_interpolator!r}"
        )
    if not 0.0 < settings.mask_threshold <= 1.0:
        raise SettingsError(f"mask_threshold must be in (0, 1], got {settings.mask_threshold}")
    if settings.resegment_range is not None:
        bounds = tuple(settings.resegment_range)
        if len(bounds) != 2:
            raise SettingsError(f"resegment_range must be [low, high], got {bounds!r}")
        low, high = (None if b is None else float(b) for b in bounds)
        if low is not None and high is not None and low >= high:
            raise SettingsError(f"resegment_range low must be below high, got {bounds!r}")
        object.__setattr__(settings, "resegment_range", (low, high))
    if settings.resegment_sigma is not None and settings.resegment_sigma <= 0:
        raise SettingsError(f"resegment_sigma must be positive, got {settings.resegment_sigma}")
    if settings.discretisation not in ("fixed_bin_size", "fixed_bin_number"):
        raise SettingsError(
            "discretisation must be 'fixed_bin_size' or 'fixed_bin_number', "
            f"got {settings.discretisation!r}"
        )
    if not _is_positive_finite(settings.bin_width):
        raise SettingsError(f"bin_width must be positive, got {settings.bin_width}")
    if not _is_integer_at_least(settings.bin_count, 2):
        raise SettingsError(f"bin_count must be an integer >= 2, got {settings.bin_count}")
    if settings.texture_aggregation not in ("averaged", "merged"):
        raise SettingsError(
            f"texture_aggregation must be 'averaged' or 'merged', got {settings.texture_aggregation!r}"
        )
    _validate_ivh(settings)
    classes = tuple(settings.feature_classes)
    unknown = [c for c in classes if c not in FEATURE_CLASSES]
    if unknown or not classes:
        raise SettingsError(
            f"feature_classes must be a non-empty subset of {list(FEATURE_CLASSES)}; "
            f"unknown: {unknown}"
        )
    object.__setattr__(settings, "feature_classes", classes)
    object.__setattr__(settings, "filters", resolve_filters(settings.filters, settings.dimension))


def _validate_ivh(settings: ExtractionSettings) -> None:
    if settings.ivh_discretisation not in ("none", "fixed_bin_size", "fixed_bin_number"):
        raise SettingsError(
            "ivh_discretisation must be 'none', 'fixed_bin_size' or 'fixed_bin_number', "
            f"got {settings.ivh_discretisation!r}"
        )
    if not _is_positive_finite(settings.ivh_bin_width):
        raise SettingsError(f"ivh_bin_width must be positive, got {settings.ivh_bin_width}")
    if not _is_integer_at_least(settings.ivh_bin_count, 2):
        raise SettingsError(f"ivh_bin_count must be an integer >= 2, got {settings.ivh_bin_count}")


def _is_positive_finite(value: Any) -> bool:
    # NaN and infinity pass a plain `> 0` comparison one way or the other; both are mistakes.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    number = float(value)
    return math.isfinite(number) and number > 0


def _is_integer_at_least(value: Any, minimum: int) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    number = float(value)
    return math.isfinite(number) and number.is_integer() and number >= minimum


def _settings_from_mapping(values: dict[str, Any]) -> ExtractionSettings:
    preset = values.pop("preset", "default")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise SettingsError(f"unknown settings preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[preset]
    if not values:
        return base
    known = {f.name for f in dataclasses.fields(ExtractionSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(
            f"unknown settings key(s) {unknown}; valid keys are {sorted(known | {'preset'})}"
        )
    values.setdefault("name", "custom")
    for key in ("resampled_spacing", "resegment_range", "feature_classes"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    try:
        return dataclasses.replace(base, **values)
    except SettingsError:
        raise
    except (TypeError, ValueError) as err:
        # A value of the wrong type (e.g. a word where a number is expected) fails deep in
        # validation; say which settings were given.
        raise SettingsError(f"invalid settings {sorted(values)}: {err}") from err


def _read_settings_file(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    import yaml

    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SettingsError(f"settings file {path} is not valid YAML/JSON: {err}") from err
    if not isinstance(content, Mapping):
        raise SettingsError(f"settings file {path} must hold a mapping of setting: value")
    return content


PRESETS: dict[str, ExtractionSettings] = {
    # Everyday use. The same corrected chain as the IBSI configurations.
    "default": ExtractionSettings(name="default"),
    "ct": ExtractionSettings(
        name="ct",
        round_intensities=True,
        resegment_range=(-1000.0, 400.0),
        discretisation="fixed_bin_size",
        bin_width=25.0,
        ivh_discretisation="none",
    ),
    # Arbitrary intensity units: fixed bin number, and outliers beyond 3 sigma removed.
    "mr": ExtractionSettings(name="mr", resegment_sigma=3.0),
    # IBSI chapter 1 benchmark: the digital phantom needs no processing; a fixed bin size of 1
    # anchored at the ROI minimum leaves its grey levels unchanged.
    "digital_phantom": ExtractionSettings(
        name="digital_phantom",
        ivh_discretisation="none",
        feature_classes=FEATURE_CLASSES,
        resampled_spacing=None,
        discretisation="fixed_bin_size",
        bin_width=1.0,
    ),
    # IBSI lung CT configurations, as tabulated in the reference manual ("Reference data sets"),
    # with every feature family. A and B are 2D configurations: in-plane texture, reported over
    # slices as IBSI 2.5D (dimension "2D" gives the per-slice averages). The IVH needs no
    # discretisation of HU for A, B and D; C uses 2.5 HU bins and E 1000 bins.
    "A": ExtractionSettings(
        name="A",
        ivh_discretisation="none",
        feature_classes=FEATURE_CLASSES,
        dimension="2.5D",
        resampled_spacing=None,
        resegment_range=(-500.0, 400.0),
        discretisation="fixed_bin_size",
        bin_width=25.0,
    ),
    "B": ExtractionSettings(
        name="B",
        ivh_discretisation="none",
        feature_classes=FEATURE_CLASSES,
        dimension="2.5D",
        resampled_spacing=(2.0, 2.0, None),
        image_interpolator="linear",
        round_intensities=True,
        resegment_range=(-500.0, 400.0),
        discretisation="fixed_bin_number",
        bin_count=32,
    ),
    "C": ExtractionSettings(
        name="C",
        ivh_discretisation="fixed_bin_size",
        ivh_bin_width=2.5,
        feature_classes=FEATURE_CLASSES,
        resampled_spacing=(2.0, 2.0, 2.0),
        image_interpolator="linear",
        round_intensities=True,
        resegment_range=(-1000.0, 400.0),
        discretisation="fixed_bin_size",
        bin_width=25.0,
    ),
    "D": ExtractionSettings(
        name="D",
        ivh_discretisation="none",
        feature_classes=FEATURE_CLASSES,
        resampled_spacing=(2.0, 2.0, 2.0),
        image_interpolator="linear",
        round_intensities=True,
        resegment_sigma=3.0,
        discretisation="fixed_bin_number",
        bin_count=32,
    ),
    "E": ExtractionSettings(
        name="E",
        ivh_discretisation="fixed_bin_number",
        ivh_bin_count=1000,
        feature_classes=FEATURE_CLASSES,
        resampled_spacing=(2.0, 2.0, 2.0),
        image_interpolator="bspline",
        round_intensities=True,
        resegment_range=(-1000.0, 400.0),
        resegment_sigma=3.0,
        discretisation="fixed_bin_number",
        bin_count=32,
    ),
}

IBSI_CONFIGURATIONS: tuple[str, ...] = ("digital_phantom", "A", "B", "C", "D", "E")
