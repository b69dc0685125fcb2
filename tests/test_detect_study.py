"""The study's ``detect:`` section is validated before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radharmony.errors import SettingsError
from radharmony.study import load_study_config


def _config(tmp_path: Path, detect: dict, **extra) -> Path:
    (tmp_path / "patients.csv").write_text("subject_id,FLAIR\n", encoding="utf-8")
    (tmp_path / "healthy.csv").write_text("subject_id,FLAIR\n", encoding="utf-8")
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump({"out": "out", "target": "diagnosis", "detect": detect, **extra}),
        encoding="utf-8",
    )
    return path


def test_detect_section_is_validated_and_feeds_the_manifest(tmp_path: Path) -> None:
    config = load_study_config(
        _config(
            tmp_path,
            {
                "subjects": "patients.csv",
                "reference": "healthy.csv",
                "channels": "FLAIR,T2",
                "hyperintense": ["FLAIR", "T2"],
                "false_lesion_rate": 0.5,
            },
        )
    )
    assert config.manifest == tmp_path / "out" / "detection" / "manifest.csv"
    assert config.detect.channels == ("FLAIR", "T2")
    assert config.detect.reference == tmp_path / "healthy.csv"
    assert config.detect.settings == {"hyperintense": ["FLAIR", "T2"], "false_lesion_rate": 0.5}


@pytest.mark.parametrize(
    ("detect", "message"),
    [
        ({"subjects": "patients.csv", "channels": ["FLAIR"]}, "exactly one of `reference`"),
        (
            {"subjects": "gone.csv", "reference": "healthy.csv", "channels": ["FLAIR"]},
            "subjects file .*gone.csv does not exist",
        ),
        (
            {
                "subjects": "patients.csv",
                "reference": "healthy.csv",
                "channels": ["FLAIR"],
                "treshold": 3,
            },
            r"unknown key\(s\) \['treshold'\]",
        ),
        (
            {
                "subjects": "patients.csv",
                "reference": "healthy.csv",
                "channels": ["FLAIR"],
                "hyperintense": ["T2"],
            },
            r"hyperintense channel\(s\) \['T2'\] are not among",
        ),
        (
            {
                "subjects": "patients.csv",
                "reference": "healthy.csv",
                "channels": ["FLAIR"],
                "false_lesion_rate": 0,
            },
            "false_lesion_rate must be > 0",
        ),
        ({"reference": "healthy.csv"}, r"missing key\(s\) \['subjects', 'channels'\]"),
    ],
)
def test_bad_detect_sections_are_refused_before_anything_runs(
    tmp_path: Path, detect: dict, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_study_config(_config(tmp_path, detect))
