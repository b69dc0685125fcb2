"""The result of a nested cross-validated evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from radharmony.model._metrics import METRIC_NAMES, classification_metrics
from radharmony.model._volume import VolumeCheck


@dataclass
class EvaluationResult:
    """Out-of-fold predictions, metrics with confidence intervals, and the final model.

    Attributes
    ----------
    predictions : pandas.DataFrame
        One row per case (index of the input table): ``fold``, ``group``, ``site``, ``y_true``,
        ``y_pred``, ``proba_<class>`` (calibrated), ``confidence`` (largest probability),
        ``conformal_set`` (classes joined by ``|``), ``set_size``, ``covered``,
        ``domain_p_value``, ``domain_shift``, ``refer``.
        Columns are described in ``data_dictionary/predictions.csv``.
    metrics : pandas.DataFrame
        Index: metric name; columns ``estimate``, ``ci_low``, ``ci_high`` (cluster bootstrap).
    coverage : pandas.DataFrame
        Conformal coverage, mean set size and refer rate overall, per class and per site.
    per_site : pandas.DataFrame or None
        Point metrics per site (no intervals) and the per-site domain test, when sites are
        known.
    volume_check : VolumeCheck or None
        The volume-confound check (None when no volume variable is available).
    model : ConformalEnsemble
        The procedure fitted on all rows: what to deploy, explain and apply to new patients.
    fold_models : list of ConformalEnsemble
        The model of each outer fold (fitted on that fold's training rows).
    splits : list of (ndarray, ndarray)
        Outer (train, test) row positions.
    best_params : list of list of dict
        Hyper-parameters chosen for each member in each outer fold.
    final_params : list of dict
        Hyper-parameters chosen for each member of ``model``.
    classes : ndarray
        Class labels (column order of the probabilities).
    feature_names : list of str
        Input feature names.
    conformal_level : float
        Nominal coverage of the prediction sets.
    mondrian : bool
        Whether the sets of ``model`` are class-conditional.
    search : pandas.DataFrame
        The inner model search of every outer fold: ``fold``, ``member``, ``candidate``,
        ``mean_inner_auc``, ``chosen``.
    settings : dict
        Everything needed to reproduce the evaluation.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    coverage: pd.DataFrame
    per_site: pd.DataFrame | None
    volume_check: VolumeCheck | None
    model: Any = field(repr=False)
    fold_models: list[Any] = field(repr=False)
    splits: list[tuple[NDArray[np.int_], NDArray[np.int_]]] = field(repr=False)
    best_params: list[list[dict[str, Any]]]
    final_params: list[dict[str, Any]]
    classes: NDArray[Any]
    feature_names: list[str] = field(repr=False)
    conformal_level: float
    mondrian: bool
    search: pd.DataFrame = field(repr=False)
    settings: dict[str, Any]
    fold_features: list[list[str]] = field(default_factory=list, repr=False)
    final_features: list[str] = field(default_factory=list)

    @property
    def refer_rate(self) -> float:
        """Share of cases flagged "refer" (set not a single class, or outside the domain)."""
        return float(self.predictions["refer"].mean())

    def selection_frequency(self) -> pd.Series:
        """Return the share of outer folds whose model used each feature (descending)."""
        counts = pd.Series(0.0, index=pd.Index(self.feature_names, name="feature"))
        for names in self.fold_features:
            counts[names] += 1.0
        return (counts / max(len(self.fold_features), 1)).sort_values(ascending=False)

    def summary(self) -> dict[str, Any]:
        """Return the headline numbers as a JSON-ready dict (the CLI's ``metrics.json``).

        Returns
        -------
        dict
            For each metric ``m``: ``m``, ``m_ci_low``, ``m_ci_high``; the conformal level,
            coverage (overall, per class, per site), mean set size and refer rate; the
            volume-check results when available; sample sizes, classes and settings.
        """
        out: dict[str, Any] = {}
        for name, row in self.metrics.iterrows():
            out[str(name)] = _json_float(row["estimate"])
            out[f"{name}_ci_low"] = _json_float(row["ci_low"])
            out[f"{name}_ci_high"] = _json_float(row["ci_high"])
        overall = self.coverage[self.coverage["stratum"] == "overall"].iloc[0]
        out["conformal_level"] = self.conformal_level
        out["conformal_mondrian"] = bool(self.mondrian)
        out["conformal_coverage"] = _json_float(overall["coverage"])
        out["conformal_mean_set_size"] = _json_float(overall["mean_set_size"])
        out["refer_rate"] = _json_float(overall["refer_rate"])
        for stratum in ("class", "site"):
            part = self.coverage[self.coverage["stratum"] == stratum]
            out[f"conformal_coverage_by_{stratum}"] = {
                str(v): _json_float(c) for v, c in zip(part["value"], part["coverage"], strict=True)
            }
        if self.volume_check is not None:
            out.update({k: _json_value(v) for k, v in self.volume_check.to_dict().items()})
        if self.per_site is not None:
            out["per_site"] = {
                str(site): {k: _json_value(v) for k, v in row.items()}
                for site, row in self.per_site.iterrows()
            }
        out["n_cases"] = len(self.predictions)
        out["n_groups"] = int(self.predictions["group"].nunique())
        out["classes"] = [_json_value(c) for c in self.classes]
        out["best_params_by_fold"] = [
            [{k: _json_value(v) for k, v in p.items()} for p in members]
            for members in self.best_params
        ]
        out["chosen_by_fold"] = [
            part.loc[part["chosen"], "candidate"].tolist()
            for _, part in self.search.groupby("fold", sort=True)
        ]
        out["final_params"] = [{k: _json_value(v) for k, v in p.items()} for p in self.final_params]
        out["domain_shift_rate"] = _json_float(self.predictions["domain_shift"].mean())
        out["final_features"] = list(self.final_features)
        out["settings"] = {k: _json_value(v) for k, v in self.settings.items()}
        return out


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _json_value(value: Any) -> Any:
    """Convert numpy scalars/arrays and NaN to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _json_float(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def predictions_table(
    data: Any,
    proba: NDArray[np.float64],
    fold: NDArray[np.int_],
    sets: NDArray[np.bool_],
    classes: NDArray[Any],
    sites: NDArray[Any] | None,
    domain_p_value: NDArray[np.float64],
    domain_shift: NDArray[np.bool_],
) -> pd.DataFrame:
    """Return the out-of-fold predictions table described in ``data_dictionary/predictions.csv``.

    ``data`` is the evaluation's aligned input (it needs ``X.index``, ``y`` and ``groups``).
    """
    true_index = np.searchsorted(classes, data.y)
    table = pd.DataFrame(
        {
            "fold": fold,
            "group": data.groups,
            "site": sites if sites is not None else "",
            "y_true": data.y,
            "y_pred": classes[proba.argmax(axis=1)],
        },
        index=data.X.index,
    )
    for k, c in enumerate(classes):
        table[f"proba_{c}"] = proba[:, k]
    table["confidence"] = proba.max(axis=1)
    table["conformal_set"] = ["|".join(str(c) for c in classes[row]) for row in sets]
    table["set_size"] = sets.sum(axis=1)
    table["covered"] = sets[np.arange(len(sets)), true_index]
    table["domain_p_value"] = domain_p_value
    table["domain_shift"] = domain_shift
    table["refer"] = (table["set_size"] != 1) | table["domain_shift"]
    return table


def per_site_table(
    y: NDArray[Any],
    proba: NDArray[np.float64],
    sets: NDArray[np.bool_],
    classes: NDArray[Any],
    sites: NDArray[Any],
    domain: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Point metrics, coverage, refer rate and domain test of each site's predictions."""
    true_index = np.searchsorted(classes, y)
    rows = {}
    for site in sorted(set(sites.astype(str))):
        mask = sites.astype(str) == site
        metrics = classification_metrics(y[mask], proba[mask], classes)
        metrics["n"] = int(mask.sum())
        metrics["coverage"] = float(sets[mask, true_index[mask]].mean())
        metrics["refer_rate"] = float((sets[mask].sum(axis=1) != 1).mean())
        rows[site] = metrics
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table[["n", *METRIC_NAMES, "coverage", "refer_rate"]].rename_axis("site")
    if domain is not None:
        extra = domain.drop(columns="n").reindex(table.index)
        table = table.join(extra)
    return table
