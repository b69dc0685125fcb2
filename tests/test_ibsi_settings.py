"""Extraction settings: presets follow the IBSI reference manual; parsing and fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radharmony.errors import SettingsError
from radharmony.ibsi import FEATURE_CLASSES, IBSI_CONFIGURATIONS, PRESETS, ExtractionSettings

# Reference manual, "Reference data sets", configurations A-E (lung cancer CT phantom):
# (texture dimension, spacing, image interpolator, rounding, range, sigma, discretisation, bins)
MANUAL = {
    "A": ("2.5D", None, "linear", False, (-500.0, 400.0), None, "fixed_bin_size", 25.0),
    "B": ("2.5D", (2.0, 2.0, None), "linear", True, (-500.0, 400.0), None, "fixed_bin_number", 32),
    "C": ("3D", (2.0, 2.0, 2.0), "linear", True, (-1000.0, 400.0), None, "fixed_bin_size", 25.0),
    "D": ("3D", (2.0, 2.0, 2.0), "linear", True, None, 3.0, "fixed_bin_number", 32),
    "E": ("3D", (2.0, 2.0, 2.0), "bspline", True, (-1000.0, 400.0), 3.0, "fixed_bin_number", 32),
}


@pytest.mark.parametrize("name", sorted(MANUAL))
def test_ibsi_ct_presets_follow_the_manual(name: str) -> None:
    s = PRESETS[name]
    dimension, spacing, interpolator, rounding, window, sigma, method, bins = MANUAL[name]
    assert (s.dimension, s.resampled_spacing, s.round_intensities) == (dimension, spacing, rounding)
    assert (s.resegment_range, s.resegment_sigma, s.discretisation) == (window, sigma, method)
    assert (s.bin_width if method == "fixed_bin_size" else s.bin_count) == bins
    if spacing is not None:
        assert s.image_interpolator == interpolator
        assert s.mask_threshold == 0.5


def test_digital_phantom_preset_leaves_the_phantom_unprocessed() -> None:
    s = PRESETS["digital_phantom"]
    assert s.resampled_spacing is None and s.resegment_range is None
    assert s.resegment_sigma is None and not s.round_intensities
    assert (s.discretisation, s.bin_width) == ("fixed_bin_size", 1.0)
    assert set(IBSI_CONFIGURATIONS) <= set(PRESETS)


def test_from_any_resolves_none_names_mappings_and_files(tmp_path: Path) -> None:
    assert ExtractionSettings.from_any(None) is PRESETS["default"]
    assert ExtractionSettings.from_any("ct") is PRESETS["ct"]
    assert ExtractionSettings.from_any({"preset": "C"}) is PRESETS["C"]
    custom = ExtractionSettings.from_any({"preset": "ct", "bin_width": 10})
    assert (custom.name, custom.bin_width, custom.resegment_range) == (
        "custom",
        10,
        (-1000.0, 400.0),
    )
    path = tmp_path / "s.yaml"
    path.write_text("preset: B\nresampled_spacing: [1, 1, null]\n")
    from_file = ExtractionSettings.from_any(path)
    assert from_file.resampled_spacing == (1.0, 1.0, None)
    assert from_file.discretisation == "fixed_bin_number"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"bin_widht": 3}, "unknown settings key"),
        ({"preset": "Z"}, "unknown settings preset"),
        ("nope", "unknown settings preset"),
        ({"resampled_spacing": [1, -1, 1]}, "resampled_spacing"),
        ({"resegment_range": [400, -1000]}, "low must be below high"),
        ({"dimension": "1D"}, "dimension"),
        ({"ivh_discretisation": "fixed"}, "ivh_discretisation"),
        ({"ivh_bin_count": 1}, "ivh_bin_count"),
        ({"feature_classes": ["morphology", "moran"]}, "unknown: \\['moran'\\]"),
    ],
)
def test_invalid_settings_raise_settings_error(spec: object, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ExtractionSettings.from_any(spec)


def test_to_dict_is_json_and_fingerprint_is_stable_and_discriminating() -> None:
    settings = PRESETS["B"]
    round_trip = ExtractionSettings.from_any(json.loads(json.dumps(settings.to_dict())))
    assert round_trip == settings
    assert round_trip.fingerprint() == settings.fingerprint()
    assert round_trip.to_dict()["resampled_spacing"] == [2.0, 2.0, None]
    fingerprints = {PRESETS[name].fingerprint() for name in PRESETS}
    assert len(fingerprints) == len(PRESETS)
    assert len(PRESETS["default"].fingerprint()) == 64


# Reference manual, "Reference data sets": IVH discretisation of each configuration.
IVH_MANUAL = {
    "digital_phantom": ("none", None),
    "A": ("none", None),
    "B": ("none", None),
    "C": ("fixed_bin_size", 2.5),
    "D": ("none", None),
    "E": ("fixed_bin_number", 1000),
}


@pytest.mark.parametrize("name", sorted(IVH_MANUAL))
def test_ibsi_presets_compute_every_family_with_the_manual_ivh(name: str) -> None:
    s = PRESETS[name]
    method, value = IVH_MANUAL[name]
    assert s.ivh_discretisation == method
    if method == "fixed_bin_size":
        assert s.ivh_bin_width == value
    if method == "fixed_bin_number":
        assert s.ivh_bin_count == value
    assert s.feature_classes == FEATURE_CLASSES


def test_everyday_presets_leave_out_only_the_opt_in_autocorrelation() -> None:
    for name in ("default", "ct", "mr"):
        classes = set(PRESETS[name].feature_classes)
        assert set(FEATURE_CLASSES) - classes == {"spatial_autocorrelation"}
    # arbitrary units get IBSI's 1000 IVH bins, HU the calibrated discrete IVH
    assert (PRESETS["default"].ivh_discretisation, PRESETS["default"].ivh_bin_count) == (
        "fixed_bin_number",
        1000,
    )
    assert PRESETS["ct"].ivh_discretisation == "none"
    opted_in = ExtractionSettings.from_any(
        {
            "preset": "ct",
            "feature_classes": [*PRESETS["ct"].feature_classes, "spatial_autocorrelation"],
        }
    )
    assert "spatial_autocorrelation" in opted_in.feature_classes
    assert opted_in.fingerprint() != PRESETS["ct"].fingerprint()


@pytest.mark.parametrize(
    "values",
    [
        {"ivh_bin_count": float("inf")},
        {"bin_count": float("nan")},
        {"bin_width": float("nan")},
        {"ivh_bin_width": float("inf")},
        {"bin_count": True},
    ],
)
def test_non_finite_or_boolean_bin_settings_are_settings_errors(values: dict) -> None:
    with pytest.raises(SettingsError, match=next(iter(values))):
        ExtractionSettings.from_any(values)
