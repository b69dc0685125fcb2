"""Bad feature tables in harmonisation and modelling: a specific error or a tested fallback.

Each error test checks that the message names the offending column/scanner/class and says how
to fix it; each fallback test checks the numbers the fallback promises.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from radharmony import evaluate, explain, make_feature_table
from radharmony.errors import HarmonizationError, ModelError
from radharmony.harmonize import (
    ComBat,
    SelectiveComBat,
    default_harmonizer,
    harmonization_report,
)
from radharmony.model import build_pipeline

# Fast settings: a fixed grid point skips tuning; few bootstrap resamples.
_FAST = {"volume": None, "n_bootstrap": 20, "param_grid": {"select__k": [5]}, "inner_cv": 3}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_feature_table(60, n_features=8, seed=21)


def _features(table: pd.DataFrame) -> pd.DataFrame:
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    features.attrs = {}
    return features


# --- harmonisation -------------------------------------------------------------------------


@pytest.mark.parametrize("make", [ComBat, default_harmonizer], ids=["combat", "default"])
def test_a_single_batch_is_refused(table: pd.DataFrame, make) -> None:
    with pytest.raises(HarmonizationError, match=r"only one batch \(\['A'\]\).*harmonize=False"):
        make().fit(_features(table), batch=["A"] * len(table))


@pytest.mark.parametrize("make", [ComBat, default_harmonizer], ids=["combat", "default"])
def test_a_batch_of_one_sample_is_refused(table: pd.DataFrame, make) -> None:
    batch = table["scanner"].to_numpy().copy()
    batch[7] = "scanner_Z"
    with pytest.raises(
        HarmonizationError, match=r"\['scanner_Z'\] have fewer than 2 samples.*Merge"
    ):
        make().fit(_features(table), batch=batch)


def test_all_nan_and_infinite_columns_are_named(table: pd.DataFrame) -> None:
    X = _features(table)
    X["f01"] = np.nan
    X.loc[X.index[[2, 5]], "f04"] = [np.inf, np.nan]
    with pytest.raises(HarmonizationError) as caught:
        ComBat().fit(X, batch=table["scanner"])
    message = str(caught.value)
    assert "['f01'] hold no finite value (drop them" in message
    assert "['f04'] hold 2 NaN or infinite value(s) (impute or drop them)" in message


@pytest.mark.parametrize("make", [ComBat, default_harmonizer], ids=["combat", "default"])
def test_covariate_determined_by_batch_is_refused(table: pd.DataFrame, make) -> None:
    one_level_per_scanner = pd.DataFrame({"site_group": table["scanner"].str[-1]})
    with pytest.raises(HarmonizationError, match=r"\['site_group'\].*determined by the batch"):
        make().fit(_features(table), batch=table["scanner"], covariates=one_level_per_scanner)


def test_default_harmoniser_refuses_unseen_batch_and_level(table: pd.DataFrame) -> None:
    X, batch, cov = _features(table), table["scanner"], table[["sex"]]
    model = default_harmonizer().fit(X, batch=batch, covariates=cov)
    with pytest.raises(HarmonizationError, match=r"\['scanner_Q'\] were not seen.*refit"):
        model.transform(X.iloc[:2], batch=["scanner_Q", "scanner_A"], covariates=cov.iloc[:2])
    new = cov.iloc[:2].assign(sex=["F", "unknown"])
    with pytest.raises(HarmonizationError, match=r"covariate 'sex' value\(s\) \['unknown'\]"):
        model.transform(X.iloc[:2], batch=batch.iloc[:2], covariates=new)


def test_feature_constant_in_a_batch_is_passed_through_by_the_default(
    table: pd.DataFrame,
) -> None:
    X, batch = _features(table), table["scanner"]
    X["f06"] = np.where(batch == "scanner_B", 2.5, X["f06"])
    model = default_harmonizer()
    out = model.fit_transform(X, batch=batch)
    assert model.unadjusted_features_ == ["f06"]
    np.testing.assert_array_equal(out["f06"].to_numpy(), X["f06"].to_numpy())
    assert np.isfinite(out.to_numpy()).all()
    assert list(model.get_feature_names_out()) == list(X.columns)


def test_feature_constant_in_a_batch_is_passed_through(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"]
    X["f06"] = np.where(batch == "scanner_B", 2.5, X["f06"])
    model = SelectiveComBat(skew_threshold=None, alpha=1.0)
    out = model.fit_transform(X, batch=batch)
    # Documented fallback: ComBat leaves the feature unchanged and the selection skips it.
    assert model.combat_.unadjusted_features_ == ["f06"]
    assert "f06" not in model.selected_features_
    np.testing.assert_array_equal(out["f06"].to_numpy(), X["f06"].to_numpy())
    assert len(model.selected_features_) == X.shape[1] - 1  # alpha=1 selects every other one
    assert list(model.get_feature_names_out()) == list(X.columns)


def test_constant_columns_do_not_change_the_selection_of_the_others(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"]
    plain = SelectiveComBat().fit(X, batch=batch)
    padded = SelectiveComBat().fit(X.assign(zero=0.0, one=1.0), batch=batch)
    tested = padded.batch_effect_table_.set_index("feature")
    pd.testing.assert_series_equal(
        tested.loc[X.columns, "q_value"].rename_axis("feature"),
        plain.batch_effect_table_.set_index("feature")["q_value"],
        check_exact=True,
    )
    assert tested.loc[["zero", "one"], "q_value"].tolist() == [1.0, 1.0]
    assert np.isnan(tested.loc["zero", "kruskal_h"])


def test_report_uses_fewer_folds_than_asked_for_a_small_batch(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"].to_numpy().copy()
    batch[:3] = "scanner_small"
    after = ComBat().fit_transform(X, batch=batch)
    with pytest.warns(UserWarning, match="smallest scanner has 3 row"):
        report = harmonization_report(X, after, batch, cv=5, figures=False)
    # Documented fallback: folds = smallest batch size, so every fold holds each scanner.
    assert report.scanner_prediction["n_splits"].tolist() == [3, 3, 3]
    assert report.heldout is None


# --- modelling -----------------------------------------------------------------------------


def test_infinite_feature_values_are_refused(table: pd.DataFrame) -> None:
    X = _features(table)
    X.loc[X.index[4], "f03"] = -np.inf
    with pytest.raises(
        ModelError, match=r"\['f03'\] hold 1 infinite value\(s\) \(first in row 4\)"
    ):
        evaluate(X, table["label"], **_FAST)


def test_all_nan_column_warns_and_changes_nothing(table: pd.DataFrame) -> None:
    X, y, batch = _features(table), table["label"], table["scanner"]
    with pytest.warns(UserWarning, match=r"\['empty'\] have no value in any row"):
        padded = evaluate(X.assign(empty=np.nan), y, batch=batch, **_FAST)
    plain = evaluate(X, y, batch=batch, **_FAST)
    # Fallback: the column is imputed with 0 and dropped as constant in every fold, so the
    # results are those without it, bit for bit (harmonisation included).
    pd.testing.assert_frame_equal(padded.predictions, plain.predictions, check_exact=True)
    assert "empty" not in padded.final_features


def test_single_class_target_is_refused(table: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match=r"single class \[1\]; need at least two"):
        evaluate(_features(table), np.ones(len(table), dtype=int), **_FAST)


def test_fewer_patients_than_folds_is_refused(table: pd.DataFrame) -> None:
    X, y = _features(table).iloc[:8], np.array([0, 1] * 3 + [0, 0])
    with pytest.raises(
        ModelError, match=r"cv=5 needs at least 5 patients .* class 1 has 3\. Use cv=3"
    ):
        evaluate(X, y, **{**_FAST, "inner_cv": 2})
    with pytest.raises(
        ModelError, match=r"inner_cv=5 .* outer fold; class 0 has 4\. Use inner_cv=4"
    ):
        evaluate(_features(table).iloc[:16], [0, 1] * 8, cv=2, **{**_FAST, "inner_cv": 5})
    y_one = np.zeros(len(table), dtype=int)
    y_one[0] = 1
    with pytest.raises(ModelError, match=r"class 1 has 1\. .*add cases or drop that class"):
        evaluate(_features(table), y_one, **_FAST)


def test_class_confounded_with_scanner(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"]
    y = (batch == "scanner_A").astype(int).to_numpy()
    with pytest.raises(ModelError, match=r"every scanner holds a single class.*harmonize=False"):
        evaluate(X, y, batch=batch, **_FAST)
    with pytest.warns(UserWarning, match="every site holds a single class"):
        result = evaluate(X, y, batch=batch, harmonize=False, **_FAST)
    # The simulated features carry scanner shifts, so the "classifier" finds the scanner.
    assert result.metrics.loc["roc_auc", "estimate"] > 0.9


def test_scanners_unusable_by_combat_are_refused(table: pd.DataFrame) -> None:
    X, y = _features(table), table["label"]
    batch = table["scanner"].to_numpy().copy()
    batch[0] = "scanner_Z"
    with pytest.raises(ModelError, match=r"\['scanner_Z'\] have a single row.*harmonize=False"):
        evaluate(X, y, batch=batch, **_FAST)
    batch[1] = "scanner_Z"  # two rows: some training fold keeps only one of them
    with pytest.raises(
        HarmonizationError,
        match=r"while fitting outer fold \d: batch.*\['scanner_Z'\] (have fewer|were not seen)",
    ):
        evaluate(X, y, batch=batch, **_FAST)
    with pytest.raises(ModelError, match=r"single scanner \['A'\].*Pass harmonize=False"):
        evaluate(X, y, batch=["A"] * len(X), harmonize=True, **_FAST)


def test_single_scanner_turns_automatic_harmonisation_off(table: pd.DataFrame) -> None:
    X, y = _features(table), table["label"]
    result = evaluate(X, y, batch=["A"] * len(X), **_FAST)
    plain = evaluate(X, y, **_FAST)
    assert result.settings["harmonize"] is False
    np.testing.assert_array_equal(result.predictions["proba_1"], plain.predictions["proba_1"])


def test_leave_one_site_out_with_harmonisation_is_refused(table: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match=r"outer fold 0 tests scanner\(s\) \['scanner_A'\]"):
        evaluate(
            _features(table),
            table["label"],
            batch=table["scanner"],
            cv="leave-one-site-out",
            harmonize=True,
            **_FAST,
        )


def test_leave_one_site_out_with_a_one_class_site(table: pd.DataFrame) -> None:
    X, batch = _features(table), table["scanner"].to_numpy()
    y = table["label"].to_numpy().copy()
    y[batch == "scanner_C"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = evaluate(X, y, batch=batch, cv="leave-one-site-out", **_FAST)
    # Fallback: the site's AUC is undefined (NaN), the others and the pooled AUC are not.
    auc = result.per_site["roc_auc"]
    assert np.isnan(auc["scanner_C"])
    assert np.isfinite(auc[["scanner_A", "scanner_B"]]).all()
    pooled = roc_auc_score(result.predictions["y_true"], result.predictions["proba_1"])
    assert result.metrics.loc["roc_auc", "estimate"] == pytest.approx(pooled, abs=1e-12)
    assert result.per_site.loc["scanner_C", "n"] == int((batch == "scanner_C").sum())


def test_leave_one_site_out_with_a_class_at_one_site_is_refused(table: pd.DataFrame) -> None:
    batch = table["scanner"].to_numpy()
    y = (batch == "scanner_C").astype(int)
    y[batch == "scanner_C"] = np.arange((batch == "scanner_C").sum()) % 2  # site C: both
    with pytest.raises(
        ModelError,
        match=r"outer fold 2 \(held-out site\(s\) \['scanner_C'\]\) leaves no training rows of "
        r"class\(es\) \[1\]",
    ):
        evaluate(_features(table), y, batch=batch, cv="leave-one-site-out", **_FAST)


def test_explaining_a_harmonising_model_needs_the_batch(table: pd.DataFrame) -> None:
    from sklearn import config_context

    X, y, batch = _features(table), table["label"], table["scanner"].to_numpy()
    pipeline = build_pipeline(harmonize=ComBat(), n_features=5)
    with config_context(enable_metadata_routing=True):
        pipeline.fit(X, y, batch=batch)
    with pytest.raises(ModelError, match=r"harmonises with ComBat: pass batch="):
        explain(pipeline, X)
