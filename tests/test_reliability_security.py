"""Security: model files cannot run code when loaded; outputs never copy DICOM patient fields."""

from __future__ import annotations

import itertools
import json
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
import skops.io as sio
from sklearn import config_context
from threadpoolctl import threadpool_limits

from radharmony import extract_features, failures_of, make_feature_table, write_features
from radharmony.errors import ModelError
from radharmony.harmonize import default_harmonizer
from radharmony.model import build_pipeline, load_model, save_model

# --- crafted skops files ---------------------------------------------------------------------

_SIDE_EFFECTS: list[str] = []
_NODE_IDS = itertools.count(10**12)  # skops memoises nodes by id: keep crafted ids unique


class Booby:
    """A class outside every allow-list whose loading has a visible side effect."""

    def __setstate__(self, state: dict) -> None:
        _SIDE_EFFECTS.append(state["note"])
        self.__dict__.update(state)


def _json_node(value: object) -> dict:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": next(_NODE_IDS),
    }


def _call_node(module: str, name: str, args: list) -> dict:
    """A node that makes skops call ``module.name(*args)`` while loading."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [_json_node(a) for a in args],
            "__id__": next(_NODE_IDS),
        },
        "__id__": next(_NODE_IDS),
    }


def _crafted_file(path: Path, model_node: dict) -> Path:
    """Write a skops file shaped like save_model's output whose model is ``model_node``."""
    sio.dump({"model": 0, "provenance_json": "{}"}, path)
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    schema["content"]["model"] = model_node
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return path


def test_file_calling_exec_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    path = _crafted_file(tmp_path / "evil.skops", _call_node("builtins", "exec", [payload]))
    with pytest.raises(ModelError, match=r"not trusted: \['builtins.exec'\].*nothing was loaded"):
        load_model(path)
    assert not marker.exists()
    # The file is a working exploit: a loader that trusted builtins would have run it.
    sio.load(path, trusted=["builtins.exec"])
    assert marker.read_text() == "ran"


def test_file_creating_a_memmap_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "overwritten.bin"
    node = _call_node("numpy", "memmap", [str(target), "uint8", "w+", 0, [16]])
    with pytest.raises(ModelError, match=r"\['numpy.memmap'\]"):
        load_model(_crafted_file(tmp_path / "evil.skops", node))
    assert not target.exists()


def test_file_with_an_unknown_class_is_refused_before_construction(tmp_path: Path) -> None:
    booby = Booby()
    booby.__dict__["note"] = "constructed"
    path = tmp_path / "unknown.skops"
    sio.dump({"model": booby, "provenance_json": "{}"}, path)
    _SIDE_EFFECTS.clear()
    with pytest.raises(ModelError, match=r"test_reliability_security.Booby.*trusted=\[\.\.\.\]"):
        load_model(path)
    assert _SIDE_EFFECTS == []
    name = f"{Booby.__module__}.Booby"
    model, _ = load_model(path, trusted=[name])  # the explicit opt-in still works
    assert _SIDE_EFFECTS == ["constructed"] and model.note == "constructed"


def test_functions_of_trusted_packages_are_not_trusted(tmp_path: Path) -> None:
    # Trusting a package means its estimator classes, not every callable it exposes.
    target = tmp_path / "x.svm"
    node = _call_node("sklearn.datasets", "dump_svmlight_file", [[[1.0]], [0], str(target)])
    with pytest.raises(ModelError, match="sklearn.datasets.dump_svmlight_file"):
        load_model(_crafted_file(tmp_path / "evil.skops", node))
    assert not target.exists()


# --- pickle ----------------------------------------------------------------------------------


def _touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


class _PickleBomb:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return _touch, (str(self.marker),)


