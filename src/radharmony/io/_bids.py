"""BIDS datasets in (a cohort manifest) and BIDS derivatives out (per-subject feature tables).

Only the parts of the BIDS specification a manifest needs are read: file names made of
``key-value`` entities and a suffix, subject and session folders, JSON sidecars with the
inheritance principle, ``participants.tsv`` and ``sub-<label>_sessions.tsv``, and derivative
datasets under ``derivatives/``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony.errors import ManifestError

_IMAGE_EXTENSIONS = (".nii.gz", ".nii")
_MASK_SUFFIXES = ("mask", "dseg")
# Entities that describe a derivative rather than the raw file it was made from.
_DERIVATIVE_ENTITIES = frozenset({"space", "res", "den", "label", "desc", "from", "to", "mode"})
_ENTITY = re.compile(r"^([a-zA-Z0-9]+)-([a-zA-Z0-9+]+)$")
_SCANNER_FIELDS = ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength")
_MANIFEST_COLUMNS = (
    "subject_id",
    "session",
    "run",
    "modality",
    "image",
    "mask",
    "scanner",
    "manufacturer",
    "manufacturers_model_name",
    "magnetic_field_strength",
)
_FEATURE_SUFFIX = "radiomics"


@dataclass(frozen=True)
class _BidsFile:
    path: Path
    entities: dict[str, str]
    suffix: str


def _parse_name(path: Path) -> _BidsFile | None:
    """Entities and suffix of a BIDS file name, or None when the name is not BIDS."""
    name = path.name
    for extension in (*_IMAGE_EXTENSIONS, ".json", ".tsv"):
        if name.endswith(extension):
            name = name[: -len(extension)]
            break
    else:
        return None
    *pairs, suffix = name.split("_")
    entities = {}
    for pair in pairs:
        match = _ENTITY.match(pair)
        if match is None:
            return None
        entities[match.group(1)] = match.group(2)
    if not suffix or "-" in suffix:
        return None
    return _BidsFile(path, entities, suffix)


def read_bids(
    root: str | Path,
    *,
    suffixes: Sequence[str] | None = None,
    datatype: str = "anat",
    derivatives: str | Path | None = None,
    mask_entities: Mapping[str, str] | None = None,
    require_mask: bool = True,
) -> pd.DataFrame:
    """Build a cohort manifest from a BIDS dataset.

    Each image (``sub-<label>[/ses-<label>]/<datatype>/*_<suffix>.nii[.gz]``) is one row. Its
    modality (the BIDS suffix: ``T1w``, ``FLAIR``, ...) is a channel named in ``modality``; a
    subject's sessions and runs are separate rows. The mask of an image is the ``_mask`` or
    ``_dseg`` image of a derivatives dataset whose raw entities (``sub``, ``ses``, ``acq``,
    ``run``, ...) all equal the image's (entities it leaves out match any value, so one mask per
    session serves every modality of that session); the most specific match wins. The scanner is
    ``Manufacturer ManufacturersModelName MagneticFieldStrength`` from the image's JSON sidecars
    (inheritance principle: sidecars higher in the tree apply unless a closer one overrides).
    ``participants.tsv`` columns, then ``sub-<label>_sessions.tsv`` columns, are covariates.

    Parameters
    ----------
    root : str or Path
        The BIDS dataset (the folder holding ``dataset_description.json``).
    suffixes : sequence of str, optional
        Modalities to take (e.g. ``["T1w", "FLAIR"]``). Default: every image suffix found.
    datatype : str
        BIDS data type folder holding the images.
    derivatives : str or Path, optional
        The derivatives dataset holding the masks: a folder name under ``root/derivatives`` or a
        path. Default: the only folder under ``root/derivatives`` that holds masks.
    mask_entities : mapping, optional
        Entities a mask must have, e.g. ``{"desc": "lesion"}`` or ``{"label": "WMH"}``, to choose
        among several masks of one image.
    require_mask : bool
        Raise when an image has no mask (default). With False, such images are left out and
        listed in ``attrs["unmatched"]``.

    Returns
    -------
    pandas.DataFrame
        A manifest for :func:`radharmony.extract_features`: ``subject_id`` (``sub-<label>``),
        ``session`` (``ses-<label>``, empty without sessions), ``run`` (integer, missing when
        the file has no run), ``modality``, ``image``, ``mask``, ``scanner``, ``manufacturer``,
        ``manufacturers_model_name``, ``magnetic_field_strength`` (tesla), then the covariates.
        ``attrs`` holds ``bids_root``, ``derivatives`` and ``unmatched``.

    Raises
    ------
    ManifestError
        When the folder is not a BIDS dataset, holds no image, a mask is missing or ambiguous,
        or the derivatives dataset cannot be chosen.
    """
    root = Path(root)
    if not (root / "dataset_description.json").is_file() and not any(root.glob("sub-*")):
        raise ManifestError(
            f"{root} is not a BIDS dataset (no dataset_description.json, no sub-* folder)"
        )
    images = _images(root, datatype, suffixes)
    if not images:
        wanted = f" with suffix {list(suffixes)}" if suffixes else ""
        raise ManifestError(f"BIDS dataset {root} holds no {datatype} NIfTI image{wanted}")
    mask_root = _derivatives_folder(root, derivatives)
    masks = _masks(mask_root, datatype, mask_entities or {})
    rows, unmatched = [], []
    for image in images:
        mask = _mask_of(image, masks, mask_root, mask_entities or {})
        if mask is None:
            unmatched.append(str(image.path))
            continue
        rows.append(_row(root, image, mask))
    if unmatched and require_mask:
        where = mask_root if mask_root is not None else root / "derivatives"
        shown = "\n  ".join(unmatched[:10]) + ("\n  ..." if len(unmatched) > 10 else "")
        raise ManifestError(
            f"{len(unmatched)} image(s) of {root} have no mask in {where}:\n  {shown}\n"
            "Add their _mask/_dseg files, choose another derivatives dataset, or pass "
            "require_mask=False to leave them out"
        )
    if not rows:
        raise ManifestError(f"no image of BIDS dataset {root} has a mask")
    table = pd.DataFrame(rows, columns=list(_MANIFEST_COLUMNS))
    table["run"] = table["run"].astype("Int64")
    table = _with_covariates(table, root)
    _warn_unknown_scanners(table)
    table.attrs = {
        "bids_root": str(root),
        "derivatives": str(mask_root) if mask_root is not None else "",
        "unmatched": unmatched,
    }
    return table


def _images(root: Path, datatype: str, suffixes: Sequence[str] | None) -> list[_BidsFile]:
    found = []
    for subject in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        folders = [subject / datatype] + sorted(subject.glob(f"ses-*/{datatype}"))
        for folder in folders:
            for path in sorted(folder.glob("sub-*")):
                parsed = _parse_name(path)
                if parsed is None or not path.name.endswith(_IMAGE_EXTENSIONS):
                    continue
                if suffixes is not None and parsed.suffix not in suffixes:
                    continue
                if parsed.suffix in _MASK_SUFFIXES:
                    continue
                found.append(parsed)
    return found


def _derivatives_folder(root: Path, derivatives: str | Path | None) -> Path | None:
    base = root / "derivatives"
    if derivatives is not None:
        folder = Path(derivatives)
        folder = folder if folder.is_absolute() or folder.exists() else base / folder
        if not folder.is_dir():
            raise ManifestError(f"derivatives dataset {folder} does not exist")
        return folder
    if not base.is_dir():
        return None
    with_masks = [
        p
        for p in sorted(base.iterdir())
        if p.is_dir() and any(_is_mask(f) for f in p.rglob("sub-*"))
    ]
    if len(with_masks) > 1:
        names = ", ".join(p.name for p in with_masks)
        raise ManifestError(
            f"several derivatives datasets of {root} hold masks ({names}); choose one with "
            "derivatives=NAME (--bids-derivatives NAME)"
        )
    return with_masks[0] if with_masks else None


def _is_mask(path: Path) -> bool:
    parsed = _parse_name(path)
    return (
        parsed is not None
        and parsed.suffix in _MASK_SUFFIXES
        and path.name.endswith(_IMAGE_EXTENSIONS)
    )


def _masks(folder: Path | None, datatype: str, required: Mapping[str, str]) -> list[_BidsFile]:
    if folder is None:
        return []
    masks = []
    for path in sorted(folder.rglob("sub-*")):
        if path.parent.name != datatype or not _is_mask(path):
            continue
        parsed = _parse_name(path)
        if parsed is not None and all(parsed.entities.get(k) == v for k, v in required.items()):
            masks.append(parsed)
    return masks


def _mask_of(
    image: _BidsFile, masks: list[_BidsFile], folder: Path | None, required: Mapping[str, str]
) -> _BidsFile | None:
    candidates = []
    for mask in masks:
        raw = {k: v for k, v in mask.entities.items() if k not in _DERIVATIVE_ENTITIES}
        if all(image.entities.get(k) == v for k, v in raw.items()):
            candidates.append((len(raw), mask))
    if not candidates:
        return None
    best = max(n for n, _ in candidates)
    chosen = [mask for n, mask in candidates if n == best]
    if len(chosen) > 1:
        names = "\n  ".join(str(m.path) for m in chosen)
        raise ManifestError(
            f"image {image.path} has {len(chosen)} candidate masks in {folder}:\n  {names}\n"
            "Choose with mask_entities (e.g. {'desc': 'lesion'}; --bids-mask desc=lesion)"
        )
    return chosen[0]


def _row(root: Path, image: _BidsFile, mask: _BidsFile) -> dict[str, Any]:
    sidecar = _sidecar(root, image)
    fields = {name: sidecar.get(name) for name in _SCANNER_FIELDS}
    strength = _tesla(fields["MagneticFieldStrength"])
    parts = [
        str(fields["Manufacturer"] or "").strip(),
        str(fields["ManufacturersModelName"] or "").strip(),
        f"{strength:g}T" if np.isfinite(strength) else "",
    ]
    run = image.entities.get("run")
    return {
        "subject_id": f"sub-{image.entities['sub']}",
        "session": f"ses-{image.entities['ses']}" if "ses" in image.entities else "",
        "run": int(run) if run is not None and run.isdigit() else None,
        "modality": image.suffix,
        "image": str(image.path),
        "mask": str(mask.path),
        "scanner": " ".join(p for p in parts if p) or "unknown",
        "manufacturer": fields["Manufacturer"],
        "manufacturers_model_name": fields["ManufacturersModelName"],
        "magnetic_field_strength": strength,
    }


def _tesla(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _sidecar(root: Path, image: _BidsFile) -> dict[str, Any]:
    """The image's metadata: every applicable JSON from the root down, closer ones overriding."""
    folders = [root]
    relative = image.path.parent.relative_to(root)
    for part in relative.parts:
        folders.append(folders[-1] / part)
    merged: dict[str, Any] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            parsed = _parse_name(path)
            if parsed is None or parsed.suffix != image.suffix:
                continue
            if all(image.entities.get(k) == v for k, v in parsed.entities.items()):
                merged.update(_read_json(path))
    return merged


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ManifestError(f"JSON sidecar {path} cannot be read: {err}") from err
    if not isinstance(value, dict):
        raise ManifestError(f"JSON sidecar {path} does not hold an object")
    return value


def _read_tsv(path: Path, key: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path} cannot be read as a tab-separated table: {err}") from err
    if key not in table.columns:
        raise ManifestError(f"{path} has no {key!r} column (columns: {list(table.columns)})")
    table[key] = table[key].astype(str).str.strip()
    return table


def _with_covariates(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    participants_path = root / "participants.tsv"
    if participants_path.is_file():
        participants = _read_tsv(participants_path, "participant_id")
        participants = _renamed(participants, "participant_id", "participants")
        table = table.merge(
            participants.rename(columns={"participant_id": "subject_id"}),
            on="subject_id",
            how="left",
        )
    sessions = _session_tables(root, set(table["subject_id"]))
    if not sessions.empty:
        sessions = _renamed(sessions, "session_id", "sessions", keep=("subject_id",))
        shared = [c for c in sessions.columns if c in table.columns and c != "subject_id"]
        merged = table.merge(
            sessions.rename(columns={"session_id": "session"}),
            on=["subject_id", "session"],
            how="left",
            suffixes=("", "__session"),
        )
        # a session-level value (age at the scan) overrides the participant-level one
        for column in [c for c in shared if c != "session_id"]:
            merged[column] = merged[f"{column}__session"].combine_first(merged[column])
            merged = merged.drop(columns=f"{column}__session")
        table = merged
    return table


def _session_tables(root: Path, subjects: set[str]) -> pd.DataFrame:
    pieces = []
    for subject in sorted(subjects):
        path = root / subject / f"{subject}_sessions.tsv"
        if path.is_file():
            pieces.append(_read_tsv(path, "session_id").assign(subject_id=subject))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()


def _renamed(
    table: pd.DataFrame, key: str, source: str, keep: tuple[str, ...] = ()
) -> pd.DataFrame:
    # A covariate may not take the name of a manifest or output column: suffix it instead.
    from radharmony.io._manifest import RESERVED_COLUMNS

    taken = set(_MANIFEST_COLUMNS) | set(RESERVED_COLUMNS) | {"rois"}
    clash = {c: f"{c}_{source}" for c in table.columns if c in taken and c not in (key, *keep)}
    return table.rename(columns=clash)


def _warn_unknown_scanners(table: pd.DataFrame) -> None:
    unknown = table.loc[table["scanner"] == "unknown", "image"].tolist()
    if unknown:
        warnings.warn(
            f"{len(unknown)} image(s) have no Manufacturer/ManufacturersModelName/"
            f"MagneticFieldStrength in their JSON sidecars (e.g. {unknown[0]}); their scanner "
            "is 'unknown', one batch for harmonisation",
            UserWarning,
            stacklevel=3,
        )


def write_bids_derivatives(
    features: pd.DataFrame,
    out_dir: str | Path,
    *,
    name: str = "radharmony",
    source: str | Path | None = None,
) -> list[Path]:
    """Write a feature table as a BIDS derivatives dataset.

    Writes ``dataset_description.json`` (``DatasetType: derivative``, ``GeneratedBy`` radharmony
    with its version), one tab-separated table per subject and session,
    ``sub-<label>/[ses-<label>/]sub-<label>[_ses-<label>]_radiomics.tsv`` (one row per lesion and
    image; missing values as ``n/a``), a ``radiomics.json`` sidecar at the top that describes the
    identifying columns and records the provenance, and ``failures.tsv`` when cases failed.

    Parameters
    ----------
    features : pandas.DataFrame
        Output of :func:`radharmony.extract_features` on a manifest from :func:`read_bids`.
    out_dir : str or Path
        The derivatives dataset folder, e.g. ``<bids root>/derivatives/radharmony``.
    name : str
        Name of the derivatives dataset.
    source : str or Path, optional
        The raw BIDS dataset, recorded in ``SourceDatasets``.

    Returns
    -------
    list of Path
        The files written.
    """
    from radharmony._version import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    description: dict[str, Any] = {
        "Name": name,
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "radharmony",
                "Version": __version__,
                "Description": "IBSI-compliant radiomic features per lesion",
            }
        ],
    }
    if source is not None:
        description["SourceDatasets"] = [{"URL": Path(source).resolve().as_uri()}]
    written = [_write_json(out / "dataset_description.json", description)]
    sidecar = {
        "subject_id": {"Description": "BIDS participant_id of the image"},
        "session": {"Description": "BIDS session of the image (empty without sessions)"},
        "run": {"Description": "BIDS run index of the image"},
        "modality": {"Description": "BIDS suffix (modality) of the image the row describes"},
        "lesion_id": {"Description": "Label value of the lesion in its mask"},
        "Provenance": features.attrs.get("provenance", {}),
    }
    written.append(_write_json(out / f"{_FEATURE_SUFFIX}.json", sidecar))
    plain = features.copy()
    plain.attrs = {}
    if "session" not in plain.columns:
        plain["session"] = ""
    for (subject, session), rows in plain.groupby(["subject_id", "session"], sort=True):
        folder = out / str(subject) / str(session) if session else out / str(subject)
        stem = f"{subject}_{session}" if session else str(subject)
        written.append(_write_tsv(rows, folder / f"{stem}_{_FEATURE_SUFFIX}.tsv"))
    failures = features.attrs.get("failures")
    if failures is not None and len(failures):
        # Stage outputs keep failures as plain records (a DataFrame only when built by hand).
        table = failures if isinstance(failures, pd.DataFrame) else pd.DataFrame(failures)
        written.append(_write_tsv(table, out / "failures.tsv"))
    return written


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _write_tsv(table: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path
