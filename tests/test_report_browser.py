"""The demo writes a self-contained report that renders in a real browser without a network."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from radharmony.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the report: after load, writes how many images decoded into the DOM.
_PROBE = """
<script>
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const probe = document.createElement('div');
  probe.id = 'probe';
  probe.textContent = `images=${images.length} loaded=${loaded} ` +
    `cards=${document.querySelectorAll('.card').length}`;
  document.body.appendChild(probe);
});
</script>
"""


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--subjects", "24", "--jobs", "2"]) == 0
    return out / "report.html"


@pytest.mark.slow
def test_demo_writes_every_output(demo_report: Path) -> None:
    out = demo_report.parent
    for name in (
        "features.parquet",
        "features.failures.csv",
        "features.provenance.json",
        "predictions.csv",
        "metrics.csv",
        "metrics.json",
        "metrics_leave_one_scanner_out.csv",
        "conformal_coverage.csv",
        "shap_importance.csv",
        "model.skops",
        "report.html",
    ):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_report_is_self_contained(demo_report: Path) -> None:
    html = demo_report.read_text(encoding="utf-8")
    # Every resource is inline: no script/link/img pointing anywhere else.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "<script" not in html
    assert "@import" not in html and "url(http" not in html
    for section in (
        "Cohort and quality control",
        "Extraction settings",
        "Harmonisation",
        "Model performance",
        "Volume check",
        "SHAP",
        "Cases",
        "Methods",
    ):
        assert section in html, section
    n_lesions = html.count("class='card ")
    assert n_lesions >= 24  # one card per analysed lesion, at least one lesion per subject


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(demo_report: Path, tmp_path: Path) -> None:
    probe = tmp_path / "report_probe.html"
    probe.write_text(
        demo_report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
        encoding="utf-8",
    )
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Any network request would fail: a report that needs the network shows broken images.
        "--proxy-server=127.0.0.1:9",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180).stdout
    found = re.search(r"images=(\d+) loaded=(\d+) cards=(\d+)", dom)
    assert found, "the page did not finish loading"
    images, loaded, cards = (int(v) for v in found.groups())
    assert images >= 30  # volume, harmonisation, calibration, SHAP figures and a waterfall per card
    assert loaded == images
    assert cards >= 24
