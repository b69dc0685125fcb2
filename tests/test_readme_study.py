"""The study configuration shown in README.md parses as written and runs on a synthetic cohort."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from radharmony import make_cohort
from radharmony.cli import main
from radharmony.study import load_study_config


def _readme_config(project_root: Path) -> dict:
    text = (project_root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    study = [b for b in blocks if b.startswith("# study.yaml")]
    assert len(study) == 1, "README.md should show one study.yaml example"
    return yaml.safe_load(study[0])


@pytest.mark.slow
def test_readme_study_example_parses_and_runs(project_root: Path, tmp_path: Path) -> None:
    config = _readme_config(project_root)
    cohort = make_cohort(24, 3, 0, tmp_path / "cohort")
    written = tmp_path / "study.yaml"
    written.write_text(yaml.safe_dump(config), encoding="utf-8")
    parsed = load_study_config(written)
    # The README's labels file is the one make_cohort writes: one label per lesion.
    assert parsed.labels == cohort.out_dir / "labels.csv"
    labels = pd.read_csv(parsed.labels)
    pd.testing.assert_frame_equal(
        labels, cohort.ground_truth[["subject_id", "lesion_id", "lesion_class"]]
    )
    assert parsed.harmonize and parsed.target == "lesion_class"
    # Run it as written, except for a smaller feature set and bootstrap to keep the test short.
    small = {**config, "settings": {"feature_classes": ["shape", "firstorder"]}}
    small.update(n_bootstrap=100, n_jobs=2)
    written.write_text(yaml.safe_dump(small), encoding="utf-8")
    assert main(["run", str(written)]) == 0
    out = tmp_path / config["out"]
    metrics = json.loads((out / "metrics.json").read_text())["cross_validation"]
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert len(pd.read_csv(out / "predictions.csv")) == len(labels)
    assert "armonis" in (out / "report.html").read_text(encoding="utf-8")
