"""What harmonisation removed and what it kept: tables and figures, judged on held-out folds."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from radharmony.errors import HarmonizationError
from radharmony.harmonize._combat import ComBat
from radharmony.harmonize._diagnostics import (
    corrections_table,
    heldout_tables,
    mode_description,
    normative_calibration,
    uses_labels,
)
from radharmony.harmonize._stats import bh_q_values, kruskal_per_feature
from radharmony.harmonize._validation import as_batch, as_covariates, as_feature_matrix

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_FDR = 0.05


_MIN_ROWS_FOR_HALF_SPLITS = 4


@dataclass
class HarmonizationReport:
    """Diagnostics of a harmonisation (see :func:`harmonization_report`).

    Attributes
    ----------
    batch_tests : pandas.DataFrame
        Per-feature Kruskal-Wallis test of a batch effect before and after, with BH q-values
        (``data_dictionary/harmonization_batch_tests.csv``).
    scanner_prediction : pandas.DataFrame
        Cross-validated balanced accuracy of predicting the batch from the features
        (``data_dictionary/harmonization_scanner_prediction.csv``).
    preserved_effects : pandas.DataFrame
        Effect size of each covariate and of the label on each feature, before and after
        (``data_dictionary/harmonization_preserved_effects.csv``).
    figures : dict of str to matplotlib.figure.Figure
        ``"pca"``, ``"batch_tests"``, ``"scanner_prediction"`` and ``"heldout"``.
    mode : str
        The harmonisation mode judged (harmoniser, labels in the design or not, reference).
    heldout, heldout_summary : pandas.DataFrame or None
        Held-out scanner AUC (raw and harmonised) over repeated random half splits, per split
        and summarised (``data_dictionary/harmonization_heldout_splits.csv`` and
        ``harmonization_heldout_summary.csv``).
    corrections : pandas.DataFrame or None
        What the harmoniser, fitted on all rows, corrects and keeps (its correction table,
        ``data_dictionary/harmonization_corrections.csv`` for the default; the site table of a
        normative model; ComBat's parameters; SelectiveComBat's selection).
    calibration : pandas.DataFrame or None
        Normative models only: z-scores of held-out reference rows per site
        (``data_dictionary/normative_calibration.csv``).
    """

    batch_tests: pd.DataFrame
    scanner_prediction: pd.DataFrame
    preserved_effects: pd.DataFrame
    figures: dict[str, Figure] = field(default_factory=dict)
    mode: str = ""
    heldout: pd.DataFrame | None = None
    heldout_summary: pd.DataFrame | None = None
    corrections: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None

    def summary(self) -> str:
        """Return a few lines stating the main numbers.

        Returns
        -------
        str
        """
        tests = self.batch_tests
        lines = [self.mode] if self.mode else []
        lines += [
            f"features with a batch effect (KW, FDR {_FDR:.0%}): "
            f"{int(tests['significant_before'].sum())} of {len(tests)} before, "
            f"{int(tests['significant_after'].sum())} after"
        ]
        for row in self.scanner_prediction.itertuples(index=False):
            lines.append(
                f"scanner prediction, {row.data}: balanced accuracy {row.balanced_accuracy:.3f} "
                f"(SD {row.balanced_accuracy_sd:.3f}, chance {row.chance:.3f})"
            )
        if self.heldout_summary is not None:
            summary = self.heldout_summary.set_index("harmonizer")
            raw = summary.loc["raw"]
            for name, row in summary.drop(index="raw").iterrows():
                lines.append(
                    f"held-out scanner AUC over {int(row['n_splits'])} half splits: raw "
                    f"{raw['mean_auc']:.3f} (SD {raw['sd_auc']:.3f}), {name} {row['mean_auc']:.3f} "
                    f"(SD {row['sd_auc']:.3f}); largest increase over raw in one split "
                    f"{row['worst_excess_auc']:+.3f}"
                )
        if self.calibration is not None and len(self.calibration):
            worst = self.calibration["coverage_90"].sub(0.9).abs().max()
            lines.append(
                "held-out reference rows: z-score SD "
                f"{self.calibration['sd_z'].min():.2f}-{self.calibration['sd_z'].max():.2f} "
                f"across sites; coverage of the central 90 % within {worst:.3f} of nominal"
            )
        return "\n".join(lines)

    def save(self, folder: str | Path) -> list[Path]:
        """Write the tables as CSV and the figures as PNG into ``folder``.

        Parameters
        ----------
        folder : str or Path
            Output folder (created if needed).

        Returns
        -------
        list of Path
            The files written.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {
            "harmonization_batch_tests": self.batch_tests,
            "harmonization_scanner_prediction": self.scanner_prediction,
            "harmonization_preserved_effects": self.preserved_effects,
            "harmonization_heldout_splits": self.heldout,
            "harmonization_heldout_summary": self.heldout_summary,
            "harmonization_corrections": self.corrections,
            "normative_calibration": self.calibration,
        }
        for stem, table in tables.items():
            if table is None:
                continue
            path = folder / f"{stem}.csv"
            table.to_csv(path, index=False)
            written.append(path)
        for name, figure in self.figures.items():
            path = folder / f"harmonization_{name}.png"
            figure.savefig(path, dpi=120, bbox_inches="tight")
            written.append(path)
        return written


