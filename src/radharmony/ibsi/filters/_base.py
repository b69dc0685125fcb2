"""Filter specifications: the ``filters:`` entries of the extraction settings (shared part).

Each filter family is a frozen dataclass holding its IBSI parameters; it validates them, names
its output columns, says how far around a lesion its response reaches and computes its response
map. Column prefixes (:attr:`ImageFilter.label`) follow one grammar, documented in README.md
and ``data_dictionary/filtered_features.csv``: the family, its parameters (numbers with ``p`` for
the decimal point), options that differ from their defaults, then the dimension, e.g.
``log_sigma1p5mm_3D`` or ``laws_L5E5E5_energy7_rotinvmax_3D``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from radharmony.errors import SettingsError
from radharmony.ibsi.filters._convolution import plane_axes

BOUNDARIES: tuple[str, ...] = ("zero", "nearest", "periodic", "mirror")
DIMENSIONS: tuple[str, ...] = ("2D", "3D")
POOLINGS: tuple[str, ...] = ("mean", "max", "min")
GABOR_RESPONSES: tuple[str, ...] = ("modulus", "real", "imaginary", "argument")
#: Feature families that can be computed on a filtered image.
FILTERED_FEATURE_CLASSES: tuple[str, ...] = (
    "statistics",
    "intensity_histogram",
    "glcm",
    "glrlm",
    "glszm",
    "gldzm",
    "ngtdm",
    "ngldm",
)
#: Padding (voxels, per side, per level) of Fourier-domain filters with a non-periodic boundary:
#: beyond 16 voxels the level-1 Simoncelli kernel stays below 1e-3 of its peak in 2D and below
#: 2e-4 in 3D; each level doubles the scale.
FOURIER_MARGIN = 16
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def number_token(value: float) -> str:
    """A number as it appears in a column name: ``1.5`` -> ``1p5``, ``10.0`` -> ``10``."""
    text = f"{float(value):.6g}"
    return text.replace(".", "p").replace("-", "m").replace("+", "")


@dataclass(frozen=True, kw_only=True)
class ImageFilter:
    """Parameters shared by every filter family.

    Parameters
    ----------
    dimension : {"2D", "3D"} or None
        ``"2D"`` filters each axial slice on its own (in the x-y plane), ``"3D"`` filters the
        volume. ``None`` follows the extraction settings (``"3D"`` for ``dimension="3D"``,
        ``"2D"`` for 2D and 2.5D); Laws kernels, wavelet sub-bands and Riesz orders take it
        from the number of their letters or orders. Parameters given in mm are converted to voxels along each axis; IBSI
        defines 3D filters on isotropic grids, so resample first (``resampled_spacing``) for
        values comparable with IBSI.
    boundary : {"mirror", "zero", "nearest", "periodic"}
        IBSI boundary condition: how the image is extended beyond its edge (mirror repeats the
        edge voxel: ``abc|cba``). Only the true image edge is extended: around a lesion, the
        response is computed on a crop wide enough for the filter's support.
    features : tuple of str
        Feature families computed on the response map (see ``FILTERED_FEATURE_CLASSES``); by
        default the 18 IBSI intensity statistics.
    name : str, optional
        Column prefix replacing the automatic one (letters, digits and single underscores).
    """

    dimension: str | None = None
    boundary: str = "mirror"
    features: tuple[str, ...] = ("statistics",)
    name: str | None = None

    family: ClassVar[str] = ""
    ibsi_name: ClassVar[str] = ""
    ibsi_code: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_choice(self, "boundary", BOUNDARIES)
        if self.dimension is not None:
            check_choice(self, "dimension", DIMENSIONS)
        features = tuple(self.features) if not isinstance(self.features, str) else (self.features,)
        unknown = [f for f in features if f not in FILTERED_FEATURE_CLASSES]
        if unknown or not features:
            raise SettingsError(
                f"{self.family} filter: features must be a non-empty subset of "
                f"{list(FILTERED_FEATURE_CLASSES)}; unknown: {unknown}"
            )
        object.__setattr__(self, "features", features)
        if self.name is not None and (not _NAME.fullmatch(self.name) or "__" in self.name):
            raise SettingsError(
                f"{self.family} filter: name {self.name!r} must start with a letter and hold only "
                "letters, digits and single underscores"
            )
        self._validate()

    def _validate(self) -> None:
        """Check the family's own parameters (overridden by each family)."""

    # -- naming -------------------------------------------------------------------------------
    @property
    def resolved_dimension(self) -> str:
        """The dimension the filter runs in (``dimension``, else inferred, else ``"3D"``)."""
        return self.dimension or self._inferred_dimension() or "3D"

    def _inferred_dimension(self) -> str | None:
        return None

    def _tokens(self) -> list[str]:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Column prefix: ``name`` if given, else family, parameters and dimension."""
        if self.name:
            return self.name
        tokens = [self.family, *self._tokens()]
        if self.boundary != "mirror":
            tokens.append(self.boundary)
        tokens.append(self.resolved_dimension)
        return "_".join(tokens)

    def describe(self) -> str:
        """The filter in IBSI terms, for data dictionaries and reports."""
        code = f", IBSI {self.ibsi_code}" if self.ibsi_code else ""
        return (
            f"{self.ibsi_name}{code}: {self._parameter_text()}; {self.resolved_dimension}"
            f"{' (each axial slice)' if self.resolved_dimension == '2D' else ''}, "
            f"boundary {self.boundary}"
        )

    def _parameter_text(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The filter as a settings mapping (``filter`` names the family)."""
        values = {"filter": self.family}
        values.update({f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)})
        return values

    # -- computation --------------------------------------------------------------------------
    def margins(self, spacing: Sequence[float]) -> tuple[int, int, int]:
        """Voxels of image needed around a lesion per array axis (z, y, x) for its response."""
        radius = self._radius(spacing)
        axes = plane_axes(self.resolved_dimension)
        return tuple(radius[a] if a in axes else 0 for a in range(3))  # type: ignore[return-value]

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        raise NotImplementedError

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Response map of a (z, y, x) image with voxel ``spacing`` (z, y, x) in mm."""
        raise NotImplementedError

    def ibsi_standard(self) -> bool:
        """Whether IBSI 2 standardised this filter (its Riesz variants were not)."""
        return True

    def spans_image(self) -> bool:
        """Whether the filter is defined in the Fourier domain on the image grid.

        Such a filter (Simoncelli wavelets, Riesz transforms) has no compact kernel and its
        transfer function is sampled on the grid of the image, so its response at a voxel
        depends on the whole image along the filtered axes. It is then computed on the whole
        image along those axes (never on a crop around the lesion), as IBSI defines it.
        """
        return False


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fail(image_filter: ImageFilter, key: str, requirement: str) -> SettingsError:
    value = getattr(image_filter, key)
    return SettingsError(
        f"{image_filter.family} filter: {key} must be {requirement}, got {value!r}"
    )


def check_choice(image_filter: ImageFilter, key: str, choices: Sequence[str]) -> None:
    if getattr(image_filter, key) not in choices:
        raise _fail(image_filter, key, f"one of {list(choices)}")


def check_positive(image_filter: ImageFilter, key: str) -> None:
    value = getattr(image_filter, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _fail(image_filter, key, "a positive number")
    if not math.isfinite(float(value)):
        raise _fail(image_filter, key, "a finite number")
    object.__setattr__(image_filter, key, float(value))


def check_count(image_filter: ImageFilter, key: str, minimum: int) -> None:
    value = getattr(image_filter, key)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise _fail(image_filter, key, f"an integer >= {minimum}")
    object.__setattr__(image_filter, key, int(value))


def check_odd_size(image_filter: ImageFilter, key: str) -> None:
    check_count(image_filter, key, minimum=1)
    if getattr(image_filter, key) % 2 == 0:
        raise _fail(image_filter, key, "an odd number of voxels (the filter is centred)")


def check_bool(image_filter: ImageFilter, key: str) -> None:
    if not isinstance(getattr(image_filter, key), bool):
        raise _fail(image_filter, key, "true or false")


def check_riesz(image_filter: Any) -> None:
    order = image_filter.riesz_order
    if order is None:
        return
    order = tuple(order) if isinstance(order, Sequence) and not isinstance(order, str) else None
    if (
        order is None
        or len(order) not in (2, 3)
        or any(isinstance(o, bool) or not isinstance(o, int | np.integer) for o in order)
        or any(not 0 <= o <= 9 for o in order)
        or sum(order) == 0
    ):
        raise _fail(
            image_filter,
            "riesz_order",
            "2 (2D) or 3 (3D) integer orders 0-9 for x, y[, z], not all 0",
        )
    object.__setattr__(image_filter, "riesz_order", tuple(int(o) for o in order))
    check_letters_dimension(image_filter, len(order), what="riesz_order")


def check_letters_dimension(image_filter: ImageFilter, letters: int, what: str = "") -> None:
    expected = "2D" if letters == 2 else "3D"
    if image_filter.dimension is not None and image_filter.dimension != expected:
        name = what or ("kernel" if image_filter.family == "laws" else "subband")
        raise SettingsError(
            f"{image_filter.family} filter: {name} has {letters} entries ({expected}) but "
            f"dimension is {image_filter.dimension}"
        )
