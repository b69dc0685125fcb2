"""Hand-computed checks of the numpy IBSI feature families on tiny arrays.

Each expected value is derived in the comment next to it from the IBSI definitions.
"""

from __future__ import annotations

import numpy as np
import pytest

from radharmony.errors import EmptyMaskError, GeometryMismatchError, SettingsError
from radharmony.ibsi.families import (
    compute_families,
    dzm_features,
    glcm_features,
    glrlm_features,
    intensity_histogram_features,
    ivh_features,
    local_intensity_features,
    ngldm_features,
    ngtdm_features,
    statistics_features,
    szm_features,
)
from radharmony.ibsi.families.morphology import ellipsoid_area, spatial_autocorrelation


def _ring() -> tuple[np.ndarray, np.ndarray]:
    """3x3 single slice: grey level 1 on the border, 2 in the centre; whole slice in the ROI."""
    levels = np.ones((1, 3, 3), dtype=int)
    levels[0, 1, 1] = 2
    return levels, np.ones_like(levels, dtype=bool)


def test_intensity_histogram_and_statistics_by_hand() -> None:
    values = np.array([[[1, 1, 2, 4]]])
    mask = np.ones_like(values, dtype=bool)
    ih = intensity_histogram_features(values, mask)
    # mean 2; variance (1+1+0+4)/4; median 1.5; mode 1; p = (.5, .25, 0, .25)
    assert ih["ih_mean"] == pytest.approx(2.0)
    assert ih["ih_var"] == pytest.approx(1.5)
    assert ih["ih_median"] == pytest.approx(1.5)
    assert ih["ih_mode"] == 1.0
    assert ih["ih_entropy"] == pytest.approx(1.5)  # -(.5 log .5 + 2 * .25 log .25)
    assert ih["ih_uniformity"] == pytest.approx(0.375)  # .25 + .0625 + .0625
    # H = (2, 1, 0, 1): H' = (-1, -1, 0, 1); ties go to the first grey level
    assert (ih["ih_max_grad"], ih["ih_max_grad_g"]) == (1.0, 4.0)
    assert (ih["ih_min_grad"], ih["ih_min_grad_g"]) == (-1.0, 1.0)
    # |x - 1.5| = .5, .5, .5, 2.5 -> 1.0; |x - 2| = 1, 1, 0, 2 -> 1.0
    assert ih["ih_medad"] == pytest.approx(1.0)
    assert ih["ih_mad"] == pytest.approx(1.0)
    # p25 = 1, p75 = 2.5 (linear interpolation): IQR 1.5, QCoD 1.5 / 3.5
    assert ih["ih_iqr"] == pytest.approx(1.5)
    assert ih["ih_qcod"] == pytest.approx(1.5 / 3.5)
    stat = statistics_features(values.astype(float) * 2, mask)
    # doubling the values: energy 4 * (1+1+4+16) = 88, CoV unchanged sqrt(1.5) / 2
    assert stat["stat_energy"] == pytest.approx(88.0)
    assert stat["stat_cov"] == pytest.approx(np.sqrt(1.5) / 2)
    assert stat["stat_rms"] == pytest.approx(np.sqrt(88 / 4))


