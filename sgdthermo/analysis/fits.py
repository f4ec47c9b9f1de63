r"""Weighted least squares: the linear fit behind every fit of the analysis, and the quadratic
surface of the Maxwell test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["QuadraticFit", "quadratic_fit", "linear_fit", "QUAD_TERMS"]


#: Names of the coefficients of :func:`quadratic_fit`.
QUAD_TERMS: tuple[str, ...] = ("a0", "a1", "a2", "a3", "a4", "a5")


@dataclass(frozen=True)
class QuadraticFit:
    r"""Result of :func:`quadratic_fit`, :math:`z = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`.

    Attributes
    ----------
    coef : array (6,)
        :math:`(a_0, \dots, a_5)`.
    cov : array (6, 6)
        Covariance of ``coef`` (see :func:`quadratic_fit` for the scaling).
    r2 : float
        Coefficient of determination :math:`1 - \sum r^2 / \sum (z - \bar z)^2`
        (ordinary, unweighted residuals, as in the paper).
    resid_std : float
        :math:`\sqrt{\sum r^2 / (n - 6)}` (NaN when n = 6).
    chi2_red : float
        :math:`\sum (r/\sigma_z)^2 / (n-6)` for a weighted fit, NaN otherwise.
    n : int
        Number of points.
    weighted : bool
        Whether the errors were used as weights.
    """

    coef: np.ndarray
    cov: np.ndarray
    r2: float
    resid_std: float
    chi2_red: float
    n: int
    weighted: bool

    @property
    def stderr(self) -> np.ndarray:
        """Standard errors of the coefficients, :math:`\\sqrt{\\mathrm{diag}\\,C}`."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def predict(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fitted surface at (x, y) (broadcasting)."""
        a = self.coef
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        return a[0] + a[1] * x + a[2] * y + a[3] * x**2 + a[4] * x * y + a[5] * y**2

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`(\partial z/\partial x, \partial z/\partial y) = (a_1 + 2a_3x + a_4y,\ a_2 + a_4x + 2a_5y)`."""
        a = self.coef
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        return a[1] + 2 * a[3] * x + a[4] * y, a[2] + a[4] * x + 2 * a[5] * y

    def combination(self, weights: Sequence[float]) -> tuple[float, float]:
        r"""Linear combination :math:`c = v\cdot a` and its standard error :math:`\sqrt{v^T C v}`."""
        v = np.asarray(weights, float)
        val = float(v @ self.coef)
        var = float(v @ self.cov @ v)
        return val, float(np.sqrt(max(var, 0.0)))


def quadratic_fit(x: np.ndarray, y: np.ndarray, z: np.ndarray,
                  z_err: np.ndarray | None = None) -> QuadraticFit:
    r"""Least-squares fit of :math:`z = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`.

    Parameters
    ----------
    x, y, z : arrays (n,)
        Points, n ≥ 6.
    z_err : array (n,), optional
        Standard errors of z. When all are finite and positive the fit is weighted with
        :math:`w_k = 1/\sigma_k^2`; otherwise it is ordinary least squares.

    Returns
    -------
    QuadraticFit
        With coefficient covariance

        - weighted: :math:`C = (X^T W X)^{-1}\cdot\max(1, \chi^2_{\rm red})` — the quoted
          errors are trusted, but inflated (Birge ratio) when the scatter about the fit
          exceeds them (underestimated errors or a model that is not exactly quadratic);
          never deflated;
        - unweighted: :math:`C = s^2 (X^T X)^{-1}`, :math:`s^2 = \sum r^2/(n-6)`.

        Noise-free quadratic data are reproduced exactly (zero residual, zero covariance
        in the unweighted case).
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    z = np.asarray(z, float).ravel()
    if not (x.shape == y.shape == z.shape):
        raise ValueError("x, y, z must have the same length")
    n = x.size
    if n < 6:
        raise ValueError(f"quadratic fit needs at least 6 points, got {n}")
    X = np.column_stack([np.ones(n), x, y, x**2, x * y, y**2])
    if z_err is not None and np.asarray(z_err).ravel().shape != z.shape:
        raise ValueError("z_err must have the same length as z")
    fit = linear_fit(X, z, None if z_err is None else np.asarray(z_err, float).ravel())
    return QuadraticFit(coef=fit["coef"], cov=fit["cov"], r2=fit["r2"], resid_std=fit["resid_std"],
                        chi2_red=fit["chi2_red"], n=n, weighted=fit["weighted"])


def linear_fit(X: np.ndarray, y: np.ndarray, yerr: np.ndarray | None = None) -> dict[str, Any]:
    r"""Least squares :math:`y = X\beta`, weighted by :math:`1/\sigma^2` when every error
    in ``yerr`` is finite and positive; the covariance as in :func:`quadratic_fit`.

    Returns a dict: ``coef``, ``cov``, ``r2``, ``resid_std``, ``chi2_red`` (NaN unweighted),
    ``dof``, ``weighted``.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float).ravel()
    n, k = X.shape
    weighted = yerr is not None and bool(np.all(np.isfinite(yerr)) and np.all(np.asarray(yerr) > 0))
    sw = 1.0 / np.asarray(yerr, float).ravel() if weighted else np.ones(n)
    Xw = X * sw[:, None]
    coef, *_ = np.linalg.lstsq(Xw, y * sw, rcond=None)
    resid = y - X @ coef
    dof = n - k
    rss = float(resid @ resid)
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else (1.0 if rss == 0 else float("nan"))
    resid_std = float(np.sqrt(rss / dof)) if dof > 0 else float("nan")
    cov0 = np.linalg.pinv(Xw.T @ Xw)
    if weighted:
        chi2_red = float(((resid * sw) ** 2).sum() / dof) if dof > 0 else float("nan")
        scale = max(1.0, chi2_red) if dof > 0 else 1.0
    else:
        chi2_red = float("nan")
        scale = rss / dof if dof > 0 else float("nan")
    return {"coef": coef, "cov": cov0 * scale, "r2": float(r2), "resid_std": resid_std,
            "chi2_red": chi2_red, "dof": dof, "weighted": weighted}
