"""Report section of the follow-up analysis: lesion load, new lesions, overlays, registration QC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radharmony.report._html import escape, figure_html, table_html

_MAX_OVERLAYS = 12
_MAX_ROWS = 60


def longitudinal_section_body(result: Any, delta: pd.DataFrame | None = None) -> str:
    """Return the HTML of a follow-up analysis (a ``LongitudinalResult``).

    Parts: summary and how thresholds were chosen, lesion-load timeline per subject, table of
    new or enlarging lesions, overlay figures (change map and new lesions on the follow-up),
    registration quality control, lesion statuses, failures, and (when given) a summary of the
    delta-radiomics table.
    """
    parts = ["<p>" + "<br>".join(escape(x) for x in result.summary().splitlines()) + "</p>"]
    if len(result.load):
        parts.append("<h3>Lesion load over time</h3>")
        parts.append(figure_html(_load_figure(result.load), _LOAD_CAPTION))
        parts.append(table_html(result.load))
    parts.append("<h3>New or enlarging lesions on the change maps</h3>")
    if len(result.new_lesions):
        shown = result.new_lesions.head(_MAX_ROWS)
        parts.append(table_html(shown))
        if len(result.new_lesions) > _MAX_ROWS:
            parts.append(f"<p>{len(result.new_lesions) - _MAX_ROWS} more in new_lesions.csv.</p>")
    else:
        parts.append("<p>None found at the chosen thresholds.</p>")
    overlays = [p for p in result.pairs.get("overlay", pd.Series(dtype=str)) if _exists(p)]
    if overlays:
        parts.append("<h3>Change maps</h3>")
        for (_, pair), path in zip(result.pairs.iterrows(), overlays[:_MAX_OVERLAYS], strict=False):
            caption = (
                f"{pair['subject_id']}: time point {pair['timepoint_from']} to "
                f"{pair['timepoint_to']}; change score (red: growth, blue: shrinkage, shown "
                f"beyond the thresholds {pair['threshold_growth']:.2f} / "
                f"{pair['threshold_shrinkage']:.2f}) and new lesions (yellow outline)"
            )
            parts.append(figure_html(_overlay_figure(path, pair), caption))
    parts.append("<h3>Registration quality control</h3>")
    parts.append(_registration_html(result.registration))
    if len(result.tracks):
        counts = result.tracks.groupby(["timepoint", "status"]).size().unstack(fill_value=0)
        parts.append("<h3>Lesion statuses (matched lesions)</h3>")
        parts.append(table_html(counts.reset_index()))
    if delta is not None and len(delta):
        n_delta = int(delta.filter(like="delta_").notna().any(axis=1).sum())
        parts.append(
            f"<p>Delta-radiomics: {len(delta)} lesion observation(s), {n_delta} with a change "
            "since the previous visit (delta_features.parquet).</p>"
        )
    if len(result.failures):
        parts.append("<h3>Failures</h3>")
        parts.append(table_html(result.failures))
    return "".join(parts)


_LOAD_CAPTION = (
    "Total lesion volume per subject and visit (from the visits' lesion masks; open circles: "
    "volume of new or enlarging lesions on the change map when no masks were given)."
)


def _exists(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and Path(path).is_file()


def _load_figure(load: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.0, 3.6))
    for subject, rows in load.groupby("subject_id", sort=False):
        x = np.arange(len(rows))
        volume = pd.to_numeric(rows["lesion_volume_mm3"], errors="coerce")
        if volume.notna().any():
            axis.plot(x, volume, marker="o", label=str(subject))
        else:
            new = pd.to_numeric(rows["new_change_volume_mm3"], errors="coerce").fillna(0)
            axis.plot(x, new.cumsum(), marker="o", mfc="none", label=str(subject))
        axis.set_xticks(x, [str(t) for t in rows["timepoint"]])
    axis.set_xlabel("time point")
    axis.set_ylabel("lesion volume (mm³)")
    if load["subject_id"].nunique() <= 12:
        axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def _overlay_figure(path: str, pair: pd.Series) -> Any:
    import matplotlib.pyplot as plt

    with np.load(path) as data:
        baseline, followup = data["baseline"], data["followup"]
        score, labels, spacing = data["score"], data["labels"], data["spacing"]
    aspect = float(spacing[1] / spacing[0])
    figure, axes = plt.subplots(1, 3, figsize=(9.0, 3.3))
    low, high = np.percentile(followup[followup > 0], [1, 99]) if np.any(followup > 0) else (0, 1)
    for axis, image, title in ((axes[0], baseline, "earlier"), (axes[1], followup, "later")):
        axis.imshow(image, cmap="gray", vmin=low, vmax=high, aspect=aspect)
        axis.set_title(
            f"{title} (time point {pair['timepoint_from' if title == 'earlier' else 'timepoint_to']})",
            fontsize=8,
        )
    axes[2].imshow(followup, cmap="gray", vmin=low, vmax=high, aspect=aspect)
    grow = np.ma.masked_where(score < pair["threshold_growth"], score)
    shrink = np.ma.masked_where(score > -pair["threshold_shrinkage"], score)
    axes[2].imshow(grow, cmap="autumn_r", alpha=0.8, aspect=aspect)
    axes[2].imshow(shrink, cmap="winter", alpha=0.8, aspect=aspect)
    if labels.any():
        axes[2].contour(labels > 0, levels=[0.5], colors="yellow", linewidths=0.8)
    axes[2].set_title("change", fontsize=8)
    for axis in axes:
        axis.set_axis_off()
    figure.tight_layout()
    return figure


def _registration_html(registration: pd.DataFrame) -> str:
    if not len(registration):
        return "<p>No visit was aligned (every subject failed).</p>"
    flagged = registration[registration["qc_pass"].astype(object).eq(False)]
    note = (
        '<p class="ok">Every aligned visit passes the quality check.</p>'
        if flagged.empty
        else (
            f'<p class="warning">{len(flagged)} visit(s) aligned with a given transform have a '
            "low local correlation with the baseline: check those transforms.</p>"
        )
    )
    explanation = (
        "<p>qc_lncc: mean local normalised cross-correlation between the baseline and the "
        "aligned visit inside the brain (1 = identical local structure). Registrations below "
        "the threshold are refused (listed under failures); given transforms are used as they "
        "are and only flagged.</p>"
    )
    return note + explanation + table_html(registration)


def make_longitudinal_report(
    result: Any, delta: pd.DataFrame | None = None, *, title: str = "radharmony follow-up report"
) -> Any:
    """Return an :class:`HTMLReport` holding the follow-up section alone.

    Parameters
    ----------
    result : LongitudinalResult
    delta : pandas.DataFrame, optional
        Output of :func:`radharmony.longitudinal.delta_radiomics`.
    title : str

    Returns
    -------
    HTMLReport
    """
    from radharmony._version import __version__
    from radharmony.report._document import HTMLReport

    report = HTMLReport(title=title, subtitle=f"radharmony {__version__}")
    report.add_section("longitudinal", "Follow-up scans", longitudinal_section_body(result, delta))
    return report
