"""ComBat's location/scale model with James-Stein shrinkage in the metric of held-out separability.

Model of feature ``j`` for row ``i`` of batch ``b`` (ComBat's, Johnson et al. 2007, with the
outcome optionally in the design):

    x_ij = alpha_j + z_i' beta_j + y_i' theta_j + sigma_j gamma_bj + sigma_j sqrt(delta_bj) e_ij

``z`` are the covariates, ``y`` the outcome columns (training rows only), ``gamma_bj`` and
``delta_bj`` the batch's location and scale in units of the pooled SD ``sigma_j``.

Estimation. Ordinary least squares on the design ``[batch indicators, covariates, outcome]``
gives every coefficient; ``gamma_hat`` are the standardised batch means (as in ComBat),
``delta_hat`` the standardised within-batch variances. Each estimate has a sampling variance
that is known up to the data's own variances:

- ``Var(gamma_hat_bj) = sum_k delta_kj c_b' A_k c_b`` (sandwich over the batches' rows, with
  ``c_b`` the contrast "batch b minus the weighted mean of batches" and
  ``A_k = (D'D)^-1 D_k'D_k (D'D)^-1``): larger when the outcome or a covariate is unevenly
  spread over batches, because that part of the batch difference is attributed to them;
- ``Var(log delta_hat_bj) = sum_k (1[k = b] - w_k)^2 (2 / (n_k - 1) + (kurtosis_j - 3) / n_k)``
  (the batch's log variance minus the pooled one, ``w_k = n_k / n``): heavy tails make a
  scale estimate much noisier than the normal formula says.

Shrinkage. For each batch the whole vector of location estimates (over features) is multiplied
by one positive-part James-Stein factor ``c_b = max(0, 1 - (p - 2) / M_b)``, where ``M_b`` is
the squared Mahalanobis norm of the estimates with respect to their own sampling covariance
(the per-feature variances above and the features' residual correlation, estimated with
Ledoit-Wolf shrinkage). The log-scale estimates get their own factor the same way (the
correlation of their errors is that of the squared residuals). Why this rule: the held-out
separability of two batches is their squared Mahalanobis distance. If the estimates are normal
with a known covariance and ``p >= 3``, the James-Stein estimate has a smaller expected squared
Mahalanobis error than the unshrunk estimate (which plain ComBat without empirical Bayes
applies) for every true effect, and an expected error at most ``||theta||^2 + 4`` noise units,
where ``||theta||^2`` is the error of not correcting at all (James and Stein 1961; the bound
follows from Jensen's inequality). So, on average, the residual batch difference it leaves
in new rows is never much larger than the raw difference, and smaller than what full correction
leaves. A batch effect buried in estimation noise gives ``c_b = 0``; a strong one gives
``c_b`` close to 1. Per-feature shrinkage, as in ComBat's empirical Bayes, cannot do this:
radiomic features are strongly correlated, so their estimation errors are too, and a spread of
correlated errors across features looks like a real effect.

Adjustment (never uses the outcome of the row): with ``m_b = mean over the batch's training rows
of y' theta`` (the batch's outcome mix),

    x* = c + (x - c - sigma gamma*_b) / sqrt(delta*_b),    c = alpha + z' beta + m_b

The location term is removed exactly as estimated. The scale is applied around the batch's own
outcome mix, so the batch mean lands where it should; a row's outcome part ``y' theta - m_b`` is
multiplied by the batch's scale factor (see ``ShrinkageComBat``'s notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A log-variance estimate is never treated as more precise than a quarter of the normal-theory
#: variance (light-tailed data would otherwise claim near-exact scales).
_MIN_LOG_VAR_FRACTION = 0.25


@dataclass
class LocationScaleFit:
    """Fitted location/scale model (arrays cover the estimated features only).

    Attributes
    ----------
    kept : ndarray of bool, shape (n_features,)
        Features estimated; the others (constant within a batch, or fully explained by the
        design) are left unchanged.
    grand_mean, sd_pooled : ndarray of shape (n_kept,)
        ``alpha`` and ``sigma``.
    beta_covariates : ndarray of shape (n_covariate_columns, n_kept)
    beta_outcome : ndarray of shape (n_outcome_columns, n_kept)
    outcome_mix : ndarray of shape (n_batches, n_kept)
        ``m_b`` in feature units (zeros without the outcome).
    gamma_hat, gamma_var, gamma_star : ndarray of shape (n_batches, n_kept)
        Location estimate, its sampling variance and the shrunk location that is applied
        (pooled-SD units).
    delta_hat, log_delta_var, delta_star, inv_sd_star : ndarray of shape (n_batches, n_kept)
        Scale estimate, sampling variance of its log, the applied (shrunk) scale and the
        applied factor ``delta_star ** -0.5``.
    kurtosis : ndarray of shape (n_kept,)
        Pooled kurtosis of the standardised residuals (3 for normal data).
    location_factor, scale_factor : ndarray of shape (n_batches,)
        James-Stein factors applied to the batch's location and log-scale estimates
        (0: nothing corrected, 1: the estimate applied in full).
    location_distance : ndarray of shape (n_batches,)
        Squared Mahalanobis norm of the location estimates in noise units (about ``p`` when
        the batch has no effect).
    """

    kept: np.ndarray
    grand_mean: np.ndarray
    sd_pooled: np.ndarray
    beta_covariates: np.ndarray
    beta_outcome: np.ndarray
    outcome_mix: np.ndarray
    gamma_hat: np.ndarray
    gamma_var: np.ndarray
    gamma_star: np.ndarray
    delta_hat: np.ndarray
    log_delta_var: np.ndarray
    delta_star: np.ndarray
    inv_sd_star: np.ndarray
    kurtosis: np.ndarray
    location_factor: np.ndarray
    scale_factor: np.ndarray
    location_distance: np.ndarray


def fit_location_scale(
    X: np.ndarray,
    codes: np.ndarray,
    covariate_design: np.ndarray,
    outcome_design: np.ndarray,
    n_batches: int,
    *,
    shrink: bool = True,
    mean_only: bool = False,
    exclude: np.ndarray | None = None,
) -> LocationScaleFit:
    """Estimate the location/scale model and its shrunk batch effects.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite training data.
    codes : ndarray of shape (n_samples,)
        Batch codes ``0 .. n_batches-1``; every batch has at least 2 rows.
    covariate_design, outcome_design : ndarray of shape (n_samples, k)
        Covariate and outcome blocks of the design (either may have zero columns).
    n_batches : int
    shrink : bool
        Apply the James-Stein factors (False: apply the estimates as they are).
    mean_only : bool
        Estimate and correct the location only.
    exclude : ndarray of bool, shape (n_features,), optional
        Features to leave unchanged (and out of the pooled shrinkage).

    Returns
    -------
    LocationScaleFit
    """
    n = X.shape[0]
    batch_block = np.zeros((n, n_batches))
    batch_block[np.arange(n), codes] = 1.0
    design = np.hstack([batch_block, covariate_design, outcome_design])
    gram_inv = np.linalg.inv(design.T @ design)
    beta = gram_inv @ (design.T @ X)
    counts = batch_block.sum(axis=0)
    weights = counts / n
    alpha = weights @ beta[:n_batches]
    resid = X - design @ beta
    var_pooled = np.mean(resid**2, axis=0)
    kept = var_pooled > 1e-20 * np.maximum(np.mean(X**2, axis=0), np.finfo(float).tiny)
    rows = [np.flatnonzero(codes == b) for b in range(n_batches)]
    for idx in rows:
        kept &= np.ptp(X[idx], axis=0) > 0
    if exclude is not None:
        kept &= ~exclude
    X, beta, alpha, var_pooled = X[:, kept], beta[:, kept], alpha[kept], var_pooled[kept]
    n_cov = covariate_design.shape[1]
    beta_cov = beta[n_batches : n_batches + n_cov]
    beta_out = beta[n_batches + n_cov :]
    sd = np.sqrt(var_pooled)
    outcome_part = outcome_design @ beta_out
    standardised = (X - alpha - covariate_design @ beta_cov - outcome_part) / sd

    gamma_hat = np.vstack([standardised[idx].mean(axis=0) for idx in rows])
    delta_hat = np.vstack([standardised[idx].var(axis=0, ddof=1) for idx in rows])
    outcome_mix = np.vstack([outcome_part[idx].mean(axis=0) for idx in rows])
    within = np.vstack(
        [(standardised[idx] - gamma_hat[b]) / np.sqrt(delta_hat[b]) for b, idx in enumerate(rows)]
    )
    kurtosis = np.mean(within**4, axis=0) / np.mean(within**2, axis=0) ** 2

    # Sampling variance of each batch's log variance, then of its ratio to the pooled variance
    # (which contains the batch itself): log delta_b = log s_b^2 - sum_k w_k log s_k^2.
    log_var = np.vstack(
        [
            np.maximum(2.0 / (m - 1) + (kurtosis - 3.0) / m, _MIN_LOG_VAR_FRACTION * 2.0 / (m - 1))
            for m in counts
        ]
    )
    contrasts = (np.eye(n_batches) - weights[None, :]) ** 2
    log_delta_var = contrasts @ log_var
    # E[log s^2] is about log(sigma^2) - Var/2: add it back before pooling.
    log_delta = np.log(delta_hat) + log_delta_var / 2.0
    centred_squares = within**2 - np.mean(within**2, axis=0)
    if mean_only:
        scale_factor = np.zeros(n_batches)
    elif shrink:
        scale_factor = james_stein_factors(log_delta / np.sqrt(log_delta_var), centred_squares)
    else:
        scale_factor = np.ones(n_batches)
    inv_sd_star = np.exp(-scale_factor[:, None] * log_delta / 2.0)
    delta_star = inv_sd_star**-2.0

    gamma_var = _location_variance(design, gram_inv, rows, weights, n_batches) @ delta_star
    if shrink:
        location_factor = james_stein_factors(gamma_hat / np.sqrt(gamma_var), within)
    else:
        location_factor = np.ones(n_batches)
    gamma_star = location_factor[:, None] * gamma_hat
    return LocationScaleFit(
        kept=kept,
        grand_mean=alpha,
        sd_pooled=sd,
        beta_covariates=beta_cov,
        beta_outcome=beta_out,
        outcome_mix=outcome_mix,
        gamma_hat=gamma_hat,
        gamma_var=gamma_var,
        gamma_star=gamma_star,
        delta_hat=delta_hat,
        log_delta_var=log_delta_var,
        delta_star=delta_star,
        inv_sd_star=inv_sd_star,
        kurtosis=kurtosis,
        location_factor=location_factor,
        scale_factor=scale_factor,
        location_distance=mahalanobis_squared(gamma_hat / np.sqrt(gamma_var), within)
        if gamma_hat.shape[1]
        else np.zeros(n_batches),
    )


def largest_tie_fraction(X: np.ndarray) -> np.ndarray:
    """Return, per column, the fraction of rows sharing its most frequent value (0 if none)."""
    n = X.shape[0]
    fractions = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        _, counts = np.unique(X[:, j], return_counts=True)
        largest = counts.max() if counts.size else 0
        fractions[j] = largest / n if largest >= 2 else 0.0
    return fractions


def james_stein_factors(standardised: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Return the positive-part James-Stein factor of each row of standardised estimates.

    Parameters
    ----------
    standardised : ndarray of shape (n_batches, n_features)
        Estimates divided by their sampling standard deviations.
    residuals : ndarray of shape (n_samples, n_features)
        Rows whose correlation across features is that of the estimation errors.

    Returns
    -------
    ndarray of shape (n_batches,)
        ``max(0, 1 - (p - 2) / M)`` with ``M`` the squared Mahalanobis norm; 1 when ``p <= 2``
        (nothing to pool).
    """
    p = standardised.shape[1]
    if p <= 2:
        return np.ones(standardised.shape[0])
    distance = mahalanobis_squared(standardised, residuals)
    with np.errstate(divide="ignore"):
        return np.clip(1.0 - (p - 2) / distance, 0.0, 1.0)


