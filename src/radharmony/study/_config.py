"""Configuration of a whole study (``radharmony run CONFIG.yaml``), validated by a typed schema.

Every key is declared once in ``FIELDS`` with its type, its allowed range or choices, its
default and its meaning; :func:`load_study_config` and :class:`StudyConfig` check every value
against it and name each bad key with the fix. Optional sections (a mapping under one key,
validated by their own function) are declared in the same table, in the block marked
"optional sections".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radharmony.errors import SettingsError
from radharmony.ibsi import ExtractionSettings
from radharmony.study._detection import apply_detect_section

_MODELS = (
    "auto",
    "logistic_l2",
    "logistic_l1",
    "logistic_elasticnet",
    "random_forest",
    "gradient_boosting",
    "svm",
)


@dataclass(frozen=True)
class Field:
    """One configuration key: its type, allowed values, default and meaning.

    ``kind`` is one of ``"path"``, ``"text"``, ``"integer"``, ``"number"``, ``"boolean"``,
    ``"choice"``, ``"names"`` (list of column names), ``"settings"`` (preset name, mapping or
    file) or ``"section"`` (a mapping checked by ``check``). ``low``/``high`` bound numbers
    (``low_open``/``high_open`` exclude the bound); ``choices`` lists allowed values.
    """

    name: str
    kind: str
    doc: str
    default: Any = None
    required: bool = False
    optional: bool = False
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    check: Callable[[Any], Any] | None = None

    def describe(self) -> str:
        """Return the allowed values in words (used in error messages and docs)."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind in ("integer", "number"):
            noun = "an integer" if self.kind == "integer" else "a number"
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
            return noun + (" " + " and ".join(bounds) if bounds else "")
        return {
            "path": "a file or folder path",
            "text": "a non-empty text",
            "boolean": "true or false",
            "names": "a list of column names",
            "settings": "a preset name, a mapping of settings or a YAML/JSON file",
            "section": "a mapping",
        }.get(self.kind, self.kind)


