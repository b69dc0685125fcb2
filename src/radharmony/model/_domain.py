"""Domain check: is a new case, or a new site, inside the data the model was validated on?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

#: Per-case p-value below which a case's share is counted in the per-site test.
SITE_CASE_ALPHA = 0.05


class DomainCheck(BaseEstimator):
    """Conformal novelty test of new cases against the training rows.

    Each feature is centred on its training median and divided by its training spread
    (inter-quartile range / 1.349, or the standard deviation when that is 0); missing values
    are set to the training median. A case's novelty score is its mean Euclidean distance
    (per feature) to its ``n_neighbors`` nearest training rows. The training rows' own scores
    are computed against the rows of *other* patients, so the p-value of a new case,
    ``(1 + #{training scores >= its score}) / (n + 1)``, is approximately uniform when the case
    comes from the same distribution as the training patients (exactly so for one row per
    patient in the leave-one-out limit).

    Parameters
    ----------
    n_neighbors : int
        Number of nearest training rows averaged.
    alpha : float
        A case is outside the domain when its p-value is at most ``alpha`` (with fewer than
        ``1/alpha - 1`` training rows: when it is further from the training data than every
        training row is from the others).
    site_alpha : float
        A site is outside the domain when the one-sided binomial test of "more of its cases
        have a p-value below 0.05 than the 5 % expected" gives a p-value below ``site_alpha``.
    features : list of str, optional
        Columns used (default: every column).
    min_site_cases : int
        Fewest cases of a site for the per-site test; smaller sites are judged case by case
        only (the binomial test has little power and the cases' p-values share one
        calibration set, so a handful of cases can look shifted by chance).

    Attributes
    ----------
    columns_ : list of str
    center_, scale_ : ndarray
    reference_ : ndarray
        Scaled training rows.
    calibration_scores_ : ndarray
        Sorted novelty scores of the training rows.
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        alpha: float = 0.01,
        site_alpha: float = 0.01,
        features: list[str] | None = None,
        min_site_cases: int = 20,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.site_alpha = site_alpha
        self.features = features
        self.min_site_cases = min_site_cases

    def fit(self, X: Any, y: Any = None, *, groups: ArrayLike | None = None) -> DomainCheck:
        """Learn the scaling and the training rows' novelty scores."""
        # scikit-learn's validation gives the usual errors (sparse, complex, empty input).
        validate_data(self, X, ensure_all_finite="allow-nan", ensure_min_samples=2)
        frame = _as_frame(X)
        if self.features is None:
            self.columns_ = [str(c) for c in frame.columns]
        else:
            self.columns_ = [str(c) for c in self.features]
        values = frame[self.columns_].to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            center = np.nanmedian(values, axis=0) if values.size else np.zeros(0)
            q75, q25 = np.nanpercentile(values, [75, 25], axis=0) if values.size else (0, 0)
            spread = (q75 - q25) / 1.349
            std = np.nanstd(values, axis=0)
        spread = np.where(np.isfinite(spread) & (spread > 0), spread, std)
        self.center_ = np.nan_to_num(center)
        self.scale_ = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        self.reference_ = self._scaled(values)
        codes = (
            np.arange(len(values))
            if groups is None
            else pd.factorize(pd.Series(np.asarray(groups)))[0]
        )
        scores = self._knn(self.reference_, exclude=codes)
        self.calibration_scores_ = np.sort(scores)
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are set to the training median
        tags.requires_fit = True
        return tags

    def _scaled(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        filled = np.where(np.isfinite(values), values, self.center_)
        return (filled - self.center_) / self.scale_

    def _knn(
        self, Z: NDArray[np.float64], exclude: NDArray[np.int_] | None = None
    ) -> NDArray[np.float64]:
        reference = self.reference_
        width = max(reference.shape[1], 1)
        out = np.empty(len(Z))
        for start in range(0, len(Z), 256):
            block = Z[start : start + 256]
            d2 = (
                np.sum(block**2, axis=1)[:, None]
                + np.sum(reference**2, axis=1)[None, :]
                - 2.0 * block @ reference.T
            )
            distance = np.sqrt(np.maximum(d2, 0.0) / width)
            if exclude is not None:
                same = exclude[start : start + 256][:, None] == exclude[None, :]
                distance = np.where(same, np.inf, distance)
            k = max(1, min(self.n_neighbors, int(np.isfinite(distance).sum(axis=1).min())))
            nearest = np.partition(distance, k - 1, axis=1)[:, :k]
            out[start : start + 256] = nearest.mean(axis=1)
        return out

    def score_samples(self, X: Any) -> NDArray[np.float64]:
        """Return the novelty score of each row (larger: further from the training data)."""
        check_is_fitted(self, "calibration_scores_")
        if not isinstance(X, pd.DataFrame):
            X = validate_data(self, X, ensure_all_finite="allow-nan", reset=False)
        frame = _as_frame(X, self.columns_ if self.features is None else None)
        return self._knn(self._scaled(frame[self.columns_].to_numpy(dtype=float)))

    def p_values(self, X: Any) -> NDArray[np.float64]:
        """Return each row's conformal p-value of belonging to the training distribution."""
        scores = self.score_samples(X)
        n = self.calibration_scores_.size
        above = n - np.searchsorted(self.calibration_scores_, scores, side="left")
        return np.asarray((1.0 + above) / (n + 1.0), dtype=float)

    def flag_cases(self, p_values: ArrayLike) -> NDArray[np.bool_]:
        """Return True for cases outside the domain (see ``alpha``)."""
        p = np.asarray(p_values, dtype=float)
        n = self.calibration_scores_.size
        return p <= max(self.alpha, 1.0 / (n + 1.0))

    def site_table(self, p_values: ArrayLike, sites: ArrayLike) -> pd.DataFrame:
        """Return the per-site test: ``n``, ``share_p_below_0.05``, ``p_value``, ``domain_shift``."""
        p = np.asarray(p_values, dtype=float)
        site_arr = np.asarray(sites).astype(str)
        rows = {}
        for site in sorted(set(site_arr.tolist())):
            inside = p[site_arr == site]
            low = int((inside < SITE_CASE_ALPHA).sum())
            tested = inside.size >= self.min_site_cases
            p_site = (
                float(
                    stats.binomtest(low, inside.size, SITE_CASE_ALPHA, alternative="greater").pvalue
                )
                if tested
                else float("nan")
            )
            rows[site] = {
                "n": int(inside.size),
                "domain_share_p_below_0.05": low / inside.size,
                "domain_site_p_value": p_site,
                "domain_shift": bool(tested and p_site < self.site_alpha),
            }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("site")


def _as_frame(X: Any, columns: list[str] | None = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame
    array = np.asarray(X, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D table of features, got shape {array.shape}")
    names = columns if columns is not None and len(columns) == array.shape[1] else None
    return pd.DataFrame(array, columns=names or [str(i) for i in range(array.shape[1])])
