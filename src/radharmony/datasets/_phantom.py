"""Building blocks of the synthetic cohort: scanner protocols, lesion shapes, textures, volumes.

Everything is defined in physical millimetres around a field of view centred on the origin, then
sampled on each scanner's voxel grid. Arrays are in NumPy order ``(z, y, x)``; spacings, sizes and
coordinates given to or returned from this module are in ITK order ``(x, y, z)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CLASS_NAMES: tuple[str, str] = ("benign", "malignant")
FOV_MM: tuple[float, float, float] = (80.0, 80.0, 64.0)

# Tissue and lesion attenuation (CT-like Hounsfield units, before any scanner distortion).
TISSUE_HU = 40.0
TISSUE_SUBJECT_SD_HU = 4.0
TISSUE_TEXTURE_SD_HU = 8.0
TISSUE_TEXTURE_CORR_MM = 5.0
LESION_HU_AT_REF_AGE = 80.0
LESION_MEAN_SD_HU = 6.0
AGE_REF_YEARS = 60.0
AGE_SLOPE_HU_PER_YEAR = 0.4
AGE_MEAN_YEARS, AGE_SD_YEARS, AGE_RANGE_YEARS = 62.0, 11.0, (30, 90)

# Lesion volume: the same log-normal law for both classes, so volume alone carries no class signal.
VOLUME_MEDIAN_MM3, VOLUME_SD_LOG, VOLUME_RANGE_MM3 = 1800.0, 0.55, (400.0, 6000.0)
ELONGATION_RANGE = (0.03, 0.15)
# Lobulation beyond this RMS makes implausible, octopus-like shapes that no longer fit the field.
IRREGULARITY_MAX = 0.3

# Class-specific texture and margin laws: log-normal (median, sd of log); they overlap on purpose.
CLASS_LAWS: dict[str, dict[str, tuple[float, float]]] = {
    "benign": {
        "texture_sd_hu": (8.0, 0.4),
        "texture_corr_mm": (3.5, 0.2),
        "irregularity": (0.05, 0.4),
    },
    "malignant": {
        "texture_sd_hu": (18.0, 0.4),
        "texture_corr_mm": (2.5, 0.2),
        "irregularity": (0.15, 0.35),
    },
}

# Scanner parameter ranges; each scanner takes one of n evenly spaced values of every range.
SCANNER_RANGES: dict[str, tuple[float, float]] = {
    "spacing_xy_mm": (0.7, 1.0),
    "spacing_z_mm": (1.0, 3.0),
    "noise_sd_hu": (5.0, 15.0),
    "intensity_scale": (0.9, 1.1),
    "intensity_offset_hu": (-25.0, 25.0),
    "blur_fwhm_mm": (0.8, 2.4),
    "malignant_fraction": (0.25, 0.75),
}
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_N_LOBES = 30
_N_SPHERE_POINTS = 2000
_MAX_PLACEMENT_TRIES = 200


@dataclass(frozen=True)
class Scanner:
    """Acquisition protocol of one synthetic scanner (all lengths in mm, intensities in HU)."""

    name: str
    spacing: tuple[float, float, float]
    noise_sd_hu: float
    intensity_scale: float
    intensity_offset_hu: float
    blur_fwhm_mm: float
    malignant_fraction: float

    @property
    def size(self) -> tuple[int, int, int]:
        """Grid size ``(x, y, z)`` covering the field of view."""
        nx, ny, nz = (int(round(f / s)) for f, s in zip(FOV_MM, self.spacing, strict=True))
        return nx, ny, nz

    @property
    def origin(self) -> tuple[float, float, float]:
        """Physical position of voxel (0, 0, 0), chosen so the grid is centred on the origin."""
        x, y, z = (-(n - 1) * s / 2.0 for n, s in zip(self.size, self.spacing, strict=True))
        return x, y, z


@dataclass(frozen=True)
class LesionShape:
    """Star-shaped lesion: log-radius = log R + ellipsoidal term + sum of angular lobes."""

    centre: np.ndarray
    log_radius: float
    quadratic: np.ndarray
    lobe_directions: np.ndarray
    lobe_kappas: np.ndarray
    lobe_amplitudes: np.ndarray
    lobe_mean: float
    max_radius: float

    def log_radius_at(self, directions: np.ndarray) -> np.ndarray:
        """Log of the boundary radius along unit ``directions`` (shape ``(..., 3)``)."""
        return self.log_radius + _log_radius_perturbation(
            directions,
            self.quadratic,
            self.lobe_directions,
            self.lobe_kappas,
            self.lobe_amplitudes,
            self.lobe_mean,
        )


def make_scanners(n_scanners: int, rng: np.random.Generator) -> list[Scanner]:
    """Scanner protocols spread evenly over every parameter range, in a seed-dependent pairing.

    Evenly spaced values (rather than independent draws) guarantee that any two scanners differ
    visibly in each parameter; shuffling each parameter separately avoids a single "good" scanner.
    """
    levels = {}
    for key, (low, high) in SCANNER_RANGES.items():
        grid = (
            np.linspace(low, high, n_scanners) if n_scanners > 1 else np.array([(low + high) / 2])
        )
        levels[key] = grid[rng.permutation(n_scanners)]
    scanners = []
    for k in range(n_scanners):
        xy = round(float(levels["spacing_xy_mm"][k]), 3)
        scanners.append(
            Scanner(
                name=f"scanner_{chr(ord('A') + k)}",
                spacing=(xy, xy, round(float(levels["spacing_z_mm"][k]), 3)),
                noise_sd_hu=float(levels["noise_sd_hu"][k]),
                intensity_scale=float(levels["intensity_scale"][k]),
                intensity_offset_hu=float(levels["intensity_offset_hu"][k]),
                blur_fwhm_mm=float(levels["blur_fwhm_mm"][k]),
                malignant_fraction=float(levels["malignant_fraction"][k]),
            )
        )
    return scanners


def draw_lognormal(rng: np.random.Generator, law: tuple[float, float]) -> float:
    """One draw from a log-normal law given as (median, sd of the log)."""
    median, sd_log = law
    return float(median * np.exp(sd_log * rng.standard_normal()))


def draw_lesion_shape(
    rng: np.random.Generator, volume_mm3: float, irregularity: float, elongation: float
) -> LesionShape:
    """A random star-shaped lesion of exactly ``volume_mm3``, centred at the origin.

    ``elongation`` is the RMS over the sphere of the degree-2 (ellipsoidal) log-radius term and
    ``irregularity`` that of the lobulated term; the radius scale is then solved so that the
    enclosed volume, ``R**3 * 4*pi/3 * mean(exp(3 h(u)))``, equals the target.
    """
    sphere = _sphere_points()
    b = rng.standard_normal((3, 3))
    quadratic = (b + b.T) / 2.0
    quadratic -= np.trace(quadratic) / 3.0 * np.eye(3)
    quadratic *= elongation / _rms(np.einsum("ni,ij,nj->n", sphere, quadratic, sphere))

    directions = _unit(rng.standard_normal((_N_LOBES, 3)))
    kappas = rng.uniform(6.0, 14.0, _N_LOBES)
    amplitudes = rng.standard_normal(_N_LOBES)
    lobes = _lobe_sum(sphere, directions, kappas, amplitudes)
    scale = irregularity / _rms(lobes - lobes.mean())
    amplitudes = amplitudes * scale
    lobe_mean = float(lobes.mean() * scale)

    h = _log_radius_perturbation(sphere, quadratic, directions, kappas, amplitudes, lobe_mean)
    log_radius = float(np.log(volume_mm3 / (4.0 * np.pi / 3.0 * np.mean(np.exp(3.0 * h)))) / 3.0)
    # The quadrature grid can miss the very tip of a lobe; 5 % covers it (checked in the tests).
    max_radius = float(np.exp(log_radius + h.max()) * 1.05)
    return LesionShape(
        np.zeros(3), log_radius, quadratic, directions, kappas, amplitudes, lobe_mean, max_radius
    )


def place_lesions(
    rng: np.random.Generator, shapes: list[LesionShape], gap_mm: float
) -> dict[int, LesionShape]:
    """Move lesions to random centres inside the field of view, at least ``gap_mm`` apart.

    Returns the placed lesions keyed by their position in ``shapes``. A lesion that cannot be
    placed after a fixed number of tries is dropped (never the first), so the output stays
    deterministic for a seed.
    """
    half_fov = np.asarray(FOV_MM) / 2.0
    placed: dict[int, LesionShape] = {}
    for index, shape in enumerate(shapes):
        # A lesion wider than the field is centred on that axis (and cut by the field's edge).
        limit = np.maximum(half_fov - shape.max_radius - gap_mm, 0.0)
        for _ in range(_MAX_PLACEMENT_TRIES):
            centre = rng.uniform(-limit, limit)
            if all(
                np.linalg.norm(centre - other.centre) > shape.max_radius + other.max_radius + gap_mm
                for other in placed.values()
            ):
                placed[index] = _with_centre(shape, centre)
                break
    return placed


def physical_grid_axes(scanner: Scanner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical coordinates (mm) of the voxel centres along x, y and z."""
    x, y, z = (
        o + s * np.arange(n)
        for o, s, n in zip(scanner.origin, scanner.spacing, scanner.size, strict=True)
    )
    return x, y, z


