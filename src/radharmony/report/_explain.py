"""Report sections of the explanations: global SHAP figures and one card per case."""

from __future__ import annotations

from typing import Any

import pandas as pd

from radharmony.report._html import escape, figure_html, table_html


def shap_section_body(explanation: Any) -> str:
    """Return the HTML of the global SHAP importance (bar and beeswarm figures and table)."""
    from radharmony.explain import global_importance, plot_bar, plot_beeswarm

    importance = global_importance(explanation).head(15)
    return "".join(
        [
            "<p>SHAP values of the final model (fitted on all analysed lesions), attributed to "
            f"the original features. Output explained: {escape(_output_name(explanation))}.</p>",
            figure_html(plot_bar(explanation), "Mean |SHAP| per feature (global importance)."),
            figure_html(plot_beeswarm(explanation), "SHAP value of each case per feature."),
            table_html(importance.reset_index()),
        ]
    )


def _output_name(explanation: Any) -> str:
    names = getattr(explanation, "output_names", None)
    if isinstance(names, list | tuple):
        return ", ".join(str(n) for n in names)
    return str(names or "model output")


def case_cards_body(cases: pd.DataFrame, oof_explanation: Any, *, max_display: int = 6) -> str:
    """Return one card per case: prediction, confidence, conformal set and a waterfall.

    Parameters
    ----------
    cases : pandas.DataFrame
        ``StudyResult.cases`` (out-of-fold predictions with identity columns).
    oof_explanation : shap.Explanation
        Out-of-fold SHAP values, rows aligned with ``cases``.
    max_display : int
        Contributions shown in each waterfall.
    """
    from radharmony.explain import plot_waterfall

    cards = []
    for position, (lesion, row) in enumerate(cases.iterrows()):
        refer = bool(row["refer"])
        css = "card refer" if refer else "card single"
        status = "refer (not a single class)" if refer else "single class"
        figure = plot_waterfall(oof_explanation, position, max_display=max_display)
        figure.set_size_inches(5.5, 0.35 * max_display + 1.4)
        cards.append(
            f"<div class='{css}'><h4>{escape(lesion)}</h4>"
            f"<p>scanner {escape(row['scanner'])} · true class <b>{escape(row['y_true'])}</b><br>"
            f"predicted <b>{escape(row['y_pred'])}</b>, confidence {row['confidence']:.2f}<br>"
            f"conformal set {{{escape(row['conformal_set'])}}} — {status}</p>"
            f"{figure_html(figure, f'Top contributions for {lesion} (out of fold).', dpi=60)}"
            "</div>"
        )
    return "<div class='cards'>" + "".join(cards) + "</div>"


def case_table_body(cases: pd.DataFrame) -> str:
    """Return a compact table of every case's prediction (for quick scanning)."""
    columns = [
        c
        for c in ("scanner", "y_true", "y_pred", "confidence", "conformal_set", "refer")
        if c in cases.columns
    ]
    return table_html(cases[columns].reset_index())
