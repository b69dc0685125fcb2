"""Site location and scale with a normal-inverse-gamma prior pooled across features.

For one site, the standardised residuals of feature ``j`` are modelled as
``r_ij ~ N(gamma_j, delta_j)`` with ``(gamma_j, delta_j)`` drawn from a normal-inverse-gamma
prior ``delta ~ InvGamma(a0, b0)``, ``gamma | delta ~ N(mu0, delta / kappa0)`` shared by the
site's features (ComBat's idea of pooling a batch's estimates across features, in its
conjugate form). The hyper-parameters are estimated by maximising the marginal likelihood of
all features (empirical Bayes). Conjugacy gives, per feature, the posterior and the exact
predictive distribution of a new row of that site: a Student t with ``2 a_n`` degrees of
freedom, location ``mu_n`` and squared scale ``b_n (kappa_n + 1) / (a_n kappa_n)``. With many
rows the prior no longer matters and the predictive tends to ``N(mean, variance)``; with a few
rows (a new site) the pooling across features keeps the scale estimate stable and the t keeps
the predictive honest about what is not known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


@dataclass
class SitePosterior:
    """Posterior of one site's location and scale, per feature (pooled-SD units)."""

    n: int
    mu: np.ndarray
    kappa: np.ndarray
    a: np.ndarray
    b: np.ndarray
    prior: tuple[float, float, float, float]

    @property
    def df(self) -> np.ndarray:
        """Degrees of freedom of the predictive t."""
        return 2.0 * self.a

    def predictive_scale(self) -> np.ndarray:
        """Scale of the predictive t for a new row."""
        return np.sqrt(self.b * (self.kappa + 1.0) / (self.a * self.kappa))

    def location(self) -> np.ndarray:
        """Posterior mean of the site's location."""
        return self.mu

    def variance(self) -> np.ndarray:
        """Posterior mean of the site's variance (``b / (a - 1)``; the mode when ``a <= 1``)."""
        return np.where(
            self.a > 1.0, self.b / np.maximum(self.a - 1.0, 1e-12), self.b / (self.a + 1.0)
        )


def fit_site(residuals: np.ndarray) -> SitePosterior:
    """Return the empirical-Bayes posterior of one site's location and scale per feature.

    Parameters
    ----------
    residuals : ndarray of shape (n_rows, n_features)
        The site's standardised residuals (at least 2 rows).

    Returns
    -------
    SitePosterior
    """
    n = residuals.shape[0]
    mean = residuals.mean(axis=0)
    ss = np.sum((residuals - mean) ** 2, axis=0)
    prior = _empirical_bayes_prior(n, mean, ss)
    return _posterior(n, mean, ss, prior)


def _posterior(
    n: int, mean: np.ndarray, ss: np.ndarray, prior: tuple[float, float, float, float]
) -> SitePosterior:
    mu0, kappa0, a0, b0 = prior
    kappa = np.full_like(mean, kappa0 + n)
    mu = (kappa0 * mu0 + n * mean) / kappa
    a = np.full_like(mean, a0 + n / 2.0)
    b = b0 + 0.5 * ss + kappa0 * n * (mean - mu0) ** 2 / (2.0 * kappa)
    return SitePosterior(n=n, mu=mu, kappa=kappa, a=a, b=b, prior=prior)


def _log_marginal(params: np.ndarray, n: int, mean: np.ndarray, ss: np.ndarray) -> float:
    """Return minus the summed log marginal likelihood of the features (for minimisation)."""
    mu0, log_kappa0, log_a0, log_b0 = params
    kappa0, a0, b0 = np.exp(log_kappa0), np.exp(log_a0), np.exp(log_b0)
    kappa_n = kappa0 + n
    a_n = a0 + n / 2.0
    b_n = b0 + 0.5 * ss + kappa0 * n * (mean - mu0) ** 2 / (2.0 * kappa_n)
    log_lik = (
        special.gammaln(a_n)
        - special.gammaln(a0)
        + a0 * np.log(b0)
        - a_n * np.log(b_n)
        + 0.5 * (np.log(kappa0) - np.log(kappa_n))
    )
    return -float(np.sum(log_lik))


def _empirical_bayes_prior(
    n: int, mean: np.ndarray, ss: np.ndarray
) -> tuple[float, float, float, float]:
    """Maximise the marginal likelihood over ``(mu0, kappa0, a0, b0)``."""
    variance = np.maximum(ss / max(n - 1, 1), 1e-12)
    # Method-of-moments start: inverse-gamma fitted to the per-feature variances.
    m, v = float(np.mean(variance)), float(np.var(variance)) + 1e-12
    a_start = min(max(m**2 / v + 2.0, 2.1), 1e3)
    start = np.array([float(np.mean(mean)), 0.0, np.log(a_start), np.log(m * (a_start - 1.0))])
    if mean.size < 2:
        return float(start[0]), 1.0, float(np.exp(start[2])), float(np.exp(start[3]))
    bounds = [(None, None), (np.log(1e-4), np.log(1e6)), (np.log(0.5), np.log(1e4)), (None, None)]
    result = optimize.minimize(
        _log_marginal, start, args=(n, mean, ss), method="L-BFGS-B", bounds=bounds
    )
    mu0, log_kappa0, log_a0, log_b0 = result.x
    return float(mu0), float(np.exp(log_kappa0)), float(np.exp(log_a0)), float(np.exp(log_b0))
