"""Longitudinal manifests: one row per subject visit, ordered by time point."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from radharmony.errors import ManifestError
from radharmony.io._manifest import load_manifest_table

REQUIRED_COLUMNS: tuple[str, ...] = ("subject_id", "timepoint", "image")
#: Optional columns holding paths, resolved against the manifest's folder.
PATH_COLUMNS: tuple[str, ...] = (
    "image",
    "mask",
    "transform",
    "reference_grid",
    "brain_mask",
    "change_mask",
)
_UNSAFE = ("/", "\\", "\x00")


def read_longitudinal_manifest(
    source: str | Path | pd.DataFrame,
    *,
    channels: Sequence[str] = (),
    base_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Read and check a longitudinal manifest.

    Columns (one row per subject visit):

    - ``subject_id``, ``timepoint`` (integers, or dates such as ``2021-03-04``; visits are
      ordered by it) and ``image`` (the first channel, e.g. FLAIR) are required;
    - ``mask``: lesions at that visit, on the grid of ``image`` (multi-label, or binary split
      into connected components);
    - ``transform``: an ITK transform file mapping the common space to ``image``, as
      ``SimpleITK.Resample(image, reference_grid, transform)`` uses it;
    - ``reference_grid``: an image whose grid defines the subject's common space (default: the
      first visit's image); ``brain_mask``: a brain mask on the common grid;
    - one column per extra channel named in ``channels`` (e.g. ``T2``), acquired in the same
      session as ``image``; ``<channel>_transform`` (optional) maps ``image``'s space to the
      channel's (an intra-session transform); without it the channel shares the scanner's
      world coordinates with ``image``;
    - ``change_mask`` (reference data only): voxels of the common space that changed between
      the previous visit and this one, left out when the null distribution is learned;
    - ``scanner`` and any covariates, carried into the outputs.

    Structural problems (missing columns, empty identifiers, time points that are neither
    integers nor dates, identifiers that cannot name a file) are refused here with every
    problem listed. Problems of one subject (a single visit, a duplicated time point, a missing
    file) are reported per subject when the manifest is processed, so the others still run.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV file or a DataFrame.
    channels : sequence of str
        Extra channel columns used besides ``image``.
    base_dir : str or Path, optional
        Folder relative paths are resolved against (default: the CSV's folder, or the current
        directory for a DataFrame).

    Returns
    -------
    pandas.DataFrame
        Identifiers and time points as strings, path cells absolute (``""`` when empty), a
        ``timepoint_order`` column (sortable), rows sorted by subject (first appearance) and
        time point. ``attrs["manifest_path"]``, ``attrs["channels"]``.

    Raises
    ------
    ManifestError
    """
    channels = [str(c) for c in channels]
    table, origin, root = _load(source, base_dir, channels)
    missing = [c for c in [*REQUIRED_COLUMNS, *channels] if c not in table.columns]
    if missing:
        raise ManifestError(
            _format(
                origin,
                [
                    f"missing required column(s) {missing}; found columns {list(table.columns)}. "
                    f"A longitudinal manifest needs {list(REQUIRED_COLUMNS)} plus optional "
                    "mask, transform, reference_grid, brain_mask, scanner, covariates and one "
                    "column per extra channel"
                ],
            )
        )
    problems = _identifier_problems(table)
    if problems:
        raise ManifestError(_format(origin, problems))
    table = table.copy()
    for column in ("subject_id", "timepoint"):
        table[column] = table[column].astype(str).str.strip()
    if "scanner" in table.columns:
        table["scanner"] = table["scanner"].fillna("").astype(str).str.strip()
    order, problems = _time_order(table["timepoint"])
    if problems:
        raise ManifestError(_format(origin, problems))
    table["timepoint_order"] = order
    paths = [c for c in table.columns if c in PATH_COLUMNS or c in channels]
    paths += [f"{c}_transform" for c in channels if f"{c}_transform" in table.columns]
    for column in paths:
        table[column] = [_resolve(root, value) for value in table[column]]
    first_seen = {s: i for i, s in enumerate(dict.fromkeys(table["subject_id"]))}
    table["_subject_rank"] = table["subject_id"].map(first_seen)
    table = table.sort_values(["_subject_rank", "timepoint_order"], kind="stable")
    table = table.drop(columns="_subject_rank").reset_index(drop=True)
    table.attrs["manifest_path"] = origin
    table.attrs["channels"] = channels
    return table


def _load(
    source: str | Path | pd.DataFrame, base_dir: str | Path | None, channels: list[str]
) -> tuple[pd.DataFrame, str, Path]:
    text = [*REQUIRED_COLUMNS, *PATH_COLUMNS, *channels, "scanner"]
    text += [f"{c}_transform" for c in channels]
    return load_manifest_table(source, base_dir, text, keep_default_na=False)


def _line(index: int) -> str:
    return f"row {index + 2}"


def _format(origin: str, problems: list[str]) -> str:
    shown = problems[:20]
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return f"manifest {origin} has {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more


def _identifier_problems(table: pd.DataFrame) -> list[str]:
    problems = []
    for column in ("subject_id", "timepoint"):
        values = table[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        problems += [f"{_line(i)}, column {column!r}: empty value" for i in table.index[empty]]
        for i, value in values[~empty].astype(str).str.strip().items():
            if value in (".", "..") or any(ch in value for ch in _UNSAFE):
                problems.append(
                    f"{_line(i)}, column {column!r}: {value!r} cannot name an output file; use "
                    "letters, digits, '-', '_' or '.'"
                )
    return problems


def _time_order(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Return a sortable key per time point: integers, else ISO dates, else refuse."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        return numbers.astype("int64").astype("float64"), []
    try:
        dates = pd.to_datetime(values, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):
        dates = pd.Series(pd.NaT, index=values.index)
    if dates.notna().all():
        return (dates - pd.Timestamp("1970-01-01")).dt.days.astype("float64"), []
    bad = values[numbers.isna() & dates.isna()] if numbers.isna().any() else values
    problems = [
        f"{_line(i)}, column 'timepoint': {v!r} is neither an integer nor a date (YYYY-MM-DD); "
        "time points must be one or the other throughout the manifest so visits can be ordered"
        for i, v in bad.head(20).items()
    ]
    return values, problems or ["column 'timepoint': mixes integers and dates"]


def _resolve(root: Path, value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value).strip()
    if not text:
        return ""
    path = Path(text)
    return str(path if path.is_absolute() else root / path)
