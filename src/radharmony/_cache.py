"""Per-case result cache, keyed by file content and run parameters, with atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def case_key(files: Sequence[str | Path], run_fingerprint: str, salt: str = "") -> str:
    """Return the cache key of one case: the bytes of its files, the run parameters, a salt.

    The salt distinguishes cases whose files are identical but whose result depends on their
    identity (e.g. a per-subject random sample). With no salt the key of an image and a mask
    is the one earlier versions computed, so existing caches stay valid.
    """
    parts = [file_digest(f) for f in files] + [run_fingerprint] + ([salt] if salt else [])
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def run_fingerprint(parameters: dict[str, Any]) -> str:
    """Return a digest of everything besides the files that changes a case's result."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_cached(cache_dir: Path, key: str) -> pd.DataFrame | None:
    """Return the cached rows of a case, or None when the case was never completed."""
    path = cache_dir / f"{key}.parquet"
    if not path.is_file():
        return None
    return pd.read_parquet(path)


def store(cache_dir: Path, key: str, rows: pd.DataFrame) -> None:
    """Write a case's rows (and their ``attrs``) so that a reader never sees a half-written file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".tmp")
    os.close(handle)
    try:
        rows.to_parquet(tmp, index=False)
        os.replace(tmp, cache_dir / f"{key}.parquet")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
