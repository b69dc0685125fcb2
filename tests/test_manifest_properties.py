"""Property-based tests of the manifest parser: any table either parses faithfully or fails
with a ManifestError that names a row or column — never another exception."""

from __future__ import annotations

import string
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radharmony.errors import ManifestError
from radharmony.io import read_manifest

_text = st.text(alphabet=string.ascii_letters + string.digits + " _-éü", min_size=0, max_size=8)
_cell = st.one_of(st.none(), _text, st.integers(-5, 5), st.floats(allow_nan=True))
_columns = st.lists(
    st.sampled_from(["subject_id", "image", "mask", "scanner", "age", "sex", "extra"]),
    min_size=0,
    max_size=7,
    unique=True,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns=_columns, data=st.data())
def test_any_table_parses_or_fails_clearly(columns: list[str], data: st.DataObject) -> None:
    n_rows = data.draw(st.integers(0, 5))
    rows = [{c: data.draw(_cell) for c in columns} for _ in range(n_rows)]
    table = pd.DataFrame(rows, columns=columns)
    try:
        parsed = read_manifest(table, base_dir=Path("/nonexistent"), check_files=False)
    except ManifestError as err:
        message = str(err)
        assert "row " in message or "column" in message
        return
    required = {"subject_id", "image", "mask", "scanner"}
    assert required <= set(columns)
    assert len(parsed) == n_rows
    assert parsed["case_id"].is_unique
    for column in set(columns) - required:
        pd.testing.assert_series_equal(
            parsed[column].reset_index(drop=True), table[column], check_names=False
        )


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=6),
    images=st.lists(st.sampled_from(["x.nii", "y.nii"]), min_size=6, max_size=6),
)
def test_duplicates_are_detected_exactly(ids: list[str], images: list[str]) -> None:
    table = pd.DataFrame(
        {
            "subject_id": ids,
            "image": images[: len(ids)],
            "mask": "m.nii",
            "scanner": "s",
        }
    )
    has_duplicates = table.duplicated(["subject_id", "image"]).any()
    try:
        read_manifest(table, check_files=False)
    except ManifestError as err:
        assert has_duplicates and "duplicate subject_id" in str(err)
    else:
        assert not has_duplicates
