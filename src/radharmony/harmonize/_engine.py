"""ComBat estimation on neuroCombat 0.2.12, corrected where it is broken.

neuroCombat's empirical-Bayes routines (location/scale fit, priors, parametric iteration) are
called directly. The pieces that are broken or missing there are written here:

- the design and the standardisation (float64 throughout, covariate coefficients kept so they
  can be applied to new samples, no boolean-median replacement of zero variances, the
  reference batch handled without the removed ``np.int``);
- the non-parametric prior, computed in log space (same weights, no underflow to 0/0 for large
  batches) and vectorised over features (neuroCombat loops over features in Python).

Arrays here are samples x features (scikit-learn orientation); neuroCombat's functions take
features x samples, so they receive transposes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

# The package re-exports the function under the module's name, so import the module explicitly.
_nc = importlib.import_module("neuroCombat.neuroCombat")

#: Rows of the non-parametric weight matrix computed at once (bounds memory to ~8 MB/1,000 feat).
_NONPARAMETRIC_BLOCK = 256


@dataclass
class CombatEstimates:
    """Everything needed to apply a fitted ComBat model to new samples.

    Attributes
    ----------
    kept : ndarray of bool, shape (n_features,)
        Features that were estimated; the others have zero pooled variance (fully explained by
        the covariates) and are left unchanged. All arrays below cover the kept features only.
    grand_mean : ndarray of shape (n_kept,)
        Standardisation mean (sample-weighted batch mean, or the reference batch mean).
    beta_covariates : ndarray of shape (n_covariate_columns, n_kept)
        Coefficients of the covariate columns of the design (B-hat without the batch rows).
    var_pooled : ndarray of shape (n_kept,)
        Pooled residual variance (divided by n, as in ComBat).
    gamma_hat, delta_hat : ndarray of shape (n_batches, n_kept)
        Per-batch location and scale before shrinkage.
    gamma_star, delta_star : ndarray of shape (n_batches, n_kept)
        Per-batch location and scale applied by the adjustment.
    gamma_bar, t2 : ndarray of shape (n_batches,)
        Hyper-parameters of the location prior.
    a_prior, b_prior : ndarray of shape (n_batches,) or None
        Hyper-parameters of the scale prior (None when ``mean_only``).
    """

    kept: np.ndarray
    grand_mean: np.ndarray
    beta_covariates: np.ndarray
    var_pooled: np.ndarray
    gamma_hat: np.ndarray
    delta_hat: np.ndarray
    gamma_star: np.ndarray
    delta_star: np.ndarray
    gamma_bar: np.ndarray
    t2: np.ndarray
    a_prior: np.ndarray | None
    b_prior: np.ndarray | None


def batch_design(codes: np.ndarray, n_batches: int, ref_level: int | None) -> np.ndarray:
    """Return the one-hot batch block of the design (the reference column set to ones)."""
    onehot = np.zeros((codes.shape[0], n_batches))
    onehot[np.arange(codes.shape[0]), codes] = 1.0
    if ref_level is not None:
        # The reference column becomes the intercept, as in R's ComBat(ref.batch=).
        onehot[:, ref_level] = 1.0
    return onehot


def fit_combat(
    X: np.ndarray,
    codes: np.ndarray,
    covariate_design: np.ndarray,
    *,
    n_batches: int,
    eb: bool = True,
    parametric: bool = True,
    mean_only: bool = False,
    ref_level: int | None = None,
    fast_nonparametric: bool = True,
) -> CombatEstimates:
    """Estimate ComBat's parameters.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite float64 data; no feature may be constant within a batch (the caller leaves such
        features out, as R's ComBat does).
    codes : ndarray of shape (n_samples,)
        Integer batch codes ``0 .. n_batches-1``.
    covariate_design : ndarray of shape (n_samples, n_covariate_columns)
        Covariate block of the design (may have zero columns).
    n_batches : int
        Number of batches.
    eb, parametric, mean_only : bool
        ComBat options.
    ref_level : int or None
        Code of the reference batch.
    fast_nonparametric : bool
        Use the vectorised non-parametric posterior instead of neuroCombat's per-feature loop.

    Returns
    -------
    CombatEstimates
    """
    design = np.hstack([batch_design(codes, n_batches, ref_level), covariate_design])
    batch_info = [np.flatnonzero(codes == k) for k in range(n_batches)]
    sample_per_batch = np.array([len(idx) for idx in batch_info])
    n_samples = X.shape[0]

    # Same normal equations as neuroCombat, solved instead of inverted, in float64.
    beta = np.linalg.solve(design.T @ design, design.T @ X)
    if ref_level is not None:
        grand_mean = beta[ref_level]
        ref_rows = batch_info[ref_level]
        resid = X[ref_rows] - design[ref_rows] @ beta
    else:
        grand_mean = (sample_per_batch / n_samples) @ beta[:n_batches]
        resid = X - design @ beta
    var_pooled = np.mean(resid**2, axis=0)
    # neuroCombat replaces zero variances by a boolean median; such features carry no scanner
    # information, so they are left out of the priors and returned unchanged instead.
    scale = np.maximum(np.mean(X**2, axis=0), np.finfo(float).tiny)
    kept = var_pooled > 1e-20 * scale
    X, beta, grand_mean, var_pooled = X[:, kept], beta[:, kept], grand_mean[kept], var_pooled[kept]
    beta_cov = beta[n_batches:]
    s_data = (X - grand_mean - covariate_design @ beta_cov) / np.sqrt(var_pooled)

    info = {
        "batch_info": [list(idx) for idx in batch_info],
        "ref_level": ref_level,
        "n_batch": n_batches,
        "sample_per_batch": sample_per_batch,
    }
    # neuroCombat's estimation routines print nothing (only its top-level function does), so
    # they are called as they are: capturing stdout would be process-wide and not thread-safe.
    ls = _nc.fit_LS_model_and_find_priors(s_data.T, design, info, mean_only)
    if not eb:
        gamma_star, delta_star = _nc.find_non_eb_adjustments(s_data.T, ls, info)
    elif parametric:
        gamma_star, delta_star = _nc.find_parametric_adjustments(s_data.T, ls, info, mean_only)
    elif fast_nonparametric:
        gamma_star, delta_star = _nonparametric_adjustments(s_data, ls, batch_info, mean_only)
        if ref_level is not None:
            gamma_star[ref_level] = 0.0
            delta_star[ref_level] = 1.0
    else:
        gamma_star, delta_star = _nc.find_non_parametric_adjustments(s_data.T, ls, info, mean_only)
    return CombatEstimates(
        kept=kept,
        grand_mean=np.asarray(grand_mean, dtype=float),
        beta_covariates=np.asarray(beta_cov, dtype=float),
        var_pooled=var_pooled,
        gamma_hat=np.asarray(ls["gamma_hat"], dtype=float),
        delta_hat=np.asarray(ls["delta_hat"], dtype=float),
        gamma_star=np.asarray(gamma_star, dtype=float),
        delta_star=np.asarray(delta_star, dtype=float),
        gamma_bar=np.asarray(ls["gamma_bar"], dtype=float),
        t2=np.asarray(ls["t2"], dtype=float),
        a_prior=None if ls["a_prior"] is None else np.asarray(ls["a_prior"], dtype=float),
        b_prior=None if ls["b_prior"] is None else np.asarray(ls["b_prior"], dtype=float),
    )


def apply_combat(
    X: np.ndarray,
    codes: np.ndarray,
    covariate_design: np.ndarray,
    est: CombatEstimates,
    ref_level: int | None = None,
) -> np.ndarray:
    """Apply fitted ComBat parameters to samples (training or new ones).

    Each sample is standardised with the fitted grand mean, its own covariate effect and the
    pooled variance, then its batch's location/scale is removed and the scaling undone. Samples
    of the reference batch are returned unchanged, as in ComBat. Features not kept at fit are
    returned unchanged.
    """
    # In-place steps on one working array (same operations in the same order as the textbook
    # formula, so results are unchanged) keep the peak memory near two copies of the data.
    kept = np.asarray(est.kept)
    adjusted = X[:, kept] if not kept.all() else X.copy()
    covariate_effect = covariate_design @ est.beta_covariates if covariate_design.shape[1] else None
    sd = np.sqrt(est.var_pooled)
    adjusted -= est.grand_mean
    if covariate_effect is not None:
        adjusted -= covariate_effect
    adjusted /= sd
    for level in np.unique(codes):
        rows = codes == level
        adjusted[rows] = (adjusted[rows] - est.gamma_star[level]) / np.sqrt(est.delta_star[level])
    adjusted *= sd
    adjusted += est.grand_mean
    if covariate_effect is not None:
        adjusted += covariate_effect
    if ref_level is not None:
        ref_rows = codes == ref_level
        adjusted[ref_rows] = X[np.ix_(ref_rows, kept)]
    if kept.all():
        return adjusted
    out = X.copy()
    out[:, kept] = adjusted
    return out


def _nonparametric_adjustments(
    s_data: np.ndarray, ls: dict, batch_info: list[np.ndarray], mean_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Non-parametric empirical-Bayes location/scale for every batch."""
    n_features = s_data.shape[1]
    gamma_star = np.empty((len(batch_info), n_features))
    delta_star = np.empty((len(batch_info), n_features))
    for k, rows in enumerate(batch_info):
        d_hat = np.ones(n_features) if mean_only else np.asarray(ls["delta_hat"][k], dtype=float)
        g_hat = np.asarray(ls["gamma_hat"][k], dtype=float)
        gamma_star[k], delta_star[k] = nonparametric_prior(s_data[rows], g_hat, d_hat)
    return gamma_star, delta_star


