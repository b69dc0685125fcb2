"""Report section of the harmonisation stage."""

from __future__ import annotations

from typing import Any

import pandas as pd

from radharmony.report._html import escape, figure_html, table_html

_CAPTIONS = {
    "pca": "First two principal components coloured by scanner, before and after harmonisation.",
    "batch_tests": "Per-feature batch-effect test (Kruskal-Wallis) before and after.",
    "scanner_prediction": (
        "Balanced accuracy of predicting the scanner from the features (cross-validated), raw, "
        "in-sample harmonised, and harmoniser fitted on training folds only (held-out)."
    ),
    "heldout": (
        "Held-out scanner ROC AUC over random half splits: the harmoniser is fitted on one half "
        "and applied to the other, where a rank-based classifier tries to recognise the "
        "scanner (grey: one split; 0.5: cannot be told)."
    ),
}


def harmonization_section_body(report: Any) -> str:
    """Return the HTML of the harmonisation diagnostics (a ``HarmonizationReport``)."""
    summary = "<br>".join(escape(line) for line in report.summary().splitlines())
    parts = [f"<p>{summary}</p>"]
    parts.append(
        "<p>The held-out numbers are the honest ones: in-sample diagnostics flatter ComBat, "
        "because it removes exactly the batch means it estimated on the same rows.</p>"
    )
    heldout = getattr(report, "heldout_summary", None)
    if heldout is not None:
        parts.append("<h3>Scanner recognisable in held-out rows (repeated half splits)</h3>")
        parts.append(_heldout_verdict(heldout))
        parts.append(table_html(heldout))
    parts.append(table_html(report.scanner_prediction))
    corrections = getattr(report, "corrections", None)
    if corrections is not None and len(corrections):
        parts.append("<h3>What was corrected</h3>")
        parts.append(_corrections_html(corrections))
    calibration = getattr(report, "calibration", None)
    if calibration is not None and len(calibration):
        parts.append("<h3>Reference population: z-scores of held-out reference rows</h3>")
        parts.append(
            "<p>Each site's z-scores should have mean 0, SD 1 and cover the central "
            "50 / 90 / 95 % normal intervals at those rates.</p>"
        )
        parts.append(table_html(calibration))
    effects = report.preserved_effects
    if len(effects):
        parts.append("<h3>What was kept: covariate and outcome effects before and after</h3>")
        parts.append(table_html(_largest_effects(effects)))
    for name, figure in report.figures.items():
        parts.append(figure_html(figure, _CAPTIONS.get(name, name)))
    return "".join(parts)


def _heldout_verdict(summary: pd.DataFrame) -> str:
    """Say whether harmonisation made held-out rows more recognisable by scanner."""
    table = summary.set_index("harmonizer")
    lines = []
    for name, row in table.drop(index="raw", errors="ignore").iterrows():
        worse = int(row["splits_worse_than_raw"])
        css = "ok" if row["mean_excess_auc"] <= 0.01 else "warning"
        lines.append(
            f'<p class="{css}">{escape(name)}: held-out scanner AUC {row["mean_auc"]:.3f} '
            f"(SD {row['sd_auc']:.3f}) vs raw {table.loc['raw', 'mean_auc']:.3f}; more "
            f"recognisable than raw in {worse} of {int(row['n_splits'])} splits (largest "
            f"increase {row['worst_excess_auc']:+.3f}).</p>"
        )
    return "".join(lines)


def _corrections_html(corrections: pd.DataFrame) -> str:
    """Summarise a correction table per batch; other tables are shown as given (first rows)."""
    if {"batch", "location_applied", "location_estimate"} <= set(corrections.columns):
        grouped = corrections.groupby("batch")
        per_batch = pd.DataFrame(
            {
                "training rows": grouped["n_training_rows"].first(),
                "features adjusted": grouped["adjusted"].sum(),
                "mean |location estimate| (SD)": grouped["location_estimate"].apply(
                    lambda v: v.abs().mean()
                ),
                "mean |location applied| (SD)": grouped["location_applied"].apply(
                    lambda v: v.abs().mean()
                ),
                "median scale applied": grouped["scale_applied"].median(),
            }
        ).reset_index()
        kept = corrections["outcome_in_design"].any()
        note = (
            "Training labels were in the design: their effect was kept, not removed with the "
            "site effect."
            if kept
            else "Training labels were not in the design."
        )
        return f"<p>{escape(note)}</p>" + table_html(per_batch)
    return table_html(corrections.head(20))


def _largest_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """Return, per variable, the rows with the largest effect before harmonisation."""
    ranked = effects.assign(size=effects["before"].abs())
    top = ranked.sort_values("size", ascending=False).groupby("variable", sort=False).head(8)
    return top.drop(columns="size")
