"""Voxel-wise change score between two aligned visits.

For each channel the follow-up is compared with what the baseline predicts it should look like,
so that everything that varies smoothly between visits (global intensity drift, scanner gain,
a different bias field, a different tissue contrast after a protocol change) is not called
change, while a lesion that appears, grows, shrinks or vanishes is:

1. **Global standardisation.** Each visit is divided by its median inside the analysis mask
   (brain voxels seen at both visits).
2. **Noise reduction.** Both visits are smoothed with a Gaussian of ``smoothing_mm`` (masked,
   normalised convolution, so that the brain edge does not blur in the background).
3. **Local intensity matching.** The follow-up is predicted from the baseline by a local
   linear map ``a(x) + b(x) * baseline`` with Gaussian neighbourhood weights of
   ``neighbourhood_mm``: the local means are matched and the slope is the ratio of the local
   standard deviations (reduced-major-axis line, symmetric in the two visits, so appearance
   and disappearance are treated alike). It is fitted robustly: voxels whose residual exceeds
   3 robust standard deviations are left out and the fit repeated. The neighbourhood is much
   larger than a lesion, so a lesion's own change is not absorbed by the fit.
4. **Noise normalisation.** The residual is divided by its local standard deviation (same
   neighbourhood, residuals clipped at 3 robust SD), which keeps the score comparable between
   regions of different noise and partial-volume structure and between subjects.
5. **Channels.** Channel scores are combined as ``sum(sign_c * score_c) / sqrt(n_channels)``;
   ``sign_c`` is +1 for channels on which lesions are bright (FLAIR, T2) and -1 for channels on
   which they are dark (T1).

The score is signed: positive where lesion signal appeared or grew, negative where it shrank or
vanished. It is a standardised residual, roughly N(0, 1) where nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

_CLIP = 3.0
_ROBUST_ITERATIONS = 2


@dataclass(frozen=True)
class ChangeSettings:
    """Parameters of the change score.

    Attributes
    ----------
    smoothing_mm : float
        Standard deviation of the Gaussian noise-reduction kernel (mm); 0 disables it.
    neighbourhood_mm : float
        Standard deviation of the Gaussian neighbourhood of the local intensity matching and
        noise normalisation (mm).
    """

    smoothing_mm: float = 1.0
    neighbourhood_mm: float = 10.0

    def to_dict(self) -> dict[str, float]:
        """Return the settings as a plain dict (cache keys, provenance)."""
        return {"smoothing_mm": self.smoothing_mm, "neighbourhood_mm": self.neighbourhood_mm}


def _sigma(mm: float, spacing: Sequence[float]) -> list[float]:
    # (z, y, x) array order from (x, y, z) spacing.
    return [mm / float(s) for s in spacing[::-1]]


# Fields at the neighbourhood scale (10 mm) vary slowly: they are computed on a grid pooled to
# about this voxel size and interpolated back, which makes them 10-30x cheaper on 1 mm images.
_COARSE_MM = 2.5


def _pooling(spacing: Sequence[float]) -> tuple[int, ...]:
    return tuple(max(1, int(_COARSE_MM // float(s))) for s in spacing[::-1])


def _pool(values: NDArray, factors: tuple[int, ...]) -> NDArray:
    pad = [(0, (-n) % f) for n, f in zip(values.shape, factors, strict=True)]
    padded = np.pad(values, pad, mode="edge")
    shape: list[int] = []
    for n, f in zip(padded.shape, factors, strict=True):
        shape += [n // f, f]
    return padded.reshape(shape).mean(axis=(1, 3, 5))


def _unpool(values: NDArray, factors: tuple[int, ...], shape: tuple[int, ...]) -> NDArray:
    """Interpolate block values linearly back to every voxel (separably, axis by axis).

    Block ``j`` of factor ``f`` is centred on voxel ``j * f + (f - 1) / 2``; voxels beyond the
    first and last centres take the edge value.
    """
    out = values
    for axis, (f, n) in enumerate(zip(factors, shape, strict=True)):
        if f == 1:
            continue
        position = np.clip((np.arange(n) + 0.5) / f - 0.5, 0.0, out.shape[axis] - 1.0)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, out.shape[axis] - 1)
        weight = (position - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis=axis) * (1.0 - weight) + np.take(out, high, axis=axis) * weight
    return out


class _Neighbourhood:
    """Gaussian neighbourhood averages computed on a pooled grid, brought back on demand."""

    def __init__(self, mm: float, spacing: Sequence[float], shape: tuple[int, ...]) -> None:
        self.factors = _pooling(spacing)
        self.shape = shape
        coarse = [float(s) * f for s, f in zip(spacing[::-1], self.factors, strict=True)]
        self.sigma = _sigma(mm, coarse[::-1])

    def mean(self, values: NDArray) -> NDArray:
        """Return the neighbourhood average of ``values`` on the pooled grid."""
        return ndimage.gaussian_filter(_pool(values, self.factors), self.sigma)

    def full(self, coarse: NDArray) -> NDArray:
        """Return a pooled-grid field interpolated on the full grid."""
        if all(f == 1 for f in self.factors):
            return coarse
        return _unpool(coarse, self.factors, self.shape)


def masked_smooth(
    values: NDArray, mask: NDArray[np.bool_], mm: float, spacing: Sequence[float]
) -> NDArray[np.float64]:
    """Return the Gaussian average of ``values`` over ``mask`` voxels only (0 outside)."""
    if mm <= 0:
        return np.where(mask, values, 0.0)
    sigma = _sigma(mm, spacing)
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    total = ndimage.gaussian_filter(np.where(mask, values, 0.0).astype(np.float64), sigma)
    return np.where(mask, total / np.maximum(weight, 1e-6), 0.0)


def robust_sd(values: NDArray) -> float:
    """Return 1.4826 x the median absolute deviation (the SD for normal data)."""
    if values.size == 0:
        return 0.0
    centre = np.median(values)
    return float(1.4826 * np.median(np.abs(values - centre)))


def _local_prediction(
    baseline: NDArray, followup: NDArray, weights: NDArray, hood: _Neighbourhood
) -> NDArray:
    total = np.maximum(hood.mean(weights), 1e-9)
    mean0 = hood.mean(weights * baseline) / total
    mean1 = hood.mean(weights * followup) / total
    var0 = np.maximum(hood.mean(weights * baseline**2) / total - mean0**2, 0.0)
    var1 = np.maximum(hood.mean(weights * followup**2) / total - mean1**2, 0.0)
    # Reduced-major-axis slope (ratio of local SDs): symmetric in the two visits, so a lesion
    # that vanishes pulls the fit exactly as much as one that appears (an ordinary regression
    # of the follow-up on the baseline is dragged by bright baseline voxels and hides them).
    inside = total > 1e-3
    floor = 1e-6 * max(float(np.mean(var0[inside])) if np.any(inside) else 1.0, 1e-12)
    slope = np.where(var0 > floor, np.sqrt(var1 / np.maximum(var0, floor)), 1.0)
    intercept = mean1 - slope * mean0
    return hood.full(intercept) + hood.full(slope) * baseline


def channel_change(
    baseline: NDArray,
    followup: NDArray,
    mask: NDArray[np.bool_],
    spacing: Sequence[float],
    settings: ChangeSettings,
) -> NDArray[np.float32]:
    """Return the standardised change score of one channel (0 outside ``mask``).

    Parameters
    ----------
    baseline, followup : ndarray
        The two visits on the same grid, ``(z, y, x)``.
    mask : ndarray of bool
        Analysis mask: brain voxels seen at both visits.
    spacing : sequence of float
        Voxel size (x, y, z) in mm.
    settings : ChangeSettings

    Returns
    -------
    ndarray of float32
    """
    if not np.any(mask):
        return np.zeros(mask.shape, dtype=np.float32)
    a0 = np.where(mask, baseline, 0.0).astype(np.float64)
    a1 = np.where(mask, followup, 0.0).astype(np.float64)
    a0 /= max(float(np.median(a0[mask])), np.finfo(float).tiny)
    a1 /= max(float(np.median(a1[mask])), np.finfo(float).tiny)
    a0 = masked_smooth(a0, mask, settings.smoothing_mm, spacing)
    a1 = masked_smooth(a1, mask, settings.smoothing_mm, spacing)
    weights = mask.astype(np.float64)
    residual = np.zeros_like(a0)
    scale = 1.0
    hood = _Neighbourhood(settings.neighbourhood_mm, spacing, mask.shape)
    for _ in range(_ROBUST_ITERATIONS):
        prediction = _local_prediction(a0, a1, weights, hood)
        residual = np.where(mask, a1 - prediction, 0.0)
        scale = robust_sd(residual[mask]) or 1.0
        weights = (mask & (np.abs(residual) < _CLIP * scale)).astype(np.float64)
    clipped = np.where(mask, np.clip(residual, -_CLIP * scale, _CLIP * scale), 0.0)
    local_var = hood.full(
        hood.mean(clipped**2) / np.maximum(hood.mean(mask.astype(np.float64)), 1e-6)
    )
    # Never divide by less than a tenth of the global noise: a perfectly flat region would
    # otherwise turn rounding noise into huge scores.
    local_sd = np.sqrt(np.maximum(local_var, (0.1 * scale) ** 2))
    return np.where(mask, residual / local_sd, 0.0).astype(np.float32)


def change_score(
    baseline: Sequence[NDArray],
    followup: Sequence[NDArray],
    mask: NDArray[np.bool_],
    spacing: Sequence[float],
    settings: ChangeSettings | None = None,
    signs: Sequence[float] | None = None,
) -> NDArray[np.float32]:
    """Return the signed, standardised change score of a pair of visits.

    Parameters
    ----------
    baseline, followup : sequence of ndarray
        One array per channel and visit, all on the same grid.
    mask : ndarray of bool
        Analysis mask.
    spacing : sequence of float
        Voxel size (x, y, z) in mm.
    settings : ChangeSettings, optional
    signs : sequence of float, optional
        Lesion polarity per channel (+1 bright, -1 dark); default +1 for every channel.

    Returns
    -------
    ndarray of float32
        Positive where lesion signal appeared or grew, negative where it shrank; 0 outside the
        mask.
    """
    settings = settings or ChangeSettings()
    signs = list(signs) if signs is not None else [1.0] * len(baseline)
    if not len(baseline) == len(followup) == len(signs) or not baseline:
        raise ValueError("give the same number (at least one) of channels, visits and signs")
    total = np.zeros(mask.shape, dtype=np.float64)
    for before, after, sign in zip(baseline, followup, signs, strict=True):
        total += sign * channel_change(before, after, mask, spacing, settings)
    return (total / np.sqrt(len(signs))).astype(np.float32)
