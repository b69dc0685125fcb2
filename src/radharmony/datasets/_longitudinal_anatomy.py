"""Building blocks of the synthetic follow-up cohort: anatomy, lesion histories, acquisition.

Everything is defined in millimetres in the subject's anatomical frame, which is also the
common space (the first visit's world coordinates). A visit samples the anatomy on its own grid
after a rigid head movement, so any voxel grid and pose can be simulated exactly. Arrays are in
NumPy order ``(z, y, x)``; points, spacings and sizes are in ITK order ``(x, y, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

CHANNELS: tuple[str, ...] = ("FLAIR", "T2")
# Relative intensity of each tissue per channel (FLAIR, T2), before any scanner mapping.
TISSUE_INTENSITY: dict[str, tuple[float, float]] = {
    "csf": (0.25, 2.2),
    "grey": (1.0, 1.1),
    "white": (0.75, 0.75),
    "lesion": (1.7, 1.5),
}
FOV_MM = np.array([150.0, 170.0, 130.0])
_TEXTURE_SD = 0.03
_TEXTURE_WAVELENGTH_MM = 8.0
_BIAS_WAVELENGTH_MM = 160.0
# Cortical folding: the grey/white boundary depth varies by this much (SD, mm) over gyri of
# about this wavelength, so the cortex has sulci and gyri that registration can use.
_FOLDING_MM = 2.5
_FOLDING_WAVELENGTH_MM = 18.0
_CORTEX_MM = (2.0, 3.0)  # outer CSF layer depth, then cortical ribbon thickness (mm)
# Status of the first four lesions at the first follow-up (rotated per subject), so every
# subject shows each kind of change; further lesions draw their status at random.
_DESIGNED = ("stable", "enlarging", "shrinking", "disappeared")
_STATUS_P = {"stable": 0.4, "enlarging": 0.25, "shrinking": 0.2, "disappeared": 0.15}


@dataclass(frozen=True)
class Scanner:
    """Acquisition parameters of one synthetic scanner."""

    name: str
    spacing: tuple[float, float, float]
    blur_fwhm_mm: float
    noise_sd: float
    bias_amplitude: float
    scale: tuple[float, ...]
    offset: tuple[float, ...]


@dataclass(frozen=True)
class Waves:
    """A smooth random field as a sum of plane waves, evaluable at any point (mm)."""

    vectors: NDArray[np.float64]  # modes x 3 (x, y, z), radians per mm
    phases: NDArray[np.float64]
    amplitude: float

    def at(
        self, points: NDArray[np.float64], where: NDArray[np.bool_] | None = None
    ) -> NDArray[np.float64]:
        """Return the field at points (n x 3); unit variance times ``amplitude``.

        Only points flagged in ``where`` are evaluated (0 elsewhere), in single precision: the
        field is a texture, not a measurement.
        """
        out = np.zeros(len(points))
        chosen = points if where is None else points[where]
        phase = chosen.astype(np.float32) @ self.vectors.T.astype(np.float32) + self.phases.astype(
            np.float32
        )
        values = self.amplitude * np.sqrt(2.0 / len(self.phases)) * np.cos(phase).sum(axis=1)
        if where is None:
            return values.astype(np.float64)
        out[where] = values
        return out


@dataclass(frozen=True)
class Anatomy:
    """Brain shape, folding, deep nuclei and tissue texture of one subject."""

    semi_axes: NDArray[np.float64]
    ventricles: tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]
    nuclei: tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]
    folding: Waves
    texture: Waves


@dataclass(frozen=True)
class LesionState:
    """One lesion at one visit."""

    track_id: int
    centre: NDArray[np.float64]
    radii: NDArray[np.float64]
    present: bool
    status: str

    @property
    def volume_mm3(self) -> float:
        """Volume of the ellipsoid."""
        return float(4.0 / 3.0 * np.pi * np.prod(self.radii)) if self.present else 0.0


@dataclass
class LesionHistory:
    """The states of one lesion over the visits."""

    states: list[LesionState] = field(default_factory=list)

    def at(self, visit: int) -> LesionState:
        """Return the lesion's state at a visit."""
        return self.states[visit]