def harmonization_report(
    before: Any,
    after: Any,
    batch: Any,
    covariates: pd.DataFrame | None = None,
    label: Any = None,
    *,
    harmonizer: Any = None,
    reference: Any = None,
    cv: int = 5,
    n_splits: int = 10,
    random_state: int = 0,
    figures: bool = True,
) -> HarmonizationReport:
    """Compare features before and after harmonisation.

    Parameters
    ----------
    before, after : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Features before and after harmonisation, same rows and columns.
    batch : array-like of shape (n_samples,)
        Scanner of each row.
    covariates : pandas.DataFrame, optional
        Preserved covariates (also passed to the held-out harmoniser).
    label : array-like of shape (n_samples,), optional
        Outcome whose effect should be preserved. It is passed to the ``fit`` (never to the
        ``transform``) of a harmoniser that puts the labels in its design
        (:class:`~radharmony.harmonize.ShrinkageComBat`), as a ``Pipeline`` would.
    harmonizer : estimator, optional
        Harmoniser refitted on training rows for the held-out diagnostics and fitted on all
        rows for the corrections table; defaults to :class:`~radharmony.harmonize.ComBat`.
    reference : array-like of bool, optional
        Reference rows of a :class:`~radharmony.harmonize.NormativeModel` (fitted on those
        only); also gives the z-score calibration of held-out reference rows.
    cv : int, default=5
        Folds (stratified by batch; fewer when a batch is smaller).
    n_splits : int, default=10
        Random half splits of the held-out scanner AUC (0 skips it). Skipped, with a
        warning, when a scanner has fewer than 4 rows (each half needs two of each).
    random_state : int, default=0
        Seed of the fold assignment.
    figures : bool, default=True
        Draw the matplotlib figures.

    Returns
    -------
    HarmonizationReport

    Notes
    -----
    ``after`` is usually harmonised on all rows, so predicting the scanner from it is an
    in-sample diagnostic that flatters ComBat (its estimation error is zero in-sample). The row
    ``after (harmoniser fitted on training folds)`` refits ``harmonizer`` on each training fold
    and scores the held-out fold: that is the number to trust.
    """
    X_before, names, _ = as_feature_matrix(before)
    X_after, _, _ = as_feature_matrix(after)
    if X_before.shape != X_after.shape:
        raise HarmonizationError(
            f"before has shape {X_before.shape} but after has {X_after.shape}; pass the same rows "
            "and feature columns."
        )
    names = names or [f"x{j}" for j in range(X_before.shape[1])]
    batch = as_batch(batch, X_before.shape[0])
    cov = as_covariates(covariates, X_before.shape[0])
    harmonizer = ComBat() if harmonizer is None else harmonizer
    tests = _batch_test_table(X_before, X_after, batch, names)
    prediction = _scanner_prediction_table(
        X_before, X_after, batch, cov, harmonizer, cv, random_state, label, reference
    )
    effects = _preserved_effect_table(X_before, X_after, cov, label, names)
    report = HarmonizationReport(
        tests, prediction, effects, mode=mode_description(harmonizer, label)
    )
    frame = pd.DataFrame(X_before, columns=names)
    context = {"label": label, "covariates": cov, "reference": reference}
    smallest = int(pd.Series(batch).value_counts().min())
    # Each half of a random split must keep two rows of every scanner for the harmoniser.
    heldout_possible = smallest >= _MIN_ROWS_FOR_HALF_SPLITS
    if n_splits and not heldout_possible:
        warnings.warn(
            f"the held-out half-split check is skipped: the smallest scanner has {smallest} "
            f"row(s), and each half needs two of every scanner (at least "
            f"{_MIN_ROWS_FOR_HALF_SPLITS}); merge small scanners to get it",
            UserWarning,
            stacklevel=2,
        )
    if n_splits and heldout_possible:
        report.heldout, report.heldout_summary = heldout_tables(
            frame, batch, harmonizer, n_splits=n_splits, random_state=random_state, **context
        )
    report.corrections = corrections_table(frame, batch, harmonizer, **context)
    if hasattr(harmonizer, "zscores") and n_splits and heldout_possible:
        report.calibration = normative_calibration(
            frame,
            batch,
            harmonizer,
            covariates=cov,
            reference=reference,
            n_splits=n_splits,
            random_state=random_state,
        )
    if figures:
        report.figures = _figures(X_before, X_after, batch, report)
    return report


