"""Random-intercept linear mixed models fitted by REML for many features at once.

Model of feature ``v``: ``y = D beta_v + Z u_v + e_v`` with ``u_v ~ N(0, s2u_v I)`` (one random
intercept per subject) and ``e_v ~ N(0, s2_v I)``. With ``lam = s2u / s2`` the marginal
covariance is ``s2 (I + lam Z Z')``, whose inverse is block diagonal with the closed form
``I - lam / (1 + n_s lam) J`` per subject ``s``. The restricted likelihood profiled over
``beta`` and ``s2`` is then a function of ``lam`` alone (Harville 1977; Patterson & Thompson
1971); it is minimised per feature by a log-scale grid followed by a golden-section search,
vectorised over features. The result is the REML estimate lme4 and statsmodels compute for
``y ~ D + (1 | subject)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# ln(lambda) search range: from a negligible to an overwhelming subject variance.
_LOG_LAMBDA_RANGE = (-18.0, 18.0)
_GRID_POINTS = 37
_GOLDEN_ITERATIONS = 60


@dataclass
class RandomInterceptFit:
    """REML estimates of a random-intercept model, one column per feature.

    Attributes
    ----------
    beta : ndarray of shape (n_design_columns, n_features)
        Fixed-effect coefficients (generalised least squares at the REML variance ratio).
    sigma2 : ndarray of shape (n_features,)
        Residual variance.
    lam : ndarray of shape (n_features,)
        Ratio of the subject variance to the residual variance (0 at the boundary).
    """

    beta: NDArray[np.float64]
    sigma2: NDArray[np.float64]
    lam: NDArray[np.float64]

    @property
    def subject_variance(self) -> NDArray[np.float64]:
        """Variance of the subject random intercepts."""
        return self.lam * self.sigma2


def group_sums(values: NDArray[np.float64], codes: NDArray[np.int64], n_groups: int) -> NDArray:
    """Return per-group sums of the rows of ``values`` (groups given by integer codes)."""
    out = np.zeros((n_groups, *values.shape[1:]))
    np.add.at(out, codes, values)
    return out


class _Sufficient:
    """Sums over rows and subjects that every evaluation of the likelihood reuses."""

    def __init__(self, design: NDArray, y: NDArray, codes: NDArray[np.int64]) -> None:
        n_groups = int(codes.max()) + 1
        self.n_rows, self.n_cols = design.shape
        self.counts = np.bincount(codes, minlength=n_groups).astype(float)
        self.dtd = design.T @ design
        self.dty = design.T @ y
        self.yty = np.einsum("nv,nv->v", y, y)
        self.d_sum = group_sums(design, codes, n_groups)  # subjects x columns
        self.y_sum = group_sums(y, codes, n_groups)  # subjects x features

    def weights(self, lam: NDArray) -> NDArray:
        """Return ``lam / (1 + n_s lam)``, subjects x features."""
        return lam[None, :] / (1.0 + self.counts[:, None] * lam[None, :])

    def gls(self, lam: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """Return ``(beta, r'V^-1 r, D'V^-1 D)`` at variance ratios ``lam`` (one per feature)."""
        w = self.weights(lam)
        a = self.dtd[None, :, :] - np.einsum("sv,sp,sq->vpq", w, self.d_sum, self.d_sum)
        b = self.dty.T - np.einsum("sv,sp,sv->vp", w, self.d_sum, self.y_sum)
        beta = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        yvy = self.yty - np.einsum("sv,sv->v", w, self.y_sum**2)
        quad = np.maximum(yvy - np.einsum("vp,vp->v", b, beta), 0.0)
        return beta.T, quad, a

    def criterion(self, lam: NDArray) -> NDArray:
        """Return -2 x the profiled restricted log-likelihood (up to a constant)."""
        _, quad, a = self.gls(lam)
        dof = self.n_rows - self.n_cols
        tiny = np.finfo(float).tiny
        log_det_v = np.log1p(self.counts[:, None] * lam[None, :]).sum(axis=0)
        _, log_det_a = np.linalg.slogdet(a)
        return dof * np.log(np.maximum(quad / dof, tiny)) + log_det_v + log_det_a


def fit_random_intercept(
    design: NDArray[np.float64], y: NDArray[np.float64], codes: NDArray[np.int64]
) -> RandomInterceptFit:
    """Fit ``y[:, v] ~ design + (1 | subject)`` by REML for every feature ``v``.

    Parameters
    ----------
    design : ndarray of shape (n_rows, n_columns)
        Full-rank fixed-effect design (intercept or batch indicators, covariates).
    y : ndarray of shape (n_rows, n_features)
        Responses.
    codes : ndarray of int of shape (n_rows,)
        Subject of each row, coded ``0 .. n_subjects - 1``.

    Returns
    -------
    RandomInterceptFit
    """
    stats = _Sufficient(design, y, codes)
    n_features = y.shape[1]
    grid = np.linspace(*_LOG_LAMBDA_RANGE, _GRID_POINTS)
    values = np.stack([stats.criterion(np.full(n_features, np.exp(t))) for t in grid])
    best = np.argmin(values, axis=0)
    step = grid[1] - grid[0]
    low = grid[np.maximum(best - 1, 0)]
    high = grid[np.minimum(best + 1, len(grid) - 1)]
    # Golden-section search inside the bracket around the best grid point.
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = high - ratio * (high - low), low + ratio * (high - low)
    f1, f2 = stats.criterion(np.exp(x1)), stats.criterion(np.exp(x2))
    for _ in range(_GOLDEN_ITERATIONS):
        left = f1 < f2
        high = np.where(left, x2, high)
        low = np.where(left, low, x1)
        x2n = np.where(left, x1, low + ratio * (high - low))
        x1n = np.where(left, high - ratio * (high - low), x2)
        f_new = stats.criterion(np.exp(np.where(left, x1n, x2n)))
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        x1, x2 = x1n, x2n
    t_best = (low + high) / 2.0
    lam = np.exp(t_best)
    # The likelihood can be largest at lam = 0 (no subject variance): compare with the boundary.
    at_zero = stats.criterion(np.zeros(n_features)) <= stats.criterion(lam)
    lam = np.where(at_zero | (t_best <= _LOG_LAMBDA_RANGE[0] + step), 0.0, lam)
    beta, quad, _ = stats.gls(lam)
    sigma2 = quad / (stats.n_rows - stats.n_cols)
    return RandomInterceptFit(beta=beta, sigma2=sigma2, lam=lam)


def random_intercepts(
    residuals: NDArray[np.float64], codes: NDArray[np.int64], lam: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return each subject's predicted random intercept (BLUP), subjects x features.

    ``u_s = lam * sum_s(r) / (1 + n_s lam)`` where ``r = y - D beta`` are the marginal residuals
    of the subject's rows: the subject's mean residual shrunk towards 0.
    """
    n_groups = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    sums = group_sums(residuals, codes, n_groups)
    return lam[None, :] * sums / (1.0 + counts[:, None] * lam[None, :])
