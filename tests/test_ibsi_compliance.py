"""IBSI compliance on the IBSI chapter 1 benchmark: the digital phantom and the lung CT phantom.

The digital phantom and its reference values are embedded in ``tests/data`` (CC BY 4.0), so its
checks run on any clone; the lung CT phantom comes from ``../shared`` (tests marked ``shared``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from radharmony.cli import main
from radharmony.ibsi import check_compliance, read_reference, summary_line

# Reference values per benchmark (rows with a value): every one is computed and within tolerance.
# The digital phantom tabulates texture in 3D, 2.5D and 2D; configurations A and B in 2.5D and 2D,
# plus 60 diagnostic features of the image and ROI at each processing step.
REFERENCE_COUNTS = {"digital_phantom": 482, "A": 406, "B": 406}
DIAGNOSTICS = 60

# A subset of the public IBSI reference values of configurations C, D and E (reference manual,
# chapter "Image features", tables of each feature): value;tolerance;tag.
_REFERENCE_CDE = {
    "C": """3.67E5;6E3;morph_volume
82;0.5;morph_pca_min_axis
-49;2.9;stat_mean
5.06E4;1.4E3;stat_var
3.53;0.23;stat_kurt
-939;4;stat_min
-424;14;stat_p10
3.73;0.04;ih_entropy
0.14;0.003;ih_uniformity
6.39;0.06;cm_joint_entr_3D_avg
0.899;0.001;cm_info_corr2_3D_comb
0.786;0.003;rlm_sre_3D_avg
0.679;0.003;rlm_r_perc_3D_comb
0.695;0.001;szm_sze_3D
7.07E7;1.5E6;szm_lzhge_3D
0.000216;4E-6;ngt_coarseness_3D
0.137;0.003;ngl_lde_3D
7.54;0.03;ngl_dc_entr_3D""",
    "D": """3.67E5;6E3;morph_volume
82;0.5;morph_pca_min_axis
-23.5;3.9;stat_mean
3.28E4;2.1E3;stat_var
4.35;0.32;stat_kurt
-724;12;stat_min
-304;20;stat_p10
2.94;0.01;ih_entropy
0.229;0.003;ih_uniformity
4.95;0.03;cm_joint_entr_3D_avg
0.846;0.003;cm_info_corr2_3D_comb
0.734;0.001;rlm_sre_3D_avg
0.554;0.005;rlm_r_perc_3D_comb
0.637;0.005;szm_sze_3D
4.14E7;3E5;szm_lzhge_3D
0.000208;4E-6;ngt_coarseness_3D
0.0912;0.0007;ngl_lde_3D
6.98;0.01;ngl_dc_entr_3D""",
    "E": """3.67E5;6E3;morph_volume
