"""Loading one subject's visits into its common space: checks, alignment, masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from radharmony.errors import EmptyMaskError, RadharmonyError
from radharmony.io import check_geometry, read_image
from radharmony.lesions import split_lesions
from radharmony.longitudinal._align import (
    QC_MIN_LNCC,
    QC_ROTATION_DEG,
    QC_SHIFT_MM,
    Alignment,
    AlignmentError,
    alignment_quality,
    describe_grid,
    read_transform,
    register,
    resample,
    same_grid,
)

# Depth below the edge of the brain (or of the images' field of view) inside which no change is
# measured.
_EDGE_MM = 3.0


class SubjectError(RadharmonyError, ValueError):
    """A problem with one subject's visits; carries the file and stage for the failures table."""

    def __init__(self, message: str, *, file: str = "", stage: str = "visits") -> None:
        super().__init__(message)
        self.file = file
        self.stage = stage


@dataclass
class Visit:
    """One visit brought into the common space."""

    timepoint: str
    row: dict[str, Any]
    image: sitk.Image  # the primary channel on its own grid
    alignment: Alignment
    arrays: list[NDArray[np.float32]]  # primary channel first; NaN outside the field of view
    labels: NDArray[np.int64] | None = None
    qc_lncc: float = float("nan")
    qc_margin: float = float("nan")
    qc_pass: bool | None = None


@dataclass
class SubjectVisits:
    """Every visit of a subject on its common grid."""

    subject_id: str
    grid: sitk.Image
    visits: list[Visit]
    brain: NDArray[np.bool_]
    analysis: NDArray[np.bool_]
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (x, y, z) of the common grid, mm."""
        return tuple(float(s) for s in self.grid.GetSpacing())  # type: ignore[return-value]

    @property
    def index_to_world(self) -> NDArray[np.float64]:
        """4x4 matrix from (x, y, z) voxel index to world mm of the common grid."""
        direction = np.asarray(self.grid.GetDirection()).reshape(3, 3)
        matrix = np.eye(4)
        matrix[:3, :3] = direction * np.asarray(self.grid.GetSpacing())
        matrix[:3, 3] = self.grid.GetOrigin()
        return matrix


def check_visit_rows(subject_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Raise a SubjectError for a single visit, duplicated time points or empty image cells."""
    empty = [str(r["timepoint"]) for r in rows if not str(r.get("image", "")).strip()]
    if empty:
        raise SubjectError(
            f"subject {subject_id!r}: time point(s) {empty} have an empty 'image' cell; give "
            "the image of every visit"
        )
    seen: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        seen.setdefault(float(row["timepoint_order"]), []).append(row)
    duplicated = [group for group in seen.values() if len(group) > 1]
    if duplicated:
        group = duplicated[0]
        names = ", ".join(repr(r["timepoint"]) for r in group)
        files = ", ".join(str(r["image"]) for r in group)
        raise SubjectError(
            f"subject {subject_id!r} has {len(group)} rows for the same time point ({names}; "
            f"images {files}); keep one row per visit (or give the repeat scan its own time "
            "point)",
            file=str(group[0]["image"]),
        )
    if len(rows) < 2:
        raise SubjectError(
            f"subject {subject_id!r} has a single time point ({rows[0]['timepoint']!r}): change "
            "needs at least two visits; add the follow-up or leave the subject out",
            file=str(rows[0]["image"]),
        )


def read_for(path: str, role: str, stage: str = "read_image") -> sitk.Image:
    """Read an image, turning a read error into a SubjectError of the given stage."""
    try:
        return read_image(path, role=role)
    except RadharmonyError as err:
        raise SubjectError(str(err), file=path, stage=stage) from err


def load_subject(
    subject_id: str,
    rows: Sequence[dict[str, Any]],
    channels: Sequence[str],
    *,
    register_missing: bool,
    connectivity: int = 26,
) -> SubjectVisits:
    """Check, read and align every visit of a subject; raise SubjectError on a problem.

    Parameters
    ----------
    subject_id : str
    rows : sequence of dict
        The subject's manifest rows in time order.
    channels : sequence of str
        Extra channel columns.
    register_missing : bool
        Register visits that have no transform and are not on the common grid.
    connectivity : int
        Connectivity splitting binary lesion masks into lesions.

    Returns
    -------
    SubjectVisits
    """
    check_visit_rows(subject_id, rows)
    grid, grid_given = _common_grid(subject_id, rows)
    visits: list[Visit] = []
    brain: NDArray[np.bool_] | None = None
    for row in rows:
        what = f"subject {subject_id!r}, time point {row['timepoint']!r}"
        image = read_for(str(row["image"]), "image")
        alignment = _alignment(what, row, image, grid, visits, grid_given, register_missing, brain)
        arrays = [resample(image, grid, alignment.transform)]
        for channel in channels:
            arrays.append(_channel(what, row, channel, grid, alignment.transform))
        visits.append(Visit(str(row["timepoint"]), dict(row), image, alignment, arrays))
        if brain is None:  # the baseline is in place: its brain guides later registrations
            brain = _brain_mask(subject_id, rows, grid, visits[0].arrays[0])
    assert brain is not None
    covered = np.ones(brain.shape, dtype=bool)
    for visit in visits:
        for array in visit.arrays:
            covered &= _foreground(array)
    analysis = _inner(brain & covered, grid.GetSpacing())
    if not analysis.any():
        raise SubjectError(
            f"subject {subject_id!r}: no brain voxel is seen at every visit (the aligned images "
            "do not overlap inside the brain mask); check the transforms and the brain mask",
            stage="alignment",
        )
    subject = SubjectVisits(subject_id, grid, visits, brain, analysis)
    _quality_control(subject)
    _lesion_labels(subject, connectivity)
    return subject


