"""Intensity-volume histogram features (IBSI 3.5, ``ivh_*``)."""

from __future__ import annotations

import numpy as np

from radharmony.errors import SettingsError
from radharmony.ibsi.families._common import as_mask, check_same_grid


def _ivh_grid(
    x: np.ndarray,
    intensity_range: tuple[float | None, float | None] | None,
    bin_width: float | None,
    n_bins: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the discretised ROI intensities and the evaluated intensities of the IVH.

    The three IBSI cases: calibrated discrete intensities (CT; step 1 over the re-segmentation
    range), calibrated continuous intensities (PET; fixed bin size ``bin_width``, bin centres)
    and arbitrary units (MRI; fixed bin number ``n_bins``, levels 1..n_bins).
    """
    if bin_width is not None and n_bins is not None:
        raise SettingsError("Give either ivh bin_width or n_bins, not both.")
    low, high = (None, None) if intensity_range is None else intensity_range
    low = float(x.min()) if low is None else float(low)
    high = float(x.max()) if high is None or not np.isfinite(high) else float(high)
    if n_bins is not None:
        if n_bins < 1:
            raise SettingsError(f"ivh n_bins={n_bins} must be a positive integer.")
        lo, hi = float(x.min()), float(x.max())
        width = (hi - lo) / n_bins if hi > lo else 1.0
        discretised = np.clip(np.floor((x - lo) / width) + 1, 1, n_bins)
        return discretised, np.arange(1, n_bins + 1, dtype=float)
    if bin_width is not None:
        if bin_width <= 0:
            raise SettingsError(f"ivh bin_width={bin_width} must be positive.")
        bins = np.floor((x - low) / bin_width) + 1
        n_total = max(int(np.ceil((high - low) / bin_width)), int(bins.max()))
        discretised = low + (bins - 0.5) * bin_width
        grid = low + (np.arange(1, n_total + 1) - 0.5) * bin_width
        return discretised, grid
    discretised = np.round(x)
    grid = np.arange(np.round(low), np.round(high) + 1, dtype=float)
    return discretised, grid


def ivh_features(
    intensities: np.ndarray,
    intensity_mask: np.ndarray,
    intensity_range: tuple[float | None, float | None] | None = None,
    bin_width: float | None = None,
    n_bins: int | None = None,
) -> dict[str, float]:
    """Intensity-volume histogram features (``ivh_*``).

    Parameters
    ----------
    intensities : ndarray of shape (z, y, x)
        Re-segmented image intensities (not discretised).
    intensity_mask : ndarray of bool, same shape
        ROI intensity mask.
    intensity_range : (low, high), optional
        Re-segmentation range, which sets the IVH total range; ``high`` may be ``None`` or inf
        for a half-open range (then the ROI maximum is used). Defaults to the ROI min and max.
    bin_width : float, optional
        Fixed bin size for calibrated continuous intensities (e.g. 0.1 SUV for FDG-PET).
    n_bins : int, optional
        Fixed bin number for arbitrary intensity units (IBSI recommends 1000).
        With neither ``bin_width`` nor ``n_bins`` the intensities are taken as calibrated
        discrete values (CT) with a step of 1 (non-integer values are rounded).

    Returns
    -------
    dict
        ``ivh_v10, ivh_v90, ivh_i10, ivh_i90, ivh_diff_v10_v90, ivh_diff_i10_i90``. The area
        under the IVH curve has no IBSI reference value and is not computed.
    """
    mask = as_mask(intensity_mask, "intensity_mask")
    intensities = np.asarray(intensities)
    check_same_grid(mask, intensities, ("intensity_mask", "intensities"))
    discretised, grid = _ivh_grid(
        intensities[mask].astype(float), intensity_range, bin_width, n_bins
    )
    ordered = np.sort(discretised)
    # nu_i: fraction of voxels with intensity >= i
    nu = 1.0 - np.searchsorted(ordered, grid, side="left") / ordered.size
    span = grid[-1] - grid[0]
    gamma = (grid - grid[0]) / span if span > 0 else np.ones_like(grid)

    def volume_at(fraction: float) -> float:
        # nu is non-increasing in gamma, so the largest volume is at the first gamma >= fraction
        return float(nu[np.argmax(gamma >= fraction)])

    step = float(grid[1] - grid[0]) if grid.size > 1 else 1.0

    def intensity_at(fraction: float) -> float:
        below = nu <= fraction
        # when even the top intensity holds more than `fraction` of the volume, the next
        # (empty) intensity step is the first one that qualifies
        return float(grid[np.argmax(below)]) if below.any() else float(grid[-1] + step)

    v10, v90 = volume_at(0.10), volume_at(0.90)
    i10, i90 = intensity_at(0.10), intensity_at(0.90)
    return {
        "ivh_v10": v10,
        "ivh_v90": v90,
        "ivh_i10": i10,
        "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90,
        "ivh_diff_i10_i90": i10 - i90,
    }
