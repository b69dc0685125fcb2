"""Tabular simulation of repeated measures on several scanners, with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_longitudinal_feature_table(
    n_subjects: int = 60,
    *,
    n_visits: int = 3,
    n_features: int = 20,
    n_scanners: int = 3,
    subject_sd: float = 1.5,
    time_effect: float = 0.3,
    scanner_shift: float = 1.0,
    scanner_scale: float = 0.4,
    switch_probability: float = 0.4,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a long-format feature table of repeated visits with scanner effects.

    Feature ``v`` of subject ``i`` at visit ``j`` on scanner ``b`` follows the longitudinal
    ComBat model (Beer et al. 2020)::

        y = mu_v + time_effect_v * t_ij + 0.3 * sex_i + u_iv + shift_bv + scale_bv * e_ijv

    with a subject random intercept ``u ~ N(0, subject_sd^2)`` and unit-variance noise ``e``.
    Visits are one year apart; each subject starts on a scanner and moves to another one
    after each visit with probability ``switch_probability`` (scanner replacement, referral),
    so scanner and subject are partly, not fully, confounded.

    Parameters
    ----------
    n_subjects, n_visits, n_features, n_scanners : int
        Sizes; features are named ``f00``, ``f01``, ...
    subject_sd : float
        Standard deviation of the subject random intercepts (noise SD units).
    time_effect : float
        Largest change per year; feature ``v`` changes by ``time_effect * (v % 3) / 2`` per
        year, so a third of the features do not change.
    scanner_shift : float
        Standard deviation of the per-scanner, per-feature additive shift.
    scanner_scale : float
        Standard deviation of the log of the per-scanner, per-feature scale of the noise.
    switch_probability : float
        Chance of changing scanner between consecutive visits.
    seed : int
        Seed; the output is identical for a seed.

    Returns
    -------
    (table, batch_free) : tuple of pandas.DataFrame
        ``table`` has one row per visit: ``subject_id``, ``visit``, ``time_years``,
        ``scanner``, ``sex``, then the features; its ``attrs["truth"]`` holds ``time_effect``
        (``{feature: change per year}``), ``subject_sd``, ``scanner_shift`` and
        ``scanner_scale`` (``{scanner: {feature: value}}``). ``batch_free`` has the same rows
        and feature columns without the scanner effects (the known truth).
    """
    if n_subjects < 2 or n_visits < 1 or n_features < 1 or n_scanners < 1:
        raise ValueError(
            "n_subjects must be at least 2 and n_visits, n_features, n_scanners at least 1"
        )
    if not 0.0 <= switch_probability <= 1.0:
        raise ValueError(f"switch_probability must be in [0, 1], got {switch_probability}")
    rng = np.random.default_rng(seed)
    scanners = [f"scanner_{chr(ord('A') + k)}" for k in range(n_scanners)]
    names = [f"f{j:02d}" for j in range(n_features)]
    mean = rng.normal(10.0, 2.0, n_features)
    slopes = time_effect * (np.arange(n_features) % 3) / 2.0
    shifts = rng.normal(0.0, scanner_shift, (n_scanners, n_features))
    scales = np.exp(rng.normal(0.0, scanner_scale, (n_scanners, n_features)))
    subject_effect = rng.normal(0.0, subject_sd, (n_subjects, n_features))
    sex = np.where(rng.random(n_subjects) < 0.5, "F", "M")
    rows, batch_free, observed = [], [], []
    for i in range(n_subjects):
        scanner = int(rng.integers(n_scanners))
        for j in range(n_visits):
            if j > 0 and n_scanners > 1 and rng.random() < switch_probability:
                scanner = int((scanner + rng.integers(1, n_scanners)) % n_scanners)
            noise = rng.normal(0.0, 1.0, n_features)
            base = mean + slopes * j + 0.3 * (sex[i] == "M") + subject_effect[i]
            batch_free.append(base + noise)
            observed.append(base + shifts[scanner] + scales[scanner] * noise)
            rows.append(
                {
                    "subject_id": f"sub-{i:04d}",
                    "visit": j + 1,
                    "time_years": float(j),
                    "scanner": scanners[scanner],
                    "sex": sex[i],
                }
            )
    identity = pd.DataFrame(rows)
    table = pd.concat([identity, pd.DataFrame(np.asarray(observed), columns=names)], axis=1)
    free = pd.concat([identity, pd.DataFrame(np.asarray(batch_free), columns=names)], axis=1)
    # Small plain dicts only: pandas copies attrs on every operation.
    table.attrs["truth"] = {
        "time_effect": {name: float(s) for name, s in zip(names, slopes, strict=True)},
        "subject_sd": float(subject_sd),
        "scanner_shift": _nested(shifts, scanners, names),
        "scanner_scale": _nested(scales, scanners, names),
        "seed": seed,
    }
    return table, free


def _nested(values: np.ndarray, rows: list[str], columns: list[str]) -> dict[str, dict[str, float]]:
    return {
        row: {column: float(v) for column, v in zip(columns, line, strict=True)}
        for row, line in zip(rows, values, strict=True)
    }