def _common_grid(subject_id: str, rows: Sequence[dict[str, Any]]) -> tuple[sitk.Image, bool]:
    given = sorted({str(r.get("reference_grid", "") or "").strip() for r in rows} - {""})
    if len(given) > 1:
        raise SubjectError(
            f"subject {subject_id!r} lists {len(given)} different reference grids ({given}); a "
            "subject has one common space: give the same reference_grid on every row",
            file=given[0],
        )
    if given:
        return read_for(given[0], "reference_grid"), True
    return read_for(str(rows[0]["image"]), "image"), False


def _alignment(
    what: str,
    row: dict[str, Any],
    image: sitk.Image,
    grid: sitk.Image,
    earlier: list[Visit],
    grid_given: bool,
    register_missing: bool,
    brain: NDArray[np.bool_] | None,
) -> Alignment:
    path = str(row.get("transform", "") or "").strip()
    if path:
        try:
            return Alignment(read_transform(path, what), "given")
        except AlignmentError as err:
            raise SubjectError(str(err), file=path, stage="transform") from err
    if same_grid(image, grid) and not (register_missing and earlier):
        # Already on the common grid (e.g. written there by another tool): checked below.
        return Alignment(sitk.Transform(3, sitk.sitkIdentity), "identity")
    if not register_missing:
        raise SubjectError(
            f"{what}: image {row['image']} ({describe_grid(image)}) is not on the common grid "
            f"({describe_grid(grid)}) and the manifest gives no transform for it. Add an ITK "
            "transform (common space to this image) in the 'transform' column, or let "
            "radharmony register the visit to the baseline (register=True; --register on the "
            "command line)",
            file=str(row["image"]),
            stage="alignment",
        )
    if earlier:
        fixed = _as_image(earlier[0].arrays[0], grid)
    elif grid_given:
        fixed = grid
    else:  # the first visit defines the grid: it is on it
        return Alignment(sitk.Transform(3, sitk.sitkIdentity), "identity")
    region = None
    if brain is not None and earlier:
        region = _as_image(brain.astype(np.float32), grid)
        region = sitk.Cast(region, sitk.sitkUInt8)
    try:
        return register(fixed, image, region)
    except AlignmentError as err:
        raise SubjectError(f"{what}: {err}", file=str(row["image"]), stage="registration") from err


def _as_image(array: NDArray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.nan_to_num(array, nan=0.0).astype(np.float32))
    image.CopyInformation(grid)
    return image


def _channel(
    what: str, row: dict[str, Any], channel: str, grid: sitk.Image, transform: sitk.Transform
) -> NDArray[np.float32]:
    path = str(row.get(channel, "") or "").strip()
    if not path:
        raise SubjectError(
            f"{what}: channel {channel!r} is empty; give the {channel} image of every visit "
            "or leave the channel out",
            stage="read_image",
        )
    image = read_for(path, channel)
    chain = transform
    extra = str(row.get(f"{channel}_transform", "") or "").strip()
    if extra:
        try:
            inner = read_transform(extra, f"{what}, channel {channel!r}")
        except AlignmentError as err:
            raise SubjectError(str(err), file=extra, stage="transform") from err
        # Resample applies the last transform of a composite first: common -> image -> channel.
        chain = sitk.CompositeTransform([inner, transform])
    return resample(image, grid, chain)


def _brain_mask(
    subject_id: str, rows: Sequence[dict[str, Any]], grid: sitk.Image, baseline: NDArray
) -> NDArray[np.bool_]:
    given = sorted({str(r.get("brain_mask", "") or "").strip() for r in rows} - {""})
    if len(given) > 1:
        raise SubjectError(
            f"subject {subject_id!r} lists {len(given)} different brain masks ({given}); the "
            "brain mask lives in the common space: give one",
            file=given[0],
            stage="brain_mask",
        )
    if given:
        mask = read_for(given[0], "brain_mask", "brain_mask")
        try:
            check_geometry(grid, mask, image_name="the common grid", mask_name=given[0])
        except RadharmonyError as err:
            raise SubjectError(str(err), file=given[0], stage="brain_mask") from err
        brain = sitk.GetArrayFromImage(mask) != 0
        if not brain.any():
            raise SubjectError(
                f"brain mask {given[0]} is empty (no non-zero voxel); check the file",
                file=given[0],
                stage="brain_mask",
            )
        return brain
    return foreground_mask(baseline)


