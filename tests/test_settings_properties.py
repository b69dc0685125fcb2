"""Property-based tests of the settings validator: any mapping either gives valid settings that
survive a round trip, or fails with a SettingsError — never another exception."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from radharmony import PRESETS, ExtractionSettings, SettingsError

_FIELDS = [f.name for f in dataclasses.fields(ExtractionSettings)]
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["3D", "2.5D", "linear", "bspline", "fixed_bin_size", "fixed_bin_number"]),
    st.sampled_from(["averaged", "merged", "glcm", "shape", "firstorder"]),
    st.lists(st.one_of(st.none(), st.floats(-5, 5), st.integers(-5, 5)), max_size=4),
    st.lists(st.sampled_from(["shape", "glcm", "firstorder", "nope"]), max_size=3),
)
_keys = st.one_of(st.sampled_from(_FIELDS + ["preset"]), st.text(min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=4))
def test_any_mapping_is_valid_or_a_settings_error(mapping: dict) -> None:
    try:
        parsed = ExtractionSettings.from_any(mapping)
    except SettingsError as err:
        assert str(err)
        return
    again = ExtractionSettings.from_any({k: v for k, v in parsed.to_dict().items()})
    assert again.fingerprint() == parsed.fingerprint()


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(PRESETS)))
def test_presets_round_trip_through_their_dict(name: str) -> None:
    preset = ExtractionSettings.from_any(name)
    assert ExtractionSettings.from_any(preset.to_dict()) == preset
