"""Matplotlib figures of SHAP explanations (global beeswarm and bar, per-case waterfall)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import shap
from matplotlib.figure import Figure

from radharmony.explain._tables import class_slice


def plot_beeswarm(
    explanation: shap.Explanation, *, max_display: int = 15, class_index: int | None = None
) -> Figure:
    """Return a beeswarm figure: each case's SHAP value per feature, coloured by feature value.

    Parameters
    ----------
    explanation : shap.Explanation
        From :func:`radharmony.explain.explain`.
    max_display : int
        Number of features shown (the most important; the rest are summed in one row).
    class_index : int, optional
        Class shown for multi-class explanations (default: each case's top class).
    """
    figure = plt.figure(figsize=(8, 0.4 * max_display + 1.5))
    shap.plots.beeswarm(class_slice(explanation, class_index), max_display=max_display, show=False)
    figure = plt.gcf()
    figure.tight_layout()
    return figure


def plot_bar(
    explanation: shap.Explanation, *, max_display: int = 15, class_index: int | None = None
) -> Figure:
    """Return a bar figure of global importance (mean absolute SHAP value per feature).

    Parameters
    ----------
    explanation : shap.Explanation
        From :func:`radharmony.explain.explain`.
    max_display : int
        Number of features shown.
    class_index : int, optional
        Class shown for multi-class explanations (default: each case's top class).
    """
    plt.figure(figsize=(8, 0.4 * max_display + 1.5))
    shap.plots.bar(class_slice(explanation, class_index), max_display=max_display, show=False)
    figure = plt.gcf()
    figure.tight_layout()
    return figure


def plot_waterfall(
    explanation: shap.Explanation,
    case: int,
    *,
    max_display: int = 10,
    class_index: int | None = None,
) -> Figure:
    """Return a waterfall figure of one case: from the base value to the case's output.

    Parameters
    ----------
    explanation : shap.Explanation
        From :func:`radharmony.explain.explain`.
    case : int
        Row position of the case.
    max_display : int
        Number of contributions shown.
    class_index : int, optional
        Class shown for multi-class explanations (default: the case's top class).
    """
    plt.figure(figsize=(8, 0.4 * max_display + 1.5))
    shap.plots.waterfall(
        class_slice(explanation, class_index)[case], max_display=max_display, show=False
    )
    figure = plt.gcf()
    figure.tight_layout()
    return figure
