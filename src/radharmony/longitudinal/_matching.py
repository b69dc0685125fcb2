"""Lesion matching across time points: overlap or distance after alignment, status per lesion.

Lesions of consecutive time points (label images on one common grid) are linked when they
overlap, or when neither overlaps anything and their centroids lie within ``max_distance_mm``
(paired one to one, closest first). Each connected group of linked lesions is one *lesion track*; its status at the later
time point follows from the shape of the group and the change of its volume:

=============  ==============================================================================
status         rule
=============  ==============================================================================
new            no lesion at the earlier time point
disappeared    no lesion at the later time point
merged         several earlier lesions became one (or several became several)
split          one earlier lesion became several
enlarging      one-to-one, volume grew by more than the measurement-error bound
shrinking      one-to-one, volume fell by more than the measurement-error bound
stable         one-to-one, volume change within the bound
=============  ==============================================================================

**Measurement-error bound.** A lesion's volume measured on a voxel grid is uncertain by about
half a voxel layer on its surface: ``error = shell_fraction * boundary_voxels * voxel_volume``,
where boundary voxels are the lesion's voxels with a face neighbour outside it. A volume
change is called real when the two volumes' intervals ``volume +/- error`` do not overlap, i.e.
``|V1 - V0| > error0 + error1``. Small lesions therefore need a large relative change to count
(a 3-voxel lesion is all boundary). This is a lower bound on the real error of a manual or
automatic segmentation; raise ``shell_fraction`` to demand more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

STATUSES: tuple[str, ...] = (
    "present",
    "new",
    "enlarging",
    "stable",
    "shrinking",
    "disappeared",
    "merged",
    "split",
)
TRACK_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_track_id",
    "timepoint",
    "lesion_id",
    "status",
    "volume_mm3",
    "volume_error_mm3",
    "volume_change_mm3",
    "relative_volume_change",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "matched_lesion_ids",
)
LOAD_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "timepoint",
    "n_lesions",
    "lesion_volume_mm3",
    "n_new",
    "n_enlarging",
    "n_stable",
    "n_shrinking",
    "n_disappeared",
    "n_merged",
    "n_split",
)


@dataclass(frozen=True)
class MatchingRule:
    """How lesions of consecutive time points are linked and how volume change is judged.

    Attributes
    ----------
    min_overlap_voxels : int
        Shared voxels needed for two lesions to be linked by overlap.
    max_distance_mm : float
        Lesions that overlap nothing at either time point are paired one to one, closest
        centroids first, when their centroids lie within this distance (residual misalignment,
        a lesion displaced by atrophy). 0 disables distance matching.
    shell_fraction : float
        Fraction of a voxel layer on the lesion surface taken as its volume error.
    """

    min_overlap_voxels: int = 1
    max_distance_mm: float = 5.0
    shell_fraction: float = 0.5


@dataclass(frozen=True)
class _Lesions:
    ids: NDArray[np.int64]
    voxels: NDArray[np.float64]
    boundary: NDArray[np.float64]
    centroids: NDArray[np.float64]  # world mm, one row per lesion


def measure_lesions(
    labels: NDArray[np.integer], spacing: Sequence[float], index_to_world: NDArray[np.float64]
) -> _Lesions:
    """Return voxel counts, boundary voxel counts and world centroids of every label.

    ``index_to_world`` is the 4x4 matrix mapping (x, y, z, 1) voxel indices to world mm.
    """
    ids = np.unique(labels)
    ids = ids[ids != 0].astype(np.int64)
    if ids.size == 0:
        empty = np.zeros(0)
        return _Lesions(ids, empty, empty, np.zeros((0, 3)))
    ones = np.ones(labels.shape)
    voxels = np.asarray(ndimage.sum_labels(ones, labels, index=ids), dtype=float)
    eroded = ndimage.grey_erosion(labels, footprint=ndimage.generate_binary_structure(3, 1))
    boundary_mask = (labels != 0) & (eroded != labels)
    boundary = np.asarray(ndimage.sum_labels(boundary_mask, labels, index=ids), dtype=float)
    centres = np.asarray(ndimage.center_of_mass(ones, labels, index=ids), dtype=float)
    # (z, y, x) array order to (x, y, z, 1) index order.
    homogeneous = np.column_stack([centres[:, ::-1], np.ones(len(ids))])
    world = homogeneous @ index_to_world.T
    return _Lesions(ids, voxels, boundary, world[:, :3])


def _links(
    before: NDArray[np.integer],
    after: NDArray[np.integer],
    a: _Lesions,
    b: _Lesions,
    rule: MatchingRule,
) -> set[tuple[int, int]]:
    """Return (earlier id, later id) pairs of linked lesions."""
    both = (before != 0) & (after != 0)
    pairs, counts = np.unique(
        np.stack([before[both], after[both]]).astype(np.int64), axis=1, return_counts=True
    )
    links = {
        (int(i), int(j))
        for (i, j), c in zip(pairs.T, counts, strict=True)
        if c >= rule.min_overlap_voxels
    }
    if rule.max_distance_mm <= 0 or not a.ids.size or not b.ids.size:
        return links
    linked_a = {i for i, _ in links}
    linked_b = {j for _, j in links}
    rows = np.flatnonzero([int(i) not in linked_a for i in a.ids])
    cols = np.flatnonzero([int(j) not in linked_b for j in b.ids])
    if not rows.size or not cols.size:
        return links
    # Lesions that overlap nothing on either side are paired one to one, closest pairs first,
    # within reach: a lesion seen at both visits but displaced by residual misalignment.
    distance = np.linalg.norm(a.centroids[rows][:, None, :] - b.centroids[cols][None, :, :], axis=2)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(distance, axis=None, kind="stable"):
        r, c = np.unravel_index(flat, distance.shape)
        if distance[r, c] > rule.max_distance_mm:
            break
        if r in used_a or c in used_b:
            continue
        used_a.add(int(r))
        used_b.add(int(c))
        links.add((int(a.ids[rows[r]]), int(b.ids[cols[c]])))
    return links


def _groups(
    a_ids: NDArray[np.int64], b_ids: NDArray[np.int64], links: set[tuple[int, int]]
) -> list[tuple[list[int], list[int]]]:
    """Return the connected groups of the bipartite link graph as (earlier ids, later ids)."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for i in a_ids:
        find(("a", int(i)))
    for j in b_ids:
        find(("b", int(j)))
    for i, j in sorted(links):
        parent[find(("a", i))] = find(("b", j))
    members: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for node in list(parent):
        side, label = node
        group = members.setdefault(find(node), ([], []))
        group[0 if side == "a" else 1].append(label)
    return [(sorted(x), sorted(y)) for x, y in members.values()]


