"""DICOM RTSTRUCT and SEG masks, turned into label masks on the grid of the series they describe.

Rasterisation rule of RTSTRUCT contours (documented in :func:`read_dicom_mask`): a voxel belongs to
an ROI when the centre of the voxel lies inside, or on, a closed planar contour of its slice
(within 1/1000 of a voxel); several contours of one ROI on one slice combine by the even-odd rule,
so a contour inside another cuts a hole and a contour inside that hole is an island again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radharmony.errors import GeometryMismatchError, ImageReadError

DICOM_MASK_MODALITIES: tuple[str, ...] = ("RTSTRUCT", "SEG")
# A voxel centre this close to a contour (in voxels) counts as on it, hence inside.
_ON_CONTOUR_VOXELS = 1e-3
# Contour points may sit this far (in slices) from the slice plane they are drawn on.
_PLANE_TOLERANCE_SLICES = 0.1
# Fractional SEG segments: a voxel belongs to the segment from this fraction on.
FRACTIONAL_THRESHOLD = 0.5
_INSTALL_HINT = (
    "reading DICOM RTSTRUCT/SEG masks needs pydicom and highdicom: pip install 'radharmony[dicom]'"
)


@dataclass(frozen=True)
class DicomMask:
    """A label mask read from a DICOM RTSTRUCT or SEG file.

    Attributes
    ----------
    image : SimpleITK.Image
        Integer label mask on the grid of the referenced series; voxels of an ROI hold its ROI
        Number (RTSTRUCT) or Segment Number (SEG), 0 elsewhere.
    names : dict of int to str
        The ROI Name or Segment Label of each label value taken.
    modality : {"RTSTRUCT", "SEG"}
    empty : list of str
        Names of the ROIs taken whose contours enclose no voxel centre (they give no lesion).
    """

    image: sitk.Image
    names: dict[int, str]
    modality: str
    empty: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Series:
    folder: Path
    series_uid: str
    frame_of_reference_uid: str
    sop_uids: list[str]


def dicom_mask_modality(path: str | Path) -> str | None:
    """Return ``"RTSTRUCT"`` or ``"SEG"`` when ``path`` is such a DICOM file, else None.

    Files are recognised by the ``DICM`` marker of DICOM files (or a ``.dcm`` name); reading
    their modality needs pydicom.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        marker = handle.read(132)[128:]
    if marker != b"DICM" and path.suffix.lower() != ".dcm":
        return None
    pydicom = _import("pydicom")
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - not readable as DICOM: let the image reader explain
        return None
    modality = str(header.get("Modality", ""))
    return modality if modality in DICOM_MASK_MODALITIES else None


def read_dicom_mask(
    path: str | Path,
    image: str | Path,
    *,
    rois: str | Sequence[str] | None = None,
    reference: sitk.Image | None = None,
) -> DicomMask:
    """Read an RTSTRUCT or SEG file as a label mask on the grid of its image series.

    Each ROI (RTSTRUCT) or segment (SEG) becomes one label, whose value is its ROI Number or
    Segment Number, so each is one lesion whether or not its voxels are connected.

    RTSTRUCT contours are rasterised onto the referenced series: a voxel belongs to an ROI when
    its centre lies inside or on (within 1/1000 voxel) a ``CLOSED_PLANAR`` contour of its slice.
    Partial voxels are therefore in when their centre is, without any fractional weighting.
    Contours of one ROI on one slice combine by the even-odd rule: a contour inside another cuts
    a hole (and one inside the hole is an island again), which also covers "keyhole" contours.
    Contours must lie in an image slice plane (within 0.1 slice); point and open contours are
    ignored. SEG segments are read with highdicom frame by frame against the series' instances;
    ``FRACTIONAL`` segments are thresholded at 0.5.

    Parameters
    ----------
    path : str or Path
        The RTSTRUCT or SEG file.
    image : str or Path
        The folder holding the DICOM image series the contours or segments were drawn on.
    rois : str or sequence of str, optional
        ROI names (RTSTRUCT) or segment labels (SEG) to take, as a list or one string with
        ``|`` between names; matched exactly, else ignoring case. Default: every ROI with closed
        planar contours, or every segment.
    reference : SimpleITK.Image, optional
        The series already read with :func:`radharmony.io.read_image` (read here otherwise).

    Returns
    -------
    DicomMask

    Raises
    ------
    ImageReadError
        When the file is not an RTSTRUCT/SEG, a name in ``rois`` is unknown, two ROIs taken
        overlap, or pydicom/highdicom are missing.
    GeometryMismatchError
        When the file references another series or frame of reference than ``image``, or
        contours leave the image volume or its slice planes.
    """
    from radharmony.io._images import read_image

    path, folder = Path(path), Path(image)
    if not folder.is_dir():
        raise ImageReadError(
            f"mask {path} is a DICOM structure set or segmentation; its image must be the folder "
            f"of the DICOM series it was drawn on, not {folder}"
        )
    pydicom = _import("pydicom")
    try:
        dataset = pydicom.dcmread(path, force=True)
    except Exception as err:  # noqa: BLE001
        raise ImageReadError(f"mask {path} could not be read as DICOM: {err}") from err
    modality = str(dataset.get("Modality", ""))
    if modality not in DICOM_MASK_MODALITIES:
        raise ImageReadError(
            f"mask {path} is a DICOM {modality or 'file without modality'}, not an RTSTRUCT or "
            "SEG; give a structure set, a segmentation or a label image"
        )
    grid = reference if reference is not None else read_image(folder, role="image")
    series = _series(folder, grid)
    wanted = _parse_rois(rois)
    if modality == "RTSTRUCT":
        labels, names, empty = _rtstruct_labels(dataset, series, grid, path, wanted)
    else:
        labels, names, empty = _seg_labels(dataset, series, grid, path, wanted)
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(grid)
    return DicomMask(image=mask, names=names, modality=modality, empty=empty)


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImageReadError(_INSTALL_HINT) from err


