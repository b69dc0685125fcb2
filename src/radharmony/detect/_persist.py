"""Saving and loading fitted detectors with skops (no pickle), with an allow-list of types."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from radharmony._trust import is_trusted_type
from radharmony.errors import RadharmonyError

#: Packages whose classes :func:`load_detector` accepts without being told.
TRUSTED_PREFIXES: tuple[str, ...] = ("radharmony.detect.", "sklearn.")
#: Other exact type names a detector file holds that skops does not trust by default. Whole
#: modules such as ``builtins`` or ``numpy`` are never trusted (they hold callables).
TRUSTED_TYPES: frozenset[str] = frozenset({"numpy.dtype"})
_PICKLE_MAGIC: tuple[bytes, ...] = (b"\x80", b"\x1f\x8b", b"\x78", b"BZh", b"\xfd7zXZ")


class DetectorFileError(RadharmonyError, ValueError):
    """A detector file is missing, not a skops file, or holds untrusted types."""


def save_detector(detector: Any, path: str | Path) -> Path:
    """Save a fitted :class:`HealthyTissueDetector` with skops (no pickle).

    Parameters
    ----------
    detector : HealthyTissueDetector
        A fitted detector.
    path : str or Path
        Destination, conventionally ending in ``.skops``.

    Returns
    -------
    Path
    """
    import skops.io as sio

    detector._check_fitted()
    state = {
        "format": "radharmony.detector/1",
        "params": json.dumps(detector.get_params(), default=list),
        "model": detector.model_,
        "calibration": detector.calibration_,
        "references": {k: list(v) for k, v in detector.references_.to_dict("list").items()},
        "failures": json.dumps(detector.failures_, default=str),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = sio.dumps(state)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_detector(path: str | Path, *, trusted: Sequence[str] = ()) -> Any:
    """Load a detector saved by :func:`save_detector`, refusing unexpected types.

    Nothing in the file is constructed before every type it names is accepted: skops' own
    trusted types, ``TRUSTED_TYPES``, classes defined in ``radharmony.detect``, scikit-learn
    estimator classes, and the names given in ``trusted``. Pickle and joblib files are refused
    without being opened.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_detector`.
    trusted : sequence of str
        Extra fully-qualified type names to accept (after inspecting them).

    Returns
    -------
    HealthyTissueDetector
    """
    import skops.io as sio

    from radharmony.detect._detector import HealthyTissueDetector

    path = Path(path)
    if not path.is_file():
        raise DetectorFileError(f"detector file {path} does not exist")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            head = handle.read(8)
        kind = "it looks like a pickle or joblib file, which radharmony never opens because "
        kind += "loading pickle can run arbitrary code" if head.startswith(_PICKLE_MAGIC) else ""
        raise DetectorFileError(
            f"{path} is not a skops detector file ({kind or 'not a zip archive'}); save "
            "detectors with save_detector"
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:
        raise DetectorFileError(f"{path} is not a readable skops file: {err}") from err
    refused = [t for t in untrusted if t not in set(trusted) and not _is_trusted(t)]
    if refused:
        raise DetectorFileError(
            f"{path} contains types that are not trusted: {refused}; loading it could run code "
            "they name, so nothing was loaded. Pass trusted=[...] only if you trust its origin"
        )
    state = sio.load(path, trusted=list(untrusted))
    if not isinstance(state, dict) or state.get("format") != "radharmony.detector/1":
        raise DetectorFileError(f"{path} was not written by radharmony.detect.save_detector")
    detector = HealthyTissueDetector(**json.loads(state["params"]))
    detector.model_ = state["model"]
    detector.calibration_ = state["calibration"]
    detector.references_ = pd.DataFrame(state["references"])
    detector.failures_ = json.loads(state["failures"])
    detector.hyperintense_ = detector._hyperintense_names([str(c) for c in detector.channels])
    return detector


def _is_trusted(name: str) -> bool:
    """Return True for an allow-listed name or an estimator class of a trusted package."""
    return is_trusted_type(name, TRUSTED_TYPES, TRUSTED_PREFIXES)
