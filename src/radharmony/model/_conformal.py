"""Conformal prediction sets from class probabilities (LAC score, marginal or per class).

Split conformal (:func:`conformal_thresholds`) needs calibration cases the model never saw.
CV+ (:func:`cv_plus_sets`; Romano, Sesia and Candes 2020, after Barber et al. 2021) uses every
training patient once: each of K models is fitted without one fold and scores that fold, and a
new case's score under each model is compared with the scores of the fold that model left out.

Guarantee of CV+: if the training patients and the new patient are exchangeable, the set covers
the new patient's true class with probability at least
``1 - 2 alpha - min(2 (1 - 1/K) / (n/K + 1), (1 - K/n) / (K + 1))`` for ``n`` patients in ``K``
folds (Barber et al. 2021, Theorem 4). That bound is a worst case; coverage is usually close to
``1 - alpha``, which the outer cross-validation of :func:`radharmony.evaluate` measures. With
several lesions per patient the unit is the patient: its score is the largest score of its
lesions, so the guarantee holds for all lesions of a new patient at once.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def conformal_quantile(scores: ArrayLike, level: float) -> float:
    """Return the finite-sample conformal quantile of non-conformity scores.

    The threshold is the ``ceil((n + 1) * level)``-th smallest of the ``n`` calibration scores.
    Split conformal: if the calibration cases were not used to fit the model and a new case is
    exchangeable with them, its set covers its class with probability at least ``level``. When that rank
    exceeds ``n`` (too few calibration cases for the level) the threshold is ``+inf``: every
    class enters the set.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Non-conformity scores of the calibration cases.
    level : float
        Nominal coverage in (0, 1), e.g. 0.9.

    Returns
    -------
    float
        The threshold.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"conformal level must be in (0, 1), got {level}")
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((scores.size + 1) * level)
    if rank > scores.size:
        return float("inf")
    return float(scores[rank - 1])


def lac_scores(proba: ArrayLike, true_index: ArrayLike) -> NDArray[np.float64]:
    """Return the LAC non-conformity score ``1 - p(true class)`` of each case."""
    proba = np.asarray(proba, dtype=float)
    true_index = np.asarray(true_index, dtype=int)
    return 1.0 - proba[np.arange(len(proba)), true_index]


def conformal_thresholds(
    proba: ArrayLike, true_index: ArrayLike, level: float, *, mondrian: bool = False
) -> NDArray[np.float64]:
    """Return one threshold per class from calibration probabilities and true classes.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
        Probabilities of calibration cases not used to fit the model.
    true_index : array-like of shape (n,)
        Column index of each case's true class.
    level : float
        Nominal coverage.
    mondrian : bool
        If True, thresholds are computed per true class (class-conditional coverage);
        otherwise one marginal threshold is shared by all classes.

    Returns
    -------
    ndarray of shape (n_classes,)
        Threshold of each class.
    """
    proba = np.asarray(proba, dtype=float)
    true_index = np.asarray(true_index, dtype=int)
    scores = lac_scores(proba, true_index)
    n_classes = proba.shape[1]
    if not mondrian:
        return np.full(n_classes, conformal_quantile(scores, level))
    return np.array([conformal_quantile(scores[true_index == k], level) for k in range(n_classes)])


def prediction_sets(proba: ArrayLike, thresholds: ArrayLike) -> NDArray[np.bool_]:
    """Return the conformal set of each case: class ``k`` is in when ``1 - p_k <= threshold_k``."""
    proba = np.asarray(proba, dtype=float)
    return (1.0 - proba) <= np.asarray(thresholds, dtype=float)[None, :]


def coverage_table(
    sets: ArrayLike,
    true_index: ArrayLike,
    classes: ArrayLike,
    *,
    sites: ArrayLike | None = None,
    refer: ArrayLike | None = None,
) -> pd.DataFrame:
    """Return empirical coverage, mean set size and refer rate overall, per class and per site.

    Parameters
    ----------
    sets : array-like of bool, shape (n, n_classes)
        Prediction sets.
    true_index : array-like of shape (n,)
        Column index of each case's true class.
    classes : array-like of shape (n_classes,)
        Class labels (used to name the per-class rows).
    sites : array-like of shape (n,), optional
        Site of each case.
    refer : array-like of bool, optional
        Referral flag of each case (default: the set is not a single class).

    Returns
    -------
    pandas.DataFrame
        Columns ``stratum`` (``"overall"``, ``"class"`` or ``"site"``), ``value``, ``n``,
        ``coverage``, ``mean_set_size``, ``refer_rate`` (share of cases referred).
    """
    sets = np.asarray(sets, dtype=bool)
    true_index = np.asarray(true_index, dtype=int)
    covered = sets[np.arange(len(sets)), true_index]
    size = sets.sum(axis=1)
    referred = size != 1 if refer is None else np.asarray(refer, dtype=bool)
    strata: list[tuple[str, str, NDArray[np.bool_]]] = [("overall", "all", np.ones_like(covered))]
    strata += [("class", str(c), true_index == k) for k, c in enumerate(np.asarray(classes))]
    if sites is not None:
        sites = np.asarray(sites).astype(str)
        strata += [("site", s, sites == s) for s in sorted(set(sites))]
    rows = [
        {
            "stratum": stratum,
            "value": value,
            "n": int(mask.sum()),
            "coverage": float(covered[mask].mean()) if mask.any() else float("nan"),
            "mean_set_size": float(size[mask].mean()) if mask.any() else float("nan"),
            "refer_rate": float(referred[mask].mean()) if mask.any() else float("nan"),
        }
        for stratum, value, mask in strata
    ]
    return pd.DataFrame(rows)


