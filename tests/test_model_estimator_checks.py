"""scikit-learn's estimator checks for every transformer and estimator of model/ and explain/."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from radharmony.model import (
    CalibratedPipeline,
    ConformalEnsemble,
    DomainCheck,
    DropCorrelated,
    DropNearConstant,
    L1Selector,
    MRMRSelector,
    UnivariateSelector,
    build_pipeline,
)

_TINY = "the checks' data sets have fewer patients per class than the ensemble's folds need"
_TABLE = "the ensemble takes a numeric feature table (missing values imputed, text refused)"

# Checks that cannot pass by design, each with the reason.
_EXPECTED = {
    "ConformalEnsemble": {
        "check_estimators_unfitted": "an unfitted ensemble has no members to ask",
        "check_estimators_empty_data_messages": _TABLE,
        "check_estimators_nan_inf": _TABLE,
        "check_classifier_data_not_an_array": _TINY,
        "check_supervised_y_2d": _TINY,
        "check_fit2d_1sample": _TINY,
        "check_fit2d_1feature": _TINY,
    },
    "CalibratedPipeline": {
        "check_fit2d_1sample": "calibration folds need several samples per class",
        "check_sample_weight_equivalence_on_dense_data": "no sample weights",
        "check_sample_weight_equivalence_on_sparse_data": "no sample weights",
        "check_classifiers_regression_target": "calibration folds refuse continuous targets",
        "check_supervised_y_2d": "scikit-learn's check expects a warning from the classifier",
        "check_requires_y_none": "raises its own fold-count error",
        "check_classifiers_train": "fold counts on the checks' tiny imbalanced data",
        "check_dtype_object": "the pipeline's imputer refuses object data",
        "check_estimators_nan_inf": "NaN are imputed by design",
        "check_classifier_data_not_an_array": "fold counts on the checks' tiny data",
    },
}


def _expected(estimator: object) -> dict[str, str]:
    return _EXPECTED.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [
        DropNearConstant(),
        DropCorrelated(),
        UnivariateSelector(k=2),
        MRMRSelector(k=2),
        L1Selector(k=2),
        DomainCheck(n_neighbors=2),
        CalibratedPipeline(build_pipeline("logistic_l2", calibration=None, n_features=2), cv=2),
        ConformalEnsemble(
            build_pipeline("logistic_l2", calibration=None, n_features=2),
            param_grid={},
            calibration="none",
            n_folds=2,
        ),
    ],
    expected_failed_checks=_expected,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)
