"""Report section of the harmonisation stage."""

from __future__ import annotations

from typing import Any

from radharmony.report._html import escape, figure_html, table_html

_CAPTIONS = {
    "pca": "First two principal components coloured by scanner, before and after harmonisation.",
    "batch_tests": "Per-feature batch-effect test (Kruskal-Wallis) before and after.",
    "scanner_prediction": (
        "Balanced accuracy of predicting the scanner from the features (cross-validated), raw, "
        "in-sample harmonised, and harmoniser fitted on training folds only (held-out)."
    ),
}


def harmonization_section_body(report: Any) -> str:
    """Return the HTML of the harmonisation diagnostics (a ``HarmonizationReport``)."""
    summary = "<br>".join(escape(line) for line in report.summary().splitlines())
    parts = [f"<p>{summary}</p>"]
    parts.append(
        "<p>The held-out row is the honest one: in-sample diagnostics flatter ComBat, because "
        "it removes exactly the batch means it estimated on the same rows.</p>"
    )
    parts.append(table_html(report.scanner_prediction))
    effects = report.preserved_effects
    if len(effects):
        parts.append("<h3>Preserved biological effects</h3>")
        parts.append(table_html(effects.head(20)))
    for name, figure in report.figures.items():
        parts.append(figure_html(figure, _CAPTIONS.get(name, name)))
    return "".join(parts)
