"""Report sections of the explanations: global SHAP figures and one card per case."""

from __future__ import annotations

from typing import Any

import numpy as np
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


def case_cards_body(
    cases: pd.DataFrame, oof_explanation: Any, *, max_display: int = 6, reasons: bool = False
) -> str:
    """Return one card per case: prediction, confidence, conformal set and a waterfall.

    Parameters
    ----------
    cases : pandas.DataFrame
        ``StudyResult.cases`` (out-of-fold predictions with identity columns).
    oof_explanation : shap.Explanation
        Out-of-fold SHAP values, rows aligned with ``cases``.
    max_display : int
        Contributions shown in each waterfall (the rest are summed in one bar).
    reasons : bool
        Label the true class "reader" and say why a case is referred (new-case pages).
    """
    import matplotlib.pyplot as plt

    from radharmony.explain import class_slice

    explained = class_slice(oof_explanation)
    values = np.asarray(explained.values, dtype=float)
    base = np.broadcast_to(np.asarray(explained.base_values, dtype=float), (len(values),))
    names = [str(n) for n in explained.feature_names]
    # One figure redrawn for every card: hundreds of cards stay quick to render.
    figure = plt.figure(figsize=(6.0, 0.32 * (max_display + 2) + 0.8))
    cards = []
    try:
        for position, (lesion, row) in enumerate(cases.iterrows()):
            figure.clf()
            _draw_waterfall(figure, values[position], float(base[position]), names, max_display)
            cards.append(_card(figure, lesion, row, reasons))
    finally:
        plt.close(figure)
    return "<div class='cards'>" + "".join(cards) + "</div>"


def _card(figure: Any, lesion: Any, row: pd.Series, reasons: bool) -> str:
    """Return one case card (the waterfall must already be drawn on ``figure``)."""
    refer = bool(row["refer"])
    shifted = bool(row.get("domain_shift", False))
    css = "card refer" if refer else "card single"
    if not refer:
        status = "single class"
    elif shifted:
        status = "refer: outside the validated domain (no conformal guarantee)"
    else:
        status = "refer (not a single class)"
    truth = "reader" if reasons else "true class"
    domain = ""
    if "domain_p_value" in row.index:
        domain = f"<br>domain check p = {float(row['domain_p_value']):.3f}"
    second = ""
    if bool(row.get("second_look", False)):
        second = "<br><b>second look</b>: the reader's call is outside the conformal set"
    caption = f"Top contributions for {lesion}" + ("." if reasons else " (out of fold).")
    return (
        f"<div class='{css}'><h4>{escape(lesion)}</h4>"
        f"<p>scanner {escape(row['scanner'])} · {truth} <b>{escape(row['y_true'])}</b>"
        f"<br>predicted <b>{escape(row['y_pred'])}</b>, confidence "
        f"{row['confidence']:.2f}<br>conformal set {{{escape(row['conformal_set'])}}} — "
        f"{escape(status)}{domain}{second}</p>"
        f"{figure_html(figure, caption, dpi=72, close=False, tight=False)}</div>"
    )


def _draw_waterfall(
    figure: Any, contributions: np.ndarray, base: float, names: list[str], max_display: int
) -> None:
    """Draw a SHAP waterfall: from the base value, the largest contributions, then the rest."""
    order = np.argsort(-np.abs(contributions))
    shown = order[:max_display]
    rest = float(contributions[order[max_display:]].sum())
    labels = [names[j] for j in shown] + (
        [f"{len(order) - len(shown)} other features"] if len(order) > len(shown) else []
    )
    steps = [float(contributions[j]) for j in shown] + ([rest] if len(order) > len(shown) else [])
    axis = figure.add_subplot(1, 1, 1)
    start = base
    for k, step in enumerate(steps):
        colour = "#d62728" if step > 0 else "#1f77b4"
        axis.barh(k, step, left=start, color=colour, height=0.6)
        axis.text(
            start + step,
            k,
            f" {step:+.2f}",
            va="center",
            fontsize=7,
            ha="left" if step > 0 else "right",
        )
        start += step
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.axvline(base, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel(f"model output (base {base:.2f} → {start:.2f})", fontsize=8)
    axis.tick_params(axis="x", labelsize=7)
    # Fixed margins: automatic layout costs more than drawing, for hundreds of cards.
    figure.subplots_adjust(left=0.5, right=0.93, top=0.96, bottom=0.16)


def case_table_body(cases: pd.DataFrame) -> str:
    """Return a compact table of every case's prediction (for quick scanning)."""
    columns = [
        c
        for c in (
            "scanner",
            "y_true",
            "y_pred",
            "confidence",
            "conformal_set",
            "domain_shift",
            "refer",
            "second_look",
        )
        if c in cases.columns
    ]
    return (
        "<details><summary>Every case as a table</summary>"
        f"{table_html(cases[columns].reset_index())}</details>"
    )


def prediction_page(predictions: pd.DataFrame, explanation: Any, *, source: str = "") -> Any:
    """Return the per-case HTML page of ``radharmony predict`` (one card per new case).

    Each card gives the predicted class and its probability, the conformal set, the domain
    check, the refer flag and why, the reader's call when one was given, and a waterfall of
    the case's SHAP contributions. Referred cases come first.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Output of :func:`radharmony.predict`.
    explanation : shap.Explanation
        Its explanation (``predict(..., return_explanation=True)``), rows aligned.
    source : str
        Where the cases came from (shown in the subtitle).
    """
    from radharmony.report._document import HTMLReport

    order = np.argsort(~predictions["refer"].to_numpy(dtype=bool), kind="stable")
    report = HTMLReport(
        title="radharmony predictions",
        subtitle=f"{len(predictions)} case(s){' from ' + source if source else ''}",
    )
    summary = [
        f"{int(predictions['refer'].sum())} of {len(predictions)} case(s) flagged <b>refer</b> "
        "(conformal set not a single class, or case outside the validated domain)",
        f"{int(predictions['domain_shift'].sum())} case(s) outside the validated domain "
        "(the conformal guarantee does not hold for them)",
    ]
    if "second_look" in predictions.columns:
        summary.append(
            f"{int(predictions['second_look'].sum())} case(s) where the reader's call is "
            "outside the conformal set: second look"
        )
    report.add_section(
        "summary", "Summary", "<ul>" + "".join(f"<li>{s}</li>" for s in summary) + "</ul>"
    )
    cases = predictions.iloc[order].copy()
    cases["scanner"] = cases.get("site", "")
    cases["y_true"] = cases["reader"] if "reader" in cases.columns else "(not given)"
    report.add_section(
        "cases",
        "Cases",
        case_cards_body(cases, explanation[order], reasons=True) + case_table_body(cases),
    )
    return report
