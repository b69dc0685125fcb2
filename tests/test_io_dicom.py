"""DICOM RTSTRUCT and SEG masks on a real DICOM CT series.

pydicom ships real DICOM files, but no structure set or segmentation together with the image
series it references: its ``rtstruct.dcm`` and ``liver_1frame.dcm`` reference series that are not
shipped (they are used below for the "another series" errors). The structure sets and
segmentations compared with an independent rasterisation are therefore written by these tests, with
pydicom (RTSTRUCT) and highdicom (SEG), on a real CT series that pydicom ships
(``dicomdirtests/98892001/CT5N``: 5 axial slices of 16 x 16 pixels, 0.488 mm pixels, 2.5 mm
apart), from masks made independently of radharmony's rasteriser:

- analytic discs (a ring with a hole, two islands) rasterised by the distance of each voxel centre
  from the disc centre, with voxel centres taken from SimpleITK's geometry;
- a mask thresholded from the real CT values, contoured by contourpy (marching squares at level
  0.5, so every contour runs half-way between an inside and an outside voxel centre).

Agreement is required voxel for voxel (a tolerance of 0 voxels). Against the exact geometric
volume of the analytic shapes the tolerance is half the band one pixel diagonal wide around the
contours: |V - V_exact| <= 0.5 x perimeter x pixel diagonal x slice spacing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radharmony import failures_of
from radharmony.errors import GeometryMismatchError, ImageReadError
from radharmony.io import read_dicom_mask, read_image, read_mask

pydicom = pytest.importorskip("pydicom")
highdicom = pytest.importorskip("highdicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
N_VERTICES = 720


def _pydicom_series(name: str) -> Path:
    return Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / name


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real 5-slice CT series shipped with pydicom, alone in its folder."""
    folder = tmp_path_factory.mktemp("ct5n") / "series"
    shutil.copytree(_pydicom_series("98892001/CT5N"), folder)
    return folder


@pytest.fixture(scope="module")
def grid(ct_series: Path) -> sitk.Image:
    return read_image(ct_series)


def _datasets(folder: Path) -> list[Dataset]:
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    return [pydicom.dcmread(f) for f in files]


def _voxel_centres(grid: sitk.Image) -> np.ndarray:
    """Physical (x, y, z) of every voxel centre, array order (z, y, x, 3), from SimpleITK."""
    nx, ny, nz = grid.GetSize()
    points = [
        grid.TransformIndexToPhysicalPoint((i, j, k))
        for k in range(nz)
        for j in range(ny)
        for i in range(nx)
    ]
    return np.asarray(points).reshape(nz, ny, nx, 3)


def _circle(centre: np.ndarray, radius: float, z: float, clockwise: bool = False) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, N_VERTICES, endpoint=False)
    if clockwise:
        angles = angles[::-1]
    x = centre[0] + radius * np.cos(angles)
    y = centre[1] + radius * np.sin(angles)
    return np.column_stack([x, y, np.full_like(x, z)])


