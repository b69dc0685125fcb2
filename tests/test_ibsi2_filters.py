"""IBSI 2 filters on small synthetic volumes: definitions, boundary conditions, settings, naming.

The reference values here are independent computations: explicit kernels from the IBSI
formulas convolved brute force on explicitly padded arrays, PyWavelets' stationary wavelet
transform, and symmetry properties the filters must have.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage, signal

from radharmony.errors import SettingsError
from radharmony.ibsi import ExtractionSettings
from radharmony.ibsi.filters import (
    LawsFilter,
    LoGFilter,
    MeanFilter,
    SimoncelliFilter,
    WaveletFilter,
    filter_from_mapping,
    filter_image,
)
from radharmony.ibsi.filters._convolution import PAD_MODES, right_angle_rotations
from radharmony.ibsi.filters._responses import gabor_response, laws_kernels

BOUNDARIES = ("zero", "nearest", "periodic", "mirror")


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(7).normal(100.0, 30.0, (14, 17, 19))


def _brute_force(image: np.ndarray, kernel: np.ndarray, boundary: str) -> np.ndarray:
    """Convolution with an explicit centred kernel on the explicitly padded image."""
    pad = [(k // 2, k // 2) for k in kernel.shape]
    padded = np.pad(image, pad, mode=PAD_MODES[boundary])
    return signal.convolve(padded, kernel, mode="valid", method="direct")


def _ibsi_log_kernel(sigma: float, truncate: float, dims: int) -> np.ndarray:
    """The IBSI LoG kernel -1/s^2 (2 pi s^2)^(-D/2) (D - r^2/s^2) exp(-r^2 / 2 s^2), in voxels."""
    radius = int(np.floor(truncate * sigma + 0.5))
    grid = np.meshgrid(*[np.arange(-radius, radius + 1.0)] * dims, indexing="ij")
    r2 = sum(g**2 for g in grid)
    return (
        -1.0
        / sigma**2
        * (2 * np.pi * sigma**2) ** (-dims / 2)
        * (dims - r2 / sigma**2)
        * np.exp(-r2 / (2 * sigma**2))
    )


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_mean_and_log_equal_explicit_kernels_with_each_boundary(
    volume: np.ndarray, boundary: str
) -> None:
    mean = filter_image(volume, MeanFilter(support=5, boundary=boundary, dimension="3D"))
    np.testing.assert_allclose(mean, _brute_force(volume, np.full((5, 5, 5), 1 / 125), boundary))
    # sigma 3 mm on 2 mm voxels: 1.5 voxels, kernel of 1 + 2 floor(6.5) = 13 voxels
    log = filter_image(
        volume, LoGFilter(sigma_mm=3.0, boundary=boundary, dimension="3D"), spacing=(2, 2, 2)
    )
    expected = _brute_force(volume, _ibsi_log_kernel(1.5, 4.0, 3), boundary)
    np.testing.assert_allclose(log, expected, atol=1e-9 * np.ptp(expected))


def test_mirror_repeats_the_edge_voxel() -> None:
    # IBSI "mirror" is abc|cba (numpy "symmetric"), not abc|ba (numpy "reflect")
    image = np.zeros((1, 1, 6))
    image[0, 0, :] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    mean = filter_image(image, MeanFilter(support=3, dimension="2D"))
    assert mean[0, 0, 0] == pytest.approx((1 + 1 + 2) / 3)
    assert mean[0, 0, -1] == pytest.approx((5 + 6 + 6) / 3)


def test_2d_filters_act_on_each_axial_slice_alone(volume: np.ndarray) -> None:
    log = filter_image(volume, LoGFilter(sigma_mm=1.0, dimension="2D"))
    one_slice = filter_image(volume[5:6], LoGFilter(sigma_mm=1.0, dimension="2D"))
    np.testing.assert_allclose(log[5:6], one_slice)
    expected = _brute_force(volume[5:6], _ibsi_log_kernel(1.0, 4.0, 2)[None], "mirror")
    np.testing.assert_allclose(one_slice, expected, atol=1e-9 * np.ptp(expected))


def test_laws_is_a_true_convolution_with_unit_norm_kernels(volume: np.ndarray) -> None:
    kx, ky, kz = laws_kernels("E5L5S5")
    kernel = kz[:, None, None] * ky[None, :, None] * kx[None, None, :]  # letters are x, y, z
    response = filter_image(volume, LawsFilter(kernel="E5L5S5", boundary="zero"))
    np.testing.assert_allclose(response, _brute_force(volume, kernel, "zero"), atol=1e-9)
    energy = filter_image(volume, LawsFilter(kernel="E5L5S5", boundary="zero", energy_delta=2))
    expected = _brute_force(np.abs(response), np.full((5, 5, 5), 1 / 125), "zero")
    np.testing.assert_allclose(energy, expected, atol=1e-9)


def test_right_angle_rotations_are_the_24_proper_rotations_of_the_cube() -> None:
    for n_axes, count in ((2, 4), (3, 24)):
        rotations = right_angle_rotations(n_axes)
        assert len(rotations) == count == len(set(rotations))
        for perm, signs in rotations:
            matrix = np.zeros((n_axes, n_axes))
            matrix[range(n_axes), perm] = signs
            assert np.linalg.det(matrix) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "image_filter",
    [
        LawsFilter(kernel="E5L5S5", rotation_invariance=True, boundary="zero"),
        LawsFilter(kernel="L5E5E5", rotation_invariance=True, pooling="mean", boundary="zero"),
        WaveletFilter(wavelet="coif1", subband="HHL", rotation_invariance=True, boundary="zero"),
    ],
    ids=lambda f: f.label,
)
def test_rotation_invariant_responses_rotate_with_the_image(image_filter: object) -> None:
    cube = np.random.default_rng(3).normal(size=(13, 13, 13))
    response = filter_image(cube, image_filter)  # type: ignore[arg-type]
    for axes in itertools.combinations(range(3), 2):
        rotated = filter_image(np.rot90(cube, axes=axes), image_filter)  # type: ignore[arg-type]
        np.testing.assert_allclose(rotated, np.rot90(response, axes=axes), atol=1e-9)


@pytest.mark.parametrize(
    ("wavelet", "subband", "level"),
    [("db2", "LHL", 1), ("coif1", "HHL", 1), ("haar", "HHH", 2), ("db3", "LLH", 2)],
)
def test_undecimated_wavelet_equals_pywavelets_swtn(wavelet: str, subband: str, level: int) -> None:
    import pywt

    image = np.random.default_rng(1).normal(size=(16, 20, 24))
    response = filter_image(
        image, WaveletFilter(wavelet=wavelet, subband=subband, level=level, boundary="periodic")
    )
    # swtn keys list the array axes (z, y, x): the sub-band letters reversed
    key = "".join("a" if letter == "L" else "d" for letter in reversed(subband))
    expected = pywt.swtn(image, wavelet, level=level, trim_approx=False)[0][key]
    np.testing.assert_allclose(response, expected, atol=1e-12)


def test_gabor_equals_direct_convolution_with_its_kernel() -> None:
    image = np.random.default_rng(5).normal(size=(3, 30, 28))
    sigma, lam, gamma, truncate = 3.0, 2.5, 0.8, 3.0
    thetas = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
    pooled = gabor_response(
        image, (1, 1, 1), sigma, lam, gamma, thetas, "2D", "mirror", "mean", "modulus", truncate
    )
    radius = int(np.ceil(truncate * sigma / gamma))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(float)
    moduli = []
    for theta in np.radians(thetas):
        xr = x * np.cos(theta) + y * np.sin(theta)
        yr = x * np.sin(theta) - y * np.cos(theta)
        kernel = np.exp(-(xr**2 + gamma**2 * yr**2) / (2 * sigma**2) + 2j * np.pi * xr / lam)
        parts = [
            np.stack(
                [
                    ndimage.convolve(s, part, mode="reflect")
                    for s in image  # ndimage "reflect" is IBSI mirror
                ]
            )
            for part in (kernel.real, kernel.imag)
        ]
        moduli.append(np.hypot(*parts))
    np.testing.assert_allclose(pooled, np.mean(moduli, axis=0), rtol=1e-9, atol=1e-9)


def test_simoncelli_removes_a_constant_and_keeps_a_band() -> None:
    flat = np.full((16, 16, 16), 50.0)
    assert np.abs(filter_image(flat, SimoncelliFilter(level=1, boundary="periodic"))).max() < 1e-9
    # a cosine at half the Nyquist frequency lies at the band's peak (response = input)
    x = np.arange(64)
    wave = np.broadcast_to(np.cos(np.pi / 2 * x), (4, 4, 64)).copy()
    response = filter_image(wave, SimoncelliFilter(level=1, boundary="periodic", dimension="3D"))
    assert np.corrcoef(response.ravel(), wave.ravel())[0, 1] > 0.99


def test_filters_from_settings_mappings_and_their_column_labels() -> None:
    settings = ExtractionSettings.from_any(
        {
            "preset": "ct",
            "filters": [
                {"filter": "mean", "support": 5, "dimension": "2D"},
                {"filter": "log", "sigma_mm": 1.5},
                {
                    "filter": "laws",
                    "kernel": "L5E5E5",
                    "energy_delta": 7,
                    "rotation_invariance": True,
                },
                {
                    "filter": "gabor",
                    "sigma_mm": 5,
                    "lambda_mm": 2,
                    "gamma": 1.5,
                    "theta_step_deg": 22.5,
                    "dimension": "3D",
                },
                {"filter": "gabor", "sigma_mm": 10, "lambda_mm": 4, "gamma": 0.5, "theta_deg": 60},
                {"filter": "wavelet", "wavelet": "db3", "subband": "HH", "level": 2},
                {"filter": "simoncelli", "level": 1, "boundary": "periodic"},
                {"filter": "log", "sigma_mm": 3, "riesz_order": [1, 0, 0], "boundary": "zero"},
                {"filter": "log", "sigma_mm": 2, "name": "my_log"},
            ],
        }
    )
    assert [f.label for f in settings.filters] == [
        "mean_support5_2D",
        "log_sigma1p5mm_3D",
        "laws_L5E5E5_energy7_rotinvmax_3D",
        "gabor_sigma5mm_lambda2mm_gamma1p5_thetastep22p5deg_rotinvmean_3D",
        "gabor_sigma10mm_lambda4mm_gamma0p5_theta60deg_3D",
        "wavelet_db3_HH_level2_2D",
        "simoncelli_level1_periodic_3D",
        "log_sigma3mm_riesz100_zero_3D",
        "my_log",
    ]
    # a 2D extraction runs filters without a dimension per slice
    flat = ExtractionSettings.from_any(
        {"preset": "A", "filters": [{"filter": "log", "sigma_mm": 1}]}
    )
    assert flat.filters[0].label == "log_sigma1mm_2D"
    # the settings round-trip through their dict (provenance, cache key)
    again = ExtractionSettings.from_any({**settings.to_dict(), "preset": "ct"})
    assert again.filters == settings.filters
    assert again.fingerprint() == settings.fingerprint()
    assert settings.fingerprint() != ExtractionSettings.from_any("ct").fingerprint()
    assert "filters" not in ExtractionSettings.from_any("ct").to_dict()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"filter": "sobel"}, "'filter' must name one of"),
        ({"filter": "log"}, "missing required key(s) ['sigma_mm']"),
        ({"filter": "log", "sigma_mm": 1, "sigma": 2}, "unknown key(s) ['sigma']"),
        ({"filter": "log", "sigma_mm": -1}, "sigma_mm must be a positive number"),
        ({"filter": "mean", "support": 4}, "odd number of voxels"),
        ({"filter": "laws", "kernel": "L5X5"}, "kernel 'L5X5' must be"),
        ({"filter": "laws", "kernel": "L5E5", "dimension": "3D"}, "dimension is 3D"),
        ({"filter": "wavelet", "wavelet": "db99", "subband": "LH"}, "not a discrete PyWavelets"),
        ({"filter": "wavelet", "wavelet": "db2", "subband": "LX"}, "subband 'LX'"),
        (
            {"filter": "gabor", "sigma_mm": 1, "lambda_mm": 1, "gamma": 1, "theta_step_deg": 7},
            "divide 360",
        ),
        ({"filter": "log", "sigma_mm": 1, "boundary": "reflect"}, "boundary must be one of"),
        ({"filter": "log", "sigma_mm": 1, "features": ["shape"]}, "unknown: ['shape']"),
        ({"filter": "simoncelli", "riesz_order": [0, 0, 0]}, "riesz_order must be"),
        ({"filter": "log", "sigma_mm": 1, "name": "a__b"}, "single underscores"),
    ],
)
def test_invalid_filters_are_named_with_the_fix(values: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=f"filters\\[0\\].*{_escaped(message)}"):
        ExtractionSettings.from_any({"filters": [values]})


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_the_same_filter_twice_is_refused() -> None:
    twice = [{"filter": "log", "sigma_mm": 1.0}, {"filter": "log", "sigma_mm": 1}]
    with pytest.raises(SettingsError, match="listed twice"):
        ExtractionSettings.from_any({"filters": twice})
    assert filter_from_mapping({"filter": "log", "sigma_mm": 1}).label == "log_sigma1mm_3D"