def _parse_rois(rois: str | Sequence[str] | None) -> list[str] | None:
    if rois is None:
        return None
    items = rois.split("|") if isinstance(rois, str) else list(rois)
    names = [str(name).strip() for name in items if str(name).strip()]
    return names or None


def _series(folder: Path, grid: sitk.Image) -> _Series:
    pydicom = _import("pydicom")
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    files = reader.GetGDCMSeriesFileNames(str(folder), series_ids[0]) if series_ids else ()
    if len(files) != grid.GetSize()[2]:
        raise ImageReadError(
            f"image folder {folder} holds {len(files)} slice file(s) for a volume of "
            f"{grid.GetSize()[2]} slices; give a folder with exactly one DICOM series"
        )
    tags = ["SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"]
    headers = [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=tags) for f in files]
    return _Series(
        folder=folder,
        series_uid=str(headers[0].get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(headers[0].get("FrameOfReferenceUID", "")),
        sop_uids=[str(h.get("SOPInstanceUID", "")) for h in headers],
    )


def _select(
    available: dict[int, str], wanted: list[str] | None, path: Path, kind: str
) -> list[int]:
    if wanted is None:
        return sorted(available)
    chosen: list[int] = []
    for name in wanted:
        exact = [n for n, label in available.items() if label == name]
        loose = [n for n, label in available.items() if label.lower() == name.lower()]
        found = exact or loose
        if not found:
            listed = ", ".join(repr(v) for v in available.values()) or "none"
            raise ImageReadError(
                f"mask {path} has no {kind} named {name!r}; its {kind}s are: {listed}. "
                "Fix the names in the manifest's 'rois' column"
            )
        chosen += [n for n in found if n not in chosen]
    return sorted(chosen)


def _add_label(
    labels: np.ndarray, region: np.ndarray, number: int, names: dict[int, str], path: Path
) -> None:
    clash = labels[region]
    clash = clash[clash != 0]
    if clash.size:
        other = int(np.bincount(clash).argmax())
        raise ImageReadError(
            f"mask {path}: {names[number]!r} and {names[other]!r} overlap in {clash.size} "
            "voxel(s); each voxel can belong to one lesion only. Select non-overlapping ROIs "
            "with the manifest's 'rois' column (e.g. 'GTV' rather than 'GTV|PTV')"
        )
    labels[region] = number


# --- RTSTRUCT ---------------------------------------------------------------------------------


def _rtstruct_labels(
    dataset: Any, series: _Series, grid: sitk.Image, path: Path, wanted: list[str] | None
) -> tuple[np.ndarray, dict[int, str], list[str]]:
    _check_rtstruct_references(dataset, series, path)
    all_names = {
        int(item.ROINumber): str(item.get("ROIName", f"ROI {item.ROINumber}"))
        for item in dataset.get("StructureSetROISequence", [])
    }
    contours = {
        int(item.ReferencedROINumber): [
            c
            for c in item.get("ContourSequence", [])
            if str(c.get("ContourGeometricType", "")) == "CLOSED_PLANAR"
        ]
        for item in dataset.get("ROIContourSequence", [])
    }
    with_contours = {n: name for n, name in all_names.items() if contours.get(n)}
    if wanted is None and not with_contours:
        raise ImageReadError(f"mask {path}: no ROI of this structure set has closed contours")
    number_list = _select(with_contours if wanted is None else all_names, wanted, path, "ROI")
    names = {n: all_names[n] for n in number_list}
    size = grid.GetSize()
    labels = np.zeros((size[2], size[1], size[0]), dtype=np.int32)
    to_index = _physical_to_index(grid)
    empty = []
    for number in number_list:
        if not contours.get(number):
            raise ImageReadError(
                f"mask {path}: ROI {names[number]!r} has no closed planar contour (points or "
                "open contours only); it cannot be a lesion"
            )
        region = _roi_region(contours[number], to_index, labels.shape, names[number], path)
        if not region.any():
            empty.append(names[number])
        _add_label(labels, region, number, names, path)
    return labels, names, empty


def _check_rtstruct_references(dataset: Any, series: _Series, path: Path) -> None:
    frames = dataset.get("ReferencedFrameOfReferenceSequence", [])
    referenced_series = [
        str(s.SeriesInstanceUID)
        for frame in frames
        for study in frame.get("RTReferencedStudySequence", [])
        for s in study.get("RTReferencedSeriesSequence", [])
        if "SeriesInstanceUID" in s
    ]
    if referenced_series and series.series_uid not in referenced_series:
        raise GeometryMismatchError(
            f"structure set {path} was drawn on series {', '.join(referenced_series)}, but "
            f"image {series.folder} is series {series.series_uid}. Give the DICOM series the "
            "contours were drawn on as the image"
        )
    frame_uids = {str(f.FrameOfReferenceUID) for f in frames if "FrameOfReferenceUID" in f}
    frame_uids |= {
        str(item.ReferencedFrameOfReferenceUID)
        for item in dataset.get("StructureSetROISequence", [])
        if "ReferencedFrameOfReferenceUID" in item
    }
    if (
        series.frame_of_reference_uid
        and frame_uids
        and series.frame_of_reference_uid not in frame_uids
    ):
        raise GeometryMismatchError(
            f"structure set {path} uses frame of reference {', '.join(sorted(frame_uids))}, but "
            f"image {series.folder} has {series.frame_of_reference_uid}: its contours are in "
            "another patient coordinate system. Give the series the contours were drawn on"
        )
    known = set(series.sop_uids)
    for item in dataset.get("ROIContourSequence", []):
        for contour in item.get("ContourSequence", []):
            for ref in contour.get("ContourImageSequence", []):
                uid = str(ref.get("ReferencedSOPInstanceUID", ""))
                if uid and uid not in known:
                    raise GeometryMismatchError(
                        f"structure set {path} has contours on image {uid}, which is not in "
                        f"series {series.folder}. Give the series the contours were drawn on"
                    )


def _physical_to_index(grid: sitk.Image) -> Any:
    origin = np.asarray(grid.GetOrigin(), dtype=np.float64)
    spacing = np.asarray(grid.GetSpacing(), dtype=np.float64)
    inverse = np.linalg.inv(np.asarray(grid.GetDirection(), dtype=np.float64).reshape(3, 3))

    def to_index(points: np.ndarray) -> np.ndarray:
        return ((points - origin) @ inverse.T) / spacing

    return to_index


def _roi_region(
    contours: list[Any], to_index: Any, shape: tuple[int, ...], name: str, path: Path
) -> np.ndarray:
    inside = np.zeros(shape, dtype=bool)
    for number, contour in enumerate(contours, start=1):
        points = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64)
        index = to_index(points.reshape(-1, 3))
        plane = _slice_of(index[:, 2], shape[0], name, number, path)
        inside[plane] ^= _polygon_region(index[:, :2], shape[1], shape[2])
    return inside


