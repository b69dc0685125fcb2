"""CV+ conformal sets: the formula by hand, patient units, and coverage on fresh patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radharmony.datasets import make_feature_table
from radharmony.model import (
    ConformalEnsemble,
    build_pipeline,
    choose_mondrian,
    cv_plus_sets,
    evaluate,
    patient_units,
)

CHEAP = {"model": "logistic_l2", "inner_cv": 3, "n_bootstrap": 50, "volume": None}


def _features(table: pd.DataFrame) -> pd.DataFrame:
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    features.attrs = {}
    return features


def test_cv_plus_set_by_hand() -> None:
    # Two models; the units each left out have scores (0.1, 0.5) and (0.2, 0.3, 0.9): n = 5.
    units = [np.array([0.1, 0.5]), np.array([0.2, 0.3, 0.9])]
    classes = [np.full(2, -1), np.full(3, -1)]
    # One case, two candidate classes, scored by each model.
    test = [np.array([[0.4, 0.95]]), np.array([[0.25, 0.6]])]
    # Class 0: model 0 counts 1 unit below 0.4, model 1 counts 1 below 0.25 -> 2 < 0.8*6=4.8.
    # Class 1: 2 below 0.95 + 2 below 0.6 -> 4 < 4.8 (in); at level 0.6: 4 >= 3.6 (out).
    sets = cv_plus_sets(test, units, classes, 0.8)
    np.testing.assert_array_equal(sets, [[True, True]])
    np.testing.assert_array_equal(cv_plus_sets(test, units, classes, 0.6), [[True, False]])


def test_mondrian_cv_plus_compares_within_the_class() -> None:
    units = [np.array([0.1, 0.9, 0.2, 0.3])]
    classes = [np.array([0, 0, 1, 1])]
    test = [np.array([[0.5, 0.5]])]
    # Class 0 units below 0.5: 1 of n0=2 -> 1 < 0.5*3; class 1 units below 0.5: 2 >= 1.5.
    np.testing.assert_array_equal(cv_plus_sets(test, units, classes, 0.5), [[True, False]])


def test_patient_units_take_the_worst_lesion_of_each_patient() -> None:
    lac = np.array([0.1, 0.7, 0.3, 0.2, 0.6])
    true_index = np.array([0, 1, 1, 0, 0])
    groups = np.array(["a", "a", "b", "c", "c"])
    scores, unit_class, _ = patient_units(lac, true_index, groups, mondrian=False)
    np.testing.assert_array_equal(scores, [0.7, 0.3, 0.6])
    assert (unit_class == -1).all()
    scores, unit_class, _ = patient_units(lac, true_index, groups, mondrian=True)
    # (a, 0) 0.1, (a, 1) 0.7, (b, 1) 0.3, (c, 0) 0.6
    assert sorted(zip(unit_class.tolist(), scores.tolist(), strict=True)) == [
        (0, 0.1),
        (0, 0.6),
        (1, 0.3),
        (1, 0.7),
    ]


def test_mondrian_is_chosen_for_imbalanced_classes_with_enough_patients() -> None:
    groups = np.arange(200)
    balanced = np.arange(200) % 2
    rare = (np.arange(200) < 30).astype(int)
    too_rare = (np.arange(200) < 12).astype(int)
    assert not choose_mondrian(balanced, groups, 0.9)
    assert choose_mondrian(rare, groups, 0.9)
    assert not choose_mondrian(too_rare, groups, 0.9)  # 12 < ceil(2 / 0.1) = 20 patients


@pytest.fixture(scope="module")
def fitted() -> tuple[ConformalEnsemble, pd.DataFrame, np.ndarray]:
    table = make_feature_table(160, n_features=12, scanner_shift=0.0, scanner_scale=0.0, seed=4)
    model = ConformalEnsemble(
        build_pipeline("logistic_l2", calibration=None, n_features=5),
        param_grid={},
        n_folds=5,
        mondrian=False,
    )
    model.fit(_features(table), table["label"].to_numpy())
    return model, _features(table), table["label"].to_numpy()


def test_deployed_model_covers_fresh_patients_at_the_nominal_level(fitted) -> None:
    # The defect: thresholds from inner models were shipped with a different (refitted) model
    # whose coverage was never measured. Here the deployed sets are checked on 3000 fresh,
    # exchangeable patients from the same simulation.
    model, _, _ = fitted
    fresh = make_feature_table(3000, n_features=12, scanner_shift=0.0, scanner_scale=0.0, seed=104)
    # Same class signal, same noise: only the draw differs.
    sets = model.conformal_sets(_features(fresh))
    truth = np.searchsorted(model.classes_, fresh["label"].to_numpy())
    coverage = sets[np.arange(len(sets)), truth].mean()
    assert 0.86 <= coverage <= 0.96
    assert 1 < sets.sum(axis=1).mean() < 1.5  # informative sets, not "every class"


def test_members_never_saw_the_fold_they_calibrate(fitted) -> None:
    model, X, y = fitted
    assert len(model.estimators_) == 5
    assert sum(u.size for u in model.unit_scores_) == len(y)  # one unit per patient
    # Each member's held-out probabilities are those of a model fitted without those rows:
    # refitting member 0 on all rows changes them.
    from sklearn.base import clone

    refit = clone(model.estimators_[0].pipeline_).fit(X, y)
    first_unit_rows = np.flatnonzero(model.held_out_proba_[:, 0] > 0)[:5]
    assert not np.allclose(
        refit.predict_proba(X.iloc[first_unit_rows]),
        model.estimators_[0].predict_proba(X.iloc[first_unit_rows]),
    )


@pytest.mark.slow
def test_coverage_simulation_within_the_guarantee() -> None:
    """Several seeds, several lesions per patient, imbalanced classes, harmonisation on."""
    harmonize = pytest.importorskip("radharmony.harmonize")
    level, covered, sizes = 0.9, [], []
    for seed in range(3):
        table = make_feature_table(300, n_features=12, seed=seed)
        rng = np.random.default_rng(seed)
        y = table["label"].to_numpy()
        # Imbalance: keep a quarter of the class-1 patients.
        keep = (y == 0) | (rng.random(len(y)) < 0.35)
        table = table[keep].reset_index(drop=True)
        X = _features(table)
        # Two or three lesions per patient: correlated copies of the patient's lesion.
        copies = rng.integers(2, 4, len(table))
        rows = np.repeat(np.arange(len(table)), copies)
        lesions = X.iloc[rows].reset_index(drop=True) + rng.normal(0, 0.3, (rows.size, 12))
        result = evaluate(
            lesions,
            table["label"].to_numpy()[rows],
            groups=table["subject_id"].to_numpy()[rows],
            batch=table["scanner"].to_numpy()[rows],
            harmonize=harmonize.ComBat(),
            conformal_level=level,
            model="logistic_l2",
            inner_cv=4,
            cv=4,
            n_bootstrap=50,
            volume=None,
        )
        oof = result.predictions
        # Patient-level statement: every lesion of the patient covered.
        per_patient = oof.groupby("group")["covered"].all()
        covered.append(per_patient.mean())
        sizes.append(oof["set_size"].mean())
        per_class = result.coverage.query("stratum == 'class'")["coverage"]
        assert result.mondrian  # imbalanced with enough patients: class-wise sets
        assert per_class.min() >= 1 - 2 * (1 - level) - 0.05
    # The worst-case guarantee is 1 - 2 alpha; the measured coverage is near 1 - alpha.
    assert min(covered) >= 1 - 2 * (1 - level)
    assert np.mean(covered) == pytest.approx(level, abs=0.05)
    assert np.mean(sizes) < 1.8
