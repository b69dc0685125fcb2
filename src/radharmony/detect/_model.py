"""The model of healthy tissue: voxel features, their healthy distribution, the abnormality.

A voxel is described by the histogram-standardised, locally averaged intensity of each channel
(Gaussian weights of SD ``neighbourhood_mm`` over the brain): averaging over the scale of the
smallest lesion of interest is the matched filter of a small blob in white noise, and it is what
separates small lesions from noise. The distribution of these features over healthy voxels of
the reference subjects (outside their lesions) is the model of healthy tissue. Three scores:

- ``"tail"`` (default): for each channel in which abnormal tissue is brighter (``hyperintense``,
  e.g. FLAIR, T2), a voxel's evidence is ``-log`` of the healthy probability of a value at least
  as high: the empirical distribution of healthy voxels up to its 99th percentile, and beyond it
  an exponential tail fitted to the exceedances (peaks over threshold; a generalised Pareto tail
  of shape 0). The evidence grows linearly beyond the 99th percentile instead of following a
  fitted density's extrapolation, so models fitted on different reference subsets agree on it.
  The channels' evidence is added (Fisher's combination).
- ``"mixture"``: a Gaussian mixture (full covariances) over all channels, whose components play
  the part of tissue classes and their partial-volume mixtures; the score is the negative
  log-density (model outlier detection), capped at 0 where a ``hyperintense`` channel is not
  brighter than its healthy median.
- ``"intensity"``: the standardised intensity of the first channel, not averaged (the
  thresholding baseline).

Scores are shifted so that 0 is the median over healthy reference voxels.

Van Leemput K, Maes F, Vandermeulen D, Colchester A, Suetens P. Automated segmentation of
multiple sclerosis lesions by model outlier detection. IEEE Trans Med Imaging 2001;20:677-688.
Schmidt P, Gaser C, Arsic M, et al. An automated tool for detection of FLAIR-hyperintense
white-matter lesions in multiple sclerosis. NeuroImage 2012;59:3774-3783.
Davison AC, Smith RL. Models for exceedances over high thresholds. J R Stat Soc B
1990;52:393-442.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radharmony.detect._standardize import HistogramStandardizer, brain_landmarks
from radharmony.detect._subject import Subject, local_means

MODELS: tuple[str, ...] = ("tail", "mixture", "intensity")
_BIC_SAMPLE = 20_000
# A one-dimensional density is estimated well from 50 000 values; more only slows the fit.
# The healthy distribution of one channel: quantiles at these probabilities, then an exponential
# tail above the last one.
_TAIL_PROBABILITIES = np.concatenate([np.linspace(0.0, 0.9, 91), np.linspace(0.9, 0.99, 91)[1:]])


def subject_landmarks(subject: Subject, percentiles: Sequence[float]) -> NDArray[np.float64]:
    """Return the landmarks (n_channels, n_percentiles) of a subject's brain intensities."""
    return np.stack([brain_landmarks(c[subject.brain], percentiles) for c in subject.channels])


def used_channels(kind: str, n_channels: int, hyperintense: Sequence[int]) -> tuple[int, ...]:
    """Channels a model reads: the hyperintense ones (tail), the first (intensity) or all."""
    if kind == "tail":
        return tuple(int(k) for k in hyperintense)
    if kind == "intensity":
        return (0,)
    return tuple(range(n_channels))


def raw_features(
    subject: Subject, neighbourhood_mm: float | None, channels: Sequence[int]
) -> NDArray[np.float32]:
    """Return the unstandardised features of the brain voxels, shape (n_brain, len(channels)).

    Each listed channel's local mean over ``neighbourhood_mm`` (or its intensity when None).
    The standardisation maps the local mean with the subject's landmarks, so a feature is "the
    standardised value of the locally averaged image".
    """
    values = subject.channels[list(channels)]
    if neighbourhood_mm:
        values = local_means(values, subject.brain, subject.spacing_zyx, neighbourhood_mm)
    return np.stack([v[subject.brain] for v in values], axis=1).astype(np.float32, copy=False)