def patient_units(
    lac: ArrayLike, true_index: ArrayLike, groups: ArrayLike, *, mondrian: bool
) -> tuple[NDArray[np.float64], NDArray[np.int_], NDArray[np.int_]]:
    """Aggregate lesion scores into exchangeable calibration units (patients).

    Returns ``(scores, unit_class, first_row)``: marginal units are patients with the largest
    score of their lesions (``unit_class`` -1); Mondrian units are (patient, class) pairs with
    the largest score of that patient's lesions of that class. ``first_row`` is a row of each
    unit.
    """
    lac = np.asarray(lac, dtype=float)
    true_index = np.asarray(true_index, dtype=int)
    codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
    keys = codes * (int(true_index.max()) + 2) + (true_index + 1 if mondrian else 0)
    frame = pd.DataFrame({"key": keys, "lac": lac, "row": np.arange(lac.size)})
    agg = frame.groupby("key", sort=True).agg(lac=("lac", "max"), row=("row", "min"))
    rows = agg["row"].to_numpy()
    unit_class = true_index[rows] if mondrian else np.full(rows.size, -1)
    return agg["lac"].to_numpy(dtype=float), unit_class, rows


def cv_plus_sets(
    test_scores: list[NDArray[np.float64]],
    unit_scores: list[NDArray[np.float64]],
    unit_classes: list[NDArray[np.int_]],
    level: float,
) -> NDArray[np.bool_]:
    """Return CV+ prediction sets.

    Parameters
    ----------
    test_scores : list of ndarray of shape (n_test, n_classes)
        For each of the K models, the LAC score ``1 - p_k(class | case)`` of every test case
        and candidate class under model ``k``.
    unit_scores : list of ndarray
        For each model, the scores of the calibration units of the fold it left out.
    unit_classes : list of ndarray
        Class of each unit (-1 for marginal units; a class index for Mondrian units).
    level : float
        Nominal coverage ``1 - alpha``.

    Returns
    -------
    ndarray of bool, shape (n_test, n_classes)
        Class ``c`` is in the set of a case when fewer than ``level * (n + 1)`` units ``i``
        have a score below the case's score for ``c`` under the model that left ``i`` out
        (``n``: all units, or the units of class ``c`` with Mondrian units).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"conformal level must be in (0, 1), got {level}")
    n_test, n_classes = test_scores[0].shape
    mondrian = bool(np.concatenate(unit_classes).min() >= 0)
    counts = np.zeros((n_test, n_classes))
    totals = np.zeros(n_classes)
    for scores, units, classes in zip(test_scores, unit_scores, unit_classes, strict=True):
        for c in range(n_classes):
            pool = np.sort(units[classes == c]) if mondrian else np.sort(units)
            counts[:, c] += np.searchsorted(pool, scores[:, c], side="left")
            totals[c] += pool.size
    return counts < level * (totals + 1.0)


def choose_mondrian(true_index: ArrayLike, groups: ArrayLike, level: float) -> bool:
    """Return True when class-conditional (Mondrian) sets should be used.

    Marginal sets cover the classes on average, so a rare class can be covered far below the
    nominal level. Mondrian sets are chosen when the class shares are imbalanced (the rarest
    class holds less than 40 % of the patients for two classes, less than ``0.8 / K`` for
    ``K`` classes) and every class has enough patients for a class-wise set that is not
    every class by construction: at least ``ceil(2 / alpha)`` (20 at 90 %).
    """
    true_index = np.asarray(true_index, dtype=int)
    patients = pd.Series(np.asarray(groups)).groupby(true_index).nunique()
    n_classes = int(true_index.max()) + 1
    share = patients / patients.sum()
    enough = patients.min() >= math.ceil(2.0 / (1.0 - level) - 1e-9)
    return bool(len(patients) == n_classes and share.min() < 0.8 / n_classes and enough)