def _batch_test_table(
    before: np.ndarray, after: np.ndarray, batch: np.ndarray, names: list[str]
) -> pd.DataFrame:
    """Return the per-feature batch-effect tests before and after."""
    table = pd.DataFrame({"feature": names})
    for when, values in (("before", before), ("after", after)):
        h, p = kruskal_per_feature(values, batch)
        q = bh_q_values(p, np.isfinite(h))
        table[f"kruskal_h_{when}"] = h
        table[f"p_value_{when}"] = p
        table[f"q_value_{when}"] = q
        table[f"significant_{when}"] = q < _FDR
    return table


def _classifier() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _scanner_prediction_table(
    before: np.ndarray,
    after: np.ndarray,
    batch: np.ndarray,
    cov: pd.DataFrame | None,
    harmonizer: Any,
    cv: int,
    random_state: int,
    label: Any = None,
    reference: Any = None,
) -> pd.DataFrame:
    """Return held-out balanced accuracy of predicting the batch, before and after."""
    from sklearn.base import clone
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    levels, counts = np.unique(batch.astype(str), return_counts=True)
    n_splits = int(min(cv, counts.min()))
    if n_splits < 2:
        raise HarmonizationError(
            f"cross-validated scanner prediction needs at least 2 rows per batch; batch "
            f"{levels[counts.argmin()]!r} has {counts.min()}."
        )
    folds = list(
        StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(before, batch)
    )
    labels = None if label is None or not uses_labels(harmonizer) else np.asarray(label)
    scores: dict[str, list[float]] = {"before": [], "after": [], "held_out": []}
    for train, test in folds:
        for key, values in (("before", before), ("after", after)):
            clf = _classifier().fit(values[train], batch[train])
            scores[key].append(balanced_accuracy_score(batch[test], clf.predict(values[test])))
        fitted = clone(harmonizer)
        cov_train = None if cov is None else cov.iloc[train]
        cov_test = None if cov is None else cov.iloc[test]
        y_train = None if labels is None else labels[train]
        extra = {} if reference is None else {"reference": np.asarray(reference, bool)[train]}
        fitted.fit(before[train], y_train, batch=batch[train], covariates=cov_train, **extra)
        X_train = np.asarray(
            fitted.transform(before[train], batch=batch[train], covariates=cov_train)
        )
        X_test = np.asarray(fitted.transform(before[test], batch=batch[test], covariates=cov_test))
        clf = _classifier().fit(X_train, batch[train])
        scores["held_out"].append(balanced_accuracy_score(batch[test], clf.predict(X_test)))
    descriptions = {
        "before": ("before", "raw features"),
        "after": (
            "after (table as given)",
            "the given harmonised table; in-sample if it was harmonised on all rows",
        ),
        "held_out": (
            "after (harmoniser fitted on training folds)",
            f"{type(harmonizer).__name__} refitted on each training fold, held-out fold scored",
        ),
    }
    rows = []
    for key, fold_scores in scores.items():
        data, description = descriptions[key]
        rows.append(
            {
                "data": data,
                "balanced_accuracy": float(np.mean(fold_scores)),
                "balanced_accuracy_sd": float(np.std(fold_scores, ddof=1)),
                "chance": 1.0 / len(levels),
                "n_splits": n_splits,
                "held_out_harmonisation": key == "held_out",
                "description": description,
            }
        )
    return pd.DataFrame(rows)


