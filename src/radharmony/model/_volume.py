"""Volume-confound check: does the signature beat lesion volume alone?"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from radharmony.model._metrics import _clusters_and_strata, binary_auc, delong_test

#: Column names (exact, case-insensitive) recognised as lesion volume, in priority order.
VOLUME_NAMES: tuple[str, ...] = ("lesion_volume_mm3", "volume_mm3", "volume", "morph_volume")
#: Name endings recognised as lesion volume (pyradiomics and IBSI names), in priority order.
VOLUME_SUFFIXES: tuple[str, ...] = (
    "original_shape_voxelvolume",
    "original_shape_meshvolume",
    "shape_voxelvolume",
    "shape_meshvolume",
    "morph_volume",
)
#: |Spearman rho| with volume above which a selected feature is reported as a volume surrogate.
SURROGATE_RHO = 0.8


class VolumeConfoundWarning(UserWarning):
    """The signature does not beat a volume-only model: it may be volume in disguise."""


class VolumeCheckSkippedWarning(UserWarning):
    """The volume-confound check could not run (no volume column was found or given)."""


@dataclass
class VolumeCheck:
    """Result of the volume-confound check.

    Attributes
    ----------
    volume_column : str
        Name of the volume variable.
    signature_auc, volume_auc : float
        Out-of-fold ROC AUC of the signature and of a volume-only logistic model on the same
        outer folds.
    difference : float
        ``signature_auc - volume_auc``.
    p_value : float
        One-sided p-value that the signature beats volume (DeLong for binary targets with one
        lesion per patient; otherwise a z-test with the standard error of a paired,
        class-stratified patient bootstrap).
    test : str
        ``"delong"`` or ``"patient_bootstrap"``.
    beats_volume : bool
        True when the signature is significantly better than volume (``p_value < alpha``).
    correlations : pandas.DataFrame
        Spearman rho (and p-value) of each selected feature with volume, with the share of outer
        folds that selected it.
    message : str
        Human-readable conclusion (the warning text when the check fires).
    """

    volume_column: str
    signature_auc: float
    volume_auc: float
    difference: float
    p_value: float
    test: str
    beats_volume: bool
    correlations: pd.DataFrame = field(repr=False)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the scalar fields and the surrogate features as JSON-ready values."""
        surrogates = self.correlations.index[
            self.correlations["abs_spearman_rho"] >= SURROGATE_RHO
        ].tolist()
        return {
            "volume_column": self.volume_column,
            "volume_only_roc_auc": self.volume_auc,
            "signature_minus_volume_auc": self.difference,
            "volume_test": self.test,
            "volume_p_value": self.p_value,
            "beats_volume": self.beats_volume,
            "volume_surrogate_features": surrogates,
            "volume_message": self.message,
        }


def find_volume_column(columns: Sequence[str]) -> str | None:
    """Return the column that holds lesion volume, or None.

    Exact names in ``VOLUME_NAMES`` win over name endings in ``VOLUME_SUFFIXES``; among several
    matches of equal priority the first column wins.
    """
    lowered = {str(c).lower(): str(c) for c in reversed(list(columns))}
    for name in VOLUME_NAMES:
        if name in lowered:
            return lowered[name]
    for suffix in VOLUME_SUFFIXES:
        for column in columns:
            if str(column).lower().endswith(suffix):
                return str(column)
    return None


def volume_only_oof(
    volume: ArrayLike,
    target: ArrayLike,
    splits: Sequence[tuple[NDArray[np.int_], NDArray[np.int_]]],
    classes: ArrayLike,
) -> NDArray[np.float64]:
    """Return out-of-fold probabilities of a logistic model on log-volume, on given splits.

    A missing volume is imputed with the median of the fold's training rows (never with a
    value computed on test rows).
    """
    volume = np.asarray(volume, dtype=float).reshape(-1, 1)
    positive = bool(np.all(volume[np.isfinite(volume)] > 0))
    target = np.asarray(target)
    proba = np.full((len(target), len(np.asarray(classes))), np.nan)
    for train, test in splits:
        model = make_pipeline(
            SimpleImputer(strategy="median"),
            FunctionTransformer(np.log if positive else None),
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=1000),
        )
        model.fit(volume[train], target[train])
        column = np.searchsorted(np.asarray(classes), model.classes_)
        proba[np.ix_(test, column)] = model.predict_proba(volume[test])
    return np.nan_to_num(proba, nan=0.0)


