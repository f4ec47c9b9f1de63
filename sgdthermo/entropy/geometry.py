r"""Geometry of the sphere for the entropy estimators: ball and sphere volumes, spherical caps.

``log V_m`` (unit ball in R^m), ``log |S^{d-1}|`` and the exact surface measure of a geodesic ball
(spherical cap) on S^{d−1}, stable for any d (see :func:`log_cap_volume`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import special

__all__ = ["log_unit_ball_volume", "log_sphere_area", "uniform_sphere_entropy", "log_betainc", "log_cap_volume"]


def log_unit_ball_volume(m: int | float) -> float:
    """``log V_m = (m/2) log π − log Γ(m/2 + 1)``, the log volume of the unit ball in R^m."""
    if m < 0:
        raise ValueError(f"dimension m must be >= 0; got {m}")
    return 0.5 * m * math.log(math.pi) - float(special.gammaln(0.5 * m + 1.0))


def log_sphere_area(d: int | float) -> float:
    """``log |S^{d-1}| = log(2 π^{d/2} / Γ(d/2))``, the log area of the unit sphere in R^d."""
    if d < 1:
        raise ValueError(f"ambient dimension d must be >= 1; got {d}")
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - float(special.gammaln(0.5 * d))


def uniform_sphere_entropy(d: int) -> float:
    """Entropy (nats) of the uniform distribution on ``S^{d-1}``: ``log |S^{d-1}|``."""
    return log_sphere_area(d)


_FPMIN = 1e-300
_CF_EPS = 1e-15
_CF_MAXIT = 100_000


def _log_betainc_cf(a: float, b: float, x: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """``log I_x(a, b)`` from the continued fraction (Numerical Recipes ``betacf``, Lentz).

    Intended for ``x < (a+1)/(a+b+2)``, where it converges fast; everything is in log space
    except the continued fraction itself, which is O(1).
    """
    x = np.asarray(x, dtype=np.float64)
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    dd = 1.0 - qab * x / qap
    dd = np.where(np.abs(dd) < _FPMIN, _FPMIN, dd)
    dd = 1.0 / dd
    h = dd.copy()
    active = np.ones(x.shape, dtype=bool)
    for m in range(1, _CF_MAXIT + 1):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        xs, cs, ds, hs = x[idx], c[idx], dd[idx], h[idx]
        m2 = 2 * m
        aa = m * (b - m) * xs / ((qam + m2) * (a + m2))
        ds = 1.0 + aa * ds
        ds = np.where(np.abs(ds) < _FPMIN, _FPMIN, ds)
        cs = 1.0 + aa / cs
        cs = np.where(np.abs(cs) < _FPMIN, _FPMIN, cs)
        ds = 1.0 / ds
        hs = hs * ds * cs
        aa = -(a + m) * (qab + m) * xs / ((a + m2) * (qap + m2))
        ds = 1.0 + aa * ds
        ds = np.where(np.abs(ds) < _FPMIN, _FPMIN, ds)
        cs = 1.0 + aa / cs
        cs = np.where(np.abs(cs) < _FPMIN, _FPMIN, cs)
        ds = 1.0 / ds
        delta = ds * cs
        hs = hs * delta
        c[idx], dd[idx], h[idx] = cs, ds, hs
        active[idx] = np.abs(delta - 1.0) >= _CF_EPS
    else:  # pragma: no cover - only for absurd parameters
        warnings.warn("log_betainc: continued fraction did not converge", RuntimeWarning)
    log1mx = np.log1p(-x)
    return a * logx + b * log1mx - float(special.betaln(a, b)) - math.log(a) + np.log(h)


def log_betainc(a: float, b: float, x: np.ndarray | float, logx: np.ndarray | None = None) -> np.ndarray:
    """Stable ``log I_x(a, b)`` (regularized incomplete beta), also where ``I`` underflows.

    Uses ``log(scipy.special.betainc)`` where that is ≥ 1e-280 (relative accuracy ~1e-14) and
    the continued fraction in log space deep in the lower tail (large a, small x).  ``logx``
    may be passed to keep precision when ``x`` itself underflows (e.g. ``x = sin²θ``, θ < 1e-155).
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if logx is None:
        with np.errstate(divide="ignore"):
            logx = np.log(x)
    logx = np.broadcast_to(np.asarray(logx, dtype=np.float64), x.shape)
    v = special.betainc(a, b, x)
    out = np.empty_like(x)
    ok = v >= 1e-280
    with np.errstate(divide="ignore"):
        out[ok] = np.log(v[ok])
    tail = ~ok
    if np.any(tail):
        zero = tail & np.isneginf(logx)
        out[zero] = -np.inf
        rest = tail & ~zero
        if np.any(rest):
            out[rest] = _log_betainc_cf(a, b, x[rest], logx[rest])
    return out


def log_cap_volume(theta: np.ndarray | float, d: int) -> np.ndarray:
    r"""Log surface measure of the geodesic ball (cap) of radius θ on ``S^{d-1}`` ⊂ R^d.

    ``Cap_d(θ) = |S^{d-2}| ∫_0^θ sin^{d-2} t dt``, i.e. ``½ |S^{d-1}| I_{sin²θ}((d−1)/2, ½)`` for
    ``θ ≤ π/2`` and ``|S^{d-1}| (1 − ½ I_{sin²θ}((d−1)/2, ½))`` for ``π/2 < θ < π``;
    ``|S^{d-1}|`` for θ ≥ π; ``-inf`` at θ = 0.  Stable for d up to 10⁶ and more.
    """
    if d < 2:
        raise ValueError(f"log_cap_volume needs d >= 2; got {d}")
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if np.any(th < 0) or np.any(np.isnan(th)):
        raise ValueError("log_cap_volume: theta must be >= 0")
    a, b = 0.5 * (d - 1), 0.5
    log_area = log_sphere_area(d)
    out = np.full_like(th, log_area)
    inner = th < math.pi
    if np.any(inner):
        t = th[inner]
        s = np.sin(t)
        with np.errstate(divide="ignore"):
            logx = 2.0 * np.log(s)
        x = s * s
        li = log_betainc(a, b, x, logx)
        half = t <= 0.5 * math.pi
        res = np.empty_like(t)
        res[half] = log_area + math.log(0.5) + li[half]
        res[~half] = log_area + np.log1p(-0.5 * np.exp(li[~half]))
        out[inner] = res
    return out
