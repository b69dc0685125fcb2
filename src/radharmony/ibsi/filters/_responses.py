"""Response maps of the IBSI 2 filter families, on numpy (z, y, x) arrays.

Every function takes the image, the voxel spacing (z, y, x) in mm where parameters are given in
mm, the filter parameters, the dimension (``"2D"``: each axial slice on its own, ``"3D"``) and
the IBSI boundary condition (``zero``, ``nearest``, ``periodic``, ``mirror``), and returns a
float64 response map of the image's shape. Parameters are assumed valid (see
:mod:`radharmony.ibsi.filters._spec`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy import fft, ndimage

from radharmony.ibsi.filters._convolution import (
    LETTER_AXES,
    NDIMAGE_MODES,
    centred_grid,
    convolve_separable,
    dilate,
    fft_filter,
    fft_filter_real,
    kernel_transfer,
    letter_kernels,
    plane_axes,
    pool,
    rotated_kernel_sets,
)

# Laws' 1D kernels before normalisation to unit norm (IBSI 2, Laws kernels).
LAWS_KERNELS: dict[str, tuple[float, ...]] = {
    "L3": (1, 2, 1),
    "E3": (-1, 0, 1),
    "S3": (-1, 2, -1),
    "L5": (1, 4, 6, 4, 1),
    "E5": (-1, -2, 0, 2, 1),
    "S5": (-1, 0, 2, 0, -1),
    "W5": (-1, 2, 0, -2, 1),
    "R5": (1, -4, 6, -4, 1),
}


def mean_response(image: np.ndarray, support: int, dimension: str, boundary: str) -> np.ndarray:
    """Mean over a cube (3D) or square (2D) of ``support`` voxels a side."""
    out = np.asarray(image, dtype=np.float64)
    for axis in plane_axes(dimension):
        out = ndimage.uniform_filter1d(
            out, support, axis=axis, mode=NDIMAGE_MODES[boundary], cval=0.0
        )
    return out


def log_radius(sigma_voxels: float, truncate: float) -> int:
    """Half width of the LoG kernel: its size is ``1 + 2 floor(truncate sigma + 1/2)`` voxels."""
    return int(math.floor(truncate * sigma_voxels + 0.5))


def _gaussian_parts(sigma: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Sampled 1D Gaussian and its second derivative (voxel units)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * sigma**2)) / math.sqrt(2.0 * math.pi * sigma**2)
    return g, g * (x**2 / sigma**4 - 1.0 / sigma**2)


def log_response(
    image: np.ndarray,
    spacing: Sequence[float],
    sigma_mm: float,
    truncate: float,
    dimension: str,
    boundary: str,
    riesz_order: Sequence[int] | None = None,
) -> np.ndarray:
    """Laplacian of Gaussian, sigma converted to voxels, without scale normalisation.

    The IBSI kernel ``-1/s^2 (2 pi s^2)^(-D/2) (D - r^2/s^2) exp(-r^2 / 2 s^2)`` equals the sum
    over axes of a second-derivative Gaussian along that axis times Gaussians along the others,
    so it is applied as ``D`` separable convolutions (exactly, including its truncation to a
    box of ``1 + 2 floor(4 sigma + 1/2)`` voxels a side).
    """
    axes = plane_axes(dimension)
    sigmas = {a: sigma_mm / float(spacing[a]) for a in axes}
    radii = {a: log_radius(sigmas[a], truncate) for a in axes}
    parts = {a: _gaussian_parts(sigmas[a], radii[a]) for a in axes}
    if riesz_order is not None and any(riesz_order):
        return _riesz_log(image, axes, parts, radii, boundary, riesz_order)
    out = np.zeros(image.shape, dtype=np.float64)
    for derived in axes:
        kernels = {a: parts[a][1] if a == derived else parts[a][0] for a in axes}
        out += convolve_separable(image, kernels, boundary)
    return out


def _riesz_log(
    image: np.ndarray,
    axes: tuple[int, ...],
    parts: dict[int, tuple[np.ndarray, np.ndarray]],
    radii: dict[int, int],
    boundary: str,
    riesz_order: Sequence[int],
) -> np.ndarray:
    """Riesz transform of the LoG response, in the Fourier domain on the padded grid."""

    def transfer(shape: tuple[int, ...]) -> np.ndarray:
        one_d = {
            a: tuple(kernel_transfer(p, (n,)) for p in parts[a])
            for a, n in zip(axes, shape, strict=True)
        }
        total = np.zeros(shape, dtype=np.complex128)
        for derived in axes:
            term = np.ones((1,) * len(axes), dtype=np.complex128)
            for position, a in enumerate(axes):
                vector = one_d[a][1] if a == derived else one_d[a][0]
                view = [1] * len(axes)
                view[position] = vector.size
                term = term * vector.reshape(view)
            total += term
        return total * riesz_transfer(shape, _axis_orders(axes, riesz_order))

    widths = [radii[a] for a in axes]
    return fft_filter_real(image, axes, widths, boundary, transfer)


def _axis_orders(axes: tuple[int, ...], riesz_order: Sequence[int]) -> list[int]:
    """Riesz orders given for the letter axes (x, y[, z]) in the order of ``axes``."""
    by_axis = {LETTER_AXES[i]: int(order) for i, order in enumerate(riesz_order)}
    return [by_axis.get(a, 0) for a in axes]


def riesz_transfer(shape: tuple[int, ...], orders: Sequence[int]) -> np.ndarray:
    """Transfer function of the Riesz transform of orders ``orders`` (one per axis of ``shape``).

    ``(-i)^L sqrt(L! / prod l_i!) prod w_i^l_i / |w|^L`` on the centred frequency grid (see
    :func:`centred_grid`), returned in FFT order. It is 0 where the frequency is 0.
    """
    total = int(sum(orders))
    coordinates = centred_grid(shape)
    radius = np.sqrt(sum(c**2 for c in coordinates))
    numerator = np.ones(shape, dtype=np.float64)
    for c, order in zip(coordinates, orders, strict=True):
        if order:
            numerator = numerator * c**order
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(radius > 0, numerator / radius**total, 0.0)
    factor = math.sqrt(math.factorial(total) / math.prod(math.factorial(o) for o in orders))
    return fft.ifftshift((-1j) ** total * factor * ratio)


def laws_kernels(kernel: str) -> list[np.ndarray]:
    """Unit-norm 1D Laws kernels of a name such as ``"L5E5E5"`` (letters for x, y, z)."""
    names = [kernel[i : i + 2].upper() for i in range(0, len(kernel), 2)]
    out = []
    for name in names:
        values = np.asarray(LAWS_KERNELS[name], dtype=np.float64)
        out.append(values / np.linalg.norm(values))
    return out


def laws_response(
    image: np.ndarray,
    kernel: str,
    dimension: str,
    boundary: str,
    rotation_invariance: bool,
    pooling: str,
    energy_delta: int | None,
) -> np.ndarray:
    """Laws kernel response (true convolution), pooled over rotations, optionally its energy.

    The energy map is the mean of the absolute (pooled) response over a window of
    ``2 delta + 1`` voxels a side, with the same boundary condition.
    """
    kernel_sets = rotated_kernel_sets([laws_kernels(kernel)], rotation_invariance)
    response = pool(
        (convolve_separable(image, letter_kernels(ks[0]), boundary) for ks in kernel_sets),
        pooling,
    )
    if energy_delta is None:
        return response
    return mean_response(np.abs(response), 2 * energy_delta + 1, dimension, boundary)


def wavelet_kernels(wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """Decomposition low-pass and high-pass filters of a PyWavelets wavelet."""
    import pywt

    family = pywt.Wavelet(wavelet)
    return np.asarray(family.dec_lo, dtype=np.float64), np.asarray(family.dec_hi, dtype=np.float64)


def wavelet_response(
    image: np.ndarray,
    wavelet: str,
    subband: str,
    level: int,
    boundary: str,
    rotation_invariance: bool,
    pooling: str,
) -> np.ndarray:
    """One sub-band of the undecimated separable wavelet transform at ``level``.

    Letters of ``subband`` (``L`` low-pass, ``H`` high-pass) apply to x, y[, z]. Levels above 1
    use the a trous algorithm: the low-pass filter is applied at each coarser level first, the
    filters of level ``k`` being dilated by ``2^(k-1)``. Rotation invariance pools over the
    right-angle rotations of the whole filter cascade.
    """
    low, high = wavelet_kernels(wavelet)
    main = [low if letter.upper() == "L" else high for letter in subband]
    pre = [low] * len(subband)
    kernel_sets = rotated_kernel_sets([main, pre], rotation_invariance)

    def cascade(kernels: tuple[tuple[np.ndarray, ...], ...]) -> np.ndarray:
        main_set, pre_set = kernels
        out = np.asarray(image, dtype=np.float64)
        for k in range(1, level):
            dilated = [dilate(p, 2 ** (k - 1)) for p in pre_set]
            out = convolve_separable(out, letter_kernels(dilated), boundary)
        dilated = [dilate(m, 2 ** (level - 1)) for m in main_set]
        return convolve_separable(out, letter_kernels(dilated), boundary)

    return pool((cascade(ks) for ks in kernel_sets), pooling)


def wavelet_radius(wavelet: str, level: int) -> int:
    """Half width of the cascade of a wavelet sub-band at ``level`` (voxels)."""
    low, high = wavelet_kernels(wavelet)
    half = max(low.size, high.size) // 2  # half width of the odd-extended kernels
    return sum(half * 2 ** (k - 1) for k in range(1, level + 1))


# Planes of a 3D Gabor filter: (rows, columns) array axes of the axial, coronal and sagittal
# planes. The kernel's x axis runs along the columns, y along the rows.
GABOR_PLANES_3D: tuple[tuple[int, int], ...] = ((1, 2), (0, 2), (0, 1))


def gabor_radius(sigma_mm: float, gamma: float, truncate: float, spacing: float) -> int:
    """Half width of the truncated Gabor kernel along an axis of ``spacing`` mm.

    The Gaussian envelope has standard deviation sigma along the kernel's x axis and
    sigma / gamma along its y axis; the kernel is cut at ``truncate`` times the larger one.
    """
    return int(math.ceil(truncate * sigma_mm * max(1.0, 1.0 / gamma) / spacing))


def gabor_response(
    image: np.ndarray,
    spacing: Sequence[float],
    sigma_mm: float,
    lambda_mm: float,
    gamma: float,
    thetas_deg: Sequence[float],
    dimension: str,
    boundary: str,
    pooling: str,
    response: str,
    truncate: float,
) -> np.ndarray:
    """Gabor filter response pooled over orientations (and over the 3 planes in 3D).

    The kernel is ``exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2) + i 2 pi x' / lambda)`` in mm, with
    ``x' = x cos(theta) + y sin(theta)`` and ``y' = x sin(theta) - y cos(theta)``, ``x`` along
    the columns and ``y`` along the rows of the plane. It is applied in 2D to every slice of a
    plane by FFT-based convolution; ``response`` takes the modulus, real or imaginary part or
    argument of the complex output.
    """
    planes = ((1, 2),) if dimension == "2D" else GABOR_PLANES_3D
    weights = _orientation_weights(thetas_deg, response)

    def responses() -> Iterator[tuple[np.ndarray, float]]:
        for rows, cols in planes:
            radii = [
                gabor_radius(sigma_mm, gamma, truncate, float(spacing[a])) for a in (rows, cols)
            ]
            transfers = [
                _gabor_transfer(sigma_mm, lambda_mm, gamma, theta, radii, spacing, rows, cols)
                for theta in weights
            ]
            filtered = fft_filter(image, (rows, cols), radii, boundary, transfers, fast_size=True)
            for values, weight in zip(filtered, weights.values(), strict=True):
                yield _complex_part(values, response), weight

    if pooling != "mean":
        return pool((values for values, _ in responses()), pooling)
    total = np.zeros(image.shape, dtype=np.float64)
    count = 0.0
    for values, weight in responses():
        total += weight * values
        count += weight
    return total / count


def _orientation_weights(thetas_deg: Sequence[float], response: str) -> dict[float, int]:
    """Distinct orientations to compute, with how many of ``thetas_deg`` each stands for.

    The kernel at theta + 180 deg is the complex conjugate of that at theta, so for a real
    image its response is the conjugate: the same modulus and real part.
    """
    weights: dict[float, int] = {}
    for theta in thetas_deg:
        key = round(theta % 180.0, 9) if response in ("modulus", "real") else float(theta)
        weights[key] = weights.get(key, 0) + 1
    return weights


def _gabor_transfer(
    sigma_mm: float,
    lambda_mm: float,
    gamma: float,
    theta_deg: float,
    radii: Sequence[int],
    spacing: Sequence[float],
    rows: int,
    cols: int,
) -> Callable[[tuple[int, ...]], np.ndarray]:
    def transfer(shape: tuple[int, ...]) -> np.ndarray:
        y = np.arange(-radii[0], radii[0] + 1, dtype=np.float64)[:, None] * float(spacing[rows])
        x = np.arange(-radii[1], radii[1] + 1, dtype=np.float64)[None, :] * float(spacing[cols])
        theta = math.radians(theta_deg)
        x_rot = x * math.cos(theta) + y * math.sin(theta)
        y_rot = x * math.sin(theta) - y * math.cos(theta)
        kernel = np.exp(
            -(x_rot**2 + gamma**2 * y_rot**2) / (2.0 * sigma_mm**2)
            + 1j * 2.0 * math.pi * x_rot / lambda_mm
        )
        return kernel_transfer(kernel, shape)

    return transfer


def _complex_part(values: np.ndarray, response: str) -> np.ndarray:
    if response == "modulus":
        return np.abs(values)
    if response == "real":
        return np.real(values)
    if response == "imaginary":
        return np.imag(values)
    return np.angle(values)


def simoncelli_transfer(shape: tuple[int, ...], level: int) -> np.ndarray:
    """Isotropic Simoncelli band-pass of ``level`` on the centred grid, in FFT order.

    ``cos(pi/2 log2(2 w / w_max))`` for ``w_max / 4 <= w <= w_max``, ``w_max = 2^(1 - level)``
    (1 is the Nyquist frequency).
    """
    coordinates = centred_grid(shape)
    radius = np.sqrt(sum(c**2 for c in coordinates))
    top = 2.0 ** (1 - level)
    band = (radius >= top / 4.0) & (radius <= top)
    values = np.zeros(shape, dtype=np.float64)
    values[band] = np.cos(math.pi / 2.0 * np.log2(2.0 * radius[band] / top))
    return fft.ifftshift(values)


def simoncelli_response(
    image: np.ndarray,
    level: int,
    dimension: str,
    boundary: str,
    pad: int,
    riesz_order: Sequence[int] | None = None,
) -> np.ndarray:
    """Simoncelli non-separable wavelet (optionally Riesz-transformed), real part.

    The filter is defined in the Fourier domain on the grid of the padded image: periodic
    boundaries use the image as it is (the FFT is periodic), the others pad ``pad`` voxels with
    the boundary condition first.
    """
    axes = plane_axes(dimension)
    widths = [0 if boundary == "periodic" else pad] * len(axes)

    def transfer(shape: tuple[int, ...]) -> np.ndarray:
        values = simoncelli_transfer(shape, level)
        if riesz_order is not None and any(riesz_order):
            values = values * riesz_transfer(shape, _axis_orders(axes, riesz_order))
        return values

    return fft_filter_real(image, axes, widths, boundary, transfer)
