"""Design matrix of the ComBat model: batch indicators, categorical and continuous covariates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from radharmony.errors import HarmonizationError

# Above this condition number (columns scaled to unit norm) the batch and covariate effects
# cannot be told apart: neuroCombat then returns silently wrong values.
MAX_CONDITION = 1e8
_MAX_CONDITION = MAX_CONDITION


@dataclass
class DesignSpec:
    """What is needed to rebuild the training design for new samples."""

    batch_levels: list[Any]
    ref_index: int | None
    categorical: dict[str, list[Any]] = field(default_factory=dict)
    continuous: list[str] = field(default_factory=list)
    splines: dict[str, Any] = field(default_factory=dict)
    column_names: list[str] = field(default_factory=list)

    @property
    def n_batch(self) -> int:
        """Number of batches seen at fit."""
        return len(self.batch_levels)

    @property
    def covariate_names(self) -> list[str]:
        """Covariate columns the design uses, in design order."""
        return list(self.categorical) + self.continuous


def sorted_levels(values: Sequence[Any] | np.ndarray) -> list[Any]:
    """Return the distinct values, sorted (by their text when types are mixed)."""
    unique = list(pd.unique(pd.Series(np.asarray(values, dtype=object))))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def batch_codes(batch: np.ndarray, levels: list[Any], *, what: str = "batch") -> np.ndarray:
    """Return integer codes of ``batch`` in ``levels``; raise on a level not seen at fit."""
    lookup = {level: i for i, level in enumerate(levels)}
    codes = np.fromiter((lookup.get(b, -1) for b in batch), dtype=int, count=len(batch))
    if np.any(codes < 0):
        unseen = sorted_levels(np.asarray(batch, dtype=object)[codes < 0])
        raise HarmonizationError(
            f"{what} value(s) {unseen} were not seen when ComBat was fitted (known: {levels}). "
            "ComBat can only correct batches it has estimated; refit including samples of "
            "these batches."
        )
    return codes


def infer_covariate_types(
    covariates: pd.DataFrame,
    categorical: Sequence[str] | None,
    continuous: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """Split covariate columns into categorical and continuous (dtype decides when not given)."""
    categorical = list(categorical or [])
    continuous = list(continuous or [])
    for name in categorical + continuous:
        if name not in covariates.columns:
            raise HarmonizationError(
                f"covariate {name!r} is listed in categorical/continuous but is not a column of "
                f"covariates (columns: {list(covariates.columns)})."
            )
    for name in covariates.columns:
        if name in categorical or name in continuous:
            continue
        is_number = pd.api.types.is_numeric_dtype(covariates[name]) and not (
            pd.api.types.is_bool_dtype(covariates[name])
        )
        (continuous if is_number else categorical).append(name)
    return categorical, continuous


def _continuous_values(covariates: pd.DataFrame, name: str) -> np.ndarray:
    """Return a continuous covariate as finite float64, or raise naming the column."""
    try:
        values = np.asarray(covariates[name], dtype=float)
    except (TypeError, ValueError) as err:
        raise HarmonizationError(
            f"continuous covariate {name!r} holds non-numeric values; declare it in "
            "categorical=[...] or convert it to numbers."
        ) from err
    if not np.all(np.isfinite(values)):
        raise HarmonizationError(
            f"continuous covariate {name!r} has {int(np.sum(~np.isfinite(values)))} missing or "
            "infinite value(s); impute or drop those rows before harmonising."
        )
    return values


def fit_design_spec(
    batch_levels: list[Any],
    ref_index: int | None,
    covariates: pd.DataFrame | None,
    categorical: Sequence[str] | None,
    continuous: Sequence[str] | None,
    spline_covariates: Sequence[str] | None,
    spline_knots: int,
) -> DesignSpec:
    """Learn covariate levels and spline bases from the training covariates."""
    spec = DesignSpec(batch_levels=batch_levels, ref_index=ref_index)
    spec.column_names = [f"batch[{level}]" for level in batch_levels]
    if covariates is None or covariates.shape[1] == 0:
        if spline_covariates:
            raise HarmonizationError("spline_covariates were given but no covariates were passed.")
        return spec
    cat_cols, num_cols = infer_covariate_types(covariates, categorical, continuous)
    for name in cat_cols:
        column = covariates[name]
        if column.isna().any():
            raise HarmonizationError(
                f"categorical covariate {name!r} has {int(column.isna().sum())} missing value(s); "
                "impute them or drop those rows before harmonising."
            )
        levels = sorted_levels(column.to_numpy(dtype=object))
        spec.categorical[name] = levels
        spec.column_names += [f"{name}[{level}]" for level in levels[1:]]
    spec.continuous = num_cols
    for name in spline_covariates or []:
        if name not in num_cols:
            raise HarmonizationError(
                f"spline covariate {name!r} must be a continuous covariate (continuous: {num_cols})."
            )
        from sklearn.preprocessing import SplineTransformer

        # No bias column: the batch indicators already span the intercept.
        basis = SplineTransformer(
            n_knots=spline_knots, degree=3, extrapolation="linear", include_bias=False
        )
        basis.fit(_continuous_values(covariates, name).reshape(-1, 1))
        spec.splines[name] = basis
    for name in num_cols:
        if name in spec.splines:
            n_basis = spec.splines[name].n_features_out_
            spec.column_names += [f"{name}_spline{i}" for i in range(n_basis)]
        else:
            spec.column_names.append(name)
    return spec


def _categorical_block(values: pd.Series, name: str, levels: list[Any]) -> np.ndarray:
    """Return the drop-first one-hot block of a categorical covariate."""
    codes = batch_codes(values.to_numpy(dtype=object), levels, what=f"covariate {name!r}")
    return np.eye(len(levels))[codes][:, 1:]


def build_design(
    spec: DesignSpec, codes: np.ndarray, covariates: pd.DataFrame | None
) -> tuple[np.ndarray, list[tuple[str, slice]]]:
    """Return the design matrix and, for each covariate, the slice of its columns."""
    n = codes.shape[0]
    batch_block = np.zeros((n, spec.n_batch))
    batch_block[np.arange(n), codes] = 1.0
    if spec.ref_index is not None:
        # R's parametrisation: the reference column is the intercept, the others are contrasts.
        batch_block[:, spec.ref_index] = 1.0
    blocks, slices, start = [batch_block], [], spec.n_batch
    if spec.covariate_names and covariates is None:
        raise HarmonizationError(
            f"ComBat was fitted with covariates {spec.covariate_names}; pass the same columns "
            "as covariates= (each sample's own values are needed to restore its covariate effect)."
        )
    for name, levels in spec.categorical.items():
        blocks.append(_categorical_block(_column(covariates, name), name, levels))
    for name in spec.continuous:
        values = _continuous_values(covariates, name)
        if name in spec.splines:
            blocks.append(spec.splines[name].transform(values.reshape(-1, 1)))
        else:
            blocks.append(values.reshape(-1, 1))
    for name, block in zip(spec.covariate_names, blocks[1:], strict=True):
        slices.append((name, slice(start, start + block.shape[1])))
        start += block.shape[1]
    return np.hstack(blocks), slices


def _column(covariates: pd.DataFrame | None, name: str) -> pd.Series:
    """Return a covariate column or raise naming the missing column."""
    if covariates is None or name not in covariates.columns:
        present = [] if covariates is None else list(covariates.columns)
        raise HarmonizationError(
            f"covariate {name!r} used at fit is missing from covariates (columns: {present})."
        )
    return covariates[name]


def check_identifiable(design: np.ndarray, n_batch: int, slices: list[tuple[str, slice]]) -> None:
    """Raise when a covariate is (nearly) determined by the batch or by other covariates."""
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    scaled = design / norms
    if np.linalg.cond(scaled) < _MAX_CONDITION:
        return
    culprits = []
    for name, cols in slices:
        sub = np.hstack([scaled[:, :n_batch], scaled[:, cols]])
        if np.linalg.cond(sub) >= _MAX_CONDITION:
            culprits.append(name)
    if culprits:
        raise HarmonizationError(
            f"covariate(s) {culprits} are (nearly) determined by the batch, e.g. each batch holds "
            "a single level: ComBat cannot tell their effect from the scanner effect and would "
            "erase that signal. Harmonisation cannot preserve it with these data; remove the "
            "covariate only if losing its signal is acceptable, or add batches that mix its levels."
        )
    raise HarmonizationError(
        f"the covariates {[name for name, _ in slices]} are collinear with each other (design "
        "condition number above 1e8); drop redundant columns."
    )
