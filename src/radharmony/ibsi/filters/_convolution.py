"""Boundary conditions, separable and Fourier-domain convolution, right-angle rotations.

Arrays are numpy (z, y, x) as SimpleITK gives them; IBSI kernel letters and sub-band letters
refer to the axes x, y, z in that order, which are array axes 2, 1, 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy import fft, ndimage

# IBSI boundary condition -> scipy.ndimage mode and numpy.pad mode. IBSI "mirror" repeats the edge
# voxel (abc|cba), which scipy calls "reflect" and numpy "symmetric".
NDIMAGE_MODES: dict[str, str] = {
    "zero": "constant",
    "nearest": "nearest",
    "periodic": "wrap",
    "mirror": "reflect",
}
PAD_MODES: dict[str, str] = {
    "zero": "constant",
    "nearest": "edge",
    "periodic": "wrap",
    "mirror": "symmetric",
}

#: Array axis of each IBSI axis letter position (x, y, z).
LETTER_AXES: tuple[int, int, int] = (2, 1, 0)


def plane_axes(dimension: str) -> tuple[int, ...]:
    """Array axes a filter acts on: the axial plane (y, x) in 2D, all three axes in 3D."""
    return (1, 2) if dimension == "2D" else (0, 1, 2)


def convolve_separable(
    image: np.ndarray, kernels: dict[int, np.ndarray], boundary: str
) -> np.ndarray:
    """Convolve with one 1D kernel per array axis (true convolution, centre at ``len // 2``)."""
    out = np.asarray(image, dtype=np.float64)
    mode = NDIMAGE_MODES[boundary]
    for axis in sorted(kernels):
        out = ndimage.convolve1d(out, kernels[axis], axis=axis, mode=mode, cval=0.0)
    return out


def odd_length(kernel: np.ndarray) -> np.ndarray:
    """Append a zero to an even-length kernel so that its centre is a voxel (as ``pywt.swt``)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    return np.append(kernel, 0.0) if kernel.size % 2 == 0 else kernel


def dilate(kernel: np.ndarray, factor: int) -> np.ndarray:
    """Insert ``factor - 1`` zeros between kernel taps (the a trous algorithm)."""
    if factor == 1:
        return kernel
    out = np.zeros((kernel.size - 1) * factor + 1, dtype=np.float64)
    out[::factor] = kernel
    return out


def right_angle_rotations(n_axes: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The proper rotations that map the voxel grid onto itself: 4 in 2D, 24 in 3D.

    Each is a signed permutation ``(perm, signs)`` with determinant +1: the rotated kernel along
    letter axis ``i`` is the original kernel of letter axis ``perm[i]``, reversed when
    ``signs[i]`` is -1.
    """
    rotations = []
    for perm in itertools.permutations(range(n_axes)):
        parity = _permutation_parity(perm)
        for signs in itertools.product((1, -1), repeat=n_axes):
            if parity * int(np.prod(signs)) == 1:
                rotations.append((tuple(perm), tuple(signs)))
    return rotations


def _permutation_parity(perm: Sequence[int]) -> int:
    inversions = sum(1 for i, j in itertools.combinations(range(len(perm)), 2) if perm[i] > perm[j])
    return -1 if inversions % 2 else 1


def rotated_kernel_sets(
    kernels: Sequence[Sequence[np.ndarray]], rotation_invariance: bool
) -> list[tuple[tuple[np.ndarray, ...], ...]]:
    """Distinct rotated versions of one or more separable kernels given per letter axis.

    ``kernels`` holds parallel kernel sets (e.g. the sub-band filters and the low-pass
    pre-filters of a wavelet), each with one 1D kernel per letter axis (x, y[, z]); all are
    rotated together. Duplicates are dropped: every distinct rotated kernel occurs equally often
    among the rotations (orbit-stabiliser), so pooling over the distinct ones equals pooling
    over all rotations, mean pooling included.
    """
    sets = tuple(tuple(odd_length(k) for k in kernel_set) for kernel_set in kernels)
    if not rotation_invariance:
        return [sets]
    distinct: list[tuple[tuple[np.ndarray, ...], ...]] = []
    seen: set[bytes] = set()
    for perm, signs in right_angle_rotations(len(sets[0])):
        rotated = tuple(
            tuple(
                kernel_set[p][::-1] if s < 0 else kernel_set[p]
                for p, s in zip(perm, signs, strict=True)
            )
            for kernel_set in sets
        )
        key = b"|".join(np.ascontiguousarray(k).tobytes() for ks in rotated for k in ks)
        if key not in seen:
            seen.add(key)
            distinct.append(rotated)
    return distinct


def pool(responses: Iterable[np.ndarray], pooling: str) -> np.ndarray:
    """Pool response maps voxel-wise: ``"mean"``, ``"max"`` or ``"min"``."""
    pooled: np.ndarray | None = None
    count = 0
    for response in responses:
        count += 1
        if pooled is None:
            pooled = np.array(response, dtype=np.float64)
        elif pooling == "max":
            np.maximum(pooled, response, out=pooled)
        elif pooling == "min":
            np.minimum(pooled, response, out=pooled)
        else:
            pooled += response
    if pooled is None:
        raise ValueError("no response map to pool")
    return pooled / count if pooling == "mean" else pooled


def letter_kernels(kernel_set: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Map kernels given per letter axis (x, y[, z]) to array axes."""
    return {LETTER_AXES[i]: k for i, k in enumerate(kernel_set)}


def pad_for_fft(
    image: np.ndarray, axes: Sequence[int], widths: Sequence[int], boundary: str
) -> np.ndarray:
    """Pad ``image`` by ``widths`` voxels on both sides of ``axes`` with the boundary condition."""
    pad = [(0, 0)] * image.ndim
    for axis, width in zip(axes, widths, strict=True):
        pad[axis] = (int(width), int(width))
    if not any(any(p) for p in pad):
        return np.asarray(image, dtype=np.float64)
    return np.pad(np.asarray(image, dtype=np.float64), pad, mode=PAD_MODES[boundary])  # type: ignore[call-overload]


def fft_filter(
    image: np.ndarray,
    axes: Sequence[int],
    widths: Sequence[int],
    boundary: str,
    transfers: Iterable[Callable[[tuple[int, ...]], np.ndarray]],
    fast_size: bool = False,
) -> Iterator[np.ndarray]:
    """Filter in the Fourier domain on the padded grid and crop back; one complex map per filter.

    The image is padded by ``widths`` voxels on ``axes`` with the boundary condition and
    transformed once. Each ``transfer(shape)`` returns a filter's transfer function on the
    padded grid of ``axes`` in FFT order; it acts on every slice along the other axes.

    With ``fast_size`` the grid is enlarged with zeros to sizes the FFT handles fast. That is
    exact for kernels no wider than ``2 width + 1`` (the circular convolution then never wraps
    into the cropped region), not for transfer functions defined on the image grid.
    """
    padded = pad_for_fft(image, axes, widths, boundary)
    shape = tuple(padded.shape[a] for a in axes)
    if fast_size:
        shape = tuple(fft.next_fast_len(n) for n in shape)
    spectrum = fft.fftn(padded, s=shape, axes=tuple(axes))
    crop = [slice(None)] * image.ndim
    for axis, width in zip(axes, widths, strict=True):
        crop[axis] = slice(int(width), int(width) + image.shape[axis])
    for transfer in transfers:
        filtered = fft.ifftn(
            spectrum * _broadcast(transfer(shape), axes, padded.ndim), axes=tuple(axes)
        )
        yield filtered[tuple(crop)]


def fft_filter_real(
    image: np.ndarray,
    axes: Sequence[int],
    widths: Sequence[int],
    boundary: str,
    transfer: Callable[[tuple[int, ...]], np.ndarray],
) -> np.ndarray:
    """Real part of :func:`fft_filter` for one transfer function, at half the cost.

    For a real image, the real part of the filtered image is the image filtered with the
    Hermitian part of the transfer function, ``(H(k) + conj(H(-k))) / 2``, which real FFTs
    compute on half the spectrum.
    """
    padded = pad_for_fft(image, axes, widths, boundary)
    axes = tuple(axes)
    shape = tuple(padded.shape[a] for a in axes)
    values = transfer(shape)
    mirrored = values
    for position in range(len(axes)):  # H(-k): reverse every axis, index 0 stays in place
        mirrored = np.roll(np.flip(mirrored, axis=position), 1, axis=position)
    hermitian = (values + np.conj(mirrored)) / 2.0
    half = hermitian[..., : shape[-1] // 2 + 1]
    spectrum = fft.rfftn(padded, axes=axes)
    filtered = fft.irfftn(spectrum * _broadcast(half, axes, padded.ndim), s=shape, axes=axes)
    crop = [slice(None)] * image.ndim
    for axis, width in zip(axes, widths, strict=True):
        crop[axis] = slice(int(width), int(width) + image.shape[axis])
    return np.asarray(filtered[tuple(crop)], dtype=np.float64)


def _broadcast(transfer: np.ndarray, axes: Sequence[int], ndim: int) -> np.ndarray:
    shape = [1] * ndim
    for axis, size in zip(axes, transfer.shape, strict=True):
        shape[axis] = size
    return transfer.reshape(shape)


def kernel_transfer(kernel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Transfer function of a centred spatial kernel on an FFT grid of ``shape``.

    The kernel centre is moved to index 0 so that the circular convolution is aligned; the grid
    must be at least as large as the kernel.
    """
    placed = np.zeros(shape, dtype=np.result_type(kernel, np.float64))
    index = tuple(
        (np.arange(n) - n // 2) % size for n, size in zip(kernel.shape, shape, strict=True)
    )
    placed[np.ix_(*index)] = kernel
    return fft.fftn(placed)


def centred_grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Frequency coordinates in [-1, 1] on a centred grid ``(k - (N-1)/2) / ((N-1)/2)``.

    This is the grid on which the IBSI 2 consensus maps of the Simoncelli and Riesz filters were
    computed; returned in centred order, as open (broadcastable) arrays.
    """
    coordinates = []
    for axis, n in enumerate(shape):
        centre = (n - 1) / 2.0
        values = (np.arange(n, dtype=np.float64) - centre) / centre if n > 1 else np.zeros(1)
        view = [1] * len(shape)
        view[axis] = n
        coordinates.append(values.reshape(view))
    return coordinates
