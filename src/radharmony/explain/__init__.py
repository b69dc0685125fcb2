"""SHAP explanations of radharmony models on the original feature names, with figures.

Exact explainers where they apply (linear, tree ensembles), the permutation explainer
otherwise; global importance, per-case top contributions and out-of-fold explanations as tables;
beeswarm, bar and waterfall plots as matplotlib figures; predictions on new patients with their
top contributions (:func:`predict`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from radharmony.explain._plots import plot_bar, plot_beeswarm, plot_waterfall
from radharmony.explain._predict import predict
from radharmony.explain._shap import explain
from radharmony.explain._tables import (
    class_slice,
    explain_out_of_fold,
    global_importance,
    top_contributions,
)

__all__ = [
    "class_slice",
    "explain",
    "explain_out_of_fold",
    "global_importance",
    "plot_bar",
    "plot_beeswarm",
    "plot_waterfall",
    "predict",
    "top_contributions",
]


class _CallableModule(types.ModuleType):
    """This module, callable: ``radharmony.explain(model, X)`` is :func:`explain`.

    The stage is both a module (``radharmony.explain.plot_bar``) and the function users call
    most, so ``radharmony.explain`` works either way whatever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