def test_ivh_by_hand() -> None:
    # 20 voxels: 2 x 0, 8 x 1, 6 x 2, 3 x 3, 1 x 4 (calibrated integers, e.g. HU)
    values = np.repeat([0, 1, 2, 3, 4], [2, 8, 6, 3, 1]).reshape(1, 4, 5).astype(float)
    mask = np.ones(values.shape, dtype=bool)
    ivh = ivh_features(values, mask)
    # nu(i >= 0..4) = 1, .9, .5, .2, .05 and gamma = 0, .25, .5, .75, 1 over G = [0, 4]
    assert ivh["ivh_v10"] == pytest.approx(0.9)  # first gamma >= .1 is i = 1
    assert ivh["ivh_v90"] == pytest.approx(0.05)  # first gamma >= .9 is i = 4
    assert ivh["ivh_i10"] == 4.0  # lowest i with nu <= .1
    assert ivh["ivh_i90"] == 1.0  # lowest i with nu <= .9
    assert ivh["ivh_diff_v10_v90"] == pytest.approx(0.85)
    assert ivh["ivh_diff_i10_i90"] == 3.0
    # a re-segmentation range [-1, 5] widens G: gamma(i) = (i + 1) / 6
    ranged = ivh_features(values, mask, intensity_range=(-1, 5))
    assert ranged["ivh_v10"] == pytest.approx(1.0)  # i = 0 (gamma 1/6)
    assert ranged["ivh_v90"] == pytest.approx(0.0)  # i = 5 (gamma 1), no voxel >= 5
    # fixed bin size 2 from -1: bins [-1,1) -> centre 0 (the two 0s), [1,3) -> 2 (the 1s and
    # 2s), [3,5) -> 4 (the 3s and the 4); G = [0, 4] in steps of 2, gamma = 0, .5, 1
    binned = ivh_features(values, mask, intensity_range=(-1, 5), bin_width=2.0)
    assert binned["ivh_v10"] == pytest.approx(18 / 20)  # nu at 2
    assert binned["ivh_v90"] == pytest.approx(4 / 20)  # nu at 4
    assert binned["ivh_i90"] == 2.0


def test_dzm_by_hand() -> None:
    levels, mask = _ring()
    # 2D: 4-connected distance to the edge is 1 on the border and 2 in the centre, so the ring
    # zone (level 1) has distance 1 and the centre zone (level 2) distance 2; Ns = 2, Nv = 9
    f2 = dzm_features(levels, mask, dimension="2D")
    assert f2["dzm_sde_2D"] == pytest.approx((1 + 1 / 4) / 2)
    assert f2["dzm_lde_2D"] == pytest.approx((1 + 4) / 2)
    assert f2["dzm_hgze_2D"] == pytest.approx((1 + 4) / 2)
    assert f2["dzm_glnu_norm_2D"] == pytest.approx(0.5)
    assert f2["dzm_z_perc_2D"] == pytest.approx(2 / 9)
    assert f2["dzm_zd_var_2D"] == pytest.approx(0.25)
    assert f2["dzm_zd_entr_2D"] == pytest.approx(1.0)
    assert f2["dzm_sde_2_5D"] == f2["dzm_sde_2D"]  # one slice: merging changes nothing
    # 3D: the slice has no neighbour above or below, so every voxel lies on the edge
    f3 = dzm_features(levels, mask, dimension="3D")
    assert f3["dzm_sde_3D"] == pytest.approx(1.0)
    assert f3["dzm_zd_var_3D"] == pytest.approx(0.0)
    assert f3["dzm_zdnu_3D"] == pytest.approx(2.0)  # both zones at distance 1: 2^2 / 2
    # distances come from the morphological mask: a larger one moves the centre zone inwards
    morph = np.zeros((1, 5, 5), dtype=bool)
    morph[0] = True
    padded_levels = np.ones((1, 5, 5), dtype=int)
    padded_levels[0, 1:4, 1:4] = levels[0]
    inner = np.zeros_like(morph)
    inner[0, 1:4, 1:4] = True
    f_morph = dzm_features(padded_levels, inner, morph, dimension="2D")
    # ring now at distance 2, centre at distance 3: lde = (4 + 9) / 2
    assert f_morph["dzm_lde_2D"] == pytest.approx(6.5)


