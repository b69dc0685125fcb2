"""Domain check: new cases and new sites outside the training data are flagged, others are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radharmony.datasets import make_feature_table
from radharmony.model import DomainCheck, evaluate


def _features(table: pd.DataFrame) -> pd.DataFrame:
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    features.attrs = {}
    return features


def test_p_values_are_uniform_inside_and_small_outside() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(300, 6)), columns=list("abcdef"))
    same = pd.DataFrame(rng.normal(size=(2000, 6)), columns=list("abcdef"))
    check = DomainCheck().fit(train)
    p = check.p_values(same)
    # Exchangeable cases: P(p <= t) is about t.
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.025)
    assert np.mean(p <= 0.5) == pytest.approx(0.5, abs=0.06)
    assert check.flag_cases(p).mean() < 0.025
    shifted = same + 2.5
    assert check.flag_cases(check.p_values(shifted)).mean() > 0.9
    sites = np.repeat(["same", "shifted"], [200, 200])
    table = check.site_table(np.concatenate([p[:200], check.p_values(shifted.iloc[:200])]), sites)
    assert table["domain_shift"].tolist() == [False, True]


def test_lesions_of_the_same_patient_do_not_vouch_for_each_other() -> None:
    rng = np.random.default_rng(1)
    patients = rng.normal(size=(100, 4))
    lesions = np.repeat(patients, 3, axis=0) + rng.normal(0, 0.01, (300, 4))
    groups = np.repeat(np.arange(100), 3)
    grouped = DomainCheck().fit(lesions, groups=groups)
    naive = DomainCheck().fit(lesions)
    fresh = rng.normal(size=(500, 4))
    # Ignoring the patients, near-duplicate lesions make every training row look central and
    # flag several times too many fresh cases from the same population as outside.
    grouped_rate = grouped.flag_cases(grouped.p_values(fresh)).mean()
    naive_rate = naive.flag_cases(naive.p_values(fresh)).mean()
    assert grouped_rate <= 0.03
    assert naive_rate >= 0.07


def test_leave_one_site_out_flags_the_shifted_site_only() -> None:
    table = make_feature_table(180, n_features=10, scanner_shift=0.0, scanner_scale=0.0, seed=5)
    X = _features(table)
    sites = table["scanner"].to_numpy()
    X.loc[sites == "scanner_C"] += 3.0  # a scanner whose features all sit 3 SD away
    result = evaluate(
        X,
        table["label"],
        sites=sites,
        cv="leave-one-site-out",
        model="logistic_l2",
        inner_cv=3,
        n_bootstrap=50,
        volume=None,
    )
    per_site = result.per_site
    assert per_site["domain_shift"].to_dict() == {
        "scanner_A": False,
        "scanner_B": False,
        "scanner_C": True,
    }
    oof = result.predictions
    assert oof.loc[oof["site"] == "scanner_C", "domain_shift"].all()
    assert oof.loc[oof["site"] == "scanner_C", "refer"].all()  # never a silent nominal set
    assert oof.loc[oof["site"] != "scanner_C", "domain_shift"].mean() < 0.05
    assert result.summary()["per_site"]["scanner_C"]["domain_shift"] is True
