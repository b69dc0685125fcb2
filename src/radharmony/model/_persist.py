"""Safe model persistence (skops, no pickle) with the provenance of the training data."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony._trust import is_trusted_type
from radharmony.errors import ModelError

#: Packages whose classes :func:`load_model` accepts without being told (see ``_is_trusted``).
TRUSTED_PREFIXES: tuple[str, ...] = (
    "radharmony.model.",
    "radharmony.harmonize.",
    "sklearn.",
)

#: Exact names of the other types radharmony pipelines store and skops does not trust by default.
#: Whole modules such as ``builtins`` or ``numpy`` are never trusted: they hold callables
#: (``builtins.exec``, ``numpy.memmap``) that a crafted file could call while loading.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

# First bytes of pickle (protocol 2+) and of the compressed streams joblib writes.
_PICKLE_MAGIC: tuple[bytes, ...] = (b"\x80", b"\x1f\x8b", b"\x78", b"BZh", b"\xfd7zXZ")


def data_provenance(
    features: pd.DataFrame, target: Any, *, source: str | Path | None = None
) -> dict[str, Any]:
    """Return a JSON-ready description of the training data and software versions.

    Parameters
    ----------
    features : pandas.DataFrame
        The feature table the model was trained on.
    target : array-like
        The training labels.
    source : str or Path, optional
        Where the table came from (file path); its SHA-256 is recorded when it is a file.

    Returns
    -------
    dict
        ``n_rows``, ``feature_names``, ``class_counts``, ``features_sha256`` (hash of the values
        and column names), ``source`` and ``source_sha256``, package versions and a UTC time.
    """
    import sklearn

    from radharmony._version import __version__

    hashed = pd.util.hash_pandas_object(features.reset_index(drop=True), index=False)
    digest = hashlib.sha256(hashed.to_numpy().tobytes())
    digest.update("\x1f".join(map(str, features.columns)).encode())
    labels, counts = np.unique(np.asarray(target).astype(str), return_counts=True)
    provenance: dict[str, Any] = {
        "n_rows": len(features),
        "feature_names": [str(c) for c in features.columns],
        "class_counts": dict(zip(labels.tolist(), counts.tolist(), strict=True)),
        "features_sha256": digest.hexdigest(),
        "source": None if source is None else str(source),
        "source_sha256": None,
        "radharmony_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if source is not None and Path(source).is_file():
        provenance["source_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return provenance


def save_model(model: Any, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
    """Save a fitted model with skops (no pickle), plus its provenance and settings.

    The provenance is stored inside the file and also written beside it as
    ``<path>.provenance.json`` for people to read.

    Parameters
    ----------
    model : estimator
        A fitted pipeline (e.g. ``EvaluationResult.model``).
    path : str or Path
        Destination, conventionally ending in ``.skops``.
    provenance : dict, optional
        JSON-serialisable settings and data provenance (see :func:`data_provenance`).

    Returns
    -------
    Path
        The path written.
    """
    import skops.io as sio

    path = Path(path)
    text = json.dumps(provenance or {}, indent=2, sort_keys=True, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        payload = sio.dumps({"model": model, "provenance_json": text})
    except Exception as err:  # skops raises several types for unsupported objects
        raise ModelError(f"cannot save the model to {path} with skops: {err}") from err
    # Written beside the target then renamed: an interrupted save never leaves a partial file.
    _write_atomic(path, payload)
    _write_atomic(Path(f"{path}.provenance.json"), (text + "\n").encode("utf-8"))
    return path


def load_model(path: str | Path, *, trusted: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Load a model saved by :func:`save_model`, refusing unexpected types.

    Nothing in the file is constructed before every type it names is accepted. A type is
    accepted when skops trusts it by default, when it is listed in ``TRUSTED_TYPES`` or in
    ``trusted``, or when it is a class defined in ``radharmony.model``/``radharmony.harmonize``
    or a scikit-learn estimator class. Functions and other callables (``builtins.exec``,
    ``numpy.memmap``, ...) are refused unless listed in ``trusted``. Pickle and joblib files
    are refused without being opened.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_model`.
    trusted : sequence of str
        Extra fully-qualified type names to accept (after inspecting them).

    Returns
    -------
    (model, provenance)
        The fitted model and the provenance dict stored with it.

    Raises
    ------
    ModelError
        When the file is missing, not a skops file (e.g. a pickle), or holds types outside the
        allow-list.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ModelError(_not_skops_message(path))
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:
        raise ModelError(f"{path} is not a readable skops model file: {err}") from err
    extra = set(trusted)
    refused = [t for t in untrusted if t not in extra and not _is_trusted(t)]
    if refused:
        raise ModelError(
            f"{path} contains types that are not trusted: {refused}; loading it could run "
            "code they name, so nothing was loaded. Inspect them and pass trusted=[...] to "
            "load_model only if you trust the file's origin"
        )
    content = sio.load(path, trusted=list(untrusted))
    if not isinstance(content, dict) or "model" not in content:
        raise ModelError(f"{path} was not written by radharmony.model.save_model")
    return content["model"], json.loads(content.get("provenance_json", "{}"))


def _is_trusted(name: str) -> bool:
    """Return True for an allow-listed name or an estimator class of a trusted package."""
    return is_trusted_type(name, TRUSTED_TYPES, TRUSTED_PREFIXES)


def _not_skops_message(path: Path) -> str:
    """Return why a file that is not a zip archive cannot be loaded."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_PICKLE_MAGIC):
        return (
            f"{path} is not a readable skops model file: it looks like a pickle or joblib "
            "file. Loading pickle can run arbitrary code, so radharmony never opens one. "
            "Refit the model, or re-save it with radharmony.save_model in a session where you "
            "trust the pickle's origin"
        )
    return f"{path} is not a readable skops model file (not a zip archive); save models with save_model"


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a hidden file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
