"""From an abnormality map to lesions: connected components, their mass, table and overlap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from radharmony.detect._subject import _bounding_box

_STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}
LESION_TABLE_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_id",
    "voxels",
    "volume_mm3",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "max_abnormality",
    "mean_abnormality",
    "abnormality_mass",
    "p_value",
    "reference_dice",
)


@dataclass
class Clusters:
    """Connected components of supra-threshold brain voxels.

    Attributes
    ----------
    labels : numpy.ndarray of int32
        1..K in raster (z, y, x) order of their first voxel, 0 elsewhere.
    peaks, masses, sizes : numpy.ndarray
        Highest score, mass (sum of the scores' excess over the extent threshold) and voxel
        count of each component (index k - 1 for label k).
    """

    labels: NDArray[np.int32]
    peaks: NDArray[np.float64]
    masses: NDArray[np.float64]
    sizes: NDArray[np.int64]

    @property
    def count(self) -> int:
        """Number of components."""
        return int(self.sizes.size)


def clusters_above(
    score: NDArray[np.float32],
    brain: NDArray[np.bool_],
    threshold: float,
    *,
    min_voxels: int,
    connectivity: int,
    base: float | None = None,
    exclude: NDArray[np.bool_] | None = None,
    interior: NDArray[np.bool_] | None = None,
) -> Clusters:
    """Return the components of ``score >= threshold`` in the brain with at least ``min_voxels``.

    Components touching ``exclude`` (e.g. a reference subject's own lesions, grown by a margin)
    are dropped: they are lesion tissue, not false lesions. With ``interior``, a component's
    peak and mass count only its voxels inside ``interior`` and components with no voxel there
    are dropped (a lesion may reach the brain's edge but is not made by its outer rim).

    A component's mass is the sum of its scores' excess over ``base`` (default ``threshold``):
    the cluster-mass statistic, which weighs a lesion's extent and its height together
    (Bullmore et al. 1999), so a large moderately abnormal lesion is not outranked by a small
    bright spot.
    """
    supra = (score >= threshold) & brain
    labels = np.zeros(score.shape, dtype=np.int32)
    if not supra.any():
        return Clusters(labels, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    box = _bounding_box(supra, margin=1)
    structure = ndimage.generate_binary_structure(3, _STRUCTURE_RANK[connectivity])
    local, count = ndimage.label(supra[box], structure=structure)
    index = np.arange(1, count + 1)
    sizes = np.bincount(local.ravel(), minlength=count + 1)[1:]
    keep = sizes >= min_voxels
    if exclude is not None and exclude.any():
        touched = np.unique(local[exclude[box] & (local > 0)])
        keep &= ~np.isin(index, touched)
    if interior is not None:
        keep &= np.isin(index, np.unique(local[interior[box] & (local > 0)]))
    kept = index[keep]
    inside = np.ones(local.shape, dtype=bool) if interior is None else interior[box]
    seeding = np.where(inside, score[box], -np.inf)
    excess = np.where(inside, score[box] - (threshold if base is None else base), 0.0)
    if kept.size:
        peaks = np.asarray(ndimage.maximum(seeding, local, kept), dtype=np.float64)
        masses = np.asarray(ndimage.sum_labels(excess, local, kept), dtype=np.float64)
    else:
        peaks, masses = np.zeros(0), np.zeros(0)
    relabel = np.zeros(count + 1, dtype=np.int32)
    relabel[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    labels[box] = relabel[local]
    return Clusters(labels, peaks.reshape(-1), masses.reshape(-1), sizes[keep].astype(np.int64))


def brain_interior(
    brain: NDArray[np.bool_], spacing_zyx: tuple[float, float, float], margin_mm: float
) -> NDArray[np.bool_] | None:
    """Brain voxels farther than ``margin_mm`` from the brain mask's edge (None: no margin).

    The outer rim of a brain mask mixes brain with non-brain tissue (partial volume, residues of
    skull stripping, vessels and meninges), whose bright voxels are not lesions.
    """
    if not margin_mm:
        return None
    box = _bounding_box(brain, margin=1)
    # Padded so that a brain touching the volume's border has an edge there too.
    padded = np.pad(brain[box], 1)
    distance = ndimage.distance_transform_edt(padded, sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    interior = np.zeros_like(brain)
    interior[box] = distance > margin_mm
    return interior


def keep_clusters(clusters: Clusters, keep: NDArray[np.bool_]) -> Clusters:
    """Return the clusters where ``keep`` is True, renumbered 1..K in the same order."""
    relabel = np.zeros(clusters.count + 1, dtype=np.int32)
    relabel[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return Clusters(
        relabel[clusters.labels], clusters.peaks[keep], clusters.masses[keep], clusters.sizes[keep]
    )


def per_lesion_dice(
    labels: NDArray[np.integer], reference: NDArray[np.bool_], ids: ArrayLike
) -> NDArray[np.float64]:
    """Dice of each lesion with the reference lesions it overlaps.

    For lesion ``k`` (voxels ``D_k`` where ``labels == k``): ``2 |D_k ∩ R_k| / (|D_k| + |R_k|)``
    where ``R_k`` is the union of the reference's connected components (26-connectivity) that
    overlap ``D_k``; 0 when it overlaps none (a false detection).

    Parameters
    ----------
    labels : numpy.ndarray of int
        Lesion labels (0 = background).
    reference : numpy.ndarray of bool
        Reference lesion voxels, same shape.
    ids : array-like of int
        The lesion labels to measure, in the order of the returned values.

    Returns
    -------
    numpy.ndarray
        One Dice per id.
    """
    wanted = np.asarray(ids, dtype=np.int64)
    if wanted.size == 0:
        return np.zeros(0)
    flat = labels.astype(np.int64, copy=False)
    components, _ = ndimage.label(reference, structure=np.ones((3, 3, 3), dtype=bool))
    component_sizes = np.bincount(components.ravel())
    both = (flat > 0) & (components > 0)
    pairs = np.unique(np.stack([flat[both], components[both]]), axis=1)
    top = int(max(flat.max(), wanted.max())) + 1
    sizes = np.bincount(flat.ravel(), minlength=top)
    overlaps = np.bincount(flat[reference], minlength=top)
    dice = np.zeros(wanted.size, dtype=np.float64)
    for position, k in enumerate(wanted):
        touched = pairs[1][pairs[0] == k]
        if touched.size == 0 or sizes[k] == 0:
            continue
        ref_size = int(component_sizes[touched].sum())
        dice[position] = 2.0 * float(overlaps[k]) / (float(sizes[k]) + ref_size)
    return dice


def lesion_table(
    subject_id: str,
    clusters: Clusters,
    score: NDArray[np.float32],
    grid: sitk.Image,
    p_values: NDArray[np.float64],
    reference: NDArray[np.bool_] | None,
) -> pd.DataFrame:
    """Return one row per lesion (columns ``LESION_TABLE_COLUMNS``)."""
    count = clusters.count
    if count == 0:
        return pd.DataFrame(columns=list(LESION_TABLE_COLUMNS))
    index = np.arange(1, count + 1)
    ones = np.ones(score.shape, dtype=np.float64)
    centres = ndimage.center_of_mass(ones, clusters.labels, index)
    means = np.asarray(ndimage.mean(score, clusters.labels, index), dtype=np.float64)
    world = [
        grid.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
        for z, y, x in centres
    ]
    voxel_mm3 = float(np.prod(grid.GetSpacing()))
    dice = (
        per_lesion_dice(clusters.labels, reference, index)
        if reference is not None
        else np.full(count, np.nan)
    )
    return pd.DataFrame(
        {
            "subject_id": subject_id,
            "lesion_id": index.astype(np.int64),
            "voxels": clusters.sizes.astype(np.int64),
            "volume_mm3": clusters.sizes * voxel_mm3,
            "centroid_x_mm": [w[0] for w in world],
            "centroid_y_mm": [w[1] for w in world],
            "centroid_z_mm": [w[2] for w in world],
            "max_abnormality": clusters.peaks,
            "mean_abnormality": means,
            "abnormality_mass": clusters.masses,
            "p_value": p_values,
            "reference_dice": dice,
        },
        columns=list(LESION_TABLE_COLUMNS),
    )


def overlap_summary(
    labels: NDArray[np.int32], reference: NDArray[np.bool_], count: int
) -> dict[str, float]:
    """Voxel Dice and lesion-wise recall / precision of detections against a reference mask.

    A reference lesion (26-connected component) is found when a detected lesion overlaps it;
    a detected lesion is true when it overlaps a reference lesion.
    """
    detected = labels > 0
    total = int(detected.sum()) + int(reference.sum())
    components, n_reference = ndimage.label(reference, structure=np.ones((3, 3, 3), dtype=bool))
    found = np.unique(components[detected & reference])
    true = np.unique(labels[detected & reference])
    return {
        "voxel_dice": 2.0 * float((detected & reference).sum()) / total if total else np.nan,
        "reference_lesions": int(n_reference),
        "reference_lesions_found": int((found > 0).sum()),
        "lesion_recall": float((found > 0).sum() / n_reference) if n_reference else np.nan,
        "lesion_precision": float((true > 0).sum() / count) if count else np.nan,
    }
