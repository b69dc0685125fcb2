"""The IBSI 2 benchmark: phase-1 response maps and phase-2 filtered-image features.

Test configurations are those of the IBSI 2 reference manual (Depeursinge et al.,
arXiv:2006.05470) and its reference data (Whybra et al., Radiology 2024):

- phase 1: a filter applied to a digital phantom (64^3 voxels of 2 mm) must reproduce the
  consensus response map at every voxel within 1 % of the map's range;
- phase 2: the 18 intensity statistics of the filtered CT radiomics phantom inside its GTV,
  with the image processing of configuration A (2D, no interpolation) or B (3D, 1 mm isotropic
  cubic B-spline interpolation, rounded), must lie within the tolerance of the consensus value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radharmony.errors import ImageReadError, SettingsError
from radharmony.ibsi.filters._base import ImageFilter
from radharmony.ibsi.filters._families import (
    GaborFilter,
    LawsFilter,
    LoGFilter,
    MeanFilter,
    SimoncelliFilter,
    WaveletFilter,
)
from radharmony.ibsi.filters._features import SEPARATOR
from radharmony.ibsi.settings import ExtractionSettings

PHASE2_STATUSES = ("pass", "fail", "not_computed", "no_reference")
#: The 18 IBSI intensity statistics of phase 2, in the order of the reference table.
STATISTICS_TAGS: tuple[str, ...] = (
    "stat_mean",
    "stat_var",
    "stat_skew",
    "stat_kurt",
    "stat_median",
    "stat_min",
    "stat_p10",
    "stat_p90",
    "stat_max",
    "stat_iqr",
    "stat_range",
    "stat_mad",
    "stat_rmad",
    "stat_medad",
    "stat_cov",
    "stat_qcod",
    "stat_energy",
    "stat_rms",
)
# Slack for decimal reference values read as binary floats; far below every IBSI 2 tolerance.
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Phase1Test:
    """One IBSI 2 phase-1 test: a filter applied to a digital phantom.

    Attributes
    ----------
    test_id : str
        IBSI test identifier (``"2.b"``).
    phantom : str
        Digital phantom (``checkerboard``, ``impulse``, ``sphere``, ``pattern_1``).
    image_filter : ImageFilter or None
        The filter; None where radharmony does not implement it.
    reference_map : bool
        Whether IBSI published a consensus response map.
    note : str
        Why a test cannot be run, if it cannot.
    """

    test_id: str
    phantom: str
    image_filter: ImageFilter | None
    reference_map: bool = True
    note: str = ""

    @property
    def family(self) -> str:
        """Filter family of the test, in the words of the README table."""
        return _PHASE1_FAMILIES[self.test_id.split(".")[0]]


def _phase1_tests() -> dict[str, Phase1Test]:
    def mean(boundary: str, dimension: str = "3D") -> MeanFilter:
        return MeanFilter(support=15, dimension=dimension, boundary=boundary)

    def laws(kernel: str, boundary: str, variant: int) -> LawsFilter:
        return LawsFilter(
            kernel=kernel,
            boundary=boundary,
            rotation_invariance=variant > 1,
            pooling="max",
            energy_delta=7 if variant == 3 else None,
        )

    def gabor(sigma: float, lam: float, gamma: float, boundary: str, **kw: object) -> GaborFilter:
        return GaborFilter(sigma_mm=sigma, lambda_mm=lam, gamma=gamma, boundary=boundary, **kw)  # type: ignore[arg-type]

    def wavelet(name: str, subband: str, level: int, boundary: str, rot: bool) -> WaveletFilter:
        return WaveletFilter(
            wavelet=name, subband=subband, level=level, boundary=boundary, rotation_invariance=rot
        )

    steering = "structure-tensor steered Riesz transform: not implemented, and no reference map"
    tests = [
        Phase1Test("1.a.1", "checkerboard", mean("zero")),
        Phase1Test("1.a.2", "checkerboard", mean("nearest")),
        Phase1Test("1.a.3", "checkerboard", mean("periodic")),
        Phase1Test("1.a.4", "checkerboard", mean("mirror")),
        Phase1Test("1.b.1", "impulse", mean("zero", "2D")),
        Phase1Test("2.a", "impulse", LoGFilter(sigma_mm=3.0, boundary="zero", dimension="3D")),
        Phase1Test("2.b", "checkerboard", LoGFilter(sigma_mm=5.0, dimension="3D")),
        Phase1Test("2.c", "checkerboard", LoGFilter(sigma_mm=5.0, dimension="2D")),
        *(
            Phase1Test(f"3.{case}.{variant}", phantom, laws(kernel, boundary, variant))
            for case, phantom, kernel, boundary in (
                ("a", "impulse", "E5L5S5", "zero"),
                ("b", "checkerboard", "E3W5R5", "mirror"),
                ("c", "checkerboard", "L5S5", "mirror"),
            )
            for variant in (1, 2, 3)
        ),
        Phase1Test("4.a.1", "impulse", gabor(10, 4, 0.5, "zero", theta_deg=60, dimension="2D")),
        Phase1Test(
            "4.a.2", "impulse", gabor(10, 4, 0.5, "zero", theta_step_deg=45, dimension="3D")
        ),
        Phase1Test("4.b.1", "sphere", gabor(20, 8, 2.5, "mirror", theta_deg=225, dimension="2D")),
        Phase1Test(
            "4.b.2", "sphere", gabor(20, 8, 2.5, "mirror", theta_step_deg=22.5, dimension="3D")
        ),
        Phase1Test("5.a.1", "impulse", wavelet("db2", "LHL", 1, "zero", False)),
        Phase1Test("5.a.2", "impulse", wavelet("db2", "LHL", 1, "zero", True)),
        Phase1Test("6.a.1", "sphere", wavelet("coif1", "HHL", 1, "periodic", False)),
        Phase1Test("6.a.2", "sphere", wavelet("coif1", "HHL", 1, "periodic", True)),
        Phase1Test("7.a.1", "checkerboard", wavelet("haar", "LLL", 2, "mirror", True)),
        Phase1Test("7.a.2", "checkerboard", wavelet("haar", "HHH", 2, "mirror", True)),
        *(
            Phase1Test(
                f"8.a.{level}",
                "checkerboard",
                SimoncelliFilter(level=level, boundary="periodic", dimension="3D"),
            )
            for level in (1, 2, 3)
        ),
        Phase1Test(
            "9.a", "impulse", LoGFilter(sigma_mm=3.0, boundary="zero", riesz_order=(1, 0, 0))
        ),
        Phase1Test(
            "9.b.1", "sphere", LoGFilter(sigma_mm=3.0, boundary="zero", riesz_order=(0, 2, 0))
        ),
        Phase1Test("9.b.2", "sphere", None, reference_map=False, note=steering),
        Phase1Test(
            "10.a",
            "impulse",
            SimoncelliFilter(level=1, boundary="zero", riesz_order=(1, 0, 0)),
            reference_map=False,
            note="no consensus: IBSI published no reference map",
        ),
        Phase1Test(
            "10.b.1",
            "pattern_1",
            SimoncelliFilter(level=1, boundary="nearest", riesz_order=(0, 2, 0)),
        ),
        Phase1Test("10.b.2", "pattern_1", None, reference_map=False, note=steering),
    ]
    return {test.test_id: test for test in tests}


_PHASE1_FAMILIES = {
    "1": "mean",
    "2": "Laplacian of Gaussian",
    "3": "Laws kernels",
    "4": "Gabor",
    "5": "separable wavelets",
    "6": "separable wavelets",
    "7": "separable wavelets",
    "8": "Simoncelli wavelets",
    "9": "Riesz-transformed LoG",
    "10": "Riesz-transformed Simoncelli",
}

#: Every IBSI 2 phase-1 test, including those without a reference map.
PHASE1_TESTS: dict[str, Phase1Test] = _phase1_tests()


def reference_map_name(test_id: str) -> str:
    """File name of a phase-1 consensus map in the IBSI 2 reference data (``2_b-ValidCRM``)."""
    return f"{test_id.replace('.', '_')}-ValidCRM.nii.gz"


def check_response_map(
    test_id: str, image: str | Path | sitk.Image, reference: str | Path | sitk.Image
) -> dict[str, object]:
    """Filter a phase-1 phantom and compare with the IBSI consensus response map.

    A test passes when every voxel differs from the reference map by at most 1 % of the
    reference map's range (IBSI 2 reference data), computed in float64.

    Parameters
    ----------
    test_id : str
        Phase-1 test (``"1.a.1"`` ... ``"10.b.1"``, see :data:`PHASE1_TESTS`).
    image : path or SimpleITK.Image
        The digital phantom of the test.
    reference : path or SimpleITK.Image
        The consensus response map (``<test>-ValidCRM.nii.gz``).

    Returns
    -------
    dict
        ``test_id``, ``family``, ``filter`` (column label), ``max_error``, ``tolerance``,
        ``failing_voxels``, ``voxels``, ``error_ratio`` (max error / tolerance) and ``status``
        (``pass`` or ``fail``).
    """
    test = PHASE1_TESTS.get(test_id)
    if test is None:
        raise SettingsError(
            f"unknown IBSI 2 phase-1 test {test_id!r}; known: {sorted(PHASE1_TESTS)}"
        )
    if test.image_filter is None:
        raise SettingsError(f"IBSI 2 test {test_id} cannot be run: {test.note}")
    phantom, expected = _read(image, "phantom"), _read(reference, "reference map")
    if phantom.GetSize() != expected.GetSize():
        raise SettingsError(
            f"phantom size {phantom.GetSize()} differs from the reference map size "
            f"{expected.GetSize()}; give the phantom of test {test_id} ({test.phantom})"
        )
    values = sitk.GetArrayFromImage(phantom).astype(np.float64)
    spacing = tuple(float(s) for s in phantom.GetSpacing()[::-1])
    response = test.image_filter.apply(values, spacing)
    target = sitk.GetArrayFromImage(expected).astype(np.float64)
    tolerance = 0.01 * float(target.max() - target.min())
    error = np.abs(response - target)
    failing = int(np.count_nonzero(error > tolerance))
    return {
        "test_id": test_id,
        "family": test.family,
        "filter": test.image_filter.label,
        "max_error": float(error.max()),
        "tolerance": tolerance,
        "failing_voxels": failing,
        "voxels": int(error.size),
        "error_ratio": float(error.max() / tolerance) if tolerance > 0 else float("inf"),
        "status": "pass" if failing == 0 else "fail",
    }


def phase2_filters(config: str) -> dict[str, ImageFilter | None]:
    """The nine filter configurations of phase 2 for configuration ``A`` (2D) or ``B`` (3D)."""
    config = _config_name(config)
    dimension = "2D" if config == "A" else "3D"
    two = config == "A"
    filters: list[ImageFilter | None] = [
        None,
        MeanFilter(support=5, dimension=dimension),
        LoGFilter(sigma_mm=1.5, truncate=4.0, dimension=dimension),
        LawsFilter(
            kernel="L5E5" if two else "L5E5E5",
            energy_delta=7,
            rotation_invariance=True,
            pooling="max",
        ),
        GaborFilter(
            sigma_mm=5.0,
            lambda_mm=2.0,
            gamma=1.5,
            theta_step_deg=22.5,
            pooling="mean",
            dimension=dimension,
        ),
        WaveletFilter(
            wavelet="db3", subband="LH" if two else "LLH", level=1, rotation_invariance=True
        ),
        WaveletFilter(
            wavelet="db3", subband="HH" if two else "HHH", level=2, rotation_invariance=True
        ),
        # IBSI's reference implementations apply the Fourier-domain Simoncelli filter to the
        # image as it is, i.e. with the FFT's periodic boundary; the consensus values are theirs.
        SimoncelliFilter(level=1, dimension=dimension, boundary="periodic"),
        SimoncelliFilter(level=2, dimension=dimension, boundary="periodic"),
    ]
    return {f"{i}.{config}": image_filter for i, image_filter in enumerate(filters, start=1)}


def phase2_settings(config: str) -> ExtractionSettings:
    """Extraction settings of phase-2 configuration ``A`` or ``B``, with its eight filters.

    Both re-segment the ROI to [-1000, 400] HU of the unfiltered image. A keeps the acquired
    grid and filters each axial slice; B resamples to 1 mm isotropic voxels (cubic B-spline
    image interpolation, rounded to integers; linear mask interpolation, threshold 0.5) and
    filters in 3D.
    """
    config = _config_name(config)
    filters = tuple(f for f in phase2_filters(config).values() if f is not None)
    common = {
        "feature_classes": ("statistics",),
        "resegment_range": (-1000.0, 400.0),
        "filters": filters,
    }
    if config == "A":
        return ExtractionSettings(
            name="ibsi2_A",
            dimension="2D",
            resampled_spacing=None,
            **common,  # type: ignore[arg-type]
        )
    return ExtractionSettings(
        name="ibsi2_B",
        dimension="3D",
        resampled_spacing=(1.0, 1.0, 1.0),
        image_interpolator="bspline",
        round_intensities=True,
        mask_threshold=0.5,
        **common,  # type: ignore[arg-type]
    )


def read_phase2_reference(path: str | Path, config: str | None = None) -> pd.DataFrame:
    """Read IBSI 2 phase-2 reference values (``filter_id;feature;feature_tag;consensus_value;
    tolerance``).

    Parameters
    ----------
    path : str or Path
        ``;``-separated reference CSV.
    config : {"A", "B"}, optional
        Keep only the rows of this configuration (filter ids ending in ``.A`` or ``.B``).

    Returns
    -------
    pandas.DataFrame
        ``filter_id``, ``tag``, ``reference`` and ``tolerance`` (NaN where the file gives no
        consensus value), in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"IBSI 2 reference file {path} does not exist")
    raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    raw.columns = [str(c).strip() for c in raw.columns]
    needed = ["filter_id", "feature_tag", "consensus_value", "tolerance"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise SettingsError(
            f"IBSI 2 reference file {path} lacks column(s) {missing}; expected the header "
            "filter_id;feature;feature_tag;consensus_value;tolerance"
        )
    table = pd.DataFrame(
        {
            "filter_id": raw["filter_id"].str.strip().to_numpy(),
            "tag": raw["feature_tag"].str.strip().to_numpy(),
            "reference": pd.to_numeric(raw["consensus_value"].str.strip(), errors="coerce"),
            "tolerance": pd.to_numeric(raw["tolerance"].str.strip(), errors="coerce"),
        }
    )
    bad = raw["consensus_value"].str.strip().ne("") & table["reference"].isna()
    if bad.any():
        raise SettingsError(
            f"IBSI 2 reference file {path} holds non-numeric consensus value(s) in row(s) "
            f"{[int(i) + 2 for i in np.flatnonzero(bad.to_numpy())]}"
        )
    if config is not None:
        suffix = f".{_config_name(config)}"
        table = table[table["filter_id"].str.endswith(suffix)].reset_index(drop=True)
    return table


def compute_phase2(
    image: str | Path | sitk.Image, mask: str | Path | sitk.Image, config: str
) -> pd.DataFrame:
    """The 18 intensity statistics of every phase-2 filter configuration of ``config``.

    The lesion is processed once with :func:`phase2_settings` (the filters computed on a crop
    around the ROI wide enough for their support); configuration 1 is the unfiltered image.

    Returns
    -------
    pandas.DataFrame
        ``filter_id``, ``filter`` (column label, empty for 1.A/1.B), ``tag``, ``value``.
    """
    from radharmony.ibsi.families import statistics_features
    from radharmony.ibsi.filters._features import filtered_features
    from radharmony.ibsi.processing import process_lesion

    settings = phase2_settings(config)
    image_in = _rounded(_read(image, "image"))
    mask_in = sitk.Cast(_read(mask, "mask") > 0.5, sitk.sitkUInt8)
    lesion = process_lesion(image_in, mask_in, settings)
    columns = filtered_features(lesion, settings)
    unfiltered = statistics_features(lesion.intensities, lesion.intensity_mask)
    rows = []
    for filter_id, image_filter in phase2_filters(config).items():
        label = "" if image_filter is None else image_filter.label
        for tag in STATISTICS_TAGS:
            value = unfiltered[tag] if image_filter is None else columns[f"{label}{SEPARATOR}{tag}"]
            rows.append({"filter_id": filter_id, "filter": label, "tag": tag, "value": value})
    return pd.DataFrame(rows)


def check_phase2(
    image: str | Path | sitk.Image,
    mask: str | Path | sitk.Image,
    config: str,
    reference: str | Path | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Compute phase-2 configuration ``A`` or ``B`` and compare with IBSI reference values.

    Parameters
    ----------
    image, mask : path or SimpleITK.Image
        The IBSI 2 CT radiomics phantom and its GTV mask (read as floating point, rounded to
        integers, as IBSI instructs for its benchmark data).
    config : {"A", "B"}
        Phase-2 image-processing configuration.
    reference : path or pandas.DataFrame, optional
        Reference values (:func:`read_phase2_reference`); rows of the other configuration are
        ignored. Without it every value is reported with status ``no_reference``.

    Returns
    -------
    pandas.DataFrame
        One row per computed value (9 configurations x 18 statistics), then one per reference
        row that was not computed: ``filter_id``, ``tag``, ``reference``, ``tolerance``,
        ``value``, ``status`` (``pass``: within tolerance, ``fail``, ``not_computed``: a
        reference value radharmony did not compute, ``no_reference``: computed, but the
        reference gives no consensus value) and ``filter`` (the column label).
    """
    config = _config_name(config)
    computed = compute_phase2(image, mask, config)
    if reference is None:
        table = pd.DataFrame(columns=["filter_id", "tag", "reference", "tolerance"])
    elif isinstance(reference, pd.DataFrame):
        table = reference[reference["filter_id"].str.endswith(f".{config}")]
    else:
        table = read_phase2_reference(reference, config)
    known = {(r.filter_id, r.tag): (r.reference, r.tolerance) for r in table.itertuples()}
    rows = []
    for row in computed.itertuples(index=False):
        ref, tol = known.pop((row.filter_id, row.tag), (float("nan"), float("nan")))
        rows.append(_row(row.filter_id, row.tag, ref, tol, float(row.value), row.filter))
    for (filter_id, tag), (ref, tol) in known.items():
        rows.append(_row(filter_id, tag, ref, tol, float("nan"), ""))
    return pd.DataFrame(rows)


def phase2_summary(result: pd.DataFrame, config: str) -> str:
    """One line: ``IBSI 2 phase 2 <config>: P passed, F failed, N not computed, R without
    reference``."""
    counts = result["status"].value_counts()
    return (
        f"IBSI 2 phase 2 configuration {config}: {counts.get('pass', 0)} passed, "
        f"{counts.get('fail', 0)} failed, {counts.get('not_computed', 0)} not computed, "
        f"{counts.get('no_reference', 0)} without reference value, of {len(result)} rows"
    )


def _row(
    filter_id: str, tag: str, reference: float, tolerance: float, value: float, label: str
) -> dict[str, object]:
    if not np.isfinite(value):
        status = "not_computed"
    elif not np.isfinite(reference):
        status = "no_reference"
    else:
        slack = _FLOAT_SLACK * max(1.0, abs(reference))
        status = "pass" if abs(value - reference) <= tolerance + slack else "fail"
    return {
        "filter_id": filter_id,
        "tag": tag,
        "reference": reference,
        "tolerance": tolerance,
        "value": value,
        "status": status,
        "filter": label,
    }


def _config_name(config: str) -> str:
    name = str(config).strip().upper()
    if name not in ("A", "B"):
        raise SettingsError(f"IBSI 2 phase-2 configuration must be 'A' or 'B', got {config!r}")
    return name


def _rounded(image: sitk.Image) -> sitk.Image:
    # IBSI asks for its benchmark images to be read as floating point and rounded to integers
    out = sitk.GetImageFromArray(np.rint(sitk.GetArrayFromImage(image).astype(np.float64)))
    out.CopyInformation(image)
    return out


def _read(source: str | Path | sitk.Image, role: str) -> sitk.Image:
    if isinstance(source, sitk.Image):
        return source
    path = Path(source)
    if not path.is_file():
        raise ImageReadError(f"{role} file {path} does not exist")
    try:
        return sitk.ReadImage(str(path), sitk.sitkFloat64)
    except RuntimeError as err:
        raise ImageReadError(f"cannot read {role} {path}: {err}") from err


__all__ = [
    "PHASE1_TESTS",
    "PHASE2_STATUSES",
    "STATISTICS_TAGS",
    "Phase1Test",
    "check_phase2",
    "check_response_map",
    "compute_phase2",
    "phase2_filters",
    "phase2_settings",
    "phase2_summary",
    "read_phase2_reference",
    "reference_map_name",
]