def _slice_of(z: np.ndarray, n_slices: int, name: str, number: int, path: Path) -> int:
    plane = int(np.rint(z.mean()))
    off_plane = float(np.abs(z - plane).max())
    if off_plane > _PLANE_TOLERANCE_SLICES:
        raise GeometryMismatchError(
            f"structure set {path}: contour {number} of ROI {name!r} lies {off_plane:.2f} slice "
            "away from the nearest image slice plane (or is not parallel to the slices); the "
            "contours were drawn on another grid. Give the series they were drawn on"
        )
    if not 0 <= plane < n_slices:
        raise GeometryMismatchError(
            f"structure set {path}: contour {number} of ROI {name!r} lies on slice {plane}, "
            f"outside the image's {n_slices} slices. Give the series the contours were drawn on"
        )
    return plane


def _polygon_region(vertices: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """Voxels of one slice whose centre is inside or on the closed polygon (x, y index units)."""
    from matplotlib.path import Path as PolygonPath

    region = np.zeros((n_rows, n_columns), dtype=bool)
    low = np.maximum(np.floor(vertices.min(axis=0) - _ON_CONTOUR_VOXELS), 0).astype(int)
    high = np.minimum(
        np.ceil(vertices.max(axis=0) + _ON_CONTOUR_VOXELS), [n_columns - 1, n_rows - 1]
    ).astype(int)
    if np.any(high < low) or len(vertices) < 3:
        return region
    xs, ys = np.meshgrid(np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1))
    centres = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    polygon = PolygonPath(vertices)
    # matplotlib's test is undefined for points on the boundary and its margin's sign follows the
    # polygon's orientation: the union of both margins is "inside or on" for either orientation.
    hit = polygon.contains_points(centres, radius=_ON_CONTOUR_VOXELS)
    hit |= polygon.contains_points(centres, radius=-_ON_CONTOUR_VOXELS)
    region[ys.ravel()[hit], xs.ravel()[hit]] = True
    return region


