"""The feature data dictionary: every column the engine returns is described, with IBSI tags."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony.ibsi import (
    FEATURE_CLASSES,
    PRESETS,
    ExtractionSettings,
    column_to_tags,
    compute_lesion_features,
    feature_columns,
    feature_dictionary,
)

HEADER = ["name", "type", "unit", "family", "description", "ibsi_tag", "ibsi_code", "notes"]


@pytest.fixture(scope="module")
def dictionary(project_root: Path) -> pd.DataFrame:
    return pd.read_csv(project_root / "data_dictionary" / "features.csv", keep_default_na=False)


def _lesion() -> tuple[sitk.Image, sitk.Image]:
    rng = np.random.default_rng(3)
    # 0..59 lies inside every preset's re-segmentation range and gives 3 to 60 grey levels
    array = rng.integers(0, 60, (20, 24, 24)).astype(np.int16)
    mask = np.zeros(array.shape, dtype=np.uint8)
    mask[5:15, 6:18, 5:19] = 1
    image, mask_image = sitk.GetImageFromArray(array), sitk.GetImageFromArray(mask)
    for item in (image, mask_image):
        item.SetSpacing((0.8, 0.8, 2.5))
    return image, mask_image


def test_csv_has_the_header_and_matches_the_feature_table(dictionary: pd.DataFrame) -> None:
    assert list(dictionary.columns) == HEADER
    generated = feature_dictionary().astype(str)
    pd.testing.assert_frame_equal(dictionary.astype(str), generated)
    assert dictionary["name"].is_unique


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_returned_column_is_in_the_dictionary(dictionary: pd.DataFrame, preset: str) -> None:
    image, mask = _lesion()
    settings = PRESETS[preset]
    values = compute_lesion_features(image, mask, settings)
    missing = sorted(set(values) - set(dictionary["name"]))
    assert not missing, f"columns missing from data_dictionary/features.csv: {missing}"
    enabled = dictionary[dictionary["family"].isin(settings.feature_classes)]
    assert set(values) == set(feature_columns(settings.feature_classes))
    assert set(values) == set(enabled["name"])  # every described column of the families
    assert all(np.isfinite(v) for v in values.values())
    # IBSI presets compute every family; everyday ones all but the opt-in Moran/Geary pair
    if preset in ("default", "ct", "mr"):
        assert len(values) == len(dictionary) - 2
        assert "morph_moran_i" not in values
    else:
        assert len(values) == len(dictionary)


def test_ibsi_tags_and_codes_are_those_of_the_reference_sets(
    dictionary: pd.DataFrame, ibsi_digital_phantom: tuple[Path, Path, Path]
) -> None:
    reference = pd.read_csv(ibsi_digital_phantom[2], sep=";")
    tagged = dictionary[dictionary["ibsi_tag"] != ""]
    assert set(tagged["ibsi_tag"]) <= set(reference["tag"])
    assert all(re.fullmatch(r"[0-9A-Z]{4}", code) for code in tagged["ibsi_code"])
    untagged = dictionary[dictionary["ibsi_tag"] == ""]
    assert (untagged["notes"].str.contains("not defined by IBSI")).all()
    codes = dictionary.set_index("name")["ibsi_code"]
    assert codes["firstorder_Kurtosis"] == "IPH6"
    assert codes["shape_MeshVolume"] == "RNU0"
    assert "corrected" in dictionary.set_index("name").loc["firstorder_Kurtosis", "notes"]


def test_tags_follow_dimension_and_aggregation() -> None:
    columns = ["glcm_JointEntropy", "glszm_SmallAreaEmphasis", "firstorder_Kurtosis"]
    merged_25d = ExtractionSettings(dimension="2.5D", texture_aggregation="merged")
    assert column_to_tags(columns, merged_25d) == {
        "cm_joint_entr_2_5D_comb": "glcm_JointEntropy",
        "szm_sze_2_5D": "glszm_SmallAreaEmphasis",
        "stat_kurt": "firstorder_Kurtosis",
    }
    assert "cm_joint_entr_3D_avg" in column_to_tags(columns, ExtractionSettings())
    assert set(FEATURE_CLASSES) == set(feature_dictionary()["family"])
    new_columns = ["dzm_sde", "ngl_dc_energy", "ih_mean", "morph_moran_i", "ivh_v10"]
    averaged_2d = ExtractionSettings(dimension="2D")
    assert column_to_tags(columns + new_columns, averaged_2d) == {
        "cm_joint_entr_2D_avg": "glcm_JointEntropy",
        "szm_sze_2D": "glszm_SmallAreaEmphasis",
        "stat_kurt": "firstorder_Kurtosis",
        "dzm_sde_2D": "dzm_sde",
        "ngl_dc_energy_2D": "ngl_dc_energy",
        "ih_mean": "ih_mean",
        "morph_moran_i": "morph_moran_i",
        "ivh_v10": "ivh_v10",
    }
    assert column_to_tags(["dzm_sde"], ExtractionSettings(dimension="2.5D")) == {
        "dzm_sde_2_5D": "dzm_sde"
    }


def test_new_columns_carry_the_codes_of_the_reference_manual(dictionary: pd.DataFrame) -> None:
    rows = dictionary.set_index("name")
    # reference manual, chapter "Image features" (permanent IBSI identifiers)
    expected = {
        "ih_mean": ("X6K6", "intensity_histogram"),
        "ivh_diff_i10_i90": ("CNV2", "ivh"),
        "loc_peak_glob": ("0F91", "local_intensity"),
        "morph_moran_i": ("N365", "spatial_autocorrelation"),
        "morph_area_dens_aee": ("RDD2", "morphology"),
        "stat_medad": ("N72L", "statistics"),
        "dzm_zd_entr": ("GBDU", "gldzm"),
        "ngl_dc_energy": ("CAS9", "ngldm"),
    }
    for column, (code, family) in expected.items():
        assert (rows.loc[column, "ibsi_code"], rows.loc[column, "family"]) == (code, family)
    assert "opt-in" in rows.loc["morph_geary_c", "notes"]
    assert "2D" in rows.loc["glcm_MCC", "notes"]
