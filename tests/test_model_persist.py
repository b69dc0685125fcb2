"""Safe persistence: skops round trip, provenance, refusal of untrusted types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn import config_context
from threadpoolctl import threadpool_limits

from radharmony.datasets import make_feature_table
from radharmony.errors import ModelError
from radharmony.model import build_pipeline, data_provenance, load_model, save_model


@pytest.fixture(autouse=True)
def _single_thread():
    # Gradient boosting's OpenMP threads thrash on a shared machine; the fits are tiny.
    with threadpool_limits(limits=1):
        yield


class _Untrusted:
    """A type no allow-list knows."""

    def __init__(self) -> None:
        self.payload = 1


def _cohort() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    table = make_feature_table(90, seed=0)
    features = table[[c for c in table.columns if c.startswith("f")]].copy()
    features.attrs = {}
    return features, table["label"], table


@pytest.mark.parametrize("model", ["logistic_l2", "random_forest", "gradient_boosting", "svm"])
def test_round_trip_gives_identical_predictions(tmp_path: Path, model: str) -> None:
    X, y, _ = _cohort()
    pipeline = build_pipeline(model, selection="mrmr").fit(X, y)
    provenance = data_provenance(X, y)
    path = save_model(pipeline, tmp_path / "model.skops", provenance=provenance)
    loaded, stored = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    assert stored["features_sha256"] == provenance["features_sha256"]
    assert stored["class_counts"] == {"0": int((y == 0).sum()), "1": int((y == 1).sum())}
    sidecar = json.loads(Path(f"{path}.provenance.json").read_text())
    assert sidecar == stored


def test_provenance_hash_changes_with_the_data() -> None:
    X, y, _ = _cohort()
    first = data_provenance(X, y)["features_sha256"]
    assert data_provenance(X.copy(), y)["features_sha256"] == first
    changed = X.copy()
    changed.iloc[0, 0] += 1e-9
    assert data_provenance(changed, y)["features_sha256"] != first


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    sio.dump({"model": _Untrusted(), "provenance_json": "{}"}, path)
    with pytest.raises(ModelError, match="not trusted"):
        load_model(path)
    name = sio.get_untrusted_types(file=path)[0]
    model, _ = load_model(path, trusted=[name])
    assert model.payload == 1


def test_non_skops_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04not a zip archive")
    with pytest.raises(ModelError, match="not a readable skops"):
        load_model(path)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.skops")


def test_harmonised_pipeline_round_trip(tmp_path: Path) -> None:
    harmonize = pytest.importorskip("radharmony.harmonize")
    X, y, table = _cohort()
    batch = table["scanner"].to_numpy()
    pipeline = build_pipeline(harmonize=harmonize.ComBat())
    with config_context(enable_metadata_routing=True):
        pipeline.fit(X, y, batch=batch)
        expected = pipeline.predict_proba(X, batch=batch)
    loaded, _ = load_model(save_model(pipeline, tmp_path / "model.skops"))
    with config_context(enable_metadata_routing=True):
        np.testing.assert_allclose(loaded.predict_proba(X, batch=batch), expected)
