"""Cohort manifests: one row per image, with its mask, scanner and covariates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from radharmony.errors import ManifestError

REQUIRED_COLUMNS: tuple[str, ...] = ("subject_id", "image", "mask", "scanner")
# Optional column: ROI names / segment labels to take from a DICOM RTSTRUCT/SEG mask ("GTV|GTVn").
ROIS_COLUMN = "rois"
#: Optional columns holding paths, resolved like ``image`` and ``mask`` when present.
OPTIONAL_PATH_COLUMNS: tuple[str, ...] = ("reference_mask",)
# Columns the package adds to every output row; a covariate may not reuse these names.
RESERVED_COLUMNS: tuple[str, ...] = (
    "case_id",
    "lesion_id",
    "lesion_name",
    "lesion_voxels",
    "lesion_volume_mm3",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "reference_dice",
)


def read_manifest(
    source: str | Path | pd.DataFrame,
    *,
    base_dir: str | Path | None = None,
    check_files: bool = True,
) -> pd.DataFrame:
    """Read and validate a cohort manifest.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV file, or a DataFrame, with one row per image and the columns ``subject_id``,
        ``image``, ``mask``, ``scanner`` plus any covariate columns (``age``, ``sex``, ...),
        which are carried through to the outputs. ``mask`` may be a label image or a DICOM
        RTSTRUCT/SEG file (its ``image`` is then the DICOM series folder it was drawn on); an
        optional ``rois`` column names the ROIs/segments to take from it (``GTV|GTVn``; empty:
        all, see :func:`radharmony.io.read_dicom_mask`).
        which are carried through to the outputs. An optional ``reference_mask`` column (a
        reference segmentation on the image's grid, e.g. expert lesions when ``mask`` holds
        detected ones) is resolved like the paths; extraction then reports each lesion's Dice
        with it.
    base_dir : str or Path, optional
        Folder that relative paths are resolved against. Defaults to the CSV's folder, or the
        current directory for a DataFrame.
    check_files : bool
        Whether to check that every image and mask exists.

    Returns
    -------
    pandas.DataFrame
        The manifest with ``image`` and ``mask`` as absolute paths, identifiers as strings, and
        a ``case_id`` column that names each row uniquely (the ``subject_id``, suffixed with the
        image file name when a subject has several images). ``attrs["manifest_path"]`` records
        the source.

    Raises
    ------
    ManifestError
        Listing every problem found with its row (CSV line number) and column.
    """
    table, origin, root = _load(source, base_dir)
    problems = _missing_column_problems(table, origin)
    if problems:
        raise ManifestError(_format(origin, problems))
    problems += _reserved_column_problems(table)
    problems += _empty_value_problems(table)
    problems += _duplicate_problems(table)
    if not problems:
        table = _resolve_paths(table, root)
        if check_files:
            problems += _missing_file_problems(table)
    if problems:
        raise ManifestError(_format(origin, problems))
    table.insert(0, "case_id", _case_ids(table))
    table.attrs["manifest_path"] = origin
    return table.reset_index(drop=True)


def _load(
    source: str | Path | pd.DataFrame, base_dir: str | Path | None
) -> tuple[pd.DataFrame, str, Path]:
    return load_manifest_table(source, base_dir, (*REQUIRED_COLUMNS, ROIS_COLUMN))


def load_manifest_table(
    source: str | Path | pd.DataFrame,
    base_dir: str | Path | None,
    text_columns: Sequence[str],
    *,
    keep_default_na: bool = True,
) -> tuple[pd.DataFrame, str, Path]:
    """Return a manifest's raw table, its name for messages and the folder paths resolve from.

    ``text_columns`` are read as text (identifiers such as ``007`` keep their zeros). A missing,
    non-UTF-8 or unparsable CSV raises :class:`~radharmony.errors.ManifestError` naming it.
    """
    if isinstance(source, pd.DataFrame):
        root = Path(base_dir) if base_dir is not None else Path.cwd()
        return source.copy(), "<DataFrame>", root
    path = Path(source)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    try:
        table = pd.read_csv(
            path, dtype={c: str for c in text_columns}, keep_default_na=keep_default_na
        )
    except UnicodeDecodeError as err:
        raise ManifestError(
            f"manifest {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
            "save it as UTF-8 CSV"
        ) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ManifestError(f"manifest {path} is not a readable CSV: {err}") from err
    table.columns = [str(c).strip() for c in table.columns]
    root = Path(base_dir) if base_dir is not None else path.resolve().parent
    return table, str(path), root


def _line(index: int) -> str:
    # Row i of the table is line i + 2 of the CSV (line 1 is the header).
    return f"row {index + 2}"


def _missing_column_problems(table: pd.DataFrame, origin: str) -> list[str]:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if not missing:
        return []
    return [
        f"missing required column(s) {missing}; found columns {list(table.columns)}. "
        f"A manifest needs {list(REQUIRED_COLUMNS)} plus optional covariate columns"
    ]


def _reserved_column_problems(table: pd.DataFrame) -> list[str]:
    clash = [c for c in table.columns if c in RESERVED_COLUMNS]
    return [f"column {c!r} is reserved for outputs; rename it" for c in clash]


def _empty_value_problems(table: pd.DataFrame) -> list[str]:
    problems = []
    for column in REQUIRED_COLUMNS:
        values = table[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        problems += [f"{_line(i)}, column {column!r}: empty value" for i in table.index[empty]]
    return problems


def _duplicate_problems(table: pd.DataFrame) -> list[str]:
    keys = table["subject_id"].astype(str) + "\x00" + table["image"].astype(str)
    dup = keys.duplicated(keep=False)
    problems = []
    for _, group in table[dup].groupby(keys[dup], sort=False):
        rows = ", ".join(_line(i) for i in group.index)
        problems.append(
            f"{rows}: duplicate subject_id {group['subject_id'].iloc[0]!r} with image "
            f"{group['image'].iloc[0]!r}; each image may be listed once"
        )
    return problems


def _resolve_paths(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    table = table.copy()
    for column in ("subject_id", "scanner"):
        table[column] = table[column].astype(str).str.strip()
    if ROIS_COLUMN in table.columns:
        table[ROIS_COLUMN] = [
            "" if pd.isna(v) else str(v).strip() for v in table[ROIS_COLUMN].astype(object)
        ]
    for column in ("image", "mask"):
        table[column] = [
            str(p if p.is_absolute() else (root / p))
            for p in (Path(str(v).strip()) for v in table[column])
        ]
    for column in (c for c in OPTIONAL_PATH_COLUMNS if c in table.columns):
        table[column] = [_optional_path(root, v) for v in table[column]]
    return table


def _optional_path(root: Path, value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
        return ""
    path = Path(str(value).strip())
    return str(path if path.is_absolute() else root / path)


def _missing_file_problems(table: pd.DataFrame) -> list[str]:
    problems = []
    columns = ["image", "mask", *(c for c in OPTIONAL_PATH_COLUMNS if c in table.columns)]
    for column in columns:
        for i, value in table[column].items():
            if value and not Path(value).exists():
                problems.append(f"{_line(i)}, column {column!r}: file {value} does not exist")
    return problems


def _case_ids(table: pd.DataFrame) -> list[str]:
    counts = table["subject_id"].value_counts()
    ids = []
    for subject, image in zip(table["subject_id"], table["image"], strict=True):
        if counts[subject] == 1:
            ids.append(subject)
        else:
            ids.append(f"{subject}/{_stem(Path(image))}")
    return ids


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _format(origin: str, problems: list[str]) -> str:
    shown = problems[:20]
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return f"manifest {origin} has {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more
