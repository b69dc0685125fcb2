"""Histogram standardisation of MR intensities (Nyúl and Udupa), learnt on reference subjects.

Nyúl LG, Udupa JK. On standardizing the MR image intensity scale. Magn Reson Med
1999;42:1072-1081. Nyúl LG, Udupa JK, Zhang X. New variants of a method of MRI scale
standardization. IEEE Trans Med Imaging 2000;19:143-150.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Default landmarks (percentiles of the brain's intensities). Landmarks above the 75th
#: percentile are left out on purpose: a large bright lesion (a glioma is often 5-10 % of the
#: brain) moves the upper percentiles and would compress exactly the intensities to detect.
#: Beyond the outer landmarks the map extends its outer segments linearly.
DEFAULT_LANDMARKS: tuple[float, ...] = (2.0, 10.0, 25.0, 50.0, 75.0)
_SCALE = (0.0, 100.0)


def brain_landmarks(values: ArrayLike, percentiles: Sequence[float]) -> NDArray[np.float64]:
    """Return the intensity percentiles of one channel's brain voxels."""
    data = np.asarray(values, dtype=np.float64).ravel()
    return np.percentile(data, list(percentiles))


@dataclass(frozen=True)
class HistogramStandardizer:
    """Piecewise-linear maps of each channel onto a standard scale (fitted state).

    Attributes
    ----------
    percentiles : tuple of float
        Landmark percentiles.
    standard : numpy.ndarray of shape (n_channels, n_landmarks)
        Standard-scale position of each landmark: the mean over reference subjects of their
        landmarks after mapping the first landmark to 0 and the last to 100.
    """

    percentiles: tuple[float, ...]
    standard: NDArray[np.float64]

    def transform(
        self, channel: int, values: ArrayLike, landmarks: ArrayLike
    ) -> NDArray[np.float32]:
        """Map one channel's values, given that subject's own landmarks, to the standard scale."""
        source = np.asarray(landmarks, dtype=np.float64)
        target = self.standard[channel]
        if np.any(np.diff(source) <= 0):
            # A constant stretch (e.g. a clipped or binary image): separate the landmarks
            # minimally so the map stays monotone instead of dividing by zero.
            source = source + np.arange(source.size) * 1e-6 * max(1.0, float(np.abs(source).max()))
        data = np.asarray(values, dtype=np.float64)
        mapped = np.interp(data, source, target)
        low_slope = (target[1] - target[0]) / (source[1] - source[0])
        high_slope = (target[-1] - target[-2]) / (source[-1] - source[-2])
        mapped = np.where(data < source[0], target[0] + (data - source[0]) * low_slope, mapped)
        mapped = np.where(data > source[-1], target[-1] + (data - source[-1]) * high_slope, mapped)
        return mapped.astype(np.float32)

    def digest(self) -> str:
        """Return a digest of the fitted state (part of cache keys)."""
        digest = hashlib.sha256(np.asarray(self.percentiles, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.standard, dtype=np.float64).tobytes())
        return digest.hexdigest()


def fit_standardizer(
    landmarks: ArrayLike, percentiles: Sequence[float] = DEFAULT_LANDMARKS
) -> HistogramStandardizer:
    """Learn the standard scale from reference subjects' landmarks.

    Parameters
    ----------
    landmarks : array-like of shape (n_subjects, n_channels, n_landmarks)
        Per reference subject and channel, the percentiles of its brain intensities.
    percentiles : sequence of float
        The percentiles the landmarks are (increasing, at least two).

    Returns
    -------
    HistogramStandardizer
    """
    values = np.asarray(landmarks, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 1 or values.shape[2] != len(percentiles):
        raise ValueError("landmarks must have shape (n_subjects, n_channels, n_landmarks)")
    if len(percentiles) < 2 or np.any(np.diff(percentiles) <= 0):
        raise ValueError("landmark percentiles must be increasing, at least two")
    low, high = values[:, :, :1], values[:, :, -1:]
    span = np.where(high - low > 0, high - low, 1.0)
    scaled = _SCALE[0] + (values - low) / span * (_SCALE[1] - _SCALE[0])
    return HistogramStandardizer(tuple(float(p) for p in percentiles), scaled.mean(axis=0))