#: Every key of a study configuration, in the order of :class:`StudyConfig`.
FIELDS: tuple[Field, ...] = (
    Field(
        "manifest",
        "path",
        "cohort manifest (subject_id, image, mask, scanner, covariates)",
        required=True,
    ),
    Field("out", "path", "output folder", required=True),
    Field(
        "target",
        "text",
        "column of `labels` (per lesion) or of the manifest to predict",
        required=True,
    ),
    Field("labels", "path", "CSV with subject_id, lesion_id and the target column", optional=True),
    Field("settings", "settings", "extraction settings", default="default"),
    Field(
        "n_jobs",
        "integer",
        "worker processes for extraction and modelling (-1: all cores)",
        default=-1,
        low=-1,
        check=lambda v: None if v != 0 else "n_jobs must not be 0",
    ),
    Field("connectivity", "choice", "lesion connectivity", default=26, choices=(6, 18, 26)),
    Field("min_lesion_voxels", "integer", "smallest lesion kept", default=1, low=1),
    Field(
        "covariates",
        "names",
        "manifest columns the harmoniser preserves (never the target)",
        default=(),
    ),
    Field("harmonize", "boolean", "harmonise scanners inside the folds", default=True),
    Field(
        "model",
        "choice",
        "classifier family, or 'auto' to compare families",
        default="auto",
        choices=_MODELS,
    ),
    Field(
        "selection",
        "choice",
        "feature selection",
        default="univariate",
        choices=("univariate", "l1", "mrmr", "none"),
    ),
    Field("n_features", "integer", "features kept by the selection", default=10, low=1),
    Field(
        "calibration",
        "choice",
        "probability calibration",
        default="sigmoid",
        choices=("sigmoid", "isotonic", "temperature", "none"),
    ),
    Field("cv", "integer", "outer folds", default=5, low=2),
    Field("inner_cv", "integer", "members of the ensemble (inner patient folds)", default=5, low=2),
    Field(
        "leave_one_scanner_out",
        "boolean",
        "also validate by leaving each scanner out",
        default=True,
    ),
    Field(
        "conformal_level",
        "number",
        "nominal coverage of the conformal sets",
        default=0.9,
        low=0.5,
        high=1.0,
        high_open=True,
    ),
    Field(
        "mondrian",
        "choice",
        "class-conditional conformal sets",
        default="auto",
        choices=("auto", True, False),
    ),
    Field(
        "n_bootstrap",
        "integer",
        "bootstrap resamples of the confidence intervals",
        default=1000,
        low=100,
    ),
    Field("seed", "integer", "seed of folds, models and bootstrap", default=0, low=0),
    Field(
        "ibsi_data",
        "path",
        "folder of the IBSI chapter-1 data for a compliance check",
        optional=True,
    ),
    # --- optional sections: one Field(kind="section", check=<validator>) per section ------
    Field(
        "detect",
        "section",
        "lesion detection run before extraction (subjects, channels, reference or detector, "
        "target, ...; see radharmony.study._detection)",
        optional=True,
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class StudyConfig:
    """Every step of a study, from the manifest to the report.

    Every key, its type, its range and its meaning are listed in ``FIELDS`` (and in the README
    and the ``radharmony run --help`` text); a bad value raises :class:`SettingsError` naming
    the key.

    Parameters
    ----------
    manifest : Path
        Cohort manifest (one row per image: ``subject_id``, ``image``, ``mask``, ``scanner``,
        covariates).
    out : Path
        Output folder (features, tables, figures, model, ``report.html``).
    target : str
        Column holding the class to predict: in ``labels`` (per lesion) or in the manifest
        (per image: every lesion of the image gets the image's class).
    labels : Path, optional
        CSV with ``subject_id``, ``lesion_id`` and the ``target`` column (one row per lesion).
    settings : str or mapping
        Extraction settings: preset name, mapping, or YAML/JSON file.
    n_jobs : int
        Worker processes of extraction and of the modelling folds (-1: all cores).
    connectivity, min_lesion_voxels : int
        Lesion definition (see :func:`radharmony.extract_features`).
    covariates : tuple of str
        Manifest columns the harmoniser preserves (never the target).
    harmonize : bool
        Harmonisation (the default harmoniser) inside the cross-validation folds.
    model, selection, n_features, calibration : str, str, int, str
        Classifier and pipeline options (see :func:`radharmony.build_pipeline`).
    cv, inner_cv : int
        Outer folds and ensemble members of the nested, patient-grouped cross-validation.
    leave_one_scanner_out : bool
        Also evaluate by leaving each scanner out (external validation).
    conformal_level : float
        Nominal coverage of the conformal prediction sets.
    mondrian : bool or "auto"
        Class-conditional conformal sets.
    n_bootstrap : int
        Bootstrap resamples of the confidence intervals.
    seed : int
        Seed of folds, models and bootstrap.
    ibsi_data : Path, optional
        Folder of the IBSI chapter-1 benchmark data (``ibsi_1_digital_phantom``,
        ``reference_values``); when given the report includes a compliance check run now.
    detect : DetectConfig, optional
        Lesion detection run first (see :mod:`radharmony.study._detection`); the extraction
        then reads the manifest it writes.
    """

    manifest: Path
    out: Path
    target: str
    labels: Path | None = None
    settings: Any = "default"
    n_jobs: int = -1
    connectivity: int = 26
    min_lesion_voxels: int = 1
    covariates: tuple[str, ...] = field(default=())
    harmonize: bool = True
    model: str = "auto"
    selection: str = "univariate"
    n_features: int = 10
    calibration: str = "sigmoid"
    cv: int = 5
    inner_cv: int = 5
    leave_one_scanner_out: bool = True
    conformal_level: float = 0.9
    mondrian: bool | str = "auto"
    n_bootstrap: int = 1000
    seed: int = 0
    ibsi_data: Path | None = None
    detect: Any = None

    def __post_init__(self) -> None:
        problems = [
            problem
            for f in dataclasses.fields(self)
            if f.name in _BY_NAME
            for problem in _problems(_BY_NAME[f.name], getattr(self, f.name))
        ]
        if isinstance(self.covariates, tuple) and self.target in self.covariates:
            problems.append(
                f"covariates include the target {self.target!r}: preserving the target in "
                "harmonisation leaks the labels into the features; remove it from covariates"
            )
        if problems:
            raise SettingsError("invalid study configuration: " + "; ".join(problems))
        # Settings errors name the offending key themselves.
        ExtractionSettings.from_any(self.settings)


def load_study_config(source: str | Path | Mapping[str, Any]) -> StudyConfig:
    """Read and validate a study configuration.

    Parameters
    ----------
    source : path or mapping
        A YAML file (relative paths in it are relative to the file's folder) or a mapping.

    Returns
    -------
    StudyConfig

    Raises
    ------
    SettingsError
        Naming each unknown key, missing key or invalid value, with what is allowed.
    """
    if isinstance(source, Mapping):
        values, root = dict(source), Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            raise SettingsError(f"study configuration {path} does not exist")
        import yaml

        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise SettingsError(f"study configuration {path} is not valid YAML: {err}") from err
        if not isinstance(values, Mapping):
            raise SettingsError(f"study configuration {path} must be a mapping of key: value")
        values, root = dict(values), path.resolve().parent
    values = apply_detect_section(values, root)
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown study configuration key(s) {unknown}; valid: {sorted(known)}")
    missing = [f.name for f in FIELDS if f.required and f.name not in values]
    if missing:
        raise SettingsError(f"study configuration is missing required key(s) {missing}")
    problems = [p for name, value in values.items() for p in _problems(_BY_NAME[name], value)]
    if problems:
        raise SettingsError("invalid study configuration: " + "; ".join(problems))
    for f in FIELDS:
        if f.kind == "path" and values.get(f.name) is not None:
            values[f.name] = _resolve(root, values[f.name])
    if isinstance(values.get("settings"), str) and values["settings"].endswith(
        (".yaml", ".yml", ".json")
    ):
        values["settings"] = str(_resolve(root, values["settings"]))
    if isinstance(values.get("covariates"), str):
        values["covariates"] = [c.strip() for c in values["covariates"].split(",") if c.strip()]
    values["covariates"] = tuple(values.get("covariates") or ())
    return StudyConfig(**values)


def check_study_inputs(config: StudyConfig) -> None:
    """Check, before anything runs, that the manifest, labels file and target exist.

    The target must be a column of the labels file (with ``subject_id`` and ``lesion_id``)
    or, without a labels file, a column of the manifest.

    Raises
    ------
    SettingsError
        Naming the missing file or column and the fix.
    """
    import pandas as pd

    if not Path(config.manifest).is_file():
        raise SettingsError(f"manifest {config.manifest} does not exist; check `manifest:`")
    manifest_columns = list(pd.read_csv(config.manifest, nrows=0).columns)
    if config.labels is not None:
        if not Path(config.labels).is_file():
            raise SettingsError(
                f"labels file {config.labels} does not exist; check `labels:` (paths are "
                "relative to the configuration file)"
            )
        try:
            columns = list(pd.read_csv(config.labels, nrows=0).columns)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise SettingsError(
                f"labels file {config.labels} is not a readable CSV: {err}"
            ) from err
        needed = ["subject_id", "lesion_id", config.target]
        absent = [c for c in needed if c not in columns]
        if absent:
            raise SettingsError(
                f"labels file {config.labels} lacks column(s) {absent} (it has {columns}); "
                f"it needs subject_id, lesion_id and the target {config.target!r}"
            )
    elif config.target not in manifest_columns:
        raise SettingsError(
            f"target {config.target!r} is not a column of the manifest {config.manifest} "
            f"({manifest_columns}) and no labels file is given; add `labels: FILE.csv` "
            "(subject_id, lesion_id, target) or fix `target:`"
        )
    missing_covariates = [c for c in config.covariates if c not in manifest_columns]
    if missing_covariates:
        raise SettingsError(
            f"covariate(s) {missing_covariates} are not columns of the manifest "
            f"{config.manifest}; fix `covariates:`"
        )


def _resolve(root: Path, value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else root / path


def _problems(spec: Field, value: Any) -> list[str]:
    """Return what is wrong with ``value`` for ``spec`` (empty when it is valid)."""
    if value is None:
        return [] if spec.optional else [f"{spec.name} must be {spec.describe()}, got nothing"]
    wrong = f"{spec.name} must be {spec.describe()}, got {value!r}"
    if spec.kind == "boolean":
        if not isinstance(value, bool):
            hint = " (a quoted string; write true or false without quotes)"
            return [wrong + (hint if isinstance(value, str) else "")]
    elif spec.kind == "choice":
        # True == 1 in Python: compare types too, so `connectivity: true` is refused.
        if not any(value == c and type(value) is type(c) for c in spec.choices):
            return [wrong]
    elif spec.kind in ("integer", "number"):
        numeric = (int,) if spec.kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return [wrong]
        if not math.isfinite(value) or not _in_range(spec, float(value)):
            return [wrong]
    elif spec.kind in ("text", "path"):
        if not isinstance(value, str | Path) or not str(value).strip():
            return [wrong]
    elif spec.kind == "names":
        names = [c.strip() for c in value.split(",")] if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not all(isinstance(c, str) and c for c in names):
            return [wrong]
    elif spec.kind == "settings":
        if not isinstance(value, str | Mapping):
            return [wrong]
    elif spec.kind == "section" and not (
        isinstance(value, Mapping) or dataclasses.is_dataclass(value)
    ):
        # A section arrives as a mapping, or already validated into its dataclass by its loader.
        return [wrong]
    if spec.check is not None:
        message = spec.check(value)
        if message:
            return [str(message)]
    return []


def _in_range(spec: Field, value: float) -> bool:
    if spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low):
        return False
    return not (
        spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high)
    )