def test_ngldm_by_hand() -> None:
    levels, mask = _ring()
    f = ngldm_features(levels, mask, dimension="2D")
    # corners depend on 2 ring neighbours (j = 3), edge middles on 4 (j = 5), centre on none
    # (j = 1): entries (1,3) x 4, (1,5) x 4, (2,1) x 1, Ns = Nv = 9
    assert f["ngl_lde_2D"] == pytest.approx((4 / 9 + 4 / 25 + 1) / 9)
    assert f["ngl_hde_2D"] == pytest.approx((4 * 9 + 4 * 25 + 1) / 9)
    assert f["ngl_glnu_2D"] == pytest.approx((8**2 + 1**2) / 9)
    assert f["ngl_dcnu_2D"] == pytest.approx((4**2 + 4**2 + 1**2) / 9)
    assert f["ngl_dc_perc_2D"] == pytest.approx(1.0)
    assert f["ngl_dc_energy_2D"] == pytest.approx((16 + 16 + 1) / 81)
    assert f["ngl_dc_entr_2D"] == pytest.approx(
        -(2 * 4 / 9 * np.log2(4 / 9) + 1 / 9 * np.log2(1 / 9))
    )


def test_glrlm_aggregations_by_hand() -> None:
    levels = np.array([[[1, 1, 2, 2]]])
    mask = np.ones_like(levels, dtype=bool)
    f = glrlm_features(levels, mask, dimension="2D")
    # along x: two runs of length 2; along y and both diagonals: four runs of length 1 each
    assert f["rlm_sre_2D_avg"] == pytest.approx((0.25 + 1 + 1 + 1) / 4)
    assert f["rlm_sre_2D_comb"] == pytest.approx((2 * 0.25 + 12) / 14)
    assert f["rlm_r_perc_2D_comb"] == pytest.approx(14 / 16)  # Nv summed over 4 directions
    assert f["rlm_r_perc_2D_avg"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert f["rlm_lre_2_5D_comb"] == pytest.approx((2 * 4 + 12) / 14)
    f3 = glrlm_features(levels, mask, dimension="3D")
    # 13 directions: only x joins voxels, the other 12 see 4 runs of length 1
    assert f3["rlm_sre_3D_avg"] == pytest.approx((0.25 + 12) / 13)


def test_szm_by_hand() -> None:
    levels = np.ones((2, 2, 2), dtype=int)
    levels[1] = 2
    mask = np.ones_like(levels, dtype=bool)
    f3 = szm_features(levels, mask, dimension="3D")
    # one zone of 4 voxels per grey level
    assert f3["szm_sze_3D"] == pytest.approx(1 / 16)
    assert f3["szm_zsnu_3D"] == pytest.approx(2.0)
    assert f3["szm_z_perc_3D"] == pytest.approx(2 / 8)
    f2 = szm_features(levels, mask, dimension="2D")
    # each slice: one zone of size 4, glnu 1, z_perc 1/4; merged: 2 zones over 8 voxels
    assert f2["szm_glnu_2D"] == pytest.approx(1.0)
    assert f2["szm_glnu_2_5D"] == pytest.approx(1.0)  # (1 + 1) / 2
    assert f2["szm_gl_var_2D"] == pytest.approx(0.0)
    assert f2["szm_gl_var_2_5D"] == pytest.approx(0.25)


def test_ngtdm_by_hand() -> None:
    levels = np.array([[[1, 2, 3]]])
    mask = np.ones_like(levels, dtype=bool)
    f = ngtdm_features(levels, mask, dimension="2D")
    # neighbour means 2, 2, 2 -> s = (1, 0, 1), n = (1, 1, 1), p = 1/3 each
    assert f["ngt_coarseness_2D"] == pytest.approx(1.5)  # 1 / (2/3)
    assert f["ngt_contrast_2D"] == pytest.approx(4 / 27)  # (12/9) / 6 * (2/3)
    assert f["ngt_busyness_2D"] == pytest.approx(0.25)  # (2/3) / (8/3)
    assert f["ngt_complexity_2D"] == pytest.approx(2.0)
    assert f["ngt_strength_2D"] == pytest.approx(4.0)  # (2/3) * 12 / 2


def test_glcm_by_hand_skips_empty_directions() -> None:
    levels = np.array([[[1, 2]]])
    mask = np.ones_like(levels, dtype=bool)
    f = glcm_features(levels, mask, dimension="2D")
    # only the x direction has a pair: symmetric P = [[0, .5], [.5, 0]]; the three empty
    # directions are undefined and left out of the average
    assert f["cm_contrast_2D_avg"] == pytest.approx(1.0)
    assert f["cm_joint_max_2D_avg"] == pytest.approx(0.5)
    assert f["cm_joint_avg_2D_comb"] == pytest.approx(1.5)
    assert f["cm_corr_2_5D_comb"] == pytest.approx(-1.0)
    assert f["cm_energy_2_5D_avg"] == pytest.approx(0.5)
    assert f["cm_inv_diff_norm_2D_avg"] == pytest.approx(1 / 1.5)  # 1 / (1 + 1/Ng), Ng = 2


def test_local_intensity_by_hand() -> None:
    image = np.zeros((5, 5, 5))
    image[2, 2, 2] = 10.0
    for axis in range(3):
        for step in (-1, 1):
            index = [2, 2, 2]
            index[axis] += step
            image[tuple(index)] = 3.0
    mask = np.zeros_like(image, dtype=bool)
    mask[2, 2, 2] = True
    # 10 mm voxels: the 6.2 mm sphere holds the centre only
    assert local_intensity_features(image, mask, (10, 10, 10))["loc_peak_loc"] == pytest.approx(10)
    # 5 mm voxels: centre + 6 face neighbours (5 mm); diagonals (7.1 mm) are outside
    peaks = local_intensity_features(image, mask, (5, 5, 5))
    assert peaks["loc_peak_loc"] == pytest.approx((10 + 6 * 3) / 7)
    assert peaks["loc_peak_glob"] == pytest.approx(4.0)


def test_moran_geary_two_voxels_and_brute_force() -> None:
    image = np.array([[[0.0, 1.0]]])
    mask = np.ones_like(image, dtype=bool)
    # z = -.5, .5; w = 1 both ways: I = (2/2) * (2 * -.25) / .5; C = (1/4) * 2 / .5
    moran, geary = spatial_autocorrelation(image, mask, np.ones(3))
    assert (moran, geary) == (pytest.approx(-1.0), pytest.approx(1.0))
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 6, 7))
    mask = rng.random(image.shape) > 0.4
    spacing = np.array([3.0, 1.0, 0.8])
    pos = np.argwhere(mask) * spacing
    x = image[mask]
    z = x - x.mean()
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    w = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    expected_i = len(x) / w.sum() * (w * np.outer(z, z)).sum() / (z**2).sum()
    expected_c = (
        (len(x) - 1) / (2 * w.sum()) * (w * (x[:, None] - x[None]) ** 2).sum() / (z**2).sum()
    )
    moran, geary = spatial_autocorrelation(image, mask, spacing)
    assert moran == pytest.approx(expected_i, rel=1e-9)
    assert geary == pytest.approx(expected_c, rel=1e-9)