def nonparametric_prior(
    x: np.ndarray, g_hat: np.ndarray, d_hat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return ComBat's non-parametric posterior location and scale for one batch.

    For feature ``i`` the estimate is the average of the other features' ``(g_hat, d_hat)``
    weighted by the Gaussian likelihood of feature ``i``'s data under each of them (leave-one-out,
    as in ``int_eprior``). The weights are formed in log space and normalised by their maximum,
    which leaves the ratio unchanged but avoids the underflow of the direct product for large
    batches.

    Parameters
    ----------
    x : ndarray of shape (n_batch_samples, n_features)
        Standardised data of the batch.
    g_hat, d_hat : ndarray of shape (n_features,)
        Per-feature location and scale estimates of the batch.

    Returns
    -------
    gamma_star, delta_star : ndarray of shape (n_features,)
    """
    n, p = x.shape
    mean = x.mean(axis=0)
    # sum_k (x_ik - g_j)^2 = sum_k (x_ik - mean_i)^2 + n (mean_i - g_j)^2: stable and O(p^2).
    within = ((x - mean) ** 2).sum(axis=0)
    log_norm = -0.5 * n * np.log(2.0 * np.pi * d_hat)
    gamma_star = np.empty(p)
    delta_star = np.empty(p)
    for start in range(0, p, _NONPARAMETRIC_BLOCK):
        rows = np.arange(start, min(start + _NONPARAMETRIC_BLOCK, p))
        sum2 = within[rows, None] + n * (mean[rows, None] - g_hat[None, :]) ** 2
        log_lh = log_norm[None, :] - sum2 / (2.0 * d_hat[None, :])
        log_lh[np.arange(len(rows)), rows] = -np.inf
        weights = np.exp(log_lh - log_lh.max(axis=1, keepdims=True))
        total = weights.sum(axis=1)
        gamma_star[rows] = weights @ g_hat / total
        delta_star[rows] = weights @ d_hat / total
    return gamma_star, delta_star
