"""Diagnostics of each harmonisation mode: what was corrected, what was kept, held-out effects.

- Held-out scanner predictability over repeated random half splits (the package's one judge,
  :func:`._judge.scanner_predictability`), with its spread and worst split.
- The corrections a harmoniser applies, fitted on all rows (``ShrinkageComBat``: per feature and
  batch, estimate, standard error and applied shift/scale; ``ComBat``: its parameters;
  ``SelectiveComBat``: its per-feature selection).
- For a :class:`NormativeModel`, the calibration of the z-scores of held-out reference rows,
  per site.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from radharmony.harmonize._judge import (
    half_splits,
    scanner_predictability,
    summarise_predictability,
)

CALIBRATION_LEVELS = (0.5, 0.9, 0.95)


def heldout_tables(
    X: pd.DataFrame,
    batch: np.ndarray,
    harmonizer: Any,
    *,
    label: Any,
    covariates: pd.DataFrame | None,
    reference: Any,
    n_splits: int,
    random_state: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the per-split held-out scanner AUC table and its summary (raw and harmonised)."""
    name = harmonizer_name(harmonizer)
    table = scanner_predictability(
        X,
        batch,
        {name: harmonizer},
        y=label if uses_labels(harmonizer) else None,
        covariates=covariates,
        reference=reference,
        n_splits=n_splits,
        random_state=random_state,
    )
    return table, summarise_predictability(table)


def corrections_table(
    X: pd.DataFrame,
    batch: np.ndarray,
    harmonizer: Any,
    *,
    label: Any,
    covariates: pd.DataFrame | None,
    reference: Any,
) -> pd.DataFrame | None:
    """Return what ``harmonizer``, fitted on all rows, corrects (None when it cannot say)."""
    from sklearn.base import clone

    fitted = clone(harmonizer)
    kwargs: dict[str, Any] = {"batch": batch}
    if covariates is not None:
        kwargs["covariates"] = covariates
    if reference is not None and "reference" in _fit_parameters(fitted):
        kwargs["reference"] = np.asarray(reference, dtype=bool)
    fitted.fit(X, label if uses_labels(fitted) else None, **kwargs)
    for method in ("correction_table", "site_table", "parameters_table"):
        if hasattr(fitted, method):
            return getattr(fitted, method)()
    table = getattr(fitted, "batch_effect_table_", None)
    return None if table is None else table.copy()


def normative_calibration(
    X: pd.DataFrame,
    batch: np.ndarray,
    model: Any,
    *,
    covariates: pd.DataFrame | None,
    reference: Any,
    n_splits: int,
    random_state: int,
) -> pd.DataFrame:
    """Return, per site, how standard the z-scores of held-out reference rows are.

    The model is fitted on the reference rows of one random half and scores the reference
    rows of the other half; the z-scores of all splits are pooled per site.
    """
    from sklearn.base import clone

    mask = np.ones(len(batch), dtype=bool) if reference is None else np.asarray(reference, bool)
    rows = np.flatnonzero(mask)
    z_parts, site_parts = [], []
    for first, second in half_splits(batch[rows], n_splits=n_splits, random_state=random_state):
        fit_rows, test_rows = rows[first], rows[second]
        kwargs: dict[str, Any] = {"batch": batch[fit_rows]}
        apply: dict[str, Any] = {"batch": batch[test_rows]}
        if covariates is not None:
            kwargs["covariates"] = covariates.iloc[fit_rows]
            apply["covariates"] = covariates.iloc[test_rows]
        fitted = clone(model).fit(X.iloc[fit_rows], **kwargs)
        z = fitted.zscores(X.iloc[test_rows], **apply).to_numpy()
        z_parts.append(z.ravel())
        site_parts.append(np.repeat(batch[test_rows], z.shape[1]))
    z_all, sites = np.concatenate(z_parts), np.concatenate(site_parts)
    out = []
    for site in sorted(pd.unique(sites), key=str):
        values = z_all[(sites == site) & np.isfinite(z_all)]
        row = {
            "site": str(site),
            "n_values": int(values.size),
            "mean_z": float(values.mean()),
            "sd_z": float(values.std(ddof=1)),
        }
        for level in CALIBRATION_LEVELS:
            inside = np.abs(values) < stats.norm.isf((1.0 - level) / 2.0)
            row[f"coverage_{round(100 * level)}"] = float(inside.mean())
        out.append(row)
    return pd.DataFrame(out)


def mode_description(harmonizer: Any, label: Any) -> str:
    """Return one sentence naming the harmonisation mode."""
    name = type(harmonizer).__name__
    if name == "NormativeModel":
        return (
            "NormativeModel: site effects and covariate curves fitted on reference rows only; "
            "outputs are deviations from the reference population"
        )
    if name == "ShrinkageComBat":
        with_labels = label is not None and getattr(harmonizer, "outcome", "auto") is not False
        return "ShrinkageComBat: location/scale corrections shrunk by James-Stein factors" + (
            "; training labels in the design (outcome kept)" if with_labels else ""
        )
    if name == "SelectiveComBat":
        return "SelectiveComBat: ComBat on features with a significant batch effect"
    return f"{name}"


def harmonizer_name(harmonizer: Any) -> str:
    """Return the label of a harmoniser in the held-out tables."""
    return type(harmonizer).__name__


def _fit_parameters(estimator: Any) -> set[str]:
    import inspect

    return set(inspect.signature(estimator.fit).parameters)


def uses_labels(harmonizer: Any) -> bool:
    """Whether the harmoniser puts training labels in its design (never at transform)."""
    return getattr(harmonizer, "outcome", False) is not False