def _effect_sizes(values: np.ndarray, variable: pd.Series) -> tuple[str, np.ndarray]:
    """Return the statistic's name and its value for each feature column."""
    numeric = pd.api.types.is_numeric_dtype(variable) and not pd.api.types.is_bool_dtype(variable)
    levels = pd.unique(variable)
    if numeric and len(levels) > 2:
        with warnings.catch_warnings():
            # A constant feature has no correlation: NaN (documented in the data dictionary).
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            rho = [
                stats.spearmanr(values[:, j], variable).statistic for j in range(values.shape[1])
            ]
        return "spearman_rho", np.asarray(rho, dtype=float)
    if len(levels) == 2:
        first, second = (
            values[(variable == level).to_numpy()] for level in sorted(levels, key=str)
        )
        n1, n2 = len(first), len(second)
        pooled = np.sqrt(
            ((n1 - 1) * first.var(0, ddof=1) + (n2 - 1) * second.var(0, ddof=1)) / (n1 + n2 - 2)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return "cohens_d", (second.mean(0) - first.mean(0)) / pooled
    h, _ = kruskal_per_feature(values, variable.astype(str).to_numpy())
    n, k = len(variable), len(levels)
    return "epsilon_squared", (h - k + 1) / (n - k)


def _preserved_effect_table(
    before: np.ndarray,
    after: np.ndarray,
    cov: pd.DataFrame | None,
    label: Any,
    names: list[str],
) -> pd.DataFrame:
    """Return effect sizes of every covariate and of the label, before and after."""
    variables = {} if cov is None else {str(c): cov[c] for c in cov.columns}
    if label is not None:
        variables["label"] = pd.Series(np.asarray(label)).reset_index(drop=True)
    frames = []
    for name, variable in variables.items():
        if variable.isna().any() or variable.nunique() < 2:
            continue
        statistic, effect_before = _effect_sizes(before, variable)
        _, effect_after = _effect_sizes(after, variable)
        frames.append(
            pd.DataFrame(
                {
                    "variable": name,
                    "feature": names,
                    "statistic": statistic,
                    "before": effect_before,
                    "after": effect_after,
                    "change": effect_after - effect_before,
                }
            )
        )
    columns = ["variable", "feature", "statistic", "before", "after", "change"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _figures(
    before: np.ndarray, after: np.ndarray, batch: np.ndarray, report: HarmonizationReport
) -> dict[str, Figure]:
    """Draw the PCA, batch-test and scanner-prediction figures."""
    from matplotlib.figure import Figure

    figures = {"pca": Figure(figsize=(10, 4.5))}
    axes = figures["pca"].subplots(1, 2)
    levels = sorted(pd.unique(batch), key=str)
    for ax, values, title in ((axes[0], before, "before"), (axes[1], after, "after")):
        scores, explained = _pca_scores(values)
        for level in levels:
            rows = batch == level
            ax.scatter(scores[rows, 0], scores[rows, 1], s=12, alpha=0.7, label=str(level))
        ax.set_title(f"PCA {title} harmonisation")
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    axes[1].legend(title="batch", fontsize="small")

    figures["batch_tests"] = Figure(figsize=(5, 5))
    ax = figures["batch_tests"].subplots()
    tests = report.batch_tests
    ax.scatter(-np.log10(tests["q_value_before"]), -np.log10(tests["q_value_after"]), s=12)
    line = -np.log10(_FDR)
    ax.axhline(line, color="grey", ls="--")
    ax.axvline(line, color="grey", ls="--")
    ax.set_xlabel("-log10 q, batch effect before")
    ax.set_ylabel("-log10 q, batch effect after")
    ax.set_title("Per-feature Kruskal-Wallis test of the batch")

    figures["scanner_prediction"] = Figure(figsize=(6, 4))
    ax = figures["scanner_prediction"].subplots()
    pred = report.scanner_prediction
    ax.bar(range(len(pred)), pred["balanced_accuracy"], yerr=pred["balanced_accuracy_sd"])
    ax.axhline(pred["chance"].iloc[0], color="red", ls="--", label="chance")
    ax.set_xticks(range(len(pred)), [d.replace(" (", "\n(") for d in pred["data"]], fontsize=7)
    ax.set_ylabel("balanced accuracy (held-out folds)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Predicting the scanner from the features")
    if report.heldout is not None:
        figures["heldout"] = _heldout_figure(report.heldout)
    return figures


def _heldout_figure(table: pd.DataFrame) -> Figure:
    """Paired held-out scanner AUC per random half split, raw and harmonised."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    wide = table.pivot(index="split", columns="harmonizer", values="scanner_auc")
    names = ["raw"] + [c for c in wide.columns if c != "raw"]
    for _, row in wide[names].iterrows():
        ax.plot(range(len(names)), row.to_numpy(), color="grey", alpha=0.5, marker="o")
    ax.plot(range(len(names)), wide[names].mean().to_numpy(), color="black", lw=2, label="mean")
    ax.axhline(0.5, color="red", ls="--", label="cannot be told")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("held-out scanner ROC AUC")
    ax.set_title(f"Scanner recognisable in the held-out half ({len(wide)} random splits)")
    ax.legend(fontsize="small")
    return figure


def _pca_scores(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the first two principal-component scores of standardised data and their share."""
    sd = values.std(0)
    z = (values - values.mean(0)) / np.where(sd > 0, sd, 1.0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    explained = s**2 / np.sum(s**2)
    scores = u[:, :2] * s[:2]
    if scores.shape[1] < 2:
        scores = np.column_stack([scores, np.zeros(len(scores))])
        explained = np.append(explained, 0.0)
    return scores, explained