def _write_rtstruct(
    path: Path,
    source: list[Dataset],
    rois: dict[str, list[np.ndarray]],
    *,
    series_uid: str | None = None,
) -> Path:
    """Write a minimal RT Structure Set with one closed planar contour per array of points."""
    first = source[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.PatientID = first.PatientID
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "test"
    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = series_uid or first.SeriesInstanceUID
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([referenced_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi_items, contour_items = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi_items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        sequence = []
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.6f}" for v in points.ravel()]
            sequence.append(contour)
        item.ContourSequence = Sequence(sequence)
        contour_items.append(item)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_seg(
    path: Path,
    source: list[Dataset],
    masks: dict[str, np.ndarray],
    fractional: bool = False,
) -> Path:
    from pydicom.sr.codedict import codes

    descriptions = [
        highdicom.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, name in enumerate(masks, start=1)
    ]
    stack = np.stack(list(masks.values()), axis=-1)
    kind = highdicom.seg.SegmentationTypeValues
    seg = highdicom.seg.Segmentation(
        source_images=source,
        pixel_array=stack.astype(np.float32 if fractional else bool),
        segmentation_type=kind.FRACTIONAL if fractional else kind.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=highdicom.UID(),
        series_number=99,
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
        manufacturer="radharmony tests",
        manufacturer_model_name="none",
        software_versions="0",
        device_serial_number="0",
        **({"max_fractional_value": 100} if fractional else {}),
    )
    seg.save_as(path)
    return path


def _analytic_shapes(grid: sitk.Image) -> dict[str, object]:
    """A ring (disc with a hole) on slices 1-3 and two islands on slice 4, as contours and as
    masks rasterised from the exact shapes."""
    centres = _voxel_centres(grid)
    middle = centres[:, 7, 7, :2] + np.array([0.17, -0.24])  # off the voxel lattice on purpose
    z = centres[:, 0, 0, 2]
    outer, inner = 2.6, 1.2
    islands = [(middle[4] + np.array([-1.9, -1.5]), 1.3), (middle[4] + np.array([2.0, 1.7]), 1.1)]
    contours, exact = [], np.zeros(centres.shape[:3], dtype=bool)
    perimeter = 0.0
    for k in (1, 2, 3):
        distance = np.linalg.norm(centres[k, :, :, :2] - middle[k], axis=-1)
        contours.append(_circle(middle[k], outer, z[k]))
        exact[k] = distance <= outer
        perimeter += 2 * np.pi * outer
        if k == 2:  # the hole is drawn clockwise, the outer contour anticlockwise
            contours.append(_circle(middle[k], inner, z[k], clockwise=True))
            exact[k] &= distance > inner
            perimeter += 2 * np.pi * inner
    node = np.zeros_like(exact)
    node_contours = []
    for centre, radius in islands:
        node_contours.append(_circle(centre, radius, z[4]))
        node[4] |= np.linalg.norm(centres[4, :, :, :2] - centre, axis=-1) <= radius
    # every voxel centre must be clear of the polygons' chords and of the 1/1000-voxel margin
    # that counts as "on the contour", or the two rasterisations could differ legitimately
    clearance = outer * (1 - np.cos(np.pi / N_VERTICES)) + 1e-3 * max(grid.GetSpacing())
    for centre, radius in [(middle[k], r) for k in (1, 2, 3) for r in (outer, inner)] + islands:
        gap = np.abs(np.linalg.norm(centres[..., :2] - centre, axis=-1) - radius)
        assert gap.min() > 2 * clearance
    area = np.pi * (3 * outer**2 - inner**2)
    node_area = sum(np.pi * r**2 for _, r in islands)
    return {
        "contours": {"GTV": contours, "node": node_contours},
        "masks": {"GTV": exact, "node": node},
        "areas": {"GTV": area, "node": node_area},
        "perimeters": {"GTV": perimeter, "node": sum(2 * np.pi * r for _, r in islands)},
    }


def test_rtstruct_rois_match_an_independent_rasterisation(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    shapes = _analytic_shapes(grid)
    path = _write_rtstruct(tmp_path / "rs.dcm", _datasets(ct_series), shapes["contours"])
    result = read_dicom_mask(path, ct_series)
    labels = sitk.GetArrayFromImage(result.image)
    assert result.modality == "RTSTRUCT"
    assert result.names == {1: "GTV", 2: "node"}
    np.testing.assert_array_equal(labels == 1, shapes["masks"]["GTV"])
    np.testing.assert_array_equal(labels == 2, shapes["masks"]["node"])
    assert sitk.GetArrayFromImage(result.image)[2, 7, 7] == 0  # the hole
    sx, sy, sz = grid.GetSpacing()
    for number, name in result.names.items():
        volume = np.count_nonzero(labels == number) * sx * sy * sz
        exact = shapes["areas"][name] * sz
        tolerance = 0.5 * shapes["perimeters"][name] * np.hypot(sx, sy) * sz
        assert abs(volume - exact) <= tolerance, (name, volume, exact, tolerance)
    assert result.image.GetSize() == grid.GetSize()
    assert result.image.GetOrigin() == grid.GetOrigin()


def _real_tissue_mask(grid: sitk.Image) -> np.ndarray:
    """Voxels of the real CT above -300 HU, with a hole punched on one slice."""
    values = sitk.GetArrayFromImage(grid)
    mask = values > -300
    mask[2, 6:9, 6:9] = False
    return mask


def _contours_of(mask: np.ndarray, grid: sitk.Image) -> list[np.ndarray]:
    contourpy = pytest.importorskip("contourpy")
    contours = []
    for k, plane in enumerate(mask):
        padded = np.pad(plane.astype(np.float64), 1)  # closes contours at the image border
        generator = contourpy.contour_generator(z=padded, line_type="Separate")
        for line in generator.lines(0.5):
            index = line[:-1] - 1.0  # (x, y) array indices; drop the repeated closing point
            points = [
                grid.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(k)))
                for x, y in index
            ]
            contours.append(np.asarray(points))
    return contours


def test_rtstruct_from_contoured_real_ct_mask_is_voxel_exact(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    mask = _real_tissue_mask(grid)
    assert 50 < mask.sum() < mask.size - 50  # a real shape, neither empty nor full
    contours = _contours_of(mask, grid)
    assert len(contours) > mask.shape[0]  # the punched hole adds contours
    path = _write_rtstruct(tmp_path / "rs.dcm", _datasets(ct_series), {"tissue": contours})
    labels, names = read_mask(path, image_source=ct_series)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels) == 1, mask)
    assert names == {1: "tissue"}