def mahalanobis_squared(standardised: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Return ``u' R^-1 u`` for each row ``u``, with ``R`` the Ledoit-Wolf shrunk correlation.

    The shrunk correlation is ``(1 - rho) S + rho I`` with ``S`` the sample correlation of the
    residual columns; its inverse is applied through the eigen-decomposition of ``S`` on the
    span of the rows (of size at most ``n``), so wide tables cost ``O(n^2 p)``.
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    sd = residuals.std(axis=0)
    Z = (residuals - residuals.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    n, p = Z.shape
    rho = float(ledoit_wolf_shrinkage(Z, assume_centered=True)) if n > 1 else 1.0
    if n < p:
        eigenvalues, vectors = np.linalg.eigh(Z @ Z.T / n)
        usable = eigenvalues > 1e-10 * max(float(eigenvalues.max()), 1e-300)
        basis = Z.T @ vectors[:, usable] / np.sqrt(n * eigenvalues[usable])
        eigenvalues = eigenvalues[usable]
    else:
        eigenvalues, basis = np.linalg.eigh(Z.T @ Z / n)
    shrunk = (1.0 - rho) * eigenvalues + rho
    shrunk = np.maximum(shrunk, 1e-10 * max(float(shrunk.max()), 1e-300))
    coords = standardised @ basis
    distance = np.sum(coords**2 / shrunk, axis=1)
    if rho > 0:
        outside = np.sum(standardised**2, axis=1) - np.sum(coords**2, axis=1)
        distance = distance + np.maximum(outside, 0.0) / rho
    return distance


def _location_variance(
    design: np.ndarray,
    gram_inv: np.ndarray,
    rows: list[np.ndarray],
    weights: np.ndarray,
    n_batches: int,
) -> np.ndarray:
    """Return ``H`` with ``Var(gamma_hat_b) = sum_k H[b, k] delta_k`` (pooled-SD units)."""
    contrasts = np.zeros((n_batches, design.shape[1]))
    contrasts[:, :n_batches] = np.eye(n_batches) - weights[None, :]
    projected = contrasts @ gram_inv  # c_b' (D'D)^-1
    H = np.empty((n_batches, n_batches))
    for k, idx in enumerate(rows):
        block = projected @ design[idx].T  # c_b' (D'D)^-1 D_k'
        H[:, k] = np.sum(block**2, axis=1)
    return H


def apply_location_scale(
    X: np.ndarray, codes: np.ndarray, covariate_design: np.ndarray, fit: LocationScaleFit
) -> np.ndarray:
    """Return harmonised rows (features not kept at fit are returned unchanged).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    codes : ndarray of shape (n_samples,)
        Batch codes as at fit.
    covariate_design : ndarray of shape (n_samples, n_covariate_columns)
    fit : LocationScaleFit

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    out = X.copy()
    values = X[:, fit.kept]
    centre = fit.grand_mean + fit.outcome_mix[codes]
    if covariate_design.shape[1]:
        centre = centre + covariate_design @ fit.beta_covariates
    shift = fit.sd_pooled * fit.gamma_star[codes]
    out[:, fit.kept] = centre + (values - centre - shift) * fit.inv_sd_star[codes]
    return out
