"""On the synthetic image cohort, the default harmoniser removes most of the scanner effect from
held-out lesions while the lesion-class signal survives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radharmony import default_harmonizer, extract_features, harmonization_report, make_cohort

SETTINGS = {"feature_classes": ["shape", "firstorder", "glcm", "glszm"]}


@pytest.fixture(scope="module")
def lesions(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cohort = make_cohort(60, 3, 5, tmp_path_factory.mktemp("image_cohort"))
    features = extract_features(cohort.manifest_path, settings=SETTINGS, n_jobs=2)
    labels = cohort.ground_truth[["subject_id", "lesion_id", "lesion_class"]]
    return features.merge(labels, on=["subject_id", "lesion_id"])


def _features(lesions: pd.DataFrame) -> pd.DataFrame:
    X = lesions.loc[:, "centroid_z_mm":].drop(columns=["centroid_z_mm", "lesion_class"])
    return X.loc[:, X.std() > 0]


def _class_auc(X: pd.DataFrame, lesions: pd.DataFrame) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    folds = GroupKFold(n_splits=5)
    y = (lesions["lesion_class"] == "malignant").to_numpy()
    scores = cross_val_score(model, X, y, groups=lesions["subject_id"], cv=folds, scoring="roc_auc")
    return float(np.mean(scores))


@pytest.mark.slow
def test_default_harmoniser_on_held_out_lesions(lesions: pd.DataFrame) -> None:
    X = _features(lesions)
    batch = lesions["scanner"].to_numpy()
    covariates = lesions[["age", "sex"]]
    harmonizer = default_harmonizer()
    after = harmonizer.fit_transform(X, batch=batch, covariates=covariates)
    report = harmonization_report(
        X, after, batch, covariates=covariates, harmonizer=default_harmonizer(), figures=False
    )
    rows = report.scanner_prediction.set_index("data")["balanced_accuracy"]
    before = rows.iloc[0]
    held_out = rows[report.scanner_prediction.set_index("data")["held_out_harmonisation"]].iloc[0]
    chance = 1 / 3
    # Raw features identify the scanner almost perfectly; harmonised held-out lesions much less.
    # Chance itself is out of reach by design: the class mix differs between scanners, so
    # class-related features still carry some information on the scanner.
    assert before > 0.9
    assert held_out < chance + 0.25
    assert held_out < before - 0.4
    # The biological signal survives harmonisation (covariates preserved, target never used).
    # Part of the raw AUC comes from the class mix differing by scanner (the scanner predicts
    # the class); removing scanner effects without the target as a covariate removes that part
    # too, so a small drop is expected and honest.
    raw_auc, harmonised_auc = _class_auc(X, lesions), _class_auc(after, lesions)
    assert harmonised_auc > 0.8
    assert harmonised_auc > raw_auc - 0.1
