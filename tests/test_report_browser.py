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


def _rendered_counts(report: Path, folder: Path) -> tuple[int, int, int]:
    """Open the report in headless Chromium; return (images, images loaded, cards)."""
    probe = folder / "report_probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
        encoding="utf-8",
    )
    command = [
        str(CHROMIUM),
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
        f"--user-data-dir={folder / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, timeout=180)
    dom = result.stdout.decode("utf-8", errors="replace")
    found = re.search(r"images=(\d+) loaded=(\d+) cards=(\d+)", dom)
    assert found, "the page did not finish loading"
    images, loaded, cards = (int(v) for v in found.groups())
    return images, loaded, cards


# One test, so that the demo runs once even when tests are spread over several workers.
@pytest.mark.slow
def test_demo_report_is_complete_self_contained_and_renders(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--subjects", "24", "--jobs", "2"]) == 0
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

    html = (out / "report.html").read_text(encoding="utf-8")
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
    n_cards = html.count("class='card ")
    assert n_cards >= 24  # one card per analysed lesion, at least one lesion per subject

    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the rendering check did not run")
    images, loaded, cards = _rendered_counts(out / "report.html", tmp_path)
    assert images >= n_cards + 5  # a waterfall per card plus the study figures
    assert loaded == images
    assert cards == n_cards
