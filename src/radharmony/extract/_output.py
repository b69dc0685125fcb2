"""Writing and reading feature tables with their failures and provenance."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pandas as pd

from radharmony._cases import failure_table, failures_of

_METADATA_KEY = b"radharmony"


def sidecar_paths(path: str | Path) -> dict[str, Path]:
    """Return the paths written next to a feature table: failures CSV and provenance JSON."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return {
        "failures": path.with_name(f"{stem}.failures.csv"),
        "provenance": path.with_name(f"{stem}.provenance.json"),
    }


def write_features(features: pd.DataFrame, path: str | Path) -> dict[str, Path]:
    """Write a feature table (parquet or CSV), its failures table and provenance sidecar.

    Parameters
    ----------
    features : pandas.DataFrame
        Output of :func:`radharmony.extract_features`.
    path : str or Path
        ``.parquet`` (provenance also stored in the file's metadata) or ``.csv``.

    Returns
    -------
    dict
        Paths written: ``features``, ``failures``, ``provenance``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    provenance = dict(features.attrs.get("provenance", {}))
    provenance["dropped_lesions"] = int(features.attrs.get("dropped_lesions", 0))
    failures = failures_of(features)
    plain = features.copy()
    plain.attrs = {}
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        plain.to_csv(tmp, index=False)
    else:
        table = pa.Table.from_pandas(plain, preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[_METADATA_KEY] = json.dumps(provenance).encode()
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    os.replace(tmp, path)
    paths = sidecar_paths(path)
    failures.to_csv(paths["failures"], index=False)
    paths["provenance"].write_text(
        json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return {"features": path, **paths}


def read_features(path: str | Path) -> pd.DataFrame:
    """Read a feature table written by :func:`write_features`, restoring its ``attrs``.

    Parameters
    ----------
    path : str or Path
        The ``.parquet`` or ``.csv`` feature table.

    Returns
    -------
    pandas.DataFrame
        With ``attrs["provenance"]`` and ``attrs["failures"]`` (records, see
        :func:`radharmony.failures_of`) when their sidecars exist.
    """
    path = Path(path)
    features = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    features.attrs = {}
    paths = sidecar_paths(path)
    if paths["provenance"].is_file():
        features.attrs["provenance"] = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    if paths["failures"].is_file() and paths["failures"].stat().st_size > 1:
        with contextlib.suppress(pd.errors.EmptyDataError):
            text_columns = {c: str for c in ("case_id", "subject_id", "file", "stage", "message")}
            read = pd.read_csv(paths["failures"], dtype=text_columns)
            table = failure_table(read.to_dict("records"))
            features.attrs["failures"] = _records(table)
    return features


def _records(failures: pd.DataFrame) -> list[dict]:
    """Return failure rows as plain records (missing values as None, lesion ids as int)."""
    records = []
    for row in failures.astype(object).to_dict("records"):
        records.append({k: (None if pd.isna(v) else v) for k, v in row.items()})
    for record in records:
        if record["lesion_id"] is not None:
            record["lesion_id"] = int(record["lesion_id"])
    return records
