"""Follow-up building blocks on arrays: lesion matching, volume rule, thresholds, change score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from radharmony.longitudinal import (
    ChangeCalibration,
    MatchingRule,
    change_score,
    lesion_load,
    mirror_fdr_threshold,
    track_lesions,
)
from radharmony.longitudinal._manifest import read_longitudinal_manifest

SHAPE = (20, 40, 40)
SPACING = (1.0, 1.0, 1.0)
WORLD = np.eye(4)


def _ball(centre: tuple[int, int, int], radius: float) -> np.ndarray:
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    cz, cy, cx = centre
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def _labels(*balls: tuple[int, tuple[int, int, int], float]) -> np.ndarray:
    out = np.zeros(SHAPE, dtype=np.int64)
    for label, centre, radius in balls:
        out[_ball(centre, radius)] = label
    return out


@pytest.fixture(scope="module")
def tracked() -> pd.DataFrame:
    before = _labels(
        (1, (10, 8, 8), 3),  # stable
        (2, (10, 8, 20), 2),  # enlarging
        (3, (10, 8, 32), 4),  # shrinking
        (4, (10, 20, 8), 3),  # disappeared
        (5, (10, 20, 18), 2.5),  # merges with 6
        (6, (10, 20, 24), 2.5),
        (7, (10, 32, 20), 4),  # splits in two
        (8, (10, 32, 33), 2),  # moves by 3 voxels without overlap
    )
    after = _labels(
        (11, (10, 8, 8), 3),
        (12, (10, 8, 20), 4),
        (13, (10, 8, 32), 2),
        (14, (10, 20, 21), 4.5),
        (15, (10, 32, 16), 2),
        (16, (10, 32, 24), 2),
        (17, (10, 36, 36), 1.5),  # moved lesion 8 (no overlap, centroid within 5 mm)
        (18, (3, 30, 5), 2),  # new
    )
    after[_ball((10, 32, 20), 1.2)] = 0  # the split leaves a gap
    return track_lesions([before, after], ["1", "2"], spacing=SPACING, index_to_world=WORLD)


def _status(tracks: pd.DataFrame, lesion_id: int) -> list[str]:
    return tracks[(tracks["timepoint"] == "2") & (tracks["lesion_id"] == lesion_id)][
        "status"
    ].tolist()


def test_every_status_is_recognised(tracked: pd.DataFrame) -> None:
    assert _status(tracked, 11) == ["stable"]
    assert _status(tracked, 12) == ["enlarging"]
    assert _status(tracked, 13) == ["shrinking"]
    assert _status(tracked, 14) == ["merged"]
    assert _status(tracked, 15) == _status(tracked, 16) == ["split"]
    assert _status(tracked, 17) == ["stable"]
    assert _status(tracked, 18) == ["new"]
    gone = tracked[(tracked["timepoint"] == "2") & tracked["lesion_id"].isna()]
    assert gone["status"].tolist() == ["disappeared"]
    assert gone["matched_lesion_ids"].tolist() == ["4"]
    assert gone["volume_change_mm3"].iloc[0] == pytest.approx(-_ball((10, 20, 8), 3).sum())


def test_tracks_link_identities_and_volumes(tracked: pd.DataFrame) -> None:
    first = tracked[tracked["timepoint"] == "1"].set_index("lesion_id")["lesion_track_id"]
    later = tracked[tracked["timepoint"] == "2"].dropna(subset=["lesion_id"])
    later = later.set_index("lesion_id")["lesion_track_id"]
    assert later[11] == first[1] and later[12] == first[2] and later[17] == first[8]
    # The merge joins two baseline tracks into one; the split keeps one track.
    assert later[14] == first[5] == first[6]
    assert later[15] == later[16] == first[7]
    assert later[18] not in set(first)
    grown = tracked[(tracked["timepoint"] == "2") & (tracked["lesion_id"] == 12)].iloc[0]
    assert grown["volume_change_mm3"] == pytest.approx(
        _ball((10, 8, 20), 4).sum() - _ball((10, 8, 20), 2).sum()
    )
    assert grown["matched_lesion_ids"] == "2"


def test_volume_rule_uses_half_a_voxel_shell() -> None:
    # A 5-voxel change of a 123-voxel lesion is within its boundary error: stable.
    before = _labels((1, (10, 20, 20), 3))
    after = before.copy()
    rim = np.argwhere((before == 0) & (ndimage.binary_dilation(before > 0)))[:5]
    after[tuple(rim.T)] = 1
    tracks = track_lesions([before, after], ["a", "b"], spacing=SPACING, index_to_world=WORLD)
    assert tracks["status"].tolist() == ["present", "stable"]
    strict = MatchingRule(shell_fraction=0.01)
    tracks = track_lesions(
        [before, after], ["a", "b"], spacing=SPACING, index_to_world=WORLD, rule=strict
    )
    assert tracks["status"].tolist() == ["present", "enlarging"]


def test_lesion_load_counts(tracked: pd.DataFrame) -> None:
    load = lesion_load(tracked, ["1", "2"], "s").set_index("timepoint")
    assert load.loc["1", "n_lesions"] == 8
    assert load.loc["2", "n_lesions"] == 8
    expected = {"n_new": 1, "n_enlarging": 1, "n_stable": 2, "n_shrinking": 1}
    expected |= {"n_disappeared": 1, "n_merged": 1, "n_split": 1}
    for column, value in expected.items():
        assert load.loc["2", column] == value, column


def test_mirror_fdr_controls_the_share_of_false_voxels() -> None:
    # Symmetric null plus real growth: the false share among selected voxels stays near the
    # target on average (mirror estimate), although nothing about the null is assumed normal.
    rng = np.random.default_rng(0)
    shares, power = [], []
    for _ in range(200):
        null = rng.standard_t(4, 20_000)  # heavy tails, as real change maps have
        signal = rng.normal(10.0, 1.5, 300)
        scores = np.concatenate([null, signal])
        selected = scores >= mirror_fdr_threshold(scores, 0.1)
        shares.append(selected[:20_000].sum() / max(selected.sum(), 1))
        power.append(selected[20_000:].mean())
    assert np.mean(shares) <= 0.1
    assert np.mean(power) > 0.8


def test_mirror_fdr_ignores_real_opposite_change_in_the_decoys() -> None:
    rng = np.random.default_rng(1)
    null = rng.normal(0.0, 1.0, 50_000)
    growth = rng.normal(8.0, 1.0, 200)
    shrinkage = -rng.normal(8.0, 1.0, 400)
    scores = np.concatenate([null, growth, shrinkage])
    plain = mirror_fdr_threshold(scores, 0.05)
    decoys = np.concatenate([null, growth])  # the shrinking lesions are left out of the decoys
    aware = mirror_fdr_threshold(scores, 0.05, decoys)
    assert plain == np.inf  # 400 shrinking voxels look like 400 false growth voxels
    assert 3.0 < aware < 6.0


def test_reference_fdr_calibration_uses_conformal_pvalues() -> None:
    rng = np.random.default_rng(2)
    null = np.sort(rng.normal(0.0, 1.0, 100_000))
    calibration = ChangeCalibration("reference_fdr", 0.05, null, null, n_reference_subjects=3)
    scores = np.concatenate([rng.normal(0.0, 1.0, 20_000), rng.normal(7.0, 1.0, 200)])
    grow, shrink = calibration.thresholds(scores)
    selected = scores >= grow
    assert selected[20_000:].mean() > 0.9
    assert selected[:20_000].sum() / selected.sum() < 0.05
    assert shrink > 4.0  # nothing to find on the other side


def test_change_score_is_signed_and_standardised() -> None:
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:24, :48, :48]
    anatomy = 100.0 + 20.0 * np.sin(x / 5.0) * np.cos(y / 7.0)
    mask = np.ones(anatomy.shape, dtype=bool)
    baseline = anatomy + rng.normal(0, 2.0, anatomy.shape)
    # Follow-up: other gain and offset, a smooth bias, a new lesion and a vanished one.
    bias = 1.0 + 0.1 * x / 48.0
    followup = 1.7 * anatomy * bias + 30.0 + rng.normal(0, 3.0, anatomy.shape)
    new = (z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 16
    gone = (z - 12) ** 2 + (y - 36) ** 2 + (x - 36) ** 2 <= 16
    followup[new] += 1.7 * 40.0
    baseline[gone] += 40.0
    score = change_score([baseline], [followup], mask, (1.0, 1.0, 1.0))
    inner = ndimage.binary_erosion(mask, iterations=3)
    quiet = inner & ~ndimage.binary_dilation(new | gone, iterations=4)
    assert np.median(score[new]) > 5.0
    assert np.median(score[gone]) < -5.0
    assert abs(np.median(score[quiet])) < 0.1
    # Residual anatomy (the slope is estimated from noisy data) keeps it a little below 1.
    assert 0.5 < np.std(score[quiet]) < 1.3


def test_manifest_orders_visits_and_refuses_unorderable_time_points(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "subject_id": ["b", "b", "a", "a"],
            "timepoint": ["2021-06-01", "2020-01-15", "2020-03-01", "2021-03-01"],
            "image": ["b2.nii.gz", "b1.nii.gz", "a1.nii.gz", "a2.nii.gz"],
        }
    )
    table = read_longitudinal_manifest(frame, base_dir=tmp_path)
    assert table["subject_id"].tolist() == ["b", "b", "a", "a"]
    assert table["timepoint"].tolist() == ["2020-01-15", "2021-06-01", "2020-03-01", "2021-03-01"]
    assert table["image"].iloc[0] == str(tmp_path / "b1.nii.gz")
    from radharmony.errors import ManifestError

    frame.loc[1, "timepoint"] = "baseline"
    with pytest.raises(ManifestError, match="row 3, column 'timepoint': 'baseline' is neither"):
        read_longitudinal_manifest(frame, base_dir=tmp_path)
    with pytest.raises(ManifestError, match=r"missing required column\(s\) \['image'\]"):
        read_longitudinal_manifest(frame.drop(columns="image"), base_dir=tmp_path)
