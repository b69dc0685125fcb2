"""The optional ``detect:`` section of a study: validated up front, run before extraction.

```yaml
detect:
  subjects: cohort/patients.csv     # channel manifest of the subjects to examine
  reference: cohort/healthy.csv     # reference subjects (or `detector: saved.skops`)
  channels: [FLAIR, T1, T2]
  hyperintense: [FLAIR]             # optional; any HealthyTissueDetector setting may follow
  false_lesion_rate: 1.0
```

With a ``detect:`` section the study's ``manifest`` defaults to the extraction manifest the
detection writes (``<out>/detection/manifest.csv``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radharmony.errors import RadharmonyError, SettingsError

_PATH_KEYS = ("subjects", "reference", "detector")
_SETTING_KEYS = (
    "model",
    "hyperintense",
    "neighbourhood_mm",
    "n_components",
    "max_components",
    "target",
    "false_lesion_rate",
    "fdr_level",
    "extent_quantile",
    "min_lesion_mm3",
    "edge_margin_mm",
    "connectivity",
    "n_folds",
    "samples_per_subject",
    "random_state",
)
DETECTION_FOLDER = "detection"


@dataclass(frozen=True)
class DetectConfig:
    """The validated ``detect:`` section of a study.

    Attributes
    ----------
    subjects : Path
        Channel manifest of the subjects to examine.
    reference : Path or None
        Channel manifest of the reference subjects (exclusive with ``detector``).
    detector : Path or None
        A detector saved by an earlier run.
    channels : tuple of str
    settings : dict
        Other :class:`~radharmony.detect.HealthyTissueDetector` parameters.
    """

    subjects: Path
    reference: Path | None
    detector: Path | None
    channels: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


def apply_detect_section(values: dict[str, Any], root: Path) -> dict[str, Any]:
    """Validate a study's ``detect:`` section in place and default its ``manifest``."""
    if values.get("detect") is None:
        values.pop("detect", None)
        return values
    values["detect"] = load_detect_section(values["detect"], root)
    if "manifest" not in values and "out" in values:
        values["manifest"] = str(Path(str(values["out"])) / DETECTION_FOLDER / "manifest.csv")
    return values


def load_detect_section(section: Any, root: Path) -> DetectConfig:
    """Return the validated ``detect:`` section; relative paths are relative to ``root``.

    Raises
    ------
    SettingsError
        Naming each unknown or missing key, missing file and invalid value.
    """
    if not isinstance(section, Mapping):
        raise SettingsError("detect: must be a mapping of key: value (subjects, channels, ...)")
    values = dict(section)
    problems = []
    unknown = sorted(set(values) - {*_PATH_KEYS, "channels", *_SETTING_KEYS})
    if unknown:
        problems.append(f"unknown key(s) {unknown}")
    missing = [k for k in ("subjects", "channels") if values.get(k) in (None, "", [])]
    if missing:
        problems.append(f"missing key(s) {missing}")
    if (values.get("reference") is None) == (values.get("detector") is None):
        problems.append("give exactly one of `reference` (a CSV) or `detector` (a saved detector)")
    paths: dict[str, Path | None] = {}
    for key in _PATH_KEYS:
        if values.get(key) is None:
            paths[key] = None
            continue
        path = Path(str(values[key]))
        paths[key] = path if path.is_absolute() else root / path
        if not paths[key].is_file():  # type: ignore[union-attr]
            problems.append(f"{key} file {paths[key]} does not exist")
    channels = values.get("channels") or []
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
        problems.append(f"channels must be a list of column names, got {channels!r}")
        channels = []
    settings = {k: values[k] for k in _SETTING_KEYS if k in values}
    if isinstance(settings.get("hyperintense"), str):
        settings["hyperintense"] = [c.strip() for c in settings["hyperintense"].split(",")]
    if channels and not problems:
        problems += _setting_problems([str(c) for c in channels], settings)
    if problems:
        raise SettingsError("invalid detect: section: " + "; ".join(problems))
    return DetectConfig(
        subjects=paths["subjects"],  # type: ignore[arg-type]
        reference=paths["reference"],
        detector=paths["detector"],
        channels=tuple(channels),
        settings=settings,
    )


def _setting_problems(channels: list[str], settings: dict[str, Any]) -> list[str]:
    from radharmony.detect import HealthyTissueDetector

    try:
        HealthyTissueDetector(channels, **settings)._check_options()
    except (RadharmonyError, TypeError, ValueError) as err:
        return [str(err)]
    return []


def run_detection(
    config: DetectConfig,
    out: Path,
    *,
    n_jobs: int,
    log: Callable[[str], None],
    verbose: bool | int | None = None,
) -> Any:
    """Fit (or load) the detector and detect the study's lesions in ``out/detection``.

    Returns
    -------
    DetectionResult
    """
    from radharmony.detect import HealthyTissueDetector, load_detector

    folder = out / DETECTION_FOLDER
    options = {
        "n_jobs": n_jobs,
        "cache_dir": folder / "cache",
        "verbose": 1 if verbose is None else verbose,
    }
    if config.detector is not None:
        detector = load_detector(config.detector)
    else:
        detector = HealthyTissueDetector(list(config.channels), **config.settings)
        detector.fit(config.reference, **options)
    result = detector.detect(config.subjects, folder, **options)
    log(
        f"      {len(result.lesions)} lesion(s) in {int((result.subjects['status'] == 'ok').sum())}"
        f" subject(s), {len(result.failures)} failure(s)"
    )
    return result
