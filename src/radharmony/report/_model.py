"""Report sections of the modelling stage: performance, calibration, conformal sets, volume."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from radharmony.report._html import escape, figure_html, table_html


def calibration_figure(predictions: pd.DataFrame, n_bins: int = 10) -> Any:
    """Return a reliability diagram of the out-of-fold top-class confidence.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``EvaluationResult.predictions`` (needs ``confidence``, ``y_true``, ``y_pred``).
    n_bins : int
        Number of equal-width confidence bins.
    """
    import matplotlib.pyplot as plt

    confidence = predictions["confidence"].to_numpy(dtype=float)
    correct = (predictions["y_true"].astype(str) == predictions["y_pred"].astype(str)).to_numpy()
    edges = np.linspace(confidence.min() if len(confidence) else 0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    figure, axis = plt.subplots(figsize=(4.4, 4.0))
    lo = float(edges[0])
    axis.plot([lo, 1], [lo, 1], color="grey", linestyle="--", label="perfect calibration")
    xs, ys, sizes = [], [], []
    for k in range(n_bins):
        inside = which == k
        if inside.any():
            xs.append(confidence[inside].mean())
            ys.append(correct[inside].mean())
            sizes.append(int(inside.sum()))
    axis.scatter(xs, ys, s=[20 + 4 * n for n in sizes], color="#2c7be5", alpha=0.8)
    axis.plot(xs, ys, color="#2c7be5", label="out-of-fold cases")
    axis.set_xlabel("predicted probability of the predicted class")
    axis.set_ylabel("observed accuracy")
    axis.set_title("Calibration (marker size: cases per bin)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _metrics_table(result: Any) -> pd.DataFrame:
    table = result.metrics.copy()
    table.insert(0, "metric", table.index.astype(str))
    return table.reset_index(drop=True)


def performance_section_body(evaluation: Any, external: Any) -> str:
    """Return the HTML of model performance, calibration and conformal coverage."""
    settings = evaluation.settings
    parts = [
        "<p>Out-of-fold estimates from nested, patient-grouped cross-validation; every fitted "
        "step (imputation, harmonisation, feature filtering, scaling, selection, classifier, "
        "calibration) was learnt on the training folds only. Intervals: "
        f"{escape(settings.get('confidence_level', 0.95))} bootstrap resampling patients.</p>",
        table_html(_metrics_table(evaluation)),
        figure_html(
            calibration_figure(evaluation.predictions),
            "Reliability of the predicted class probability (out of fold).",
        ),
        "<h3>Conformal prediction sets</h3>",
        f"<p>Nominal coverage {evaluation.conformal_level:.0%} "
        f"({'class-conditional (Mondrian)' if evaluation.mondrian else 'marginal'} CV+ sets). "
        "A case whose set is not a single class, or that lies outside the validated domain, "
        f"is flagged <b>refer</b>: refer rate {evaluation.refer_rate:.1%}. "
        f"{escape(settings.get('conformal_guarantee', ''))}</p>",
        table_html(evaluation.coverage),
        "<h3>Model search (inner loop, per outer fold)</h3>",
        "<p>Candidates compared by mean inner ROC AUC; the chosen one of each ensemble member "
        "per outer fold:</p>",
        table_html(_chosen(evaluation.search)),
    ]
    shifted = int(evaluation.predictions["domain_shift"].sum())
    parts.append(
        f"<p>Domain check: {shifted} case(s) outside the domain of their fold's training data "
        "(<code>domain_shift</code>).</p>"
    )
    if evaluation.per_site is not None:
        parts += [
            "<h3>Per scanner</h3>",
            "<p><code>domain_shift</code>: the site's cases are further from the training "
            "data than exchangeable cases would be (binomial test of the per-case domain "
            "p-values).</p>",
            table_html(evaluation.per_site.reset_index()),
        ]
    if external is not None:
        parts += [
            "<h3>Leave-one-scanner-out validation</h3>",
            "<p>Each scanner in turn is held out and predicted by a model trained on the others "
            "(no harmonisation: ComBat cannot adjust a scanner it has never seen). This is the "
            "closest this cohort gets to external validation. The conformal guarantee does not "
            "extend to an unseen scanner: the per-site domain test says which held-out "
            "scanners lie outside the training domain.</p>",
            table_html(_metrics_table(external)),
        ]
        if external.per_site is not None:
            parts.append(table_html(external.per_site.reset_index()))
    return "".join(parts)


def _chosen(search: pd.DataFrame) -> pd.DataFrame:
    chosen = search[search["chosen"]]
    return (
        chosen.groupby(["fold", "candidate"], sort=True)
        .agg(members=("member", "size"), mean_inner_auc=("mean_inner_auc", "mean"))
        .reset_index()
    )


def volume_section_body(evaluation: Any) -> str:
    """Return the HTML of the volume-confound check."""
    check = evaluation.volume_check
    if check is None:
        return "<p>No lesion volume was available: the volume check could not run.</p>"
    css = "ok" if check.beats_volume else "warning"
    parts = [
        f"<div class='{css}'>{escape(check.message)}</div>",
        f"<p>Signature AUC {check.signature_auc:.3f} versus volume-only AUC "
        f"{check.volume_auc:.3f} on the same folds (difference {check.difference:+.3f}, "
        f"one-sided p = {check.p_value:.3g}, {escape(check.test)}).</p>",
    ]
    if len(check.correlations):
        parts.append("<p>Correlation of the selected features with lesion volume:</p>")
        parts.append(table_html(check.correlations.reset_index().head(20)))
    return "".join(parts)
