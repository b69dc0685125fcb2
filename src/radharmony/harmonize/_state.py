"""Estimator state without pandas objects, so fitted harmonisers can be saved with skops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_MARK = "__radharmony_dataframe__"
_REQUEST_KEY = "_metadata_request_serialized"


def _encode(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return {
            _MARK: "series",
            "values": np.asarray(value.to_numpy()),
            "index": list(value.index),
            "index_name": value.index.name,
            "name": value.name,
        }
    if isinstance(value, pd.DataFrame):
        return {
            _MARK: True,
            "values": np.asarray(value.to_numpy()),
            "index": list(value.index),
            "index_name": value.index.name,
            "columns": list(value.columns),
        }
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and value.get(_MARK):
        index = pd.Index(value["index"], name=value["index_name"])
        if value[_MARK] == "series":
            return pd.Series(value["values"], index=index, name=value["name"])
        return pd.DataFrame(value["values"], index=index, columns=value["columns"])
    return value


class DataFrameStateMixin:
    """Store fitted DataFrame and Series attributes as plain arrays and lists when pickled or saved.

    skops (the safe model format) cannot store pandas objects; the tables are rebuilt on load.
    """

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[misc,assignment]
        encoded = {key: _encode(value) for key, value in state.items()}
        # skops recurses forever on scikit-learn's MetadataRequest object: keep its plain form.
        request = encoded.pop("_metadata_request", None)
        if request is not None:
            encoded[_REQUEST_KEY] = request._serialize()
        return encoded

    def __setstate__(self, state: dict[str, Any]) -> None:
        decoded = {key: _decode(value) for key, value in state.items()}
        requests = decoded.pop(_REQUEST_KEY, None)
        super().__setstate__(decoded)  # type: ignore[misc]
        if requests:
            from sklearn import config_context

            with config_context(enable_metadata_routing=True):
                for method, params in requests.items():
                    if params:
                        getattr(self, f"set_{method}_request")(**params)
