"""The IBSI 2 filter families as settings objects (see :mod:`radharmony.ibsi.filters._base`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from radharmony.errors import SettingsError
from radharmony.ibsi.filters import _responses as responses
from radharmony.ibsi.filters._base import (
    FOURIER_MARGIN,
    GABOR_RESPONSES,
    POOLINGS,
    ImageFilter,
    check_bool,
    check_choice,
    check_count,
    check_letters_dimension,
    check_odd_size,
    check_positive,
    check_riesz,
    number_token,
)


@dataclass(frozen=True, kw_only=True)
class MeanFilter(ImageFilter):
    """IBSI mean filter: the mean over a square (2D) or cube (3D) of ``support`` voxels a side."""

    support: int

    family: ClassVar[str] = "mean"
    ibsi_name: ClassVar[str] = "Mean filter"
    ibsi_code: ClassVar[str] = "S60F"

    def _validate(self) -> None:
        check_odd_size(self, "support")

    def _tokens(self) -> list[str]:
        return [f"support{self.support}"]

    def _parameter_text(self) -> str:
        return f"support {self.support} voxels"

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        return [(self.support - 1) // 2] * 3

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.mean_response(image, self.support, self.resolved_dimension, self.boundary)


class _RieszTransformed:
    """Label, description, standard and dimension of a filter with an optional Riesz transform.

    The Riesz orders (per axis x, y[, z]) fix the dimension; a Riesz-transformed response is
    not standardised by IBSI 2.
    """

    riesz_order: tuple[int, ...] | None

    def _riesz_tokens(self) -> list[str]:
        if self.riesz_order is None:
            return []
        return ["riesz" + "".join(str(o) for o in self.riesz_order)]

    def _riesz_text(self) -> str:
        if self.riesz_order is None:
            return ""
        return f", Riesz transform of orders {tuple(self.riesz_order)} (x, y, z)"

    def ibsi_standard(self) -> bool:
        return self.riesz_order is None

    def _inferred_dimension(self) -> str | None:
        if self.riesz_order is None:
            return None
        return "2D" if len(self.riesz_order) == 2 else "3D"


@dataclass(frozen=True, kw_only=True)
class LoGFilter(_RieszTransformed, ImageFilter):
    """IBSI Laplacian-of-Gaussian filter (no scale normalisation), optionally Riesz-transformed.

    Parameters
    ----------
    sigma_mm : float
        Standard deviation of the Gaussian in mm.
    truncate : float
        The kernel is cut to ``1 + 2 floor(truncate sigma + 1/2)`` voxels a side (IBSI: 4).
    riesz_order : tuple of int, optional
        Orders of a Riesz transform applied to the response, per axis x, y[, z] (e.g.
        ``(1, 0, 0)``: first order along x). Not standardised by IBSI 2.
    """

    sigma_mm: float
    truncate: float = 4.0
    riesz_order: tuple[int, ...] | None = None

    family: ClassVar[str] = "log"
    ibsi_name: ClassVar[str] = "Laplacian-of-Gaussian filter"
    ibsi_code: ClassVar[str] = "L6PA"

    def _validate(self) -> None:
        check_positive(self, "sigma_mm")
        check_positive(self, "truncate")
        check_riesz(self)

    def _tokens(self) -> list[str]:
        tokens = [f"sigma{number_token(self.sigma_mm)}mm"]
        if self.truncate != 4.0:
            tokens.append(f"truncate{number_token(self.truncate)}")
        return tokens + self._riesz_tokens()

    def _parameter_text(self) -> str:
        text = f"sigma {self.sigma_mm:g} mm, kernel truncated at {self.truncate:g} sigma"
        return text + self._riesz_text()

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        return [responses.log_radius(self.sigma_mm / float(s), self.truncate) for s in spacing]

    def spans_image(self) -> bool:
        return self.riesz_order is not None

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.log_response(
            image,
            spacing,
            self.sigma_mm,
            self.truncate,
            self.resolved_dimension,
            self.boundary,
            self.riesz_order,
        )


@dataclass(frozen=True, kw_only=True)
class LawsFilter(ImageFilter):
    """IBSI Laws kernel filter, optionally rotation invariant, optionally its energy map.

    Parameters
    ----------
    kernel : str
        1D kernels for x, y[, z] (e.g. ``"L5E5E5"`` in 3D, ``"L5S5"`` in 2D) from L3, E3, S3,
        L5, E5, S5, W5, R5; each normalised to unit norm.
    rotation_invariance : bool
        Pool the responses of the right-angle rotations of the kernel (4 in 2D, 24 in 3D).
    pooling : {"max", "mean", "min"}
        Pooling over rotations.
    energy_delta : int, optional
        Compute the energy map: the mean of the absolute response within ``delta`` voxels
        (a window of ``2 delta + 1`` voxels a side).
    """

    kernel: str
    rotation_invariance: bool = False
    pooling: str = "max"
    energy_delta: int | None = None

    family: ClassVar[str] = "laws"
    ibsi_name: ClassVar[str] = "Laws kernel filter"
    ibsi_code: ClassVar[str] = "JTXT"

    def _validate(self) -> None:
        kernel = str(self.kernel).upper()
        names = [kernel[i : i + 2] for i in range(0, len(kernel), 2)]
        if len(kernel) not in (4, 6) or any(n not in responses.LAWS_KERNELS for n in names):
            raise SettingsError(
                f"laws filter: kernel {self.kernel!r} must be 2 (2D) or 3 (3D) of "
                f"{sorted(responses.LAWS_KERNELS)} for x, y[, z], e.g. 'L5E5E5'"
            )
        object.__setattr__(self, "kernel", kernel)
        check_bool(self, "rotation_invariance")
        check_choice(self, "pooling", POOLINGS)
        if self.energy_delta is not None:
            check_count(self, "energy_delta", minimum=0)
        check_letters_dimension(self, len(names))

    def _inferred_dimension(self) -> str | None:
        return "2D" if len(self.kernel) == 4 else "3D"

    def _tokens(self) -> list[str]:
        tokens = [self.kernel]
        if self.energy_delta is not None:
            tokens.append(f"energy{self.energy_delta}")
        if self.rotation_invariance:
            tokens.append(f"rotinv{self.pooling}")
        return tokens

    def _parameter_text(self) -> str:
        text = f"kernel {self.kernel} (x, y, z), unit-norm 1D kernels"
        if self.rotation_invariance:
            text += f", rotation invariant ({self.pooling} pooling over right-angle rotations)"
        if self.energy_delta is not None:
            text += f", energy map (mean absolute response, delta {self.energy_delta} voxels)"
        return text

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        half = max(len(responses.LAWS_KERNELS[self.kernel[i : i + 2]]) for i in (0, 2)) // 2
        if len(self.kernel) == 6:
            half = max(half, len(responses.LAWS_KERNELS[self.kernel[4:6]]) // 2)
        return [half + (self.energy_delta or 0)] * 3

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.laws_response(
            image,
            self.kernel,
            self.resolved_dimension,
            self.boundary,
            self.rotation_invariance,
            self.pooling,
            self.energy_delta,
        )


@dataclass(frozen=True, kw_only=True)
class GaborFilter(ImageFilter):
    """IBSI Gabor filter, applied in 2D planes: the axial plane (2D) or all three planes (3D).

    Parameters
    ----------
    sigma_mm : float
        Standard deviation of the Gaussian envelope along the wave (mm).
    lambda_mm : float
        Wavelength (mm).
    gamma : float
        Spatial aspect ratio: the envelope's standard deviation across the wave is
        ``sigma / gamma``.
    theta_deg : float
        Orientation (degrees) when ``theta_step_deg`` is not given.
    theta_step_deg : float, optional
        Rotation invariance: pool the responses of the orientations ``0, step, ..., 360 - step``.
    pooling : {"mean", "max", "min"}
        Pooling over orientations (and over the three planes in 3D).
    response : {"modulus", "real", "imaginary", "argument"}
        Part of the complex response (IBSI: modulus).
    truncate : float
        The kernel is cut at ``truncate`` times the envelope's larger standard deviation.
    """

    sigma_mm: float
    lambda_mm: float
    gamma: float
    theta_deg: float = 0.0
    theta_step_deg: float | None = None
    pooling: str = "mean"
    response: str = "modulus"
    truncate: float = 4.0

    family: ClassVar[str] = "gabor"
    ibsi_name: ClassVar[str] = "Gabor filter"
    ibsi_code: ClassVar[str] = "Q88H"

    def _validate(self) -> None:
        for key in ("sigma_mm", "lambda_mm", "gamma", "truncate"):
            check_positive(self, key)
        object.__setattr__(self, "theta_deg", float(self.theta_deg))
        if self.theta_step_deg is not None:
            check_positive(self, "theta_step_deg")
            steps = 360.0 / float(self.theta_step_deg)
            if abs(steps - round(steps)) > 1e-9:
                raise SettingsError(
                    f"gabor filter: theta_step_deg {self.theta_step_deg} must divide 360"
                )
        check_choice(self, "pooling", POOLINGS)
        check_choice(self, "response", GABOR_RESPONSES)

    @property
    def thetas_deg(self) -> list[float]:
        """Orientations (degrees) whose responses are pooled."""
        if self.theta_step_deg is None:
            return [self.theta_deg]
        steps = round(360.0 / float(self.theta_step_deg))
        return [k * float(self.theta_step_deg) for k in range(steps)]

    def _tokens(self) -> list[str]:
        tokens = [
            f"sigma{number_token(self.sigma_mm)}mm",
            f"lambda{number_token(self.lambda_mm)}mm",
            f"gamma{number_token(self.gamma)}",
        ]
        if self.theta_step_deg is None:
            tokens.append(f"theta{number_token(self.theta_deg)}deg")
        else:
            tokens.append(f"thetastep{number_token(self.theta_step_deg)}deg")
            tokens.append(f"rotinv{self.pooling}")
        if self.response != "modulus":
            tokens.append(self.response)
        if self.truncate != 4.0:
            tokens.append(f"truncate{number_token(self.truncate)}")
        return tokens

    def _parameter_text(self) -> str:
        text = f"sigma {self.sigma_mm:g} mm, lambda {self.lambda_mm:g} mm, gamma {self.gamma:g}, "
        if self.theta_step_deg is None:
            text += f"theta {self.theta_deg:g} deg"
        else:
            text += (
                f"orientations every {self.theta_step_deg:g} deg, {self.pooling} pooling "
                "(rotation invariant)"
            )
        text += f", {self.response} of the response"
        if self.resolved_dimension == "3D":
            text += f", {self.pooling} over the axial, coronal and sagittal planes"
        return text + f", kernel truncated at {self.truncate:g} envelope standard deviations"

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        return [
            responses.gabor_radius(self.sigma_mm, self.gamma, self.truncate, float(s))
            for s in spacing
        ]

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.gabor_response(
            image,
            spacing,
            self.sigma_mm,
            self.lambda_mm,
            self.gamma,
            self.thetas_deg,
            self.resolved_dimension,
            self.boundary,
            self.pooling,
            self.response,
            self.truncate,
        )


@dataclass(frozen=True, kw_only=True)
class WaveletFilter(ImageFilter):
    """IBSI separable wavelet filter: one sub-band of the undecimated (stationary) transform.

    Parameters
    ----------
    wavelet : str
        PyWavelets name of the wavelet (``"db3"``, ``"coif1"``, ``"haar"``, ...).
    subband : str
        ``L`` (low-pass) or ``H`` (high-pass) for x, y[, z], e.g. ``"LLH"`` or ``"HH"``.
    level : int
        Decomposition level; levels above 1 use the a trous algorithm (IBSI).
    rotation_invariance : bool
        Pool the responses of the right-angle rotations of the filter cascade.
    pooling : {"mean", "max", "min"}
        Pooling over rotations.
    """

    wavelet: str
    subband: str
    level: int = 1
    rotation_invariance: bool = False
    pooling: str = "mean"

    family: ClassVar[str] = "wavelet"
    ibsi_name: ClassVar[str] = "Separable wavelet filter"
    ibsi_code: ClassVar[str] = "25BO"

    def _validate(self) -> None:
        import pywt

        if not isinstance(self.wavelet, str) or self.wavelet not in pywt.wavelist(kind="discrete"):
            raise SettingsError(
                f"wavelet filter: {self.wavelet!r} is not a discrete PyWavelets wavelet; "
                "see pywt.wavelist(kind='discrete') (e.g. 'db3', 'coif1', 'haar')"
            )
        subband = str(self.subband).upper()
        if len(subband) not in (2, 3) or set(subband) - {"L", "H"}:
            raise SettingsError(
                f"wavelet filter: subband {self.subband!r} must be 2 (2D) or 3 (3D) letters L/H "
                "for x, y[, z], e.g. 'LLH'"
            )
        object.__setattr__(self, "subband", subband)
        check_count(self, "level", minimum=1)
        check_bool(self, "rotation_invariance")
        check_choice(self, "pooling", POOLINGS)
        check_letters_dimension(self, len(subband))

    def _inferred_dimension(self) -> str | None:
        return "2D" if len(self.subband) == 2 else "3D"

    def _tokens(self) -> list[str]:
        tokens = [self.wavelet, self.subband, f"level{self.level}"]
        if self.rotation_invariance:
            tokens.append(f"rotinv{self.pooling}")
        return tokens

    def _parameter_text(self) -> str:
        text = (
            f"wavelet {self.wavelet}, sub-band {self.subband} (x, y, z), level {self.level}, "
            "undecimated"
        )
        if self.level > 1:
            text += " (a trous)"
        if self.rotation_invariance:
            text += f", rotation invariant ({self.pooling} pooling over right-angle rotations)"
        return text

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        return [responses.wavelet_radius(self.wavelet, self.level)] * 3

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.wavelet_response(
            image,
            self.wavelet,
            self.subband,
            self.level,
            self.boundary,
            self.rotation_invariance,
            self.pooling,
        )


@dataclass(frozen=True, kw_only=True)
class SimoncelliFilter(_RieszTransformed, ImageFilter):
    """IBSI non-separable (Simoncelli) wavelet filter, optionally Riesz-transformed.

    Parameters
    ----------
    level : int
        Decomposition level: the pass band is ``[w_max / 4, w_max]`` with ``w_max = 2^(1-level)``
        of the Nyquist frequency.
    riesz_order : tuple of int, optional
        Orders of a Riesz transform per axis x, y[, z]. Not standardised by IBSI 2.
    """

    level: int = 1
    riesz_order: tuple[int, ...] | None = None

    family: ClassVar[str] = "simoncelli"
    ibsi_name: ClassVar[str] = "Non-separable wavelet filter (Simoncelli)"
    ibsi_code: ClassVar[str] = "LODD"

    def _validate(self) -> None:
        check_count(self, "level", minimum=1)
        check_riesz(self)

    def _tokens(self) -> list[str]:
        tokens = [f"level{self.level}"]
        return tokens + self._riesz_tokens()

    def _parameter_text(self) -> str:
        text = f"level {self.level}, isotropic band-pass defined in the Fourier domain"
        return text + self._riesz_text()

    @property
    def pad(self) -> int:
        """Voxels of boundary padding on each side of the image (none for periodic)."""
        return FOURIER_MARGIN * 2 ** (self.level - 1)

    def _radius(self, spacing: Sequence[float]) -> list[int]:
        return [self.pad] * 3

    def spans_image(self) -> bool:
        return True

    def apply(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        return responses.simoncelli_response(
            image,
            self.level,
            self.resolved_dimension,
            self.boundary,
            self.pad,
            self.riesz_order,
        )


FILTER_FAMILIES: dict[str, type[ImageFilter]] = {
    cls.family: cls
    for cls in (MeanFilter, LoGFilter, LawsFilter, GaborFilter, WaveletFilter, SimoncelliFilter)
}