def lesion_box(shape: LesionShape, scanner: Scanner) -> tuple[slice, slice, slice]:
    """Array slices ``(z, y, x)`` of the voxels that may lie inside the lesion."""
    slices = []
    for axis in (2, 1, 0):
        low = shape.centre[axis] - shape.max_radius - scanner.origin[axis]
        high = shape.centre[axis] + shape.max_radius - scanner.origin[axis]
        start = max(int(np.floor(low / scanner.spacing[axis])), 0)
        stop = min(int(np.ceil(high / scanner.spacing[axis])) + 1, scanner.size[axis])
        slices.append(slice(start, stop))
    return slices[0], slices[1], slices[2]


def lesion_inside(shape: LesionShape, scanner: Scanner, box: tuple[slice, ...]) -> np.ndarray:
    """Boolean array over ``box``: voxel centres strictly inside the lesion boundary."""
    x, y, z = physical_grid_axes(scanner)
    zz, yy, xx = np.meshgrid(z[box[0]], y[box[1]], x[box[2]], indexing="ij")
    offsets = np.stack([xx, yy, zz], axis=-1) - shape.centre
    distance = np.linalg.norm(offsets, axis=-1)
    directions = offsets / np.maximum(distance, 1e-9)[..., None]
    inside = np.log(np.maximum(distance, 1e-9)) < shape.log_radius_at(directions)
    return inside


