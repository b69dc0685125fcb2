"""Multi-channel subject manifests: one row per subject, one image column per channel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from radharmony.errors import ManifestError
from radharmony.io._manifest import _format, _line, load_manifest_table

#: Optional columns of a channel manifest that hold paths (resolved like the channels).
CHANNEL_PATH_COLUMNS: tuple[str, ...] = ("brain_mask", "lesion_mask")
_UNSAFE_ID_CHARACTERS = ("/", "\\", "\x00")


def read_channel_manifest(
    source: str | Path | pd.DataFrame,
    channels: Sequence[str],
    *,
    base_dir: str | Path | None = None,
    key_columns: Sequence[str] = ("subject_id",),
    path_columns: Sequence[str] = CHANNEL_PATH_COLUMNS,
) -> pd.DataFrame:
    """Read and validate a manifest of co-registered multi-channel images.

    One row per subject (or per ``key_columns`` combination, e.g. subject and time point): the
    ``key_columns``, one column per channel holding an image path, optional path columns
    (``brain_mask``, ``lesion_mask``), an optional ``scanner`` and any covariate columns.

    Structural problems (missing or duplicated columns, empty or duplicated identifiers,
    identifiers that cannot name a folder) are refused with every problem listed by row and
    column. A cell left empty in a channel or path column is not an error here: a per-subject
    stage reports it for that subject and processes the others.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV file or a DataFrame.
    channels : sequence of str
        The channel columns (e.g. ``["FLAIR", "T1", "T2"]``), in the order the stage uses them;
        the first channel defines each subject's voxel grid.
    base_dir : str or Path, optional
        Folder that relative paths are resolved against. Defaults to the CSV's folder, or the
        current directory for a DataFrame.
    key_columns : sequence of str
        Columns that identify a row (``subject_id``; plus e.g. ``timepoint`` for follow-ups).
    path_columns : sequence of str
        Optional columns holding paths, resolved like the channels when present.

    Returns
    -------
    pandas.DataFrame
        Identifiers as strings, channel and path cells as absolute paths (``""`` when empty),
        ``scanner`` as strings when present. ``attrs["manifest_path"]`` records the source and
        ``attrs["channels"]`` the channels.

    Raises
    ------
    ManifestError
        Listing every structural problem found.
    ValueError
        When ``channels`` is empty, repeats a name or uses a reserved column name.
    """
    channels = [str(c) for c in channels]
    _check_channels(channels, key_columns, path_columns)
    table, origin, root = _load(source, base_dir, [*key_columns, *channels, *path_columns])
    missing = [c for c in [*key_columns, *channels] if c not in table.columns]
    if missing:
        raise ManifestError(
            _format(
                origin,
                [
                    f"missing required column(s) {missing}; found columns {list(table.columns)}. "
                    f"A channel manifest needs {[*key_columns]} and one column per channel "
                    f"{channels}, plus optional {list(path_columns)}, scanner and covariates"
                ],
            )
        )
    problems = _identifier_problems(table, key_columns)
    if problems:
        raise ManifestError(_format(origin, problems))
    table = table.copy()
    for column in key_columns:
        table[column] = table[column].astype(str).str.strip()
    if "scanner" in table.columns:
        table["scanner"] = table["scanner"].astype(str).str.strip()
    for column in [*channels, *(c for c in path_columns if c in table.columns)]:
        table[column] = [_resolve(root, value) for value in table[column]]
    table.attrs["manifest_path"] = origin
    table.attrs["channels"] = channels
    return table.reset_index(drop=True)


def _check_channels(
    channels: list[str], key_columns: Sequence[str], path_columns: Sequence[str]
) -> None:
    if not channels:
        raise ValueError("give at least one channel (e.g. channels=['FLAIR'])")
    repeated = sorted({c for c in channels if channels.count(c) > 1})
    if repeated:
        raise ValueError(f"channel(s) {repeated} are listed more than once")
    reserved = sorted(set(channels) & {*key_columns, *path_columns, "scanner"})
    if reserved:
        raise ValueError(f"channel name(s) {reserved} are reserved manifest columns; rename them")


def _load(
    source: str | Path | pd.DataFrame, base_dir: str | Path | None, text_columns: list[str]
) -> tuple[pd.DataFrame, str, Path]:
    return load_manifest_table(source, base_dir, [*text_columns, "scanner"])


def _identifier_problems(table: pd.DataFrame, key_columns: Sequence[str]) -> list[str]:
    problems = []
    for column in key_columns:
        values = table[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        problems += [f"{_line(i)}, column {column!r}: empty value" for i in table.index[empty]]
    if problems:
        return problems
    for i, value in table["subject_id"].astype(str).str.strip().items():
        if value in (".", "..") or any(ch in value for ch in _UNSAFE_ID_CHARACTERS):
            problems.append(
                f"{_line(i)}, column 'subject_id': {value!r} cannot name an output folder; use "
                "letters, digits, '-', '_' or '.'"
            )
    keys = table[list(key_columns)].astype(str).apply(lambda r: "\x00".join(r.str.strip()), axis=1)
    duplicated = keys.duplicated(keep=False)
    for _, group in table[duplicated].groupby(keys[duplicated], sort=False):
        rows = ", ".join(_line(i) for i in group.index)
        named = ", ".join(f"{c}={group[c].iloc[0]!r}" for c in key_columns)
        problems.append(f"{rows}: duplicate {named}; each may be listed once")
    return problems


def _resolve(root: Path, value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value).strip()
    if not text:
        return ""
    path = Path(text)
    return str(path if path.is_absolute() else root / path)