def make_scanners(n: int, voxel_mm: float, rng: np.random.Generator) -> list[Scanner]:
    """Return ``n`` scanners whose parameters take evenly spaced values, paired at random."""
    spread = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.0])
    scanners = []
    for k in range(n):
        pick = [rng.permutation(spread)[k] for _ in range(5)]
        in_plane = voxel_mm * (1.0 + 0.2 * pick[0])
        scanners.append(
            Scanner(
                name=f"scanner_{chr(ord('A') + k)}",
                spacing=(in_plane, in_plane, voxel_mm * (1.0 + 0.4 * pick[1])),
                blur_fwhm_mm=voxel_mm * (0.6 + 0.6 * pick[2]),
                noise_sd=0.02 + 0.03 * pick[3],
                bias_amplitude=0.05 + 0.12 * pick[4],
                scale=tuple(float(v) for v in rng.uniform(300.0, 900.0, len(CHANNELS))),
                offset=tuple(float(v) for v in rng.uniform(0.0, 60.0, len(CHANNELS))),
            )
        )
    return scanners


def _waves(rng: np.random.Generator, wavelength: float, amplitude: float, modes: int = 24) -> Waves:
    directions = rng.normal(size=(modes, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = wavelength * rng.uniform(0.7, 1.4, modes)
    vectors = directions * (2.0 * np.pi / lengths)[:, None]
    return Waves(vectors, rng.uniform(0.0, 2.0 * np.pi, modes), amplitude)


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """Return a random brain: ellipsoid size, ventricles and texture."""
    semi_axes = np.array([rng.uniform(55, 62), rng.uniform(66, 74), rng.uniform(46, 52)])
    ventricle_radii = np.array([rng.uniform(4, 6), rng.uniform(14, 18), rng.uniform(6, 9)])
    ventricles = tuple(
        (np.array([side * rng.uniform(7, 10), 4.0, 6.0]), ventricle_radii) for side in (-1, 1)
    )
    nuclei = tuple(
        (
            np.array([side * rng.uniform(18, 22), rng.uniform(-4, 4), rng.uniform(-2, 4)]),
            np.array([rng.uniform(5, 7), rng.uniform(9, 12), rng.uniform(6, 8)]),
        )
        for side in (-1, 1)
    )
    return Anatomy(
        semi_axes,
        ventricles,
        nuclei,
        _waves(rng, _FOLDING_WAVELENGTH_MM, _FOLDING_MM),
        _waves(rng, _TEXTURE_WAVELENGTH_MM, _TEXTURE_SD),
    )


def _radius_ratio(points: NDArray, centre: NDArray, radii: NDArray) -> NDArray:
    return np.sqrt((((points - centre) / radii) ** 2).sum(axis=1))


def _inside(depth_mm: NDArray, width: float) -> NDArray:
    """Soft membership from a depth below a surface (positive inside), partial-volume width."""
    return np.clip(0.5 + depth_mm / width, 0.0, 1.0)


def _white_matter_point(rng: np.random.Generator, anatomy: Anatomy) -> NDArray[np.float64]:
    while True:
        point = rng.uniform(-1.0, 1.0, 3) * anatomy.semi_axes * 0.6
        if _radius_ratio(point[None], np.zeros(3), anatomy.semi_axes * 0.6)[0] > 1.0:
            continue
        if all(_radius_ratio(point[None], c, r + 6.0)[0] > 1.0 for c, r in anatomy.ventricles):
            return point


def lesion_histories(
    rng: np.random.Generator, anatomy: Anatomy, n_visits: int
) -> list[LesionHistory]:
    """Return the designed lesions of a subject and their state at every visit."""
    histories: list[LesionHistory] = []
    placed: list[tuple[NDArray, float]] = []

    def place(radius: float, growth: float) -> NDArray | None:
        reach = radius * growth
        for _ in range(200):
            centre = _white_matter_point(rng, anatomy)
            if all(np.linalg.norm(centre - c) > reach + r + 4.0 for c, r in placed):
                placed.append((centre, reach))
                return centre
        return None

    n_baseline = int(rng.integers(4, 8))
    offset = int(rng.integers(len(_DESIGNED)))
    track = 1
    for k in range(n_baseline):
        radius = float(rng.uniform(3.0, 6.0))
        # Reserve room for the largest growth any later visit may draw (volume x4 per visit).
        centre = place(radius, 1.6 ** (n_visits - 1))
        if centre is None:
            continue
        radii = radius * rng.uniform(0.8, 1.2, 3)
        radii *= radius / np.cbrt(np.prod(radii))
        history = LesionHistory([LesionState(track, centre, radii, True, "present")])
        for visit in range(1, n_visits):
            designed = _DESIGNED[(k + offset) % 4] if visit == 1 and k < 4 else None
            history.states.append(_next_state(rng, history.states[-1], designed))
        histories.append(history)
        track += 1
    for visit in range(1, n_visits):
        for _ in range(int(rng.integers(1, 3))):
            radius = float(rng.uniform(3.0, 5.0))
            centre = place(radius, 1.6 ** (n_visits - visit))
            if centre is None:
                continue
            radii = radius * rng.uniform(0.85, 1.15, 3)
            states = [LesionState(track, centre, radii, False, "absent") for _ in range(visit)] + [
                LesionState(track, centre, radii, True, "new")
            ]
            history = LesionHistory(states)
            for _ in range(visit + 1, n_visits):
                history.states.append(_next_state(rng, history.states[-1], None))
            histories.append(history)
            track += 1
    return histories


def _next_state(rng: np.random.Generator, state: LesionState, designed: str | None) -> LesionState:
    if not state.present:
        return replace(state, status="absent")
    status = designed or str(rng.choice(list(_STATUS_P), p=list(_STATUS_P.values())))
    factor = {
        "stable": rng.uniform(0.9, 1.1),
        "enlarging": rng.uniform(3.0, 4.0),
        "shrinking": rng.uniform(0.2, 0.3),
        "disappeared": 1.0,
    }[status]
    radii = state.radii * np.cbrt(factor)
    return LesionState(state.track_id, state.centre, radii, status != "disappeared", status)


def random_pose(
    rng: np.random.Generator, max_rotation_deg: float, max_shift_mm: float
) -> tuple[NDArray, NDArray]:
    """Return ``(R, t)`` mapping a visit's scanner coordinates to anatomy: ``x = R p + t``."""
    angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*angles)
    matrix = np.asarray(rotation.GetMatrix()).reshape(3, 3)
    return matrix, rng.uniform(-max_shift_mm, max_shift_mm, 3)


def common_to_visit(pose: tuple[NDArray, NDArray]) -> sitk.Transform:
    """Return the ITK transform mapping common-space points to a visit's scanner points."""
    matrix, shift = pose
    inverse = matrix.T
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in inverse.ravel()))
    transform.SetTranslation(tuple(float(v) for v in -inverse @ shift))
    return transform


