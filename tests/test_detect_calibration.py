"""Calibration functions against exact values and simulation truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from radharmony.detect import (
    benjamini_hochberg,
    conformal_pvalues,
    held_out_rates,
    per_lesion_dice,
    poisson_rate_interval,
    rate_check,
    rate_threshold,
)


def test_conformal_pvalues_count_calibration_scores_at_least_as_high() -> None:
    calibration = [1.0, 2.0, 2.0, 5.0]
    p = conformal_pvalues([0.0, 2.0, 4.0, 6.0], calibration)
    np.testing.assert_allclose(p, [5 / 5, 4 / 5, 2 / 5, 1 / 5])


def test_conformal_pvalues_are_valid_under_exchangeability() -> None:
    # 2000 repetitions: a fresh null score against 99 calibration scores of the same law.
    rng = np.random.default_rng(0)
    p = np.array(
        [conformal_pvalues(rng.standard_t(3), rng.standard_t(3, 99)) for _ in range(2000)]
    ).ravel()
    for level in (0.05, 0.1, 0.5):
        rejected = int((p <= level).sum())
        # Exact finite-sample validity: P(p <= level) = floor(100 level) / 100 <= level.
        assert stats.binomtest(rejected, p.size, level, alternative="greater").pvalue > 0.001
    assert p.min() == pytest.approx(1 / 100)


def test_benjamini_hochberg_matches_scipy_adjusted_pvalues() -> None:
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 1e-3, size=100)])
    rejected, cutoff = benjamini_hochberg(p, 0.05)
    expected = stats.false_discovery_control(p) <= 0.05
    np.testing.assert_array_equal(rejected, expected)
    assert cutoff == p[expected].max()
    assert not benjamini_hochberg(np.array([0.5, 0.9]), 0.05)[0].any()


def test_benjamini_hochberg_controls_fdr_with_conformal_pvalues() -> None:
    # 200 simulated images: 950 null and 50 shifted voxels; calibration of 2000 null scores.
    rng = np.random.default_rng(2)
    proportions = []
    for _ in range(200):
        calibration = rng.normal(size=2000)
        scores = np.concatenate([rng.normal(size=950), rng.normal(3.5, 1, size=50)])
        rejected, _ = benjamini_hochberg(conformal_pvalues(scores, calibration), 0.1)
        false = int(rejected[:950].sum())
        proportions.append(false / max(int(rejected.sum()), 1))
    # Bates et al. (2023): FDR <= 0.1 * 950 / 1000 = 0.095; Monte-Carlo SE about 0.006.
    assert np.mean(proportions) < 0.095 + 0.02


def test_rate_threshold_follows_the_risk_control_rule() -> None:
    peaks = [np.array([1.0, 5.0]), np.array([2.0]), np.array([], dtype=float)]
    # At t = 2: counts (1, 1, 0), (sum 2 + max 1) / 4 = 0.75 <= 1; at t = 1: (2+1+0+2)/4 = 1.25.
    assert rate_threshold(peaks, 1.0) == 2.0
    # At t = 5: counts (1, 0, 0): (1 + 1) / 4 = 0.5; at t = 2 the risk is 0.75 > 0.5.
    assert rate_threshold(peaks, 0.5) == 5.0
    # Rate 0.1 cannot be met by any peak: the threshold passes every reference event.
    assert rate_threshold(peaks, 0.1) == np.inf


def test_rate_threshold_keeps_the_rate_on_new_subjects() -> None:
    # Poisson(2) false events per subject with exponential peaks: calibrate on 20 subjects,
    # measure on 2000 new ones; repeated over 50 calibration sets.
    rng = np.random.default_rng(3)

    def subject() -> np.ndarray:
        return rng.exponential(size=rng.poisson(2.0))

    rates = []
    for _ in range(50):
        threshold = rate_threshold([subject() for _ in range(20)], 0.5)
        rates.append(np.mean([np.count_nonzero(subject() >= threshold) for _ in range(2000)]))
    assert np.mean(rates) <= 0.5
    assert np.mean(rates) > 0.3  # not uselessly conservative


def test_held_out_rates_leave_each_subject_out() -> None:
    peaks = [np.array([1.0, 5.0]), np.array([2.0]), np.array([], dtype=float)]
    counts = held_out_rates(peaks, 1.0)
    # Without subject 0: threshold from [[2], []] is 2 -> subject 0 has one peak >= 2.
    assert counts[0] == 1
    assert counts.tolist() == [
        int(np.sum(peaks[i] >= rate_threshold(peaks[:i] + peaks[i + 1 :], 1.0))) for i in range(3)
    ]
    with pytest.raises(ValueError, match="at least two"):
        held_out_rates(peaks[:1], 1.0)


def test_poisson_interval_matches_garwood_values() -> None:
    assert poisson_rate_interval(0, 1) == pytest.approx((0.0, 3.6889), abs=1e-4)
    low, high = poisson_rate_interval(10, 5)
    assert (low, high) == pytest.approx((4.7954 / 5, 18.3904 / 5), abs=1e-4)


def test_rate_check_summarises_held_out_counts() -> None:
    table = rate_check([0, 2, 1], 1.0, subjects=["a", "b", "c"])
    assert table["subject_id"].tolist() == ["a", "b", "c", "all"]
    summary = table.iloc[-1]
    assert summary["false_events"] == pytest.approx(1.0)
    assert summary["holds"]
    assert not rate_check([5, 6, 7], 1.0).iloc[-1]["holds"]


def test_per_lesion_dice_uses_the_reference_lesions_each_detection_overlaps() -> None:
    labels = np.zeros((1, 4, 10), dtype=np.int32)
    reference = np.zeros((1, 4, 10), dtype=bool)
    labels[0, 0, 0:4] = 1  # 4 voxels, overlaps 2 of a 3-voxel reference lesion
    reference[0, 0, 2:5] = True
    labels[0, 3, 8] = 7  # touches nothing: a false detection
    reference[0, 2, 8] = False
    dice = per_lesion_dice(labels, reference, [1, 7])
    np.testing.assert_allclose(dice, [2 * 2 / (4 + 3), 0.0])