# --- SEG --------------------------------------------------------------------------------------


def _seg_labels(
    dataset: Any, series: _Series, grid: sitk.Image, path: Path, wanted: list[str] | None
) -> tuple[np.ndarray, dict[int, str], list[str]]:
    highdicom = _import("highdicom")
    referenced = [
        str(s.SeriesInstanceUID)
        for s in dataset.get("ReferencedSeriesSequence", [])
        if "SeriesInstanceUID" in s
    ]
    if referenced and series.series_uid not in referenced:
        raise GeometryMismatchError(
            f"segmentation {path} was made on series {', '.join(referenced)}, but image "
            f"{series.folder} is series {series.series_uid}. Give the DICOM series the "
            "segmentation was made on as the image"
        )
    seg_frame = str(dataset.get("FrameOfReferenceUID", ""))
    if seg_frame and series.frame_of_reference_uid and seg_frame != series.frame_of_reference_uid:
        raise GeometryMismatchError(
            f"segmentation {path} uses frame of reference {seg_frame}, but image "
            f"{series.folder} has {series.frame_of_reference_uid}. Give the series it was made on"
        )
    segmentation = highdicom.seg.Segmentation.from_dataset(dataset)
    all_names = {
        int(item.SegmentNumber): str(item.get("SegmentLabel", f"segment {item.SegmentNumber}"))
        for item in dataset.get("SegmentSequence", [])
    }
    numbers = _select(all_names, wanted, path, "segment")
    names = {n: all_names[n] for n in numbers}
    fractional = str(dataset.get("SegmentationType", "")) == "FRACTIONAL"
    size = grid.GetSize()
    labels = np.zeros((size[2], size[1], size[0]), dtype=np.int32)
    empty = []
    for number in numbers:
        try:
            pixels = segmentation.get_pixels_by_source_instance(
                source_sop_instance_uids=series.sop_uids,
                segment_numbers=[number],
                assert_missing_frames_are_empty=True,
            )
        except Exception as err:  # noqa: BLE001 - highdicom raises several types
            raise GeometryMismatchError(
                f"segmentation {path}: segment {names[number]!r} cannot be placed on the slices "
                f"of series {series.folder} ({err}). Give the series the segmentation was made on"
            ) from err
        values = np.asarray(pixels)[..., 0]
        if values.shape != labels.shape:
            raise GeometryMismatchError(
                f"segmentation {path} has frames of {values.shape[1:]} pixels, image "
                f"{series.folder} slices of {labels.shape[1:]}"
            )
        region = values >= FRACTIONAL_THRESHOLD if fractional else values > 0
        if not region.any():
            empty.append(names[number])
        _add_label(labels, region, number, names, path)
    return labels, names, empty


def read_mask(
    source: Any,
    *,
    image_source: str | Path | None = None,
    reference: sitk.Image | None = None,
    rois: str | Sequence[str] | None = None,
) -> tuple[sitk.Image, dict[int, str]]:
    """Read a mask given as a label image or as a DICOM RTSTRUCT/SEG file.

    Parameters
    ----------
    source : str, Path, SimpleITK.Image or nibabel image
        A label image (see :func:`radharmony.io.read_image`) or an RTSTRUCT/SEG file.
    image_source : str or Path, optional
        The image's DICOM series folder; needed for an RTSTRUCT/SEG mask.
    reference : SimpleITK.Image, optional
        The image already read, to avoid reading the series twice.
    rois : str or sequence of str, optional
        ROI names or segment labels to take from an RTSTRUCT/SEG mask (see
        :func:`read_dicom_mask`).

    Returns
    -------
    mask : SimpleITK.Image
    names : dict of int to str
        Lesion names by label value (RTSTRUCT ROI names, SEG segment labels); empty for a label
        image.
    """
    if isinstance(source, str | Path) and dicom_mask_modality(source) is not None:
        if image_source is None:
            raise ImageReadError(
                f"mask {source} is a DICOM structure set or segmentation; give the DICOM series "
                "folder of its image too"
            )
        dicom = read_dicom_mask(source, image_source, rois=rois, reference=reference)
        return dicom.image, dicom.names
    if _parse_rois(rois) is not None:
        raise ImageReadError(
            f"mask {source} is a label image: 'rois' selects ROIs of DICOM RTSTRUCT/SEG masks "
            "only; leave it empty"
        )
    from radharmony.io._images import read_image

    return read_image(source, role="mask"), {}