@pytest.mark.parametrize("writer", ["pickle", "joblib", "joblib_compressed"])
def test_pickle_files_are_refused_unopened(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.skops"  # a misleading extension changes nothing
    bomb = _PickleBomb(marker)
    if writer == "pickle":
        path.write_bytes(pickle.dumps(bomb))
    else:
        joblib.dump(bomb, path, compress=3 if writer == "joblib_compressed" else 0)
    with pytest.raises(ModelError, match=r"looks like a pickle or joblib file.*never opens one"):
        load_model(path)
    assert not marker.exists()
    joblib.load(path)  # the file is a working exploit for a pickle loader
    assert marker.exists()


# --- legitimate models still load; saving is atomic ------------------------------------------


def _sklearn_at_least(major: int, minor: int) -> bool:
    import sklearn

    return tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (major, minor)


@pytest.fixture(scope="module")
def harmonised_model():
    table = make_feature_table(80, n_features=10, seed=4)
    X = table[[c for c in table.columns if c.startswith("f")]].copy()
    X.attrs = {}
    batch = table["scanner"].to_numpy()
    pipeline = build_pipeline(
        "gradient_boosting",
        harmonize=default_harmonizer(),
        selection="mrmr",
        # temperature scaling (scikit-learn >= 1.8) adds its own types; isotonic before that
        calibration="temperature" if _sklearn_at_least(1, 8) else "isotonic",
        n_features=5,
    )
    with threadpool_limits(limits=1), config_context(enable_metadata_routing=True):
        pipeline.fit(X, table["label"], batch=batch, covariates=table[["age"]])
    return pipeline, X, batch, table[["age"]]


def test_every_type_of_a_harmonised_model_is_allowed(tmp_path: Path, harmonised_model) -> None:
    pipeline, X, batch, cov = harmonised_model
    loaded, _ = load_model(save_model(pipeline, tmp_path / "model.skops"))
    with threadpool_limits(limits=1), config_context(enable_metadata_routing=True):
        expected = pipeline.predict_proba(X, batch=batch, covariates=cov)
        np.testing.assert_array_equal(
            loaded.predict_proba(X, batch=batch, covariates=cov), expected
        )


def test_failed_save_keeps_the_previous_file(tmp_path: Path, harmonised_model) -> None:
    path = save_model(harmonised_model[0], tmp_path / "model.skops")
    before = path.read_bytes()
    with pytest.raises(ModelError, match="cannot save the model"):
        save_model((i for i in range(3)), path)  # generators cannot be stored
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.skops",
        "model.skops.provenance.json",
    ]


# --- DICOM patient fields --------------------------------------------------------------------

_PATIENT_TAGS = {
    "0010|0010": "Doe^Jane^Quincy",  # PatientName
    "0010|0020": "PHI-7F3A-ID",  # PatientID
    "0010|0030": "19450317",  # PatientBirthDate
    "0010|1010": "079Y",  # PatientAge
    "0008|0050": "ACC-5512-XY",  # AccessionNumber
}


def _write_dicom_series(folder: Path, array: np.ndarray) -> None:
    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing((0.8, 0.8, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        slice_ = image[:, :, z]
        origin = image.TransformIndexToPhysicalPoint((0, 0, z))
        for tag, value in _PATIENT_TAGS.items():
            slice_.SetMetaData(tag, value)
        slice_.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.7")
        slice_.SetMetaData("0020|0032", "\\".join(f"{v:f}" for v in origin))
        slice_.SetMetaData("0020|0013", str(z))
        slice_.SetMetaData("0028|0030", "0.8\\0.8")
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_patient_fields_never_reach_the_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[0:8, 0:24, 0:24]
    ball = (zz - 4) ** 2 + ((yy - 12) ** 2 + (xx - 12) ** 2) / 4 <= 9
    _write_dicom_series(tmp_path / "series", rng.normal(100, 10, zz.shape) + 60 * ball)
    # The series really carries the fields (the test would be empty otherwise).
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(tmp_path / "series" / "000.dcm"))
    reader.ReadImageInformation()
    assert reader.GetMetaData("0010|0020").strip() == "PHI-7F3A-ID"

    series = sitk.ReadImage(sorted(str(p) for p in (tmp_path / "series").glob("*.dcm")))
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    mask.CopyInformation(series)
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    wrong = sitk.GetImageFromArray(ball[:, :20, :].astype(np.uint8))
    sitk.WriteImage(wrong, str(tmp_path / "wrong_mask.nii.gz"))
    manifest = pd.DataFrame(
        {
            "subject_id": ["case-1", "case-2"],
            "image": ["series", "series"],
            "mask": ["mask.nii.gz", "wrong_mask.nii.gz"],
            "scanner": ["A", "A"],
        }
    )
    features = extract_features(manifest, base_dir=tmp_path, progress=False)
    assert features["subject_id"].tolist() == ["case-1"]  # the good case was extracted
    assert features["lesion_voxels"].iloc[0] == int(ball.sum())
    assert failures_of(features)["subject_id"].tolist() == ["case-2"]  # failure path ran

    written = {
        **write_features(features, tmp_path / "out" / "features.parquet"),
        "csv": write_features(features, tmp_path / "csv" / "features.csv")["features"],
    }
    texts = {
        "table": features.to_csv(),
        "failures_attr": failures_of(features).to_csv(),
        "provenance_attr": json.dumps(features.attrs["provenance"], default=str),
        "parquet_cells": pd.read_parquet(written["features"]).to_csv(),
        "parquet_metadata": repr(pq.read_schema(written["features"]).metadata),
    }
    for name, path in written.items():
        texts[f"file {name}"] = Path(path).read_bytes().decode("latin-1")
    for name, text in texts.items():
        for value in _PATIENT_TAGS.values():
            assert value not in text, f"{value!r} found in {name}"
        assert "Doe" not in text and "Jane" not in text, name