def test_seg_segments_match_the_mask_they_were_written_from(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    tissue = _real_tissue_mask(grid)
    ball = np.zeros_like(tissue)
    ball[1:4, 2:6, 10:14] = True
    tissue &= ~ball
    path = _write_seg(
        tmp_path / "seg.dcm", _datasets(ct_series), {"tissue": tissue, "nodule": ball}
    )
    result = read_dicom_mask(path, ct_series, reference=grid)
    labels = sitk.GetArrayFromImage(result.image)
    assert result.modality == "SEG"
    assert result.names == {1: "tissue", 2: "nodule"}
    np.testing.assert_array_equal(labels == 1, tissue)
    np.testing.assert_array_equal(labels == 2, ball)
    only_nodule = read_dicom_mask(path, ct_series, rois="NODULE")  # case-insensitive
    assert only_nodule.names == {2: "nodule"}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(only_nodule.image) == 2, ball)


def test_fractional_seg_is_thresholded_at_one_half(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    fraction = np.zeros(sitk.GetArrayFromImage(grid).shape, dtype=np.float32)
    fraction[2, 4:8, 4:8] = 0.49
    fraction[2, 5:7, 5:7] = 0.5
    fraction[3, 5:7, 5:7] = 1.0
    path = _write_seg(tmp_path / "frac.dcm", _datasets(ct_series), {"p": fraction}, True)
    labels = sitk.GetArrayFromImage(read_dicom_mask(path, ct_series).image)
    np.testing.assert_array_equal(labels == 1, fraction >= 0.5)


def test_structure_set_of_another_series_is_a_clear_error(ct_series: Path) -> None:
    real = Path(get_testdata_file("rtstruct.dcm"))  # a real structure set of another study
    with pytest.raises(GeometryMismatchError) as err:
        read_dicom_mask(real, ct_series)
    message = str(err.value)
    assert "1.2.826.0.1.3680043.8.498.2010020400001.2.1.1" in message  # the series it references
    assert str(ct_series) in message and "drawn on" in message


def test_segmentation_of_another_series_is_a_clear_error(ct_series: Path, tmp_path: Path) -> None:
    other = tmp_path / "ct2"
    shutil.copytree(_pydicom_series("77654033/CT2"), other)
    path = _write_seg(
        tmp_path / "seg.dcm", _datasets(other), {"x": np.ones((4, 16, 16), dtype=bool)}
    )
    with pytest.raises(GeometryMismatchError, match="made on series"):
        read_dicom_mask(path, ct_series)
    real = Path(get_testdata_file("liver_1frame.dcm"))  # a real SEG of a series not shipped
    with pytest.raises(GeometryMismatchError, match="made on series"):
        read_dicom_mask(real, ct_series)


def test_contours_off_the_slice_planes_are_refused(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    centres = _voxel_centres(grid)
    between = (centres[1, 0, 0, 2] + centres[2, 0, 0, 2]) / 2
    contour = _circle(centres[2, 7, 7, :2], 2.0, between)
    path = _write_rtstruct(tmp_path / "rs.dcm", _datasets(ct_series), {"GTV": [contour]})
    with pytest.raises(GeometryMismatchError, match="slice plane"):
        read_dicom_mask(path, ct_series)


def test_roi_selection_overlap_and_unknown_names(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    centres = _voxel_centres(grid)
    z, middle = centres[2, 0, 0, 2], centres[2, 7, 7, :2]
    rois = {"GTV": [_circle(middle, 1.5, z)], "PTV": [_circle(middle, 3.0, z)]}
    path = _write_rtstruct(tmp_path / "rs.dcm", _datasets(ct_series), rois)
    with pytest.raises(ImageReadError, match="'PTV' and 'GTV' overlap") as err:
        read_dicom_mask(path, ct_series)
    assert "rois" in str(err.value)
    assert read_dicom_mask(path, ct_series, rois=["PTV"]).names == {2: "PTV"}
    with pytest.raises(ImageReadError, match=r"no ROI named 'CTV'.*'GTV', 'PTV'"):
        read_dicom_mask(path, ct_series, rois="CTV")
    real = Path(get_testdata_file("rtstruct.dcm"))
    with pytest.raises(ImageReadError, match="not the folder|must be the folder"):
        read_dicom_mask(real, ct_series / "missing.nii.gz")


def test_extraction_names_lesions_after_the_rois(
    ct_series: Path, grid: sitk.Image, tmp_path: Path
) -> None:
    from radharmony import extract_features

    shapes = _analytic_shapes(grid)
    source = _datasets(ct_series)
    rtstruct = _write_rtstruct(tmp_path / "rs.dcm", source, shapes["contours"])
    seg = _write_seg(tmp_path / "seg.dcm", source, {"tissue": _real_tissue_mask(grid)})
    manifest = pd.DataFrame(
        {
            "subject_id": ["p1", "p2", "p3"],
            "image": [str(ct_series)] * 3,
            "mask": [str(rtstruct), str(seg), str(rtstruct)],
            "scanner": ["A", "A", "A"],
            "rois": ["", "", "node"],
        }
    )
    features = extract_features(manifest, settings="default", min_lesion_voxels=1)
    assert failures_of(features).empty, failures_of(features).to_string()
    assert list(features.columns[:5]) == [
        "case_id",
        "subject_id",
        "lesion_id",
        "lesion_name",
        "scanner",
    ]
    assert "rois" not in features.columns
    rows = features.set_index(["subject_id", "lesion_name"])
    assert list(rows.index) == [("p1", "GTV"), ("p1", "node"), ("p2", "tissue"), ("p3", "node")]
    voxel = float(np.prod(grid.GetSpacing()))
    for (subject, name), expected in [
        (("p1", "GTV"), shapes["masks"]["GTV"].sum()),
        (("p1", "node"), shapes["masks"]["node"].sum()),  # two islands, one lesion
        (("p3", "node"), shapes["masks"]["node"].sum()),
    ]:
        assert rows.loc[(subject, name), "lesion_voxels"] == expected
        assert rows.loc[(subject, name), "lesion_volume_mm3"] == pytest.approx(expected * voxel)
    assert rows.loc[("p1", "node"), "lesion_id"] == 2
