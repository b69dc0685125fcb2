"""Configuration of a whole study (``radharmony run CONFIG.yaml``), validated up front."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radharmony.errors import SettingsError
from radharmony.ibsi import ExtractionSettings
from radharmony.study._detection import apply_detect_section

_MODELS = (
    "logistic_l2",
    "logistic_l1",
    "logistic_elasticnet",
    "random_forest",
    "gradient_boosting",
    "svm",
)


@dataclass(frozen=True)
class StudyConfig:
    """Every step of a study, from the manifest to the report.

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
        Extraction worker processes (-1: all cores).
    connectivity, min_lesion_voxels : int
        Lesion definition (see :func:`radharmony.extract_features`).
    covariates : list of str
        Manifest columns ComBat preserves (never the target).
    harmonize : bool
        ComBat (the default harmoniser) inside the cross-validation folds.
    model, selection, n_features, calibration : str, str, int, str
        Classifier and pipeline options (see :func:`radharmony.build_pipeline`).
    cv, inner_cv : int
        Outer and inner folds of the nested, patient-grouped cross-validation.
    leave_one_scanner_out : bool
        Also evaluate by leaving each scanner out (external validation).
    conformal_level : float
        Nominal coverage of the conformal prediction sets.
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
    model: str = "logistic_l2"
    selection: str = "univariate"
    n_features: int = 10
    calibration: str = "sigmoid"
    cv: int = 5
    inner_cv: int = 3
    leave_one_scanner_out: bool = True
    conformal_level: float = 0.9
    n_bootstrap: int = 1000
    seed: int = 0
    ibsi_data: Path | None = None
    detect: Any = None

    def __post_init__(self) -> None:
        _check(self)


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
        Naming each unknown key, missing key or invalid value.
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
    missing = [k for k in ("manifest", "out", "target") if k not in values]
    if missing:
        raise SettingsError(f"study configuration is missing required key(s) {missing}")
    for key in ("manifest", "out", "labels", "ibsi_data"):
        if values.get(key) is not None:
            values[key] = _resolve(root, values[key])
    if isinstance(values.get("settings"), str) and values["settings"].endswith(
        (".yaml", ".yml", ".json")
    ):
        values["settings"] = str(_resolve(root, values["settings"]))
    if isinstance(values.get("covariates"), str):
        values["covariates"] = [c.strip() for c in values["covariates"].split(",") if c.strip()]
    values["covariates"] = tuple(values.get("covariates") or ())
    try:
        return StudyConfig(**values)
    except TypeError as err:
        raise SettingsError(f"invalid study configuration: {err}") from err


def _resolve(root: Path, value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else root / path


def _check(config: StudyConfig) -> None:
    problems = []
    if not isinstance(config.target, str) or not config.target:
        problems.append("target must be a column name")
    if config.target in config.covariates:
        problems.append(
            f"covariates include the target {config.target!r}: preserving the target in ComBat "
            "leaks the labels into the features"
        )
    if config.model not in _MODELS:
        problems.append(f"model must be one of {list(_MODELS)}, got {config.model!r}")
    if config.selection not in ("univariate", "l1", "mrmr", "none"):
        problems.append(f"selection must be univariate, l1, mrmr or none, got {config.selection!r}")
    if config.calibration not in ("sigmoid", "isotonic", "temperature", "none"):
        problems.append("calibration must be sigmoid, isotonic, temperature or none")
    if not isinstance(config.cv, int) or config.cv < 2:
        problems.append(f"cv must be an integer >= 2, got {config.cv!r}")
    if not isinstance(config.inner_cv, int) or config.inner_cv < 2:
        problems.append(f"inner_cv must be an integer >= 2, got {config.inner_cv!r}")
    if not 0.5 <= float(config.conformal_level) < 1.0:
        problems.append(f"conformal_level must be in [0.5, 1), got {config.conformal_level}")
    if config.connectivity not in (6, 18, 26):
        problems.append(f"connectivity must be 6, 18 or 26, got {config.connectivity}")
    if problems:
        raise SettingsError("invalid study configuration: " + "; ".join(problems))
    # Settings errors name the offending key themselves.
    ExtractionSettings.from_any(config.settings)