def smooth_field(
    rng: np.random.Generator, shape_zyx: tuple[int, ...], spacing: tuple[float, ...], corr_mm: float
) -> np.ndarray:
    """Gaussian random field with unit empirical SD and zero mean, smoothed over ``corr_mm``.

    The smoothing kernel has SD ``corr_mm`` in physical units on every axis, so the texture has
    the same physical grain on every scanner grid.
    """
    sigma = [corr_mm / s for s in spacing[::-1]]
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape_zyx, dtype=np.float32), sigma, mode="reflect", truncate=3.0
    )
    field -= field.mean()
    return field / field.std()


def coarse_smooth_field(
    rng: np.random.Generator, scanner: Scanner, corr_mm: float, coarse_mm: float = 2.0
) -> np.ndarray:
    """A smooth field drawn on a coarse isotropic grid then interpolated onto the scanner grid.

    Large-grain background texture is band-limited, so drawing it at ``coarse_mm`` and
    interpolating linearly loses nothing visible and is an order of magnitude faster.
    """
    coarse_shape = tuple(int(np.ceil(f / coarse_mm)) + 1 for f in FOV_MM[::-1])
    coarse = smooth_field(rng, coarse_shape, (coarse_mm,) * 3, corr_mm)
    field = coarse
    for axis, (positions, fov) in enumerate(
        zip(physical_grid_axes(scanner)[::-1], FOV_MM[::-1], strict=True)
    ):
        field = _interpolate_axis(field, (positions + fov / 2.0) / coarse_mm, axis)
    field -= field.mean()
    return field / field.std()