def compare_with_volume(
    y_true: ArrayLike,
    signature_proba: ArrayLike,
    volume_proba: ArrayLike,
    classes: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    alpha: float = 0.05,
    n_resamples: int = 1000,
    random_state: int = 0,
) -> tuple[float, float, float, str]:
    """Return (signature AUC, volume AUC, one-sided p-value, test name).

    Binary targets with one row per patient use DeLong's test. When patients contribute
    several lesions, lesions are not independent and DeLong's variance would shrink with every
    duplicated lesion: the standard error of the AUC difference is then estimated by a paired,
    class-stratified patient bootstrap and the one-sided p-value is ``Phi(-difference / se)``.
    Multi-class targets use the same patient bootstrap on the macro one-vs-rest AUC.
    """
    classes = np.asarray(classes)
    y_true = np.asarray(y_true)
    signature_proba = np.asarray(signature_proba, dtype=float)
    volume_proba = np.asarray(volume_proba, dtype=float)
    clustered = groups is not None and not pd.Series(np.asarray(groups)).is_unique
    if classes.size == 2 and not clustered:
        positive = y_true == classes[1]
        result = delong_test(positive, signature_proba[:, 1], volume_proba[:, 1])
        return result["auc_a"], result["auc_b"], result["p_greater"], "delong"
    onehot = (y_true[:, None] == classes[None, :]).astype(float)
    sig_auc = _macro_auc(onehot, signature_proba)
    vol_auc = _macro_auc(onehot, volume_proba)
    clusters, strata = _clusters_and_strata(onehot, groups)
    rng = np.random.default_rng(random_state)
    differences = np.empty(n_resamples)
    chosen = np.empty(len(clusters), dtype=np.int64)
    for b in range(n_resamples):
        for members in strata:
            chosen[members] = members[rng.integers(0, members.size, members.size)]
        rows = np.concatenate([clusters[c] for c in chosen])
        differences[b] = _macro_auc(onehot[rows], signature_proba[rows]) - _macro_auc(
            onehot[rows], volume_proba[rows]
        )
    se = float(np.nanstd(differences, ddof=1))
    difference = sig_auc - vol_auc
    if se > 0:
        p_value = float(stats.norm.sf(difference / se))
    else:
        p_value = 0.5 if difference == 0 else float(difference < 0)
    return sig_auc, vol_auc, p_value, "patient_bootstrap"


def volume_correlations(
    features: pd.DataFrame, volume: ArrayLike, selection_frequency: pd.Series
) -> pd.DataFrame:
    """Return Spearman correlation with volume of every feature with a non-zero frequency."""
    volume = np.asarray(volume, dtype=float)
    rows = []
    for name, frequency in selection_frequency[selection_frequency > 0].items():
        column = pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(column) & np.isfinite(volume)
        if finite.sum() < 3 or np.ptp(column[finite]) == 0:
            rho, p_value = float("nan"), float("nan")
        else:
            rho, p_value = stats.spearmanr(column[finite], volume[finite])
        rows.append(
            {
                "feature": name,
                "selection_frequency": float(frequency),
                "spearman_rho": float(rho),
                "abs_spearman_rho": abs(float(rho)),
                "p_value": float(p_value),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["feature", "selection_frequency", "spearman_rho", "abs_spearman_rho", "p_value"],
    )
    return table.set_index("feature").sort_values("abs_spearman_rho", ascending=False)


def volume_message(
    signature_auc: float, volume_auc: float, p_value: float, test: str, alpha: float
) -> tuple[bool, str]:
    """Return (beats_volume, conclusion) and warn with :class:`VolumeConfoundWarning` if not."""
    beats = bool(p_value < alpha and signature_auc > volume_auc)
    if beats:
        return True, (
            f"the signature (AUC {signature_auc:.3f}) beats a volume-only model "
            f"(AUC {volume_auc:.3f}; {test} one-sided p={p_value:.3g})"
        )
    message = (
        f"the signature (AUC {signature_auc:.3f}) does not beat a volume-only model "
        f"(AUC {volume_auc:.3f}; {test} one-sided p={p_value:.3g} >= {alpha}): it may be a "
        "surrogate of lesion volume; report the volume-only model alongside it"
    )
    warnings.warn(message, VolumeConfoundWarning, stacklevel=5)
    return False, message


def _macro_auc(onehot: NDArray[np.float64], proba: NDArray[np.float64]) -> float:
    return float(np.nanmean([binary_auc(onehot[:, k], proba[:, k]) for k in range(proba.shape[1])]))
