"""Local intensity features (IBSI 3.2, ``loc_peak_loc`` and ``loc_peak_glob``)."""

from __future__ import annotations

import numpy as np
from scipy import fft

from radharmony.ibsi.families._common import as_mask, as_spacing, check_same_grid

#: Radius (mm) of a sphere of 1 cm^3.
PEAK_RADIUS_MM = 10.0 * (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0)


def _sphere_kernel(spacing: np.ndarray, radius: float) -> np.ndarray:
    """Boolean kernel of the voxel centres within ``radius`` mm of the central voxel."""
    half = np.floor(radius / spacing).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= radius**2 + 1e-9


def _convolve_same(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution of ``values`` with an odd-sized ``kernel``, cropped to ``values``.

    Done with scipy.fft directly: importing scipy.signal for its fftconvolve costs seconds.
    """
    size = [
        fft.next_fast_len(n + k - 1, real=True)
        for n, k in zip(values.shape, kernel.shape, strict=True)
    ]
    full = fft.irfftn(fft.rfftn(values, size) * fft.rfftn(kernel, size), size)
    start = [k // 2 for k in kernel.shape]
    return full[tuple(slice(s, s + n) for s, n in zip(start, values.shape, strict=True))]


def _local_means(image: np.ndarray, mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Mean image intensity in the kernel around every ROI voxel, as a flat array.

    The neighbourhood uses every image voxel (inside or outside the ROI); voxels beyond the
    image border are left out of the mean. Only the ROI bounding box plus the kernel half-width
    is convolved, which keeps the FFT small for large images.
    """
    half = np.array(kernel.shape) // 2
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - half, 0)
    high = np.minimum(where.max(axis=0) + half + 1, image.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    crop = image[box].astype(float)
    weights = kernel.astype(float)
    sums = _convolve_same(crop, weights)
    counts = _convolve_same(np.ones_like(crop), weights)
    means = sums / np.round(counts)
    return means[mask[box]]


def local_intensity_features(
    image: np.ndarray,
    intensity_mask: np.ndarray,
    spacing: tuple[float, float, float],
    radius_mm: float = PEAK_RADIUS_MM,
) -> dict[str, float]:
    """Local and global intensity peaks (``loc_peak_loc``, ``loc_peak_glob``).

    Parameters
    ----------
    image : ndarray of shape (z, y, x)
        Image intensities on the whole grid (after interpolation, before re-segmentation):
        the spherical neighbourhood may reach outside the ROI.
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask; peak centres are ROI voxels.
    spacing : (z, y, x) in mm
    radius_mm : float
        Sphere radius; the default encloses 1 cm^3 (about 6.2 mm).

    Returns
    -------
    dict
        ``loc_peak_loc``: highest local mean among the voxels of maximum intensity;
        ``loc_peak_glob``: highest local mean over all ROI voxels.
    """
    mask = as_mask(intensity_mask, "intensity_mask")
    image = np.asarray(image)
    check_same_grid(mask, image, ("intensity_mask", "image"))
    kernel = _sphere_kernel(as_spacing(spacing), radius_mm)
    means = _local_means(image, mask, kernel)
    roi = image[mask]
    return {
        "loc_peak_loc": float(means[roi == roi.max()].max()),
        "loc_peak_glob": float(means.max()),
    }