def visit_grid(scanner: Scanner) -> sitk.Image:
    """Return an empty image with the scanner's grid covering the field of view."""
    spacing = np.asarray(scanner.spacing)
    size = np.ceil(FOV_MM / spacing).astype(int)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetOrigin(tuple(float(v) for v in -(size - 1) * spacing / 2.0))
    return grid


def _points(grid: sitk.Image) -> NDArray[np.float64]:
    """World (x, y, z) of every voxel centre, in (z, y, x) raster order."""
    size = grid.GetSize()
    axes = [
        grid.GetOrigin()[d] + grid.GetSpacing()[d] * np.arange(size[d], dtype=float)
        for d in range(3)
    ]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.column_stack([x.ravel(), y.ravel(), z.ravel()])


def _memberships(
    anatomy: Anatomy, lesions: list[LesionState], points: NDArray, width: float
) -> dict[str, NDArray]:
    mean_radius = float(np.cbrt(np.prod(anatomy.semi_axes)))
    depth = (1.0 - _radius_ratio(points, np.zeros(3), anatomy.semi_axes)) * mean_radius
    brain = _inside(depth, width)
    near = _radius_ratio(points, np.zeros(3), anatomy.semi_axes) < 1.1
    fold = anatomy.folding.at(points, near)
    # Sulci: CSF reaches deeper where the folding field is positive; the ribbon below it is
    # never thinner than its nominal thickness.
    csf_depth = _CORTEX_MM[0] + np.clip(fold, 0.0, None)
    below_csf = _inside(depth - csf_depth, width)
    white = _inside(depth - csf_depth - _CORTEX_MM[1] - 0.5 * np.abs(fold), width)
    ventricle = np.zeros(len(points))
    for centre, radii in anatomy.ventricles:
        ventricle = np.maximum(
            ventricle, _inside((1.0 - _radius_ratio(points, centre, radii)) * radii.min(), width)
        )
    nucleus = np.zeros(len(points))
    for centre, radii in anatomy.nuclei:
        nucleus = np.maximum(
            nucleus, _inside((1.0 - _radius_ratio(points, centre, radii)) * radii.min(), width)
        )
    # Deep grey nuclei sit inside the white matter.
    white_total = white
    white = white_total * (1.0 - nucleus)
    lesion = np.zeros(len(points))
    for state in lesions:
        if state.present:
            inside = (1.0 - _radius_ratio(points, state.centre, state.radii)) * state.radii.min()
            lesion = np.maximum(lesion, _inside(inside, width))
    white_only = white * (1.0 - ventricle)
    return {
        "brain": brain,
        "csf": brain - below_csf + white * ventricle,
        "grey": below_csf - white_total + white_total * nucleus,
        "white": white_only * (1.0 - lesion),
        "lesion": white_only * lesion,
    }