82;0.5;morph_pca_min_axis
-22.6;4.1;stat_mean
3.51E4;2.2E3;stat_var
4.44;0.33;stat_kurt
-743;13;stat_min
-310;21;stat_p10
3.22;0.02;ih_entropy
0.184;0.001;ih_uniformity
5.6;0.03;cm_joint_entr_3D_avg
0.813;0.004;cm_info_corr2_3D_comb
0.776;0.001;rlm_sre_3D_avg
0.664;0.003;rlm_r_perc_3D_comb
0.676;0.003;szm_sze_3D
3.36E7;3E5;szm_lzhge_3D
0.000188;4E-6;ngt_coarseness_3D
0.118;0.001;ngl_lde_3D
7.06;0.02;ngl_dc_entr_3D""",
}


def _ct(shared_data: Path, config: str) -> tuple[Path, Path, Path]:
    root = shared_data / "ibsi"
    folder = root / "ibsi_1_ct_radiomics_phantom" / "nifti"
    return (
        folder / "image" / "phantom.nii.gz",
        folder / "mask" / "mask.nii.gz",
        root / "reference_values" / f"ibsi_1_chest_config_{config.lower()}.csv",
    )


def _assert_compliant(result: pd.DataFrame, config: str) -> None:
    failed = result[result["status"] != "pass"]
    assert failed.empty, f"IBSI failures or values not computed:\n{failed.to_string()}"
    assert len(result) == REFERENCE_COUNTS[config]
    assert result["value"].notna().all()
    assert summary_line(result, config) == (
        f"IBSI {config}: {len(result)} passed, 0 failed, 0 not computed of {len(result)} "
        "reference values"
    )


def test_digital_phantom_has_no_failure(ibsi_digital_phantom: tuple[Path, Path, Path]) -> None:
    image, mask, reference = ibsi_digital_phantom
    result = check_compliance(image, mask, "digital_phantom", reference)
    _assert_compliant(result, "digital_phantom")
    values = result.set_index("tag")["value"]
    columns = result.set_index("tag")["column"]
    # the new families, under their own columns and the dimension of each variant
    assert columns["dzm_sde_2D"] == "dzm_sde" and columns["ih_mean"] == "ih_mean"
    assert columns["cm_joint_max_2D_avg"] == "glcm_MaximumProbability"
    assert columns["morph_moran_i"] == "morph_moran_i"
    # the three values plain pyradiomics gets wrong, now corrected
    assert values["stat_kurt"] == pytest.approx(-0.355, abs=6e-4)
    assert values["morph_pca_min_axis"] == pytest.approx(9.31, abs=0.06)
    assert values["morph_pca_min_axis"] != pytest.approx(9.245, abs=0.01)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("config", ["A", "B"])
def test_ct_phantom_configurations_a_b_have_no_failure(shared_data: Path, config: str) -> None:
    image, mask, reference = _ct(shared_data, config)
    result = check_compliance(image, mask, config, reference)
    _assert_compliant(result, config)
    assert (result["column"] == "diagnostic").sum() == DIAGNOSTICS
    tags = set(result["tag"])
    # per-slice 2D texture and the families pyradiomics lacks are all there
    assert {"cm_joint_max_2D_avg", "rlm_sre_2D_comb", "szm_sze_2D", "ngl_dc_energy_2D"} <= tags
    assert {"ivh_v10", "loc_peak_loc", "morph_geary_c", "dzm_sde_2_5D", "ih_mode"} <= tags


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("config", ["C", "D", "E"])
def test_ct_phantom_configurations_c_d_e_match_manual_values(
    shared_data: Path, config: str, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.csv"
    reference.write_text("reference value;tolerance;tag\n" + _REFERENCE_CDE[config] + "\n")
    image, mask, _ = _ct(shared_data, config)
    result = check_compliance(image, mask, config, reference)
    assert (result["status"] == "pass").all(), result[result["status"] != "pass"].to_string()


def test_read_reference_skips_blank_values_and_keeps_precision(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    path.write_text("reference value;tolerance;tag\n2.15;0;stat_mean\n;;morph_com\n125256;0;n\n")
    table = read_reference(path)
    assert table["tag"].tolist() == ["stat_mean", "n"]
    assert table["reference"].tolist() == [2.15, 125256.0]
    assert table["digits"].tolist() == [3, 6]


def test_tolerance_zero_means_agreement_to_printed_digits(
    ibsi_digital_phantom: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    image, mask, _ = ibsi_digital_phantom
    reference = tmp_path / "ref.csv"
    # digital phantom mean intensity is 159/74 = 2.1486...
    reference.write_text(
        "reference value;tolerance;tag\n2.15;0;stat_mean\n2.14;0;stat_median\n1;0;no_such_tag\n"
    )
    result = check_compliance(image, mask, "digital_phantom", reference).set_index("tag")
    assert result.loc["no_such_tag", "status"] == "not_computed"
    assert result.loc["no_such_tag", "column"] == ""
    assert result.loc["stat_mean", "value"] == pytest.approx(159 / 74)
    assert result.loc["stat_mean", "status"] == "pass"
    assert result.loc["stat_median", "value"] == pytest.approx(1.0)
    assert result.loc["stat_median", "status"] == "fail"


def test_cli_reports_rows_summary_json_and_exit_code(
    ibsi_digital_phantom: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, mask, reference = ibsi_digital_phantom
    out = tmp_path / "out.json"
    argv = ["ibsi-check", "--image", str(image), "--mask", str(mask)]
    argv += ["--config", "digital_phantom", "--reference", str(reference), "--json", str(out)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == (
        "IBSI digital_phantom: 482 passed, 0 failed, 0 not computed of 482 reference values"
    )
    assert len(lines) == 1 + 482 + 1  # header, one row per reference tag, summary
    rows = json.loads(out.read_text())
    assert len(rows) == 482
    assert set(rows[0]) == {"tag", "reference", "tolerance", "value", "status"}
    by_tag = {row["tag"]: row for row in rows}
    assert by_tag["morph_volume"]["status"] == "pass"
    assert by_tag["morph_volume"]["value"] == pytest.approx(556, abs=4)
    assert by_tag["morph_com"]["status"] == "pass"
    assert by_tag["morph_com"]["value"] == pytest.approx(0.672, abs=0.004)


def test_cli_exits_1_when_a_computed_value_fails(
    ibsi_digital_phantom: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    image, mask, reference = ibsi_digital_phantom
    table = pd.read_csv(reference, sep=";", dtype=str, keep_default_na=False)
    table.loc[table["tag"] == "morph_volume", "reference value"] = "600"
    broken = tmp_path / "broken.csv"
    buffer = io.StringIO()
    table.to_csv(buffer, sep=";", index=False)
    broken.write_text(buffer.getvalue())
    argv = ["ibsi-check", "--image", str(image), "--mask", str(mask)]
    argv += ["--config", "digital_phantom", "--reference", str(broken)]
    assert main(argv) == 1