def test_ellipsoid_area_series() -> None:
    # sphere: alpha = beta = 0, area 4 pi r^2
    assert ellipsoid_area(2.0, 2.0, 2.0) == pytest.approx(16 * np.pi)
    # alpha = 0 (a = b) uses the series' limit, which joins the general series continuously
    assert ellipsoid_area(2.0, 2.0, 1.0) == pytest.approx(
        ellipsoid_area(2.0, 1.9999, 1.0), rel=1e-3
    )
    # near-spherical a, b, c = 1.2, 1.1, 1.0: surface integral gives 15.1886
    assert ellipsoid_area(1.2, 1.1, 1.0) == pytest.approx(15.1886, rel=5e-3)


def test_invalid_inputs_raise_package_errors() -> None:
    levels, mask = _ring()
    with pytest.raises(SettingsError, match="dimension"):
        szm_features(levels, mask, dimension="2.5D")
    with pytest.raises(EmptyMaskError):
        ngldm_features(levels, np.zeros_like(mask))
    with pytest.raises(SettingsError, match="grey levels >= 1"):
        glrlm_features(levels - 1, mask)
    with pytest.raises(GeometryMismatchError):
        glcm_features(levels, mask[:, :2])
    with pytest.raises(SettingsError, match="Unknown IBSI families"):
        compute_families(levels, levels, mask, families=["wavelet"])
