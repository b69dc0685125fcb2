"""Tabular simulation of a multi-scanner radiomic feature table with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_feature_table(
    n_subjects: int = 200,
    *,
    n_features: int = 30,
    n_informative: int = 5,
    n_scanners: int = 3,
    class_separation: float = 1.0,
    scanner_shift: float = 1.0,
    scanner_scale: float = 0.5,
    age_effect: float = 0.5,
    volume_only: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate a per-lesion feature table with scanner effects and a known class signal.

    Each feature is ``f = class_effect + age_effect + volume_effect + noise`` in a "biological"
    space, then distorted per scanner by an additive shift and a multiplicative scale (the ComBat
    location/scale model). The class mix differs between scanners, as in real multi-centre data.

    Parameters
    ----------
    n_subjects : int
        Number of rows (one lesion per subject).
    n_features : int
        Number of feature columns, named ``f00``, ``f01``, ...
    n_informative : int
        How many of the first features carry the class signal.
    n_scanners : int
        Number of scanners (``scanner_A``, ``scanner_B``, ...).
    class_separation : float
        Standardised mean difference between the classes on each informative feature.
    scanner_shift : float
        Standard deviation of the per-scanner, per-feature additive shift (noise SD units).
    scanner_scale : float
        Standard deviation of the log of the per-scanner, per-feature multiplicative scale.
    age_effect : float
        Effect of one standard deviation of age on the features listed in
        ``attrs["truth"]["age_features"]`` (noise SD units).
    volume_only : bool
        If True, the class changes only the lesion volume; no feature but ``lesion_volume_mm3``
        (and the features that follow volume) carries signal. Used to test the volume check.
    seed : int
        Seed of the random generator; the output is identical for a seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``lesion_id``, ``scanner``, ``age``, ``sex``, ``label``,
        ``lesion_volume_mm3`` then the features. ``attrs["truth"]`` holds the informative
        features, the age-dependent features, the scanner shifts and scales (nested dicts
        ``{scanner: {feature: value}}``), and the Bayes AUC of the class signal (the best AUC any classifier can reach on the informative features).
    """
    if n_subjects < 4:
        raise ValueError(f"n_subjects must be at least 4, got {n_subjects}")
    if not 0 <= n_informative <= n_features:
        raise ValueError(
            f"n_informative must be between 0 and n_features={n_features}, got {n_informative}"
        )
    if n_scanners < 1:
        raise ValueError(f"n_scanners must be at least 1, got {n_scanners}")
    rng = np.random.default_rng(seed)
    scanners = [f"scanner_{chr(ord('A') + k)}" for k in range(n_scanners)]
    scanner_idx = np.arange(n_subjects) % n_scanners
    rng.shuffle(scanner_idx)
    # Class prevalence drifts across scanners (0.35 .. 0.65), as referral patterns differ by site.
    prevalence = np.linspace(0.35, 0.65, n_scanners) if n_scanners > 1 else np.array([0.5])
    label = (rng.random(n_subjects) < prevalence[scanner_idx]).astype(int)
    age = rng.normal(60.0, 10.0, n_subjects).round(1)
    sex = np.where(rng.random(n_subjects) < 0.5, "F", "M")
    age_z = (age - 60.0) / 10.0

    log_volume = rng.normal(np.log(4000.0), 0.6, n_subjects)
    if volume_only:
        log_volume += 0.8 * label
    volume = np.exp(log_volume)

    bio = rng.normal(0.0, 1.0, (n_subjects, n_features))
    informative = [] if volume_only else list(range(n_informative))
    for j in informative:
        bio[:, j] += class_separation * label
    age_features = list(range(n_informative, min(n_features, n_informative + 3)))
    for j in age_features:
        bio[:, j] += age_effect * age_z
    # A few features follow volume, as shape and first-order energy features do in real data.
    volume_features = list(range(max(0, n_features - 3), n_features))
    vol_z = (log_volume - log_volume.mean()) / log_volume.std()
    for j in volume_features:
        bio[:, j] += 0.8 * vol_z

    shifts = rng.normal(0.0, scanner_shift, (n_scanners, n_features))
    scales = np.exp(rng.normal(0.0, scanner_scale, (n_scanners, n_features)))
    observed = bio * scales[scanner_idx] + shifts[scanner_idx]

    features = pd.DataFrame(observed, columns=[f"f{j:02d}" for j in range(n_features)])
    table = pd.DataFrame(
        {
            "subject_id": [f"sub-{i:04d}" for i in range(n_subjects)],
            "lesion_id": 1,
            "scanner": np.asarray(scanners, dtype=object)[scanner_idx],
            "age": age,
            "sex": sex,
            "label": label,
            "lesion_volume_mm3": volume,
        }
    )
    table = pd.concat([table, features], axis=1)
    table.attrs["truth"] = {
        "informative_features": [f"f{j:02d}" for j in informative],
        "age_features": [f"f{j:02d}" for j in age_features],
        "volume_features": [f"f{j:02d}" for j in volume_features],
        # Plain nested dicts, not DataFrames: pandas compares attrs when combining frames.
        "scanner_shift": _nested(shifts, scanners, list(features.columns)),
        "scanner_scale": _nested(scales, scanners, list(features.columns)),
        "bayes_auc": _bayes_auc(class_separation, len(informative)),
        "seed": seed,
    }
    return table


def _nested(values: np.ndarray, rows: list[str], columns: list[str]) -> dict[str, dict[str, float]]:
    return {
        row: {column: float(v) for column, v in zip(columns, line, strict=True)}
        for row, line in zip(rows, values, strict=True)
    }


def _bayes_auc(separation: float, n_informative: int) -> float:
    """AUC of the optimal linear rule for two unit-variance Gaussians with independent features."""
    from scipy.stats import norm

    if n_informative == 0:
        return 0.5
    mahalanobis = separation * np.sqrt(n_informative)
    return float(norm.cdf(mahalanobis / np.sqrt(2.0)))