def acquire_visit(
    rng: np.random.Generator,
    anatomy: Anatomy,
    lesions: list[LesionState],
    scanner: Scanner,
    pose: tuple[NDArray, NDArray],
) -> tuple[dict[str, NDArray], NDArray, sitk.Image]:
    """Return the images per channel, lesion labels and grid of one visit."""
    grid = visit_grid(scanner)
    shape = grid.GetSize()[::-1]
    matrix, shift = pose
    points = _points(grid) @ matrix.T + shift
    width = float(min(scanner.spacing))
    parts = _memberships(anatomy, lesions, points, width)
    near = parts["brain"] > 0
    texture = 1.0 + anatomy.texture.at(points, near)
    bias = np.exp(_waves(rng, _BIAS_WAVELENGTH_MM, scanner.bias_amplitude, 6).at(points, near))
    sigma = scanner.blur_fwhm_mm / 2.3548 / np.asarray(scanner.spacing)[::-1]
    brain = parts["brain"].reshape(shape)
    images = {}
    for c, channel in enumerate(CHANNELS):
        true = sum(parts[t] * TISSUE_INTENSITY[t][c] for t in TISSUE_INTENSITY) * texture * bias
        blurred = ndimage.gaussian_filter(true.reshape(shape), sigma)
        noisy = blurred + rng.normal(0.0, scanner.noise_sd, shape)
        value = scanner.scale[c] * noisy + scanner.offset[c]
        images[channel] = np.where(brain > 0.5, value, 0.0).astype(np.float32)
    labels = np.zeros(len(points), dtype=np.uint8)
    for state in lesions:
        if state.present:
            inside = _radius_ratio(points, state.centre, state.radii) <= 1.0
            labels[inside & (labels == 0)] = state.track_id
    return images, labels.reshape(shape), grid


def brain_mask_on(anatomy: Anatomy, grid: sitk.Image) -> NDArray[np.uint8]:
    """Return the brain mask (membership above one half) on a common-space grid."""
    points = _points(grid)
    parts = _memberships(anatomy, [], points, float(min(grid.GetSpacing())))
    return (parts["brain"] > 0.5).astype(np.uint8).reshape(grid.GetSize()[::-1])


def change_mask_on(
    before: list[LesionState], after: list[LesionState], grid: sitk.Image
) -> NDArray[np.uint8]:
    """Return 1 where lesion tissue appeared, 2 where it vanished, on a common-space grid."""
    points = _points(grid)

    def union(states: list[LesionState]) -> NDArray[np.bool_]:
        inside = np.zeros(len(points), dtype=bool)
        for state in states:
            if state.present:
                inside |= _radius_ratio(points, state.centre, state.radii) <= 1.0
        return inside

    was, now = union(before), union(after)
    change = np.zeros(len(points), dtype=np.uint8)
    change[now & ~was] = 1
    change[was & ~now] = 2
    return change.reshape(grid.GetSize()[::-1])


def truth_rows(
    subject_id: str, timepoint: str, histories: list[LesionHistory], visit: int
) -> list[dict[str, Any]]:
    """Return the truth rows of one visit (present lesions and those that just vanished)."""
    rows = []
    for history in histories:
        state = history.at(visit)
        if state.status == "absent":
            continue
        x, y, z = state.centre
        rows.append(
            {
                "subject_id": subject_id,
                "lesion_track_id": state.track_id,
                "timepoint": timepoint,
                "status": state.status,
                "volume_mm3": state.volume_mm3,
                "radius_mm": float(np.cbrt(np.prod(state.radii))) if state.present else 0.0,
                "centre_x_mm": float(x),
                "centre_y_mm": float(y),
                "centre_z_mm": float(z),
            }
        )
    return rows


def scanner_row(scanner: Scanner) -> dict[str, Any]:
    """Return a scanner's parameters as a table row."""
    row: dict[str, Any] = {
        "scanner": scanner.name,
        "spacing_x_mm": scanner.spacing[0],
        "spacing_y_mm": scanner.spacing[1],
        "spacing_z_mm": scanner.spacing[2],
        "blur_fwhm_mm": scanner.blur_fwhm_mm,
        "noise_sd": scanner.noise_sd,
        "bias_amplitude": scanner.bias_amplitude,
    }
    for k, channel in enumerate(CHANNELS):
        row[f"scale_{channel}"] = scanner.scale[k]
        row[f"offset_{channel}"] = scanner.offset[k]
    return row
