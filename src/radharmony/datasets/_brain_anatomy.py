"""Procedural brain anatomy, lesions and scanner effects of the synthetic brain cohort.

Everything is defined in millimetres around the brain centre (the world origin) and evaluated
directly on each scanner's voxel grid: tissue boundaries are soft steps of a signed distance
whose width is half a voxel, which gives partial-volume voxels at every resolution. Arrays are
in NumPy order ``(z, y, x)``; spacings and coordinates are in ITK order ``(x, y, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radharmony.datasets._phantom import smooth_field as _fine_smooth_field

CHANNELS: tuple[str, ...] = ("FLAIR", "T1", "T2", "T1c")
FOV_MM: tuple[float, float, float] = (150.0, 180.0, 140.0)
BRAIN_SEMI_AXES_MM: tuple[float, float, float] = (62.0, 78.0, 56.0)

# Relative tissue intensities per channel (before the scanner): FLAIR, T1, T2, T1c. FLAIR shows
# grey matter brighter than white matter and thin normal periventricular caps brighter still, so
# a FLAIR threshold meets healthy bright tissue as in real scans.
TISSUE_INTENSITY: dict[str, tuple[float, float, float, float]] = {
    "wm": (0.55, 1.00, 0.40, 1.00),
    "gm": (0.70, 0.70, 0.56, 0.72),
    "deep_gm": (0.63, 0.82, 0.48, 0.84),
    "csf": (0.12, 0.25, 1.00, 0.25),
    "cap": (0.78, 0.90, 0.64, 0.92),
}
LESION_INTENSITY: dict[str, tuple[float, float, float, float]] = {
    "ms": (0.95, 0.62, 0.80, 0.66),
    "necrosis": (0.60, 0.35, 0.95, 0.40),
    "enhancing": (0.85, 0.70, 0.75, 1.45),
    "oedema": (0.92, 0.66, 0.82, 0.68),
}
LESION_CLASSES: tuple[str, ...] = ("ms", "tumour")
MS_RADIUS_MM = (1.5, 5.0)
MS_CONTRAST = (0.6, 1.0)
TUMOUR_RADIUS_MM = (10.0, 17.0)
TISSUE_TEXTURE_SD = 0.025

SCANNER_RANGES: dict[str, tuple[float, float]] = {
    "intensity_scale": (400.0, 1200.0),
    "intensity_offset": (0.0, 80.0),
    "gamma": (0.85, 1.15),
    "noise_sd": (0.015, 0.04),
    "bias_amplitude": (0.02, 0.08),
    "blur_fwhm_vox": (0.6, 1.2),
    "slice_factor": (1.0, 1.5),
}


@dataclass(frozen=True)
class BrainScanner:
    """Acquisition of one scanner: grid, blur, noise, bias field and intensity mapping.

    Per channel ``c`` the observed value is ``scale_c * (bias * true) ** gamma_c + offset_c``
    plus white noise of SD ``noise_sd * scale_c``; the background stays 0 (skull-stripped).
    """

    name: str
    spacing: tuple[float, float, float]
    blur_fwhm_mm: float
    noise_sd: float
    bias_amplitude: float
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    gamma: tuple[float, ...]

    @property
    def size(self) -> tuple[int, int, int]:
        """Grid size ``(x, y, z)`` covering the field of view."""
        x, y, z = (int(round(f / s)) for f, s in zip(FOV_MM, self.spacing, strict=True))
        return (x, y, z)

    @property
    def origin(self) -> tuple[float, float, float]:
        """World position of voxel 0, so that the grid is centred on the origin."""
        x, y, z = (-(n - 1) * s / 2.0 for n, s in zip(self.size, self.spacing, strict=True))
        return (x, y, z)


def make_brain_scanners(
    n_scanners: int, voxel_mm: float, rng: np.random.Generator
) -> list[BrainScanner]:
    """Scanners whose parameters take evenly spaced values over their ranges, paired at random."""
    values = {}
    for name, (low, high) in SCANNER_RANGES.items():
        grid = np.linspace(low, high, n_scanners) if n_scanners > 1 else np.array([low + high]) / 2
        values[name] = rng.permutation(grid)
    scanners = []
    for k in range(n_scanners):
        n = len(CHANNELS)
        spacing = (float(voxel_mm), float(voxel_mm), voxel_mm * float(values["slice_factor"][k]))
        scanners.append(
            BrainScanner(
                name=f"scanner_{chr(ord('A') + k)}",
                spacing=spacing,
                blur_fwhm_mm=float(values["blur_fwhm_vox"][k]) * voxel_mm,
                noise_sd=float(values["noise_sd"][k]),
                bias_amplitude=float(values["bias_amplitude"][k]),
                scale=tuple(
                    float(values["intensity_scale"][k] * f) for f in (1, 1.3, 0.8, 1.1)[:n]
                ),
                offset=tuple(
                    float(values["intensity_offset"][k] * f) for f in (1, 0.5, 1.5, 0.7)[:n]
                ),
                gamma=tuple(float(values["gamma"][k] ** f) for f in (1, -1, 0.5, -0.5)[:n]),
            )
        )
    return scanners


@dataclass
class Anatomy:
    """Tissue fractions of one subject on one grid, and the world coordinates of its voxels."""

    fractions: dict[str, np.ndarray]
    brain: np.ndarray
    coords: tuple[np.ndarray, np.ndarray, np.ndarray]
    ventricle_distance: np.ndarray
    spacing: tuple[float, float, float]
    lesion_fraction: dict[str, np.ndarray] = field(default_factory=dict)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], corr_mm: float
) -> np.ndarray:
    """Smooth Gaussian random field (zero mean, unit SD) with a grain of ``corr_mm``.

    Drawn on a grid of ``corr_mm / 2`` spacing and interpolated linearly: the field is
    band-limited, so nothing visible is lost and it is several times faster than smoothing white
    noise at full resolution.
    """
    coarse = corr_mm / 2.0
    if coarse <= min(spacing):
        return _fine_smooth_field(rng, shape, spacing, corr_mm)
    extent = [n * s for n, s in zip(shape, spacing[::-1], strict=True)]
    coarse_shape = tuple(int(np.ceil(e / coarse)) + 2 for e in extent)
    field = _fine_smooth_field(rng, coarse_shape, (coarse,) * 3, corr_mm)
    values = field
    for axis, (n, s) in enumerate(zip(shape, spacing[::-1], strict=True)):
        position = np.arange(n) * (s / coarse)
        below = np.floor(position).astype(int)
        weight = (position - below).astype(np.float32)
        weight = weight.reshape([-1 if a == axis else 1 for a in range(3)])
        values = (
            np.take(values, below, axis=axis) * (1 - weight)
            + np.take(values, below + 1, axis=axis) * weight
        )
    values -= values.mean()
    return (values / values.std()).astype(np.float32)


def _coords(scanner: BrainScanner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = [
        o + s * np.arange(n)
        for o, s, n in zip(scanner.origin, scanner.spacing, scanner.size, strict=True)
    ]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x.astype(np.float32), y.astype(np.float32), z.astype(np.float32)


def _ellipsoid_distance(
    coords: tuple[np.ndarray, ...], centre: tuple[float, ...], axes: tuple[float, ...]
) -> np.ndarray:
    """Approximate signed distance (mm, positive inside) to an axis-aligned ellipsoid surface."""
    rel = [(c - m) / a for c, m, a in zip(coords, centre, axes, strict=True)]
    rho = np.sqrt(sum(r * r for r in rel))
    radius = np.sqrt(sum((c - m) ** 2 for c, m in zip(coords, centre, strict=True)))
    return (1.0 - rho) * radius / np.maximum(rho, 1e-3)


def _step(distance: np.ndarray, width: float) -> np.ndarray:
    """Soft inside fraction of a signed distance: a logistic step of ``width`` mm."""
    return (1.0 / (1.0 + np.exp(-np.clip(distance / width, -30, 30)))).astype(np.float32)


def make_anatomy(rng: np.random.Generator, scanner: BrainScanner, age: float) -> Anatomy:
    """Tissue fractions (wm, gm, deep_gm, csf, cap) of one subject on ``scanner``'s grid."""
    coords = _coords(scanner)
    spacing = scanner.spacing
    shape = coords[0].shape
    width = 0.5 * min(spacing)
    size = 1.0 + 0.04 * rng.standard_normal()
    semi = tuple(a * size for a in BRAIN_SEMI_AXES_MM)
    surface = 3.0 * smooth_field(rng, shape, spacing, 12.0)
    s_brain = _ellipsoid_distance(coords, (0.0, 0.0, 0.0), semi) + surface
    brain = s_brain > 0
    p_brain = _step(s_brain, width)
    gyri = smooth_field(rng, shape, spacing, 7.0)
    sulci = smooth_field(rng, shape, spacing, 6.0)
    # Sulci are thin CSF sheets along the zero level set of a smooth field, flanked by cortex.
    csf_outer = 1.0 - _step(s_brain - 1.5, width)
    sulcus = _step(0.12 - np.abs(sulci), 0.03) * _step(14.0 - s_brain, 1.5)
    depth = 4.5 + 1.5 * gyri
    cortex = np.maximum(
        _step(depth - s_brain, width), _step(0.4 - np.abs(sulci), 0.05) * _step(17.0 - s_brain, 1.5)
    )
    ventricle_scale = 1.0 + 0.012 * (age - 45.0) + 0.08 * rng.standard_normal()
    s_vent = np.maximum.reduce(
        [
            _ellipsoid_distance(coords, (side * 9.0, 2.0, 8.0), (5.0, 24.0, 7.0))
            for side in (-1.0, 1.0)
        ]
    )
    s_vent = s_vent + 3.0 * (ventricle_scale - 1.0)
    ventricles = _step(s_vent, width)
    deep = np.maximum.reduce(
        [
            _ellipsoid_distance(coords, (side * 17.0, -4.0, 0.0), (8.0, 12.0, 9.0))
            for side in (-1.0, 1.0)
        ]
    )
    deep_gm = _step(deep, width)
    # Periventricular caps: a rim up to 2 mm thick around the frontal and occipital horns.
    horns = _step(np.abs(coords[1] - 2.0) - 16.0, 2.0)
    cap = _step(s_vent + 2.0, width) * horns
    remaining = p_brain.copy()
    fractions = {}
    for name, share in (
        ("csf", np.maximum.reduce([csf_outer, sulcus, ventricles])),
        ("deep_gm", deep_gm),
        ("gm", cortex),
        ("cap", cap),
    ):
        fractions[name] = remaining * share
        remaining = remaining - fractions[name]
    fractions["wm"] = remaining
    return Anatomy(
        fractions={k: v.astype(np.float32) for k, v in fractions.items()},
        brain=brain,
        coords=coords,
        ventricle_distance=np.maximum(-s_vent, 0.0).astype(np.float32),
        spacing=spacing,
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _rotated_ellipsoid_distance(
    coords: tuple[np.ndarray, ...],
    box: tuple[slice, ...],
    centre: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray,
) -> np.ndarray:
    rel = np.stack([c[box] - m for c, m in zip(coords, centre, strict=True)], axis=-1)
    local = rel @ rotation
    rho = np.sqrt(((local / radii) ** 2).sum(axis=-1))
    return (1.0 - rho) * radii.min()


def _box(anatomy: Anatomy, centre: np.ndarray, reach: float) -> tuple[slice, slice, slice]:
    x, y, z = (c[0, 0, 0] for c in anatomy.coords)
    origin = np.array([x, y, z])
    spacing = np.array(anatomy.spacing)
    shape = anatomy.brain.shape[::-1]
    low = np.maximum(np.floor((centre - reach - origin) / spacing).astype(int), 0)
    high = np.minimum(np.ceil((centre + reach - origin) / spacing).astype(int) + 1, shape)
    z, y, x = (slice(int(lo), int(hi)) for lo, hi in zip(low[::-1], high[::-1], strict=True))
    return (z, y, x)


def _pick_centre(
    rng: np.random.Generator,
    anatomy: Anatomy,
    margin_mm: float,
    occupied: np.ndarray,
    periventricular: bool,
) -> np.ndarray | None:
    wm = anatomy.fractions["wm"] > 0.95
    inner = ndimage.binary_erosion(
        wm, iterations=max(1, int(round(margin_mm / min(anatomy.spacing))))
    )
    candidates = np.flatnonzero(inner & ~occupied)
    if candidates.size == 0:
        return None
    weights = np.ones(candidates.size)
    if periventricular:
        weights += 3.0 * np.exp(-anatomy.ventricle_distance.ravel()[candidates] / 10.0)
    index = rng.choice(candidates, p=weights / weights.sum())
    return np.array([c.ravel()[index] for c in anatomy.coords], dtype=float)


def insert_lesions(
    rng: np.random.Generator, anatomy: Anatomy, lesion_class: str, count: int
) -> tuple[np.ndarray, list[dict]]:
    """Add lesions of ``lesion_class`` to ``anatomy``; return the label mask and their truth."""
    labels = np.zeros(anatomy.brain.shape, dtype=np.uint8)
    occupied = np.zeros(anatomy.brain.shape, dtype=bool)
    truth: list[dict] = []
    width = 0.5 * min(anatomy.spacing)
    for _ in range(count):
        if lesion_class == "tumour":
            radius = float(rng.uniform(*TUMOUR_RADIUS_MM))
            radii = np.array([radius] * 3) * rng.uniform(0.85, 1.15, 3)
            contrast = 1.0
        else:
            radius = float(rng.uniform(*MS_RADIUS_MM))
            radii = radius * np.array([1.0, *rng.uniform(0.6, 1.0, 2)])
            contrast = float(rng.uniform(*MS_CONTRAST))
        centre = _pick_centre(rng, anatomy, radii.max() + 2.0, occupied, lesion_class == "ms")
        if centre is None:
            break
        box = _box(anatomy, centre, radii.max() + 3.0 * width + 2.0)
        distance = _rotated_ellipsoid_distance(
            anatomy.coords, box, centre, radii, _random_rotation(rng)
        )
        if lesion_class == "tumour":
            field = smooth_field(rng, distance.shape, anatomy.spacing, 4.0)
            distance = distance + 1.5 * field
        fraction = _step(distance, width) * anatomy.brain[box]
        inside = (fraction > 0.5) & (labels[box] == 0)
        if not inside.any():
            continue
        label = len(truth) + 1
        labels[box][inside] = label
        occupied[box] |= ndimage.binary_dilation(inside, iterations=2)
        parts = (
            _tumour_parts(distance, radii.min(), width)
            if lesion_class == "tumour"
            else {"ms": fraction}
        )
        for part, value in parts.items():
            share = anatomy.lesion_fraction.setdefault(
                part, np.zeros(anatomy.brain.shape, np.float32)
            )
            share[box] = np.maximum(share[box], contrast * value * anatomy.brain[box])
        voxel_mm3 = float(np.prod(anatomy.spacing))
        truth.append(
            {
                "lesion_id": label,
                "lesion_class": lesion_class,
                "n_voxels": int(inside.sum()),
                "volume_mm3": float(inside.sum()) * voxel_mm3,
                "centre_x_mm": float(centre[0]),
                "centre_y_mm": float(centre[1]),
                "centre_z_mm": float(centre[2]),
                "radius_mm": float(radii.max()),
                "contrast": contrast,
            }
        )
    return labels, truth


def _tumour_parts(distance: np.ndarray, radius: float, width: float) -> dict[str, np.ndarray]:
    # Depth below the tumour surface, in units of the radius: oedema outside, an enhancing ring,
    # a necrotic core.
    depth = distance / radius
    whole = _step(distance, width)
    core = _step(depth - 0.65, 0.03)
    ring = _step(depth - 0.45, 0.03) - core
    return {"oedema": whole - ring - core, "enhancing": ring, "necrosis": core}


def tissue_texture(rng: np.random.Generator, anatomy: Anatomy) -> np.ndarray:
    """Smooth relative texture of the tissue (shared by the channels, as anatomy is)."""
    return TISSUE_TEXTURE_SD * smooth_field(rng, anatomy.brain.shape, anatomy.spacing, 8.0)


def true_intensities(anatomy: Anatomy, channel: int, texture: np.ndarray) -> np.ndarray:
    """Noise-free relative intensity of ``channel`` (healthy tissues, then lesions over them)."""
    healthy = sum(anatomy.fractions[t] * TISSUE_INTENSITY[t][channel] for t in TISSUE_INTENSITY)
    value = healthy * (1.0 + texture)
    for part, share in anatomy.lesion_fraction.items():
        value = value + share * (LESION_INTENSITY[part][channel] - value)
    return value.astype(np.float32)


def acquire(
    rng: np.random.Generator,
    true: np.ndarray,
    brain_fraction: np.ndarray,
    scanner: BrainScanner,
    channel: int,
    bias: np.ndarray,
) -> np.ndarray:
    """Observed int16 image of one channel: blur, bias, intensity mapping, noise; background 0."""
    sigma_mm = scanner.blur_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    blurred = ndimage.gaussian_filter(true, [sigma_mm / s for s in scanner.spacing[::-1]])
    mapped = scanner.scale[channel] * np.power(
        np.maximum(blurred * bias, 0.0), scanner.gamma[channel]
    )
    noise = (
        rng.standard_normal(true.shape).astype(np.float32)
        * scanner.noise_sd
        * scanner.scale[channel]
    )
    observed = (mapped + scanner.offset[channel] + noise) * (brain_fraction > 0.5)
    return np.clip(np.rint(observed), 0, np.iinfo(np.int16).max).astype(np.int16)


def bias_field(rng: np.random.Generator, anatomy: Anatomy, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(amplitude * linear-plus-quadratic polynomial)``."""
    x, y, z = (c / 70.0 for c in anatomy.coords)
    terms = [x, y, z, x * y, y * z, x * z, x * x - 0.3, y * y - 0.3]
    weights = rng.normal(0.0, 1.0, len(terms))
    poly = sum(w * t for w, t in zip(weights, terms, strict=True)) / np.sqrt(len(terms))
    return np.exp(amplitude * poly).astype(np.float32)
