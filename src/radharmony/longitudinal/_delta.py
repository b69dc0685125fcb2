"""Delta-radiomics: features of every matched lesion at every visit, and their change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony.extract import extract_features
from radharmony.ibsi.settings import SettingsLike
from radharmony.longitudinal._manifest import read_longitudinal_manifest

IDENTITY_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "lesion_track_id",
    "timepoint",
    "lesion_id",
    "status",
    "case_id",
    "scanner",
)
_NOT_FEATURES = {
    "case_id",
    "subject_id",
    "lesion_id",
    "scanner",
    "timepoint",
    "timepoint_order",
    "lesion_voxels",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
}


def delta_radiomics(
    manifest: str | Path | pd.DataFrame,
    tracks: pd.DataFrame,
    settings: SettingsLike | None = None,
    *,
    n_jobs: int = 1,
    cache_dir: str | Path | None = None,
    connectivity: int = 26,
    backend: str = "loky",
    scheduler: Any = None,
    progress: bool | None = None,
    base_dir: str | Path | None = None,
    verbose: bool | int | None = None,
) -> pd.DataFrame:
    """Return features per matched lesion and visit, with their change since the previous visit.

    Features come from :func:`radharmony.extract_features` on each visit's own image and mask
    (its native grid: no resampling into the common space), with the given IBSI settings and
    cache, so a lesion's features at a visit equal those of a plain extraction of that visit.
    Lesion identities are those of :func:`analyse_followups` (``lesion_id`` is the label, or
    connected component, of the visit's mask; ``connectivity`` must match).

    Parameters
    ----------
    manifest : str, Path or pandas.DataFrame
        The longitudinal manifest (visits with a ``mask`` are extracted).
    tracks : pandas.DataFrame
        ``LongitudinalResult.tracks``.
    settings : str, dict, path or ExtractionSettings, optional
        Extraction settings (default ``"default"``).
    n_jobs, cache_dir, connectivity, backend, scheduler, progress, base_dir, verbose
        As in :func:`radharmony.extract_features`.

    Returns
    -------
    pandas.DataFrame
        One row per lesion observation: ``subject_id``, ``lesion_track_id``, ``timepoint``,
        ``lesion_id``, ``status``, ``case_id``, ``scanner``, ``lesion_volume_mm3``, the
        features, then ``delta_<feature>`` (value minus the value at the track's previous
        visit) and ``delta_rel_<feature>`` (that change divided by the absolute previous
        value). Deltas are computed for one-to-one links only (a merged or split track, and a
        track's first visit, get NaN). ``attrs["failures"]`` and ``attrs["provenance"]`` come
        from the extraction.
    """
    table = read_longitudinal_manifest(manifest, base_dir=base_dir)
    visits = table[table.get("mask", pd.Series("", index=table.index)).astype(str) != ""]
    subjects = set(tracks["subject_id"].astype(str)) if len(tracks) else set()
    visits = visits[visits["subject_id"].isin(subjects)]
    if visits.empty:
        return pd.DataFrame(columns=list(IDENTITY_COLUMNS))
    extraction = pd.DataFrame(
        {
            "subject_id": visits["subject_id"].to_numpy(),
            "image": visits["image"].to_numpy(),
            "mask": visits["mask"].to_numpy(),
            "scanner": (
                visits["scanner"].replace("", "unknown").to_numpy()
                if "scanner" in visits
                else "unknown"
            ),
            "timepoint": visits["timepoint"].to_numpy(),
        }
    )
    features = extract_features(
        extraction,
        settings,
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        connectivity=connectivity,
        backend=backend,
        scheduler=scheduler,
        progress=progress,
        verbose=verbose,
    )
    failures = features.attrs.get("failures", [])
    provenance = features.attrs.get("provenance", {})
    features = features.astype({"timepoint": str, "subject_id": str})
    present = tracks[tracks["lesion_id"].notna()].copy()
    present["lesion_id"] = present["lesion_id"].astype("int64")
    present = present.astype({"timepoint": str, "subject_id": str})
    merged = present[["subject_id", "lesion_track_id", "timepoint", "lesion_id", "status"]].merge(
        features, on=["subject_id", "timepoint", "lesion_id"], how="inner"
    )
    feature_columns = [
        c
        for c in features.columns
        if c not in _NOT_FEATURES and pd.api.types.is_numeric_dtype(features[c])
    ]
    out = _with_deltas(merged, tracks, feature_columns)
    out.attrs = {"failures": failures, "provenance": provenance}
    return out


def _with_deltas(
    merged: pd.DataFrame, tracks: pd.DataFrame, feature_columns: list[str]
) -> pd.DataFrame:
    order = {t: i for i, t in enumerate(pd.unique(tracks["timepoint"].astype(str)))}
    counts = merged.groupby(["subject_id", "lesion_track_id", "timepoint"])["lesion_id"].transform(
        "size"
    )
    merged = merged.copy()
    merged["_one"] = (counts == 1).to_numpy()
    merged["_rank"] = merged["timepoint"].map(order)
    merged = merged.sort_values(["subject_id", "lesion_track_id", "_rank"], kind="stable")
    values = merged[feature_columns].to_numpy(dtype=np.float64)
    previous = merged.groupby(["subject_id", "lesion_track_id"])[feature_columns].shift(1)
    prev_values = previous.to_numpy(dtype=np.float64)
    one_to_one = (
        merged["_one"].to_numpy()
        & merged.groupby(["subject_id", "lesion_track_id"])["_one"].shift(1, fill_value=False)
    ).to_numpy(dtype=bool)
    delta = np.where(one_to_one[:, None], values - prev_values, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(np.abs(prev_values) > 0, delta / np.abs(prev_values), np.nan)
    leading = [c for c in IDENTITY_COLUMNS if c in merged.columns]
    rest = [c for c in merged.columns if c not in leading and not c.startswith("_")]
    base = merged[leading + rest].reset_index(drop=True)
    deltas = pd.DataFrame(
        np.hstack([delta, relative]),
        columns=[f"delta_{c}" for c in feature_columns]
        + [f"delta_rel_{c}" for c in feature_columns],
    )
    return pd.concat([base, deltas], axis=1)