def pair_status(
    n_before: int, n_after: int, volume_before: float, volume_after: float, error: float
) -> str:
    """Return the status of a group of linked lesions at the later time point."""
    if n_before == 0:
        return "new"
    if n_after == 0:
        return "disappeared"
    if n_before > 1:
        return "merged"
    if n_after > 1:
        return "split"
    change = volume_after - volume_before
    if change > error:
        return "enlarging"
    if change < -error:
        return "shrinking"
    return "stable"


def track_lesions(
    labels: Sequence[NDArray[np.integer]],
    timepoints: Sequence[str],
    *,
    spacing: Sequence[float],
    index_to_world: NDArray[np.float64],
    subject_id: str = "",
    rule: MatchingRule | None = None,
) -> pd.DataFrame:
    """Match lesions across consecutive time points and return one row per lesion and visit.

    Parameters
    ----------
    labels : sequence of ndarray
        One integer label array per time point, all on the common grid (``(z, y, x)``); each
        non-zero value is one lesion.
    timepoints : sequence of str
        Time point names, in chronological order.
    spacing : sequence of float
        Voxel size (x, y, z) in mm.
    index_to_world : ndarray of shape (4, 4)
        Voxel index (x, y, z) to world mm matrix of the common grid.
    subject_id : str
        Written into every row.
    rule : MatchingRule, optional
        Matching and volume-change rule (defaults described in the module docs).

    Returns
    -------
    pandas.DataFrame
        Columns ``TRACK_COLUMNS`` (see ``data_dictionary/lesion_tracks.csv``). Lesions of the
        first time point have status ``present``; a disappeared lesion has a row at the time
        point it is missing from, with volume 0.
    """
    rule = rule or MatchingRule()
    if len(labels) != len(timepoints):
        raise ValueError("give one label array per time point")
    voxel_volume = float(np.prod(spacing))
    measured = [measure_lesions(np.asarray(x), spacing, index_to_world) for x in labels]
    # Track identity: union over every consecutive pair's links.
    track_of: dict[tuple[int, int], int] = {}
    rows: list[dict] = []
    next_track = 1
    first = measured[0]
    for k, lesion_id in enumerate(first.ids):
        track_of[(0, int(lesion_id))] = next_track
        rows.append(_row(subject_id, next_track, timepoints[0], first, k, "present", voxel_volume))
        rows[-1]["volume_error_mm3"] = rule.shell_fraction * first.boundary[k] * voxel_volume
        next_track += 1
    for t in range(1, len(labels)):
        a, b = measured[t - 1], measured[t]
        links = _links(np.asarray(labels[t - 1]), np.asarray(labels[t]), a, b, rule)
        for before_ids, after_ids in _groups(a.ids, b.ids, links):
            tracks = sorted({track_of[(t - 1, i)] for i in before_ids})
            if tracks:
                track = tracks[0]
                # A merge joins tracks: later rows of every joined track use the first one.
                for key, value in list(track_of.items()):
                    if value in tracks[1:]:
                        track_of[key] = track
                for row in rows:
                    if row["lesion_track_id"] in tracks[1:]:
                        row["lesion_track_id"] = track
            else:
                track, next_track = next_track, next_track + 1
            v0 = _volume(a, before_ids) * voxel_volume
            v1 = _volume(b, after_ids) * voxel_volume
            e0 = rule.shell_fraction * _boundary(a, before_ids) * voxel_volume
            e1 = rule.shell_fraction * _boundary(b, after_ids) * voxel_volume
            status = pair_status(len(before_ids), len(after_ids), v0, v1, e0 + e1)
            if not after_ids:
                rows.append(_missing_row(subject_id, track, timepoints[t], v0, before_ids))
                continue
            for j in after_ids:
                track_of[(t, j)] = track
                k = int(np.searchsorted(b.ids, j))
                row = _row(subject_id, track, timepoints[t], b, k, status, voxel_volume)
                row["volume_error_mm3"] = rule.shell_fraction * b.boundary[k] * voxel_volume
                row["volume_change_mm3"] = v1 - v0 if before_ids else v1
                row["relative_volume_change"] = (v1 - v0) / v0 if v0 > 0 else np.nan
                row["matched_lesion_ids"] = ";".join(str(i) for i in before_ids)
                rows.append(row)
    table = pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
    table["lesion_id"] = table["lesion_id"].astype("Int64")
    table["matched_lesion_ids"] = table["matched_lesion_ids"].fillna("").astype(str)
    order = {name: i for i, name in enumerate(timepoints)}
    table = table.sort_values(
        ["lesion_track_id", "timepoint", "lesion_id"],
        key=lambda c: c.map(order) if c.name == "timepoint" else c,
    )
    return table.reset_index(drop=True)