def acquire(rng: np.random.Generator, true_hu: np.ndarray, scanner: Scanner) -> np.ndarray:
    """What ``scanner`` records of ``true_hu``: blur, then intensity scale and offset, then noise.

    Returns int16 (rounded, clipped to the int16 range) as CT scanners store their images.
    """
    sigma = [scanner.blur_fwhm_mm / _FWHM_PER_SIGMA / s for s in scanner.spacing[::-1]]
    blurred = ndimage.gaussian_filter(true_hu, sigma, mode="nearest", truncate=3.0)
    noise = rng.standard_normal(true_hu.shape, dtype=np.float32) * np.float32(scanner.noise_sd_hu)
    observed = blurred * np.float32(scanner.intensity_scale)
    observed += np.float32(scanner.intensity_offset_hu) + noise
    info = np.iinfo(np.int16)
    return np.clip(np.rint(observed), info.min, info.max).astype(np.int16)


def _interpolate_axis(values: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` at fractional ``index`` positions along ``axis``.

    Trilinear interpolation on a rectilinear grid is separable, so three 1-D passes replace a
    full 3-D coordinate array.
    """
    index = np.clip(index, 0.0, values.shape[axis] - 1.0)
    lower = np.minimum(np.floor(index).astype(int), values.shape[axis] - 2)
    weight_shape = [1] * values.ndim
    weight_shape[axis] = -1
    weight = (index - lower).astype(values.dtype).reshape(weight_shape)
    below = np.take(values, lower, axis=axis)
    above = np.take(values, lower + 1, axis=axis)
    return below + weight * (above - below)


def _log_radius_perturbation(
    directions: np.ndarray,
    quadratic: np.ndarray,
    lobe_directions: np.ndarray,
    kappas: np.ndarray,
    amplitudes: np.ndarray,
    lobe_mean: float,
) -> np.ndarray:
    """Ellipsoidal plus lobulated part of the log-radius along unit ``directions``."""
    ellipsoidal = np.einsum("...i,ij,...j->...", directions, quadratic, directions)
    return ellipsoidal + _lobe_sum(directions, lobe_directions, kappas, amplitudes) - lobe_mean


def _lobe_sum(
    directions: np.ndarray, centres: np.ndarray, kappas: np.ndarray, amplitudes: np.ndarray
) -> np.ndarray:
    """Sum of von Mises-Fisher-shaped bumps on the sphere (one per lobe)."""
    cosines = directions @ centres.T
    return np.exp(kappas * (cosines - 1.0)) @ amplitudes


def _with_centre(shape: LesionShape, centre: np.ndarray) -> LesionShape:
    """The same lesion moved to ``centre``."""
    return LesionShape(
        np.asarray(centre, dtype=float),
        shape.log_radius,
        shape.quadratic,
        shape.lobe_directions,
        shape.lobe_kappas,
        shape.lobe_amplitudes,
        shape.lobe_mean,
        shape.max_radius,
    )


@functools.cache
def _sphere_points(n: int = _N_SPHERE_POINTS) -> np.ndarray:
    """Nearly uniform points on the unit sphere (Fibonacci lattice), an equal-weight quadrature.

    Cached: callers must not modify the returned array.
    """
    k = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * k / n)
    azimuth = np.pi * (1.0 + np.sqrt(5.0)) * k
    return np.stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=-1
    )


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _rms(values: np.ndarray) -> float:
    """Root mean square (never zero, so it can be divided by)."""
    return max(float(np.sqrt(np.mean(values**2))), 1e-12)