def _foreground(array: NDArray) -> NDArray[np.bool_]:
    """Voxels inside the image's field of view and not in its zero background."""
    return np.isfinite(array) & (np.nan_to_num(array, nan=0.0) != 0)


def _inner(mask: NDArray[np.bool_], spacing: Sequence[float]) -> NDArray[np.bool_]:
    """Voxels of ``mask`` deeper than ``_EDGE_MM`` inside it.

    At the edge of the brain (or of a skull-stripped image's zero background) intensities fall
    steeply, and a different blur or a sub-voxel shift between visits changes them a lot: that
    shell would look like change.
    """
    if not mask.any():
        return mask
    padded = np.pad(mask, 1)
    depth = ndimage.distance_transform_edt(padded, sampling=[float(s) for s in spacing[::-1]])
    return mask & (depth[1:-1, 1:-1, 1:-1] > _EDGE_MM)


def foreground_mask(image: NDArray) -> NDArray[np.bool_]:
    """Return the head/brain foreground of an image: Otsu threshold, largest part, holes filled."""
    values = np.nan_to_num(image, nan=0.0).astype(np.float32)
    otsu = sitk.OtsuThreshold(sitk.GetImageFromArray(values), 0, 1)
    mask = sitk.GetArrayFromImage(otsu).astype(bool)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == int(np.argmax(sizes)) + 1
    return ndimage.binary_fill_holes(mask)


def _quality_control(subject: SubjectVisits) -> None:
    baseline = subject.visits[0].arrays[0]
    for visit in subject.visits[1:]:
        visit.qc_lncc, visit.qc_margin = alignment_quality(
            baseline, visit.arrays[0], subject.analysis, subject.grid
        )
        visit.qc_pass = bool(visit.qc_margin > 0 and visit.qc_lncc >= QC_MIN_LNCC)
        if visit.alignment.method in ("registered", "identity") and not visit.qc_pass:
            if not visit.qc_lncc >= QC_MIN_LNCC:
                why = (
                    "the images hardly share structure once aligned, local correlation "
                    f"{visit.qc_lncc:.2f} < {QC_MIN_LNCC:g}"
                )
            else:
                why = (
                    f"shifting it by {QC_SHIFT_MM:g} mm or turning it by {QC_ROTATION_DEG:g} "
                    "degrees improves its local correlation with the baseline by "
                    f"{-visit.qc_margin:.3f}"
                )
            if visit.alignment.method == "identity":
                raise SubjectError(
                    f"subject {subject.subject_id!r}, time point {visit.timepoint!r}: the image "
                    "is on the common grid and has no transform, but it is not aligned with the "
                    f"baseline: {why}. Give its transform in the 'transform' column, or let "
                    "radharmony register it (register=True; --register)",
                    file=str(visit.row["image"]),
                    stage="alignment",
                )
            raise SubjectError(
                f"subject {subject.subject_id!r}, time point {visit.timepoint!r}: registration "
                f"to the baseline failed the quality check: {why}; it was not used. Check "
                "that the image is this subject's and free of heavy artefacts, or give a "
                "transform in the manifest",
                file=str(visit.row["image"]),
                stage="registration_qc",
            )


def _lesion_labels(subject: SubjectVisits, connectivity: int) -> None:
    given = [bool(str(v.row.get("mask", "") or "").strip()) for v in subject.visits]
    if not any(given):
        return
    if not all(given):
        missing = [v.timepoint for v, g in zip(subject.visits, given, strict=True) if not g]
        subject.warnings.append(
            {
                "file": "",
                "stage": "lesions",
                "message": (
                    f"subject {subject.subject_id!r}: lesion masks are missing for time "
                    f"point(s) {missing}; lesions were not matched across visits (give a mask "
                    "for every visit, or for none)"
                ),
            }
        )
        return
    for visit in subject.visits:
        path = str(visit.row["mask"])
        mask = read_for(path, "mask", "read_mask")
        image_path = str(visit.row["image"])
        try:
            check_geometry(visit.image, mask, image_name=image_path, mask_name=path)
            labels = split_lesions(mask, connectivity=connectivity, name=path).labels
        except EmptyMaskError:
            labels = np.zeros(sitk.GetArrayViewFromImage(mask).shape, dtype=np.int64)
        except RadharmonyError as err:
            raise SubjectError(str(err), file=path, stage="read_mask") from err
        native = sitk.GetImageFromArray(labels.astype(np.int32))
        native.CopyInformation(mask)
        visit.labels = resample(native, subject.grid, visit.alignment.transform, labels=True)
