"""Shared test fixtures.

Reference data live in ``../shared/data`` beside the project root; tests that need them use the
``shared_data`` fixture, which skips cleanly when the folder is absent, and are marked ``shared``
(the marker is added here to every test that uses the fixture, so ``-m "not shared"`` selects the
tests that run anywhere). Small licensed files every clone has live in ``tests/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("RADHARMONY_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)
TEST_DATA = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs ``../shared`` as ``shared``, whatever its author wrote."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the shared reference data; skips the test when it is not available."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ibsi_digital_phantom() -> tuple[Path, Path, Path]:
    """The IBSI digital phantom embedded in ``tests/data`` (CC BY 4.0, see its README).

    Returns the image, the mask and the reference-value CSV.
    """
    folder = TEST_DATA / "ibsi_digital_phantom"
    return folder / "phantom.nii.gz", folder / "mask.nii.gz", folder / "ibsi_1_dig_phantom.csv"


@pytest.fixture(scope="session")
def project_root() -> Path:
    """Path to the project root (where data_dictionary/ lives)."""
    return PROJECT_ROOT


def write_tiny_cohort(folder: Path, n_subjects: int = 6, seed: int = 0) -> Path:
    """Write a small cohort of noisy 3D images with spherical lesions and return its manifest.

    Subject ``i`` has ``1 + i % 2`` lesions in a binary mask (split into components by the
    extraction); sizes are known so tests can check lesion voxel counts.
    """
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    zz, yy, xx = np.mgrid[0:24, 0:32, 0:32]
    rows = []
    for i in range(n_subjects):
        image = rng.normal(100.0, 10.0, zz.shape)
        mask = np.zeros(zz.shape, dtype=np.uint8)
        centres = [(12, 10, 10), (12, 22, 22)][: 1 + i % 2]
        for k, (cz, cy, cx) in enumerate(centres):
            ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= (4 + k) ** 2
            mask[ball] = 1
            image[ball] += 50.0 + 20.0 * rng.normal(size=int(ball.sum()))
        spacing = (1.0, 1.0, 1.5) if i % 3 else (0.8, 0.8, 2.0)
        for array, sub, dtype in ((image, "images", np.float32), (mask, "masks", np.uint8)):
            img = sitk.GetImageFromArray(array.astype(dtype))
            img.SetSpacing(spacing)
            sitk.WriteImage(img, str(folder / sub / f"sub-{i:02d}.nii.gz"))
        rows.append(
            {
                "subject_id": f"sub-{i:02d}",
                "image": f"images/sub-{i:02d}.nii.gz",
                "mask": f"masks/sub-{i:02d}.nii.gz",
                "scanner": "A" if i % 2 else "B",
                "age": 50 + i,
                "sex": "F" if i % 3 else "M",
            }
        )
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 6-subject cohort written once per test session (treat as read-only)."""
    return write_tiny_cohort(tmp_path_factory.mktemp("tiny_cohort"))