def standardise(
    features: NDArray[np.float32],
    landmarks: NDArray[np.float64],
    standardizer: HistogramStandardizer,
    channels: Sequence[int],
) -> NDArray[np.float32]:
    """Map raw features (column ``j`` is channel ``channels[j]``) to the standard scale."""
    out = np.empty_like(features, dtype=np.float32)
    for j, k in enumerate(channels):
        out[:, j] = standardizer.transform(k, features[:, j], landmarks[k])
    return out


@dataclass
class HealthyTissueModel:
    """A fitted model of healthy tissue (one cross-fitting fold's, or the final one).

    Attributes
    ----------
    kind : {"tail", "mixture", "intensity"}
    standardizer : HistogramStandardizer
    neighbourhood_mm : float or None
        SD of the local averaging (None for ``"intensity"``).
    hyperintense : tuple of int
        Channels in which abnormal tissue is brighter.
    channels : tuple of int
        Channels the model reads (feature columns, in order).
    medians : numpy.ndarray
        Healthy median of each standardised feature.
    mixtures : list
        ``"tail"``: one :class:`HealthyTail` per hyperintense channel; ``"mixture"``: one
        multivariate ``GaussianMixture``; ``"intensity"``: empty.
    offset : float
        Median raw score of the healthy training voxels (subtracted: 0 = typical).
    """

    kind: str
    standardizer: HistogramStandardizer
    neighbourhood_mm: float | None
    hyperintense: tuple[int, ...]
    channels: tuple[int, ...]
    medians: NDArray[np.float64]
    mixtures: list[Any]
    offset: float

    def score(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        """Return the abnormality of standardised features (n_voxels, n_channels)."""
        raw = self._raw_score(features)
        return (raw - self.offset).astype(np.float32)

    def _raw_score(self, features: NDArray[np.float32], gate: bool = True) -> NDArray[np.float64]:
        if self.kind == "intensity":
            return features[:, 0].astype(np.float64)
        if self.kind == "tail":
            total = np.zeros(features.shape[0], dtype=np.float64)
            for k, tail in zip(self.hyperintense, self.mixtures, strict=True):
                total += tail.evidence(features[:, self.channels.index(k)])
            return total
        score = -_log_density(self.mixtures[0], features)
        if gate and self.hyperintense:
            columns = [self.channels.index(k) for k in self.hyperintense]
            bright = np.all([features[:, j] > self.medians[j] for j in columns], axis=0)
            score = np.where(bright, score, np.minimum(score, self.offset))
        return score

    def score_subject(
        self, subject: Subject, landmarks: NDArray[np.float64] | None = None
    ) -> NDArray[np.float32]:
        """Return the abnormality map of a subject (0 outside its brain)."""
        if landmarks is None:
            landmarks = subject_landmarks(subject, self.standardizer.percentiles)
        features = standardise(
            raw_features(subject, self.neighbourhood_mm, self.channels),
            landmarks,
            self.standardizer,
            self.channels,
        )
        out = np.zeros(subject.brain.shape, dtype=np.float32)
        out[subject.brain] = self.score(features)
        return out

    def digest(self) -> str:
        """Return a digest of the fitted state (part of cache keys)."""
        digest = hashlib.sha256(self.standardizer.digest().encode())
        state = (self.kind, self.neighbourhood_mm, self.hyperintense, self.channels, self.offset)
        digest.update(repr(state).encode())
        digest.update(np.asarray(self.medians, dtype=np.float64).tobytes())
        for mixture in self.mixtures:
            if isinstance(mixture, HealthyTail):
                digest.update(np.ascontiguousarray(mixture.quantiles).tobytes())
                digest.update(repr(mixture.scale).encode())
                continue
            for name in ("weights_", "means_", "covariances_"):
                digest.update(np.ascontiguousarray(getattr(mixture, name)).tobytes())
        return digest.hexdigest()


def fit_healthy_model(
    samples: Sequence[NDArray[np.float32]],
    landmarks: Sequence[NDArray[np.float64]],
    standardizer: HistogramStandardizer,
    *,
    kind: str,
    neighbourhood_mm: float | None,
    hyperintense: Sequence[int],
    n_components: int | str,
    max_components: int,
    random_state: int,
    like: HealthyTissueModel | None = None,
) -> HealthyTissueModel:
    """Fit the model on raw feature samples of healthy voxels, one array per reference subject.

    With ``like`` (a model fitted on all reference subjects), each mixture keeps that model's
    number of components instead of searching it again (cross-fitting folds).
    """
    channels = used_channels(kind, standardizer.standard.shape[0], hyperintense)
    mapped = np.concatenate(
        [standardise(s, m, standardizer, channels) for s, m in zip(samples, landmarks, strict=True)]
    )
    model = HealthyTissueModel(
        kind=kind,
        standardizer=standardizer,
        neighbourhood_mm=neighbourhood_mm if kind != "intensity" else None,
        hyperintense=tuple(int(k) for k in hyperintense),
        channels=channels,
        medians=np.median(mapped, axis=0).astype(np.float64),
        mixtures=[],
        offset=0.0,
    )
    if kind == "tail":
        model.mixtures = [fit_tail(mapped[:, channels.index(k)]) for k in model.hyperintense]
    elif kind == "mixture":
        size = like.mixtures[0].n_components if like is not None else n_components
        model.mixtures = [_fit_mixture(mapped, size, max_components, random_state)]
    model.offset = float(np.median(model._raw_score(mapped, gate=False)))
    return model


def _log_density(mixture: Any, features: NDArray[np.float32]) -> NDArray[np.float64]:
    # Scored in chunks: scikit-learn holds an (n, n_components) float64 array per step.
    out = np.empty(features.shape[0], dtype=np.float64)
    step = 262_144
    for start in range(0, features.shape[0], step):
        out[start : start + step] = mixture.score_samples(features[start : start + step])
    return out


@dataclass(frozen=True)
class HealthyTail:
    """Healthy distribution of one standardised channel, for upper-tail evidence.

    Attributes
    ----------
    quantiles : numpy.ndarray
        Healthy quantiles at ``_TAIL_PROBABILITIES`` (0 to 0.99).
    scale : float
        Mean excess of healthy values over the 0.99 quantile: the scale of the exponential
        tail above it.
    """

    quantiles: NDArray[np.float64]
    scale: float

    def evidence(self, values: NDArray[np.float32]) -> NDArray[np.float64]:
        """Return ``-log P(healthy value >= x)`` for each ``x`` (0 below the healthy minimum)."""
        x = np.asarray(values, dtype=np.float64)
        top = self.quantiles[-1]
        below = np.interp(x, self.quantiles, -np.log1p(-_TAIL_PROBABILITIES))
        beyond = -np.log1p(-_TAIL_PROBABILITIES[-1]) + (x - top) / self.scale
        return np.where(x > top, beyond, below)


def fit_tail(values: NDArray[np.float32]) -> HealthyTail:
    """Fit the healthy distribution of one channel from healthy voxel values."""
    data = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(data, _TAIL_PROBABILITIES)
    # Ties (e.g. clipped intensities) would make the interpolation ill-defined: keep it strictly
    # increasing by the smallest representable steps.
    quantiles = np.maximum.accumulate(quantiles + np.arange(quantiles.size) * 1e-9)
    excess = data[data > quantiles[-1]] - quantiles[-1]
    scale = float(excess.mean()) if excess.size else 1.0
    return HealthyTail(quantiles=quantiles, scale=max(scale, 1e-6))


def _fit_mixture(
    data: NDArray[np.float32], n_components: int | str, max_components: int, random_state: int
) -> Any:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(random_state)

    def fit(k: int, values: NDArray[np.float32]) -> Any:
        return GaussianMixture(
            n_components=k,
            covariance_type="full",
            reg_covar=1e-3,
            max_iter=200,
            init_params="k-means++",
            random_state=random_state,
        ).fit(values)

    if n_components != "bic":
        return fit(int(n_components), data)
    # The number of components is chosen by BIC on a subsample (the criterion's minimum is
    # stable well below the full sample size), then the chosen mixture is fitted on everything.
    subset = data[rng.choice(data.shape[0], min(data.shape[0], _BIC_SAMPLE), replace=False)]
    bics = [fit(k, subset).bic(subset) for k in range(1, max_components + 1)]
    return fit(int(np.argmin(bics)) + 1, data)
