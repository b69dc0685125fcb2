"""BIDS datasets in (read_bids, ``radharmony extract --bids``) and BIDS derivatives out.

The dataset is laid out by the test as a BIDS dataset with two subjects, two sessions each, two
modalities (T1w, FLAIR), JSON sidecars at two levels, participants.tsv, a sessions.tsv, and two
derivatives datasets (one with lesion and brain masks, one without masks). When ``../shared`` is
present the images are real brain MR: the MSLUB multiple-sclerosis cases (Lesjak et al. 2017,
CC-BY) with their consensus lesion masks, each session a 24-voxel cube cut from the scan around a
different lesion (MSLUB has one time point per patient: the sessions test the layout, not
change). Without it the images are synthetic. The scanner names in the sidecars are made up for
the test. Lesion volumes are compared with connected components counted independently here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from conftest import SHARED_DATA
from radharmony.cli import main
from radharmony.errors import ManifestError
from radharmony.io import read_bids, write_bids_derivatives

CUBE = 24
MIN_VOXELS = 10
MSLUB = SHARED_DATA / "brain_mr" / "mslub_mni"
SUBJECTS = {"01": "patient07", "02": "patient26"}


def _crops(case: str) -> list[dict[str, np.ndarray]]:
    """Two real crops (one per session) around the two largest lesions of an MSLUB case."""
    arrays = {
        name: sitk.GetArrayFromImage(sitk.ReadImage(str(MSLUB / case / f"{name}.nii.gz")))
        for name in ("T1", "FLAIR", "GOLD_STANDARD")
    }
    labels, _ = ndimage.label(arrays["GOLD_STANDARD"] > 0, np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    crops = []
    for lesion in np.argsort(sizes)[::-1][:2] + 1:
        centre = [int(np.mean(axis)) for axis in np.nonzero(labels == lesion)]
        box = tuple(
            slice(max(0, c - CUBE // 2), max(0, c - CUBE // 2) + CUBE)
            for c, n in zip(centre, labels.shape, strict=True)
        )
        crops.append({name: array[box] for name, array in arrays.items()})
    return crops


def _synthetic(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:CUBE, 0:CUBE, 0:CUBE]
    crops = []
    for session in range(2):
        mask = np.zeros((CUBE,) * 3, dtype=np.uint8)
        for cz, cy, cx, r in [(8, 8, 8, 3 + session), (16, 15, 16, 2 + seed)]:
            mask[(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = 1
        t1 = rng.normal(600, 40, mask.shape) - 150 * mask
        flair = rng.normal(300, 30, mask.shape) + 200 * mask
        crops.append({"T1": t1, "FLAIR": flair, "GOLD_STANDARD": mask})
    return crops


def _write(array: np.ndarray, path: Path, dtype: type) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array).astype(dtype))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bids") / "ds"
    real = MSLUB.is_dir()
    (root / "dataset_description.json").parent.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "test", "BIDSVersion": "1.10.0"})
    )
    sidecar = {"Manufacturer": "Siemens", "ManufacturersModelName": "TrioTim"}
    (root / "T1w.json").write_text(json.dumps({**sidecar, "MagneticFieldStrength": 3}))
    (root / "FLAIR.json").write_text(json.dumps({**sidecar, "MagneticFieldStrength": 3.0}))
    # subject-level sidecar overriding the model for sub-02's FLAIR (inheritance principle)
    (root / "sub-02").mkdir()
    (root / "sub-02" / "sub-02_FLAIR.json").write_text(
        json.dumps({"ManufacturersModelName": "Skyra"})
    )
    (root / "participants.tsv").write_text(
        "participant_id\tage\tsex\tgroup\nsub-01\t34\tF\tMS\nsub-02\tn/a\tM\tMS\n"
    )
    (root / "sub-01" / "sub-01_sessions.tsv").parent.mkdir()
    (root / "sub-01" / "sub-01_sessions.tsv").write_text(
        "session_id\tage\nses-01\t35\nses-02\t36\n"
    )
    lesions = root / "derivatives" / "lesions"
    (root / "derivatives" / "freesurfer" / "sub-01").mkdir(parents=True)
    (root / "derivatives" / "freesurfer" / "sub-01" / "notes.txt").write_text("no masks here")
    for sub, case in SUBJECTS.items():
        crops = _crops(case) if real else _synthetic(int(sub))
        for ses, crop in zip(("01", "02"), crops, strict=True):
            anat = root / f"sub-{sub}" / f"ses-{ses}" / "anat"
            _write(crop["T1"], anat / f"sub-{sub}_ses-{ses}_T1w.nii.gz", np.float32)
            _write(crop["FLAIR"], anat / f"sub-{sub}_ses-{ses}_FLAIR.nii.gz", np.float32)
            derived = lesions / f"sub-{sub}" / f"ses-{ses}" / "anat"
            stem = f"sub-{sub}_ses-{ses}_space-orig"
            _write(crop["GOLD_STANDARD"], derived / f"{stem}_desc-lesion_mask.nii.gz", np.uint8)
            _write(np.ones_like(crop["T1"]), derived / f"{stem}_desc-brain_mask.nii.gz", np.uint8)
    (lesions / "dataset_description.json").write_text(
        json.dumps({"Name": "lesions", "DatasetType": "derivative"})
    )
    return root


def test_read_bids_builds_the_manifest(bids_root: Path) -> None:
    table = read_bids(bids_root, mask_entities={"desc": "lesion"})
    assert len(table) == 8
    assert list(table.columns[:7]) == [
        "subject_id",
        "session",
        "run",
        "modality",
        "image",
        "mask",
        "scanner",
    ]
    rows = table.set_index(["subject_id", "session", "modality"])
    assert rows.loc[("sub-01", "ses-02", "T1w"), "mask"].endswith(
        "derivatives/lesions/sub-01/ses-02/anat/sub-01_ses-02_space-orig_desc-lesion_mask.nii.gz"
    )
    # both modalities of a session share the session's mask
    assert (
        rows.loc[("sub-02", "ses-01", "T1w"), "mask"]
        == rows.loc[("sub-02", "ses-01", "FLAIR"), "mask"]
    )
    assert rows.loc[("sub-01", "ses-01", "FLAIR"), "scanner"] == "Siemens TrioTim 3T"
    assert rows.loc[("sub-02", "ses-01", "FLAIR"), "scanner"] == "Siemens Skyra 3T"
    assert rows.loc[("sub-02", "ses-01", "T1w"), "scanner"] == "Siemens TrioTim 3T"
    assert rows.loc[("sub-01", "ses-01", "T1w"), "magnetic_field_strength"] == 3.0
    # covariates: sessions.tsv overrides participants.tsv; n/a is missing
    assert rows.loc[("sub-01", "ses-01", "T1w"), "age"] == 35
    assert rows.loc[("sub-01", "ses-02", "FLAIR"), "age"] == 36
    assert pd.isna(rows.loc[("sub-02", "ses-02", "T1w"), "age"])
    assert set(table["sex"]) == {"F", "M"} and set(table["group"]) == {"MS"}
    assert table["run"].isna().all()
    assert table.attrs["derivatives"].endswith("lesions")


def test_read_bids_errors_name_the_fix(bids_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"2 candidate masks[\s\S]*desc-brain[\s\S]*desc="):
        read_bids(bids_root)
    with pytest.raises(ManifestError, match="no mask in"):
        read_bids(bids_root, mask_entities={"desc": "tumour"})
    with pytest.raises(ManifestError, match="no image of BIDS dataset"):
        read_bids(bids_root, mask_entities={"desc": "tumour"}, require_mask=False)
    flair = read_bids(
        bids_root, suffixes=["FLAIR"], derivatives="lesions", mask_entities={"desc": "lesion"}
    )
    assert set(flair["modality"]) == {"FLAIR"} and len(flair) == 4
    with pytest.raises(ManifestError, match="does not exist"):
        read_bids(bids_root, derivatives="nowhere")
    with pytest.raises(ManifestError, match="not a BIDS dataset"):
        read_bids(tmp_path)


def _components(mask_path: str) -> list[int]:
    mask = sitk.GetArrayFromImage(sitk.ReadImage(mask_path)) > 0
    labels, _ = ndimage.label(mask, np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    return sorted(int(s) for s in sizes if s >= MIN_VOXELS)


def test_extract_bids_writes_features_and_derivatives(bids_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    derivatives = tmp_path / "derivatives" / "radharmony"
    argv = ["extract", "--bids", str(bids_root), "--bids-mask", "desc=lesion"]
    argv += ["--bids-suffix", "FLAIR", "--bids-suffix", "T1w", "--out", str(out)]
    argv += ["--bids-out", str(derivatives), "--min-lesion-voxels", str(MIN_VOXELS), "--jobs", "2"]
    assert main(argv) == 0
    features = pd.read_parquet(out)
    manifest = read_bids(bids_root, mask_entities={"desc": "lesion"})
    for row in manifest.itertuples():
        mine = features[features["case_id"].str.endswith(Path(row.image).name[:-7])]
        assert sorted(mine["lesion_voxels"]) == _components(row.mask), row.image
        assert set(mine["session"]) == {row.session} and set(mine["modality"]) == {row.modality}
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "radharmony"
    for sub in SUBJECTS:
        for ses in ("01", "02"):
            tsv = derivatives / f"sub-{sub}" / f"ses-{ses}" / f"sub-{sub}_ses-{ses}_radiomics.tsv"
            table = pd.read_csv(tsv, sep="\t", na_values="n/a")
            expected = features[
                (features["subject_id"] == f"sub-{sub}") & (features["session"] == f"ses-{ses}")
            ]
            assert len(table) == len(expected) > 0
            assert set(table["modality"]) == {"T1w", "FLAIR"}
    assert "n/a" in (derivatives / "sub-02" / "ses-01" / "sub-02_ses-01_radiomics.tsv").read_text()
    sidecar = json.loads((derivatives / "radiomics.json").read_text())
    assert sidecar["Provenance"]["settings"]["name"] == "default"


def test_write_bids_derivatives_without_sessions(tmp_path: Path) -> None:
    features = pd.DataFrame(
        {"subject_id": ["sub-a", "sub-a", "sub-b"], "lesion_id": [1, 2, 1], "f": [1.0, None, 3]}
    )
    written = write_bids_derivatives(features, tmp_path / "d")
    assert tmp_path / "d" / "sub-a" / "sub-a_radiomics.tsv" in written
    lines = (tmp_path / "d" / "sub-a" / "sub-a_radiomics.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["subject_id", "lesion_id", "f", "session"]
    assert lines[2].split("\t")[2] == "n/a"