def _volume(lesions: _Lesions, ids: list[int]) -> float:
    return float(lesions.voxels[np.searchsorted(lesions.ids, ids)].sum()) if ids else 0.0


def _boundary(lesions: _Lesions, ids: list[int]) -> float:
    return float(lesions.boundary[np.searchsorted(lesions.ids, ids)].sum()) if ids else 0.0


def _row(
    subject_id: str,
    track: int,
    timepoint: str,
    lesions: _Lesions,
    k: int,
    status: str,
    voxel_volume: float,
) -> dict:
    x, y, z = lesions.centroids[k]
    return {
        "subject_id": subject_id,
        "lesion_track_id": track,
        "timepoint": timepoint,
        "lesion_id": int(lesions.ids[k]),
        "status": status,
        "volume_mm3": float(lesions.voxels[k] * voxel_volume),
        "volume_change_mm3": np.nan,
        "relative_volume_change": np.nan,
        "centroid_x_mm": float(x),
        "centroid_y_mm": float(y),
        "centroid_z_mm": float(z),
        "matched_lesion_ids": "",
    }


def _missing_row(
    subject_id: str, track: int, timepoint: str, volume_before: float, before_ids: list[int]
) -> dict:
    return {
        "subject_id": subject_id,
        "lesion_track_id": track,
        "timepoint": timepoint,
        "lesion_id": None,
        "status": "disappeared",
        "volume_mm3": 0.0,
        "volume_error_mm3": 0.0,
        "volume_change_mm3": -volume_before,
        "relative_volume_change": -1.0,
        "centroid_x_mm": np.nan,
        "centroid_y_mm": np.nan,
        "centroid_z_mm": np.nan,
        "matched_lesion_ids": ";".join(str(i) for i in before_ids),
    }


def lesion_load(tracks: pd.DataFrame, timepoints: Sequence[str], subject_id: str) -> pd.DataFrame:
    """Return the lesion load per time point: lesion count, total volume, counts by status.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`track_lesions` for one subject.
    timepoints : sequence of str
        The subject's time points in order (time points without lesions get zero rows).
    subject_id : str
        Written into every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``LOAD_COLUMNS`` (see ``data_dictionary/lesion_load.csv``).
    """
    rows = []
    for timepoint in timepoints:
        here = tracks[tracks["timepoint"] == timepoint]
        present = here[here["lesion_id"].notna()]
        row = {
            "subject_id": subject_id,
            "timepoint": timepoint,
            "n_lesions": int(len(present)),
            "lesion_volume_mm3": float(present["volume_mm3"].sum()),
        }
        # Counted per track: a split lesion is one "split" event however many parts it has.
        per_track = here.drop_duplicates("lesion_track_id")
        for status in ("new", "enlarging", "stable", "shrinking", "disappeared", "merged", "split"):
            row[f"n_{status}"] = int((per_track["status"] == status).sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(LOAD_COLUMNS))
