"""Per-case result cache, keyed by file content and settings, with atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def file_digest(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes, or of every file in a folder (DICOM series)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def case_key(image: str, mask: str, run_fingerprint: str, rois: str = "") -> str:
    """Return the cache key of one case: image bytes, mask bytes, ROIs taken and parameters."""
    parts = [file_digest(image), file_digest(mask), run_fingerprint] + ([rois] if rois else [])
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def run_fingerprint(parameters: dict) -> str:
    """Return a digest of everything besides the files that changes a case's result."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_cached(cache_dir: Path, key: str) -> pd.DataFrame | None:
    """Return the cached lesion rows of a case, or None when the case was never completed."""
    path = cache_dir / f"{key}.parquet"
    if not path.is_file():
        return None
    return pd.read_parquet(path)


def store(cache_dir: Path, key: str, rows: pd.DataFrame) -> None:
    """Write a case's lesion rows so that a reader never sees a half-written file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".tmp")
    os.close(handle)
    try:
        rows.to_parquet(tmp, index=False)
        os.replace(tmp, cache_dir / f"{key}.parquet")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
