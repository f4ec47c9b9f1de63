r"""Closed-form ideal-gas theory of SGD on scale-invariant networks.

Every formula follows ``docs/theory.md`` (the project's formula sheet); the notation there is used
throughout. This module is pure math: functions take scalars or numpy arrays, broadcast them
against each other with numpy's rules, and return a ``float`` (numpy float64) for scalar input
or an ``np.ndarray`` of the broadcast shape otherwise.

Conventions
-----------
* ``d``      number of scale-invariant parameters; the direction ``u = w/|w|`` lives on the
  unit sphere S^{d-1} (dimension d-1).
* ``rho``    radius ``ρ = |w|``; ``V = ρ²/2`` is the volume; ``R = (d-1)/2`` the gas constant.
* ``lr``     the learning-rate hyperparameter of the protocol: the effective learning rate
  ``η̃ = η/ρ²`` for ``"fixed-sphere"`` and ``"fixed-elr"``, the plain learning rate ``η`` for
  ``"fixed-lr"``. Functions whose meaning depends on which one it is take ``lr`` keyword-only
  together with the protocol (or are specific to one protocol and say so).
* ``wd``     weight decay ``λ`` = pressure ``p`` (fixed ELR and fixed LR).
* ``radius`` the fixed radius ``ρ`` of the fixed-sphere protocol.
* ``sigma``  noise scale σ of the isotropic noise model ``Σ(u) = σ²(I − uuᵀ)`` on the unit
  sphere (``tr Σ(u) = σ²(d−1)``).
* Temperatures: ``T = η̃σ²/2`` (fixed sphere, fixed ELR), ``T = sqrt(ηλσ²/(2(d−1)))`` (fixed LR).
* Stationary radius (SDE): fixed ELR ``ρ*² = η̃σ²(d−1)/(2λ)``; fixed LR ``ρ*⁴ = ησ²(d−1)/(2λ)``.
  Fixed sphere: effective pressure ``p = (d−1)T/ρ²``. Ideal-gas law ``pV = RT`` everywhere.
* Entropies are in nats. ``S_u`` (``S_sphere``) is the differential entropy of the direction on
  S^{d−1} with respect to the surface measure; the total entropy is ``S = S_u + (d−1) log ρ``.

The von Mises–Fisher (VMF) test function
-----------------------------------------
``L(w) = 1 + ⟨μ, w/|w|⟩`` with ``|μ| = 1``. Its Gibbs distribution ``p(u) ∝ exp(−L(u)/T)`` is
VMF with mean direction ``−μ`` and concentration ``κ = 1/T``. With the mean resultant length
``A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ)``:
``U = 1 − A_d(κ)``, ``S_u = −log C_d(κ) − κA_d(κ)``,
``C_d(κ) = κ^{d/2−1}/((2π)^{d/2} I_{d/2−1}(κ))``, ``E‖∇L(u)‖² = (d−1)A_d(κ)/κ``,
``C_V = ∂U/∂T = κ² A'_d(κ)``, ``A'_d = 1 − A_d² − (d−1)A_d/κ``.

Numerics of the modified Bessel function
----------------------------------------
``log_bessel_iv`` (and the ratio ``A_d``, ``1 − A_d``, ``A'_d`` and the VMF entropy, which are
built on the same pieces) use, with ``s = sqrt(ν² + x²)``:

* ``s ≥ 25``: the uniform asymptotic (Debye) expansion (DLMF 10.41.3)
  ``I_ν(x) = e^{s − ν log((ν+s)/x)} / (sqrt(2π) s^{1/2}) · (1 + Σ_{k=1}^{20} U_k(p)/ν^k)``,
  ``p = ν/s``. Because ``U_k(p)`` is ``p^k`` times a polynomial ``V_k(p)``, the k-th term is
  ``V_k(p)/s^k``; with ``sup_{0≤p≤1}|V_k| ≈ 3.6e11`` at k = 21 the truncation error is
  ≲ 2e-18 for every ν ≥ 0 once s ≥ 25, uniformly in x (this covers large ν at small x, where
  ``scipy.special.ive`` underflows, and large x at any ν). The ``U_k`` are generated exactly
  (rational arithmetic) from the recurrence DLMF 10.41.9 at import time. The ratio ``A_d`` is
  computed as the *analytic* difference of two such expansions (no cancellation between two
  huge logarithms), so ``A_d`` and ``1 − A_d`` keep full relative precision even when
  ``log I`` is ~1e8; ``A'_d`` is the analytic derivative of that difference.
* ``s < 25`` and ``x ≤ 1``: the power series ``I_ν(x) = (x/2)^ν/Γ(ν+1) Σ_k (x²/4)^k/(k!(ν+1)_k)``
  (30 positive terms; converges to rounding error).
* ``s < 25`` and ``x > 1``: ``scipy.special.ive`` (AMOS), ``log I = log(ive) + x``; nothing
  under- or overflows there.

Against mpmath (40 digits) the log has absolute error ≲ 3e-15·max(1, |log I_ν(x)|) over
ν ∈ [0.5, 1e6], x ∈ [1e-6, 1e8], the worst case being ``ive`` itself at ν ≲ 25
(see ``tests/test_theory.py``); ``A_d`` and ``1 − A_d`` have relative error ≲ 2e-14, the VMF
entropy absolute error ≲ 3e-14·max(1, |S_u|), and ``C_V`` relative error ≲ 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

__all__ = [
    "PROTOCOLS",
    "check_protocol",
    "gas_constant",
    "volume",
    "radius_from_volume",
    "temperature",
    "radius_sde",
    "radius_discrete",
    "pressure_sphere",
    "pressure_sphere_discrete",
    "effective_pressure",
    "stationary_elr",
    "log_bessel_iv",
    "vmf_mean_resultant",
    "vmf_log_normalizer",
    "vmf_energy",
    "vmf_entropy",
    "uniform_sphere_entropy",
    "vmf_energy_small_T",
    "vmf_entropy_small_T",
    "vmf_grad_sq",
    "vmf_heat_capacity",
    "heat_capacity_v",
    "heat_capacity_p",
    "adiabatic_index",
    "total_entropy",
    "helmholtz",
    "gibbs",
    "stationary_state",
    "maxwell_prediction",
    "CoefficientTarget",
    "maxwell_coefficient_targets",
    "quadratic_features",
    "quadratic_gradient",
    "maxwell_ratio",
    "adiabat_invariant",
    "adiabat",
    "adiabat_lr",
    "isotherm_invariant",
    "isotherm",
    "isotherm_lr",
]

FloatOrArray = Union[float, np.ndarray]

# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------

PROTOCOLS: tuple[str, str, str] = ("fixed-sphere", "fixed-elr", "fixed-lr")


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it is one of :data:`PROTOCOLS`, else raise ``ValueError``."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )
    return protocol


def _out(a: np.ndarray) -> FloatOrArray:
    """0-d arrays become numpy float64 (a ``float``); others are returned as arrays."""
    a = np.asarray(a, dtype=float)
    return a[()] if a.ndim == 0 else a


def _f(a: ArrayLike) -> np.ndarray:
    return np.asarray(a, dtype=float)


def _require(name: str, value: Any, protocol: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"protocol {protocol!r} requires {name}=...")
    return _f(value)


def _check_d(d: ArrayLike) -> np.ndarray:
    d = _f(d)
    if np.any(d < 2):
        raise ValueError("the VMF model needs d >= 2 (a sphere S^{d-1} of dimension >= 1)")
    return d


# ---------------------------------------------------------------------------------------------
# Ideal gas basics
# ---------------------------------------------------------------------------------------------


def gas_constant(d: ArrayLike) -> FloatOrArray:
    """Gas constant ``R = (d−1)/2`` (d = number of scale-invariant parameters)."""
    return _out((_f(d) - 1.0) / 2.0)


def volume(rho: ArrayLike) -> FloatOrArray:
    """Volume ``V = ρ²/2`` of radius ``rho`` = ρ."""
    return _out(_f(rho) ** 2 / 2.0)


def radius_from_volume(V: ArrayLike) -> FloatOrArray:
    """Radius ``ρ = sqrt(2V)``, inverse of :func:`volume`."""
    return _out(np.sqrt(2.0 * _f(V)))


def temperature(
    protocol: str,
    *,
    lr: ArrayLike,
    sigma: ArrayLike,
    d: ArrayLike,
    wd: ArrayLike | None = None,
) -> FloatOrArray:
    """Temperature of the protocol.

    fixed-sphere, fixed-elr: ``T = η̃σ²/2`` with ``lr`` = η̃ (``wd`` and ``d`` unused).
    fixed-lr: ``T = sqrt(ηλσ²/(2(d−1)))`` with ``lr`` = η, ``wd`` = λ (required).
    All arguments broadcast; the result has the broadcast shape.
    """
    check_protocol(protocol)
    lr_, s = _f(lr), _f(sigma)
    if protocol == "fixed-lr":
        lam = _require("wd", wd, protocol)
        return _out(np.sqrt(lr_ * lam * s**2 / (2.0 * (_f(d) - 1.0))))
    return _out(lr_ * s**2 / 2.0 + 0.0 * _f(d))


def radius_sde(
    protocol: str, *, lr: ArrayLike, wd: ArrayLike, sigma: ArrayLike, d: ArrayLike
) -> FloatOrArray:
    """Stationary radius ρ* at the SDE level (isotropic noise).

    fixed-elr: ``ρ*² = η̃σ²(d−1)/(2λ)`` (``lr`` = η̃); fixed-lr: ``ρ*⁴ = ησ²(d−1)/(2λ)``
    (``lr`` = η); ``wd`` = λ. fixed-sphere raises ``ValueError`` (ρ is a hyperparameter there).
    """
    check_protocol(protocol)
    if protocol == "fixed-sphere":
        raise ValueError("fixed-sphere: the radius is a hyperparameter, not a prediction")
    q = _f(lr) * _f(sigma) ** 2 * (_f(d) - 1.0) / (2.0 * _f(wd))
    return _out(np.sqrt(q) if protocol == "fixed-elr" else q**0.25)


def radius_discrete(
    protocol: str,
    *,
    lr: ArrayLike,
    wd: ArrayLike,
    trace_u: ArrayLike,
    grad_sq_u: ArrayLike,
) -> FloatOrArray:
    """Discrete-time corrected stationary radius (docs/theory.md, Appendix G).

    fixed-lr: ``ρ⁴ = η (trΣ(u) + E‖∇L(u)‖²)/(2λ)``; fixed-elr: ``ρ² = η̃ (…)/(2λ)``.
    ``trace_u`` = trΣ(u) on the unit sphere (σ²(d−1) for isotropic noise), ``grad_sq_u`` =
    E‖∇L(u)‖² on the unit sphere (see :func:`vmf_grad_sq`), ``wd`` = λ. fixed-sphere raises
    ``ValueError`` (use :func:`pressure_sphere_discrete`).
    """
    check_protocol(protocol)
    if protocol == "fixed-sphere":
        raise ValueError(
            "fixed-sphere: the radius is a hyperparameter; use pressure_sphere_discrete"
        )
    q = _f(lr) * (_f(trace_u) + _f(grad_sq_u)) / (2.0 * _f(wd))
    return _out(np.sqrt(q) if protocol == "fixed-elr" else q**0.25)


def pressure_sphere(
    *, lr: ArrayLike, radius: ArrayLike, sigma: ArrayLike, d: ArrayLike
) -> FloatOrArray:
    """Effective pressure of the fixed-sphere protocol: ``p = (d−1)T/ρ²``, ``T = η̃σ²/2``.

    ``lr`` = η̃, ``radius`` = ρ.
    """
    T = _f(lr) * _f(sigma) ** 2 / 2.0
    return _out((_f(d) - 1.0) * T / _f(radius) ** 2)


def pressure_sphere_discrete(
    *, lr: ArrayLike, radius: ArrayLike, trace_u: ArrayLike, grad_sq_u: ArrayLike
) -> FloatOrArray:
    """Discrete-corrected fixed-sphere pressure ``p = η̃ (trΣ(u) + E‖∇L(u)‖²)/(2ρ²)``.

    ``lr`` = η̃, ``radius`` = ρ, ``trace_u`` and ``grad_sq_u`` on the unit sphere.
    """
    return _out(_f(lr) * (_f(trace_u) + _f(grad_sq_u)) / (2.0 * _f(radius) ** 2))


def effective_pressure(
    mean_norm_before_projection: ArrayLike, *, lr: ArrayLike, radius: ArrayLike
) -> FloatOrArray:
    """Measured fixed-sphere pressure ``p_eff = (E|w'| − ρ)/(η̃ρ³)``.

    ``mean_norm_before_projection`` = E|w'| (norm of the iterate after the gradient step and
    before projecting back onto the sphere), ``lr`` = η̃, ``radius`` = ρ.
    """
    rho = _f(radius)
    return _out((_f(mean_norm_before_projection) - rho) / (_f(lr) * rho**3))


def stationary_elr(
    *, lr: ArrayLike, wd: ArrayLike, sigma: ArrayLike, d: ArrayLike
) -> FloatOrArray:
    """Stationary effective learning rate of fixed LR: ``η̃ = η/ρ*²``, ``ρ*⁴ = ησ²(d−1)/(2λ)``.

    ``lr`` = η, ``wd`` = λ. Equals ``sqrt(2ηλ/(σ²(d−1)))``, so ``T = η̃σ²/2`` holds here too.
    """
    rho = _f(radius_sde("fixed-lr", lr=lr, wd=wd, sigma=sigma, d=d))
    return _out(_f(lr) / rho**2)


# ---------------------------------------------------------------------------------------------
# Modified Bessel function of the first kind: log I_ν(x) and ratios
# ---------------------------------------------------------------------------------------------

_DEBYE_TERMS = 20  # number of U_k terms kept
_DEBYE_MIN_S = 25.0  # use Debye where sqrt(ν² + x²) >= this
_SERIES_MAX_X = 1.0  # power series where x <= this (and not Debye)
_SERIES_TERMS = 30
_LOG_2PI = float(np.log(2.0 * np.pi))


def _debye_polynomials(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Coefficients (ascending powers of p) of V_k(p) = U_k(p)/p^k and of V_k'(p), k = 1..n.

    ``u_{k+1}(p) = ½p²(1−p²)u_k'(p) + ⅛∫_0^p (1−5t²)u_k(t)dt``, ``u_0 = 1`` (DLMF 10.41.9),
    in exact rational arithmetic.
    """

    def mul(a: list[Fraction], b: list[Fraction]) -> list[Fraction]:
        r = [Fraction(0)] * (len(a) + len(b) - 1)
        for i, ai in enumerate(a):
            for j, bj in enumerate(b):
                r[i + j] += ai * bj
        return r

    u = [Fraction(1)]
    vs, dvs = [], []
    for k in range(1, n + 1):
        du = [i * u[i] for i in range(1, len(u))] or [Fraction(0)]
        t1 = mul([Fraction(0), Fraction(0), Fraction(1, 2), Fraction(0), Fraction(-1, 2)], du)
        integrand = mul([Fraction(1), Fraction(0), Fraction(-5)], u)
        t2 = [Fraction(0)] + [c / (8 * (i + 1)) for i, c in enumerate(integrand)]
        m = max(len(t1), len(t2))
        u = [
            (t1[i] if i < len(t1) else 0) + (t2[i] if i < len(t2) else 0) for i in range(m)
        ]
        assert all(c == 0 for c in u[:k])  # U_k(p) = p^k V_k(p)
        v = np.array([float(c) for c in u[k:]])
        vs.append(v)
        dvs.append(np.array([i * v[i] for i in range(1, len(v))]) if len(v) > 1 else np.zeros(1))
    return vs, dvs


_DEBYE_V, _DEBYE_DV = _debye_polynomials(_DEBYE_TERMS)


def _polyval(coeffs: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p) + coeffs[-1]
    for c in coeffs[-2::-1]:
        out = out * p + c
    return out


def _debye_sum(nu: np.ndarray, x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Σ = Σ_{k≥1} U_k(p)/ν^k = Σ_k V_k(p)/s^k`` and its x-derivative ``dΣ/dx``."""
    t = 1.0 / s
    p = nu * t
    total = np.zeros_like(s)
    dtotal = np.zeros_like(s)
    tk = np.ones_like(s)
    for k, (v, dv) in enumerate(zip(_DEBYE_V, _DEBYE_DV), start=1):
        tk = tk * t
        vk = _polyval(v, p)
        total += vk * tk
        # d/dx[V_k(p) t^k] = −x t^{k+2} (p V_k'(p) + k V_k(p)),  dp/dx = −p x t², dt/dx = −x t³
        dtotal -= x * tk * t * t * (p * _polyval(dv, p) + k * vk)
    return total, dtotal


def _debye_log_iv(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Debye expansion of log I_ν(x): ``s − ν log((ν+s)/x) − ½log(2π s) + log(1+Σ)``."""
    s = np.hypot(nu, x)
    L = np.log1p(nu * (1.0 + nu / (s + x)) / x)  # log((ν+s)/x), accurate for any ν/x
    sigma, _ = _debye_sum(nu, x, s)
    return s - nu * L - 0.5 * (_LOG_2PI + np.log(s)) + np.log1p(sigma)


def _series_log_sum(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log Σ_k (x²/4)^k / (k! (ν+1)_k)  (all terms positive)."""
    q = x * x / 4.0
    term = np.ones_like(x)
    total = np.ones_like(x)
    for k in range(1, _SERIES_TERMS + 1):
        term = term * q / (k * (nu + k))
        total = total + term
    return np.log(total)


def _series_log_iv(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    return nu * np.log(x / 2.0) - special.gammaln(nu + 1.0) + _series_log_sum(nu, x)


def log_bessel_iv(nu: ArrayLike, x: ArrayLike) -> FloatOrArray:
    r"""``log I_ν(x)``, the log of the modified Bessel function of the first kind.

    ``nu`` = ν ≥ 0 (order), ``x`` ≥ 0 (argument); broadcast together. Method (see the module
    docstring): uniform Debye expansion where ``sqrt(ν²+x²) ≥ 25``, the power series where
    ``x ≤ 1``, ``scipy.special.ive`` otherwise. Absolute error ≲ 3e-15·max(1, |log I|) for
    ν ∈ [0.5, 1e6], x ∈ [1e-6, 1e8] — including where ``ive`` underflows (large ν, small x).
    ``x = 0`` gives ``-inf`` (ν > 0) or 0 (ν = 0).
    """
    nu_b, x_b = np.broadcast_arrays(_f(nu), _f(x))
    if np.any(nu_b < 0):
        raise ValueError("log_bessel_iv: order nu must be >= 0")
    if np.any(x_b < 0):
        raise ValueError("log_bessel_iv: argument x must be >= 0")
    n, z = nu_b.ravel(), x_b.ravel()
    out = np.full(n.shape, np.nan)
    zero = z == 0
    out[zero] = np.where(n[zero] == 0, 0.0, -np.inf)
    ok = ~zero & np.isfinite(z) & np.isfinite(n)
    out[np.isposinf(z) & np.isfinite(n)] = np.inf
    debye = ok & (np.hypot(n, z) >= _DEBYE_MIN_S)
    series = ok & ~debye & (z <= _SERIES_MAX_X)
    scaled = ok & ~debye & ~series
    if debye.any():
        out[debye] = _debye_log_iv(n[debye], z[debye])
    if series.any():
        out[series] = _series_log_iv(n[series], z[series])
    if scaled.any():
        out[scaled] = np.log(special.ive(n[scaled], z[scaled])) + z[scaled]
    return _out(out.reshape(nu_b.shape))


def _bessel_ratio_pieces(
    nu: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ν ≥ 1, x > 0 (1-d arrays): ``A = I_ν/I_{ν−1}``, ``1 − A`` and ``A' = dA/dx``.

    Debye region (``sqrt((ν−1)² + x²) ≥ 25``): log A is the analytic difference of the two
    Debye expansions, ``1 − A = −expm1(log A)`` and ``A'/A = d log A/dx`` analytically, so all
    three keep full relative precision (no cancellation between ~x-sized logarithms).
    Elsewhere x < 25: ratio of power series (x ≤ 1) or of ``ive`` values, and the Riccati
    identity ``A' = 1 − A² − (2ν−1)A/x`` (cancellation at most a factor ~x < 25).
    """
    A = np.empty_like(x)
    one_minus_A = np.empty_like(x)
    dA = np.empty_like(x)
    num1 = nu - 1.0
    debye = np.hypot(num1, x) >= _DEBYE_MIN_S
    if debye.any():
        n, z = nu[debye], x[debye]
        m = n - 1.0
        s1, s0 = np.hypot(n, z), np.hypot(m, z)
        ds = (2.0 * n - 1.0) / (s1 + s0)  # s1 − s0
        L1 = np.log1p(n * (1.0 + n / (s1 + z)) / z)  # log((ν+s1)/x)
        dlog = np.log1p((1.0 + ds) / (m + s0))  # log((ν+s1)/(ν−1+s0))
        sig1, dsig1 = _debye_sum(n, z, s1)
        sig0, dsig0 = _debye_sum(m, z, s0)
        # f(ν) − f(ν−1) with f(ν) = s − ν log((ν+s)/x); prefactor −½ log(s1/s0)
        log_a = (
            ds
            - L1
            - m * dlog
            - 0.5 * np.log1p(ds / s0)
            + (np.log1p(sig1) - np.log1p(sig0))
        )
        a = np.exp(log_a)
        # d/dx log I_ν = s/x − x/(2s²) + Σ'/(1+Σ)
        dlog_a = (
            ds / z
            + z * (2.0 * n - 1.0) / (2.0 * s1**2 * s0**2)
            + dsig1 / (1.0 + sig1)
            - dsig0 / (1.0 + sig0)
        )
        A[debye] = a
        one_minus_A[debye] = -np.expm1(log_a)
        dA[debye] = a * dlog_a
    rest = ~debye
    if rest.any():
        n, z = nu[rest], x[rest]
        small = z <= _SERIES_MAX_X
        a = np.empty_like(z)
        if small.any():
            ns, zs = n[small], z[small]
            a[small] = zs / (2.0 * ns) * np.exp(
                _series_log_sum(ns, zs) - _series_log_sum(ns - 1.0, zs)
            )
        big = ~small
        if big.any():
            a[big] = special.ive(n[big], z[big]) / special.ive(n[big] - 1.0, z[big])
        A[rest] = a
        one_minus_A[rest] = 1.0 - a
        dA[rest] = (1.0 - a) * (1.0 + a) - (2.0 * n - 1.0) * a / z
    return A, one_minus_A, dA


# ---------------------------------------------------------------------------------------------
# von Mises–Fisher model
# ---------------------------------------------------------------------------------------------


def _vmf_core(kappa: ArrayLike, d: ArrayLike) -> dict[str, np.ndarray]:
    """All VMF quantities on the broadcast grid of κ ∈ [0, ∞] and d ≥ 2.

    Keys: A, one_minus_A, dA (= A'(κ)), log_c (= log C_d(κ)), entropy (= S_u).
    """
    k_b, d_b = np.broadcast_arrays(_f(kappa), _check_d(d))
    if np.any(k_b < 0):
        raise ValueError("concentration kappa (= 1/T) must be >= 0")
    shape = k_b.shape
    k, dd = k_b.ravel().astype(float), d_b.ravel().astype(float)
    nu = dd / 2.0
    res = {key: np.full(k.shape, np.nan) for key in ("A", "one_minus_A", "dA", "log_c", "entropy")}
    unif = -_f(uniform_sphere_entropy(dd))
    # κ = 0: uniform distribution
    z0 = k == 0
    res["A"][z0], res["one_minus_A"][z0], res["dA"][z0] = 0.0, 1.0, 1.0 / dd[z0]
    res["log_c"][z0] = unif[z0]
    res["entropy"][z0] = -unif[z0]
    # κ = ∞: point mass
    zi = np.isposinf(k)
    res["A"][zi], res["one_minus_A"][zi], res["dA"][zi] = 1.0, 0.0, 0.0
    res["log_c"][zi], res["entropy"][zi] = np.inf, -np.inf
    ok = (k > 0) & np.isfinite(k) & np.isfinite(dd)
    if ok.any():
        kk, n = k[ok], nu[ok]
        A, oma, dA = _bessel_ratio_pieces(n, kk)
        m = n - 1.0
        s0 = np.hypot(m, kk)
        debye = s0 >= _DEBYE_MIN_S
        # −log C_d(κ) = −(ν−1) log κ + (d/2) log 2π + log I_{ν−1}(κ) = h + s0 in the Debye
        # region, h = (d−1)/2·log 2π − (ν−1) log(ν−1+s0) − ½ log s0 + log(1+Σ_{ν−1}), since
        # (ν−1)(log κ + log((ν−1+s0)/κ)) = (ν−1) log(ν−1+s0) (no cancellation).
        neg_log_c = np.empty_like(kk)
        ent = np.empty_like(kk)
        if debye.any():
            mD, kD, sD = m[debye], kk[debye], s0[debye]
            sig0, _ = _debye_sum(mD, kD, sD)
            h = (
                (2.0 * n[debye] - 1.0) / 2.0 * _LOG_2PI
                - mD * np.log(mD + sD)
                - 0.5 * np.log(sD)
                + np.log1p(sig0)
            )
            neg_log_c[debye] = h + sD
            # S_u = −log C − κA = h + (s0 − κ) + κ(1 − A), s0 − κ = (ν−1)²/(s0+κ)
            ent[debye] = h + mD**2 / (sD + kD) + kD * oma[debye]
        rest = ~debye
        if rest.any():
            mR, kR = m[rest], kk[rest]
            neg_log_c[rest] = (
                -mR * np.log(kR) + n[rest] * _LOG_2PI + _f(log_bessel_iv(mR, kR))
            )
            ent[rest] = neg_log_c[rest] - kR * A[rest]
        res["A"][ok], res["one_minus_A"][ok], res["dA"][ok] = A, oma, dA
        res["log_c"][ok], res["entropy"][ok] = -neg_log_c, ent
    return {key: v.reshape(shape) for key, v in res.items()}


def _kappa(T: ArrayLike) -> np.ndarray:
    T = _f(T)
    if np.any(T < 0):
        raise ValueError("temperature T must be >= 0")
    with np.errstate(divide="ignore"):
        return 1.0 / T


def vmf_mean_resultant(kappa: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Mean resultant length ``A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ)`` = E⟨u, m⟩ under VMF(m, κ).

    ``kappa`` = κ ≥ 0, ``d`` ≥ 2 (ambient dimension), broadcast. Relative error ≲ 1e-13 for all
    κ > 0 and d up to 1e6 (module docstring). ``A_d(0) = 0``, ``A_d(∞) = 1``.
    """
    return _out(_vmf_core(kappa, d)["A"])


def vmf_log_normalizer(kappa: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """``log C_d(κ)``, ``C_d(κ) = κ^{d/2−1}/((2π)^{d/2} I_{d/2−1}(κ))``.

    The VMF density w.r.t. the surface measure of S^{d−1} is ``C_d(κ) exp(κ⟨m, u⟩)``.
    ``kappa`` = κ ≥ 0 (κ = 0: minus the log area of the sphere), ``d`` ≥ 2; broadcast.
    """
    return _out(_vmf_core(kappa, d)["log_c"])


def vmf_energy(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Internal energy of the VMF model: ``U = E[L(u)] = 1 − A_d(1/T)``.

    ``T`` ≥ 0 (temperature; T = 0 → 0, T = ∞ → 1), ``d`` ≥ 2; broadcast. ``1 − A`` is computed
    without cancellation, so U keeps full relative precision as T → 0.
    """
    return _out(_vmf_core(_kappa(T), d)["one_minus_A"])


def vmf_entropy(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Differential entropy (nats, surface measure of S^{d−1}) of the Gibbs/VMF distribution.

    ``S_u = −log C_d(κ) − κ A_d(κ)`` with ``κ = 1/T``. ``T`` ≥ 0, ``d`` ≥ 2; broadcast.
    T = ∞ gives :func:`uniform_sphere_entropy`, T = 0 gives −∞.
    """
    return _out(_vmf_core(_kappa(T), d)["entropy"])


def uniform_sphere_entropy(d: ArrayLike) -> FloatOrArray:
    """Entropy of the uniform distribution on S^{d−1}: ``log(2π^{d/2}/Γ(d/2))``."""
    d = _f(d)
    return _out(np.log(2.0) + d / 2.0 * np.log(np.pi) - special.gammaln(d / 2.0))


def vmf_energy_small_T(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Small-T (equipartition) energy ``U ≈ (d−1)T/2``."""
    return _out((_f(d) - 1.0) * _f(T) / 2.0)


def vmf_entropy_small_T(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Small-T entropy on the sphere ``S_u ≈ (d−1)/2 · log(2πeT)`` (Gaussian in d−1 dims)."""
    return _out((_f(d) - 1.0) / 2.0 * np.log(2.0 * np.pi * np.e * _f(T)))


def vmf_grad_sq(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Mean squared gradient norm on the unit sphere, ``E‖∇L(u)‖² = (d−1)A_d(κ)/κ``, κ = 1/T.

    On the unit sphere ``∇L(u) = (I − uuᵀ)μ`` so ``‖∇L‖² = 1 − ⟨μ,u⟩²``, and for VMF(m, κ)
    ``E[uuᵀ] = (A/κ) I + (1 − dA/κ) mmᵀ`` gives ``E⟨μ,u⟩² = 1 − (d−1)A/κ``. Limits: (d−1)/d at
    T = ∞ (uniform), ≈ (d−1)T = 2U at small T, 0 at T = 0. ``T`` ≥ 0, ``d`` ≥ 2; broadcast.
    """
    kappa = _kappa(T)
    d_ = _check_d(d)
    core = _vmf_core(kappa, d_)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (d_ - 1.0) * core["A"] / kappa
    g = np.where(kappa == 0, (d_ - 1.0) / d_, g)
    g = np.where(np.isposinf(kappa), 0.0, g)
    return _out(g)


def vmf_heat_capacity(T: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Exact heat capacity at constant volume ``C_V = ∂U/∂T = κ² A'_d(κ)``, κ = 1/T.

    ``A'_d(κ) = 1 − A² − (d−1)A/κ`` (= Var⟨m,u⟩ ≥ 0). Computed from the analytic derivative of
    the Debye expansion of log A where that applies, so no cancellation at small T.
    Limits: (d−1)/2 as T → 0, 0 as T → ∞. ``T`` ≥ 0, ``d`` ≥ 2; broadcast.
    """
    kappa = _kappa(T)
    d_ = _check_d(d)
    core = _vmf_core(kappa, d_)
    with np.errstate(invalid="ignore", over="ignore"):
        c = kappa**2 * core["dA"]
    c = np.where(kappa == 0, 0.0, c)
    c = np.where(np.isposinf(kappa), (d_ - 1.0) / 2.0, c)
    return _out(c)


def heat_capacity_v(d: ArrayLike) -> FloatOrArray:
    """Small-T heat capacity at constant volume ``C_V = (d−1)/2`` (= R)."""
    return _out((_f(d) - 1.0) / 2.0)


def heat_capacity_p(d: ArrayLike) -> FloatOrArray:
    """Small-T heat capacity at constant pressure ``C_p = C_V + R = d−1``."""
    return _out(_f(d) - 1.0)


def adiabatic_index(d: ArrayLike) -> FloatOrArray:
    """Adiabatic index ``γ = C_p/C_V = 2`` (small T, any d ≥ 2); shape of ``d``."""
    return _out(np.full_like(_f(d), 2.0))


# ---------------------------------------------------------------------------------------------
# Thermodynamic potentials and the stationary state
# ---------------------------------------------------------------------------------------------


def total_entropy(S_sphere: ArrayLike, rho: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Total entropy ``S = S_u + (d−1) log ρ`` (``S_sphere`` = S_u, ``rho`` = ρ)."""
    return _out(_f(S_sphere) + (_f(d) - 1.0) * np.log(_f(rho)))


def helmholtz(U: ArrayLike, T: ArrayLike, S: ArrayLike) -> FloatOrArray:
    """Helmholtz free energy ``F = U − TS``."""
    return _out(_f(U) - _f(T) * _f(S))


def gibbs(U: ArrayLike, T: ArrayLike, S: ArrayLike, p: ArrayLike, V: ArrayLike) -> FloatOrArray:
    """Gibbs free energy ``G = U − TS + pV``."""
    return _out(_f(U) - _f(T) * _f(S) + _f(p) * _f(V))


def stationary_state(
    protocol: str,
    *,
    lr: ArrayLike,
    sigma: ArrayLike = 1.0,
    d: ArrayLike = 3,
    wd: ArrayLike | None = None,
    radius: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """SDE-level stationary state of the isotropic VMF model.

    ``lr`` = η̃ (fixed-sphere, fixed-elr) or η (fixed-lr); ``wd`` = λ (fixed-elr, fixed-lr:
    required; fixed-sphere: must be None); ``radius`` = ρ (fixed-sphere: required; others:
    must be None). All inputs broadcast; every value in the result has the broadcast shape.

    Keys: ``T``, ``p`` (λ, or the effective pressure (d−1)T/ρ² on the fixed sphere), ``V``,
    ``rho`` (radius, or :func:`radius_sde`), ``U``, ``S_sphere`` (S_u), ``S``, ``F`` (U − TS),
    ``G`` (U − TS + pV), ``grad_sq`` (E‖∇L(u)‖² on the unit sphere), and ``elr`` (η̃; for
    fixed-lr the stationary ELR η/ρ*²).
    """
    check_protocol(protocol)
    d_ = _check_d(d)
    if protocol == "fixed-sphere":
        if wd is not None:
            raise ValueError("fixed-sphere has no weight decay; pass radius=..., not wd")
        rho = _require("radius", radius, protocol)
        T = _f(temperature(protocol, lr=lr, sigma=sigma, d=d_))
        p = _f(pressure_sphere(lr=lr, radius=rho, sigma=sigma, d=d_))
        elr = _f(lr)
    else:
        if radius is not None:
            raise ValueError(f"{protocol}: the radius is predicted; pass wd=..., not radius")
        lam = _require("wd", wd, protocol)
        T = _f(temperature(protocol, lr=lr, sigma=sigma, d=d_, wd=lam))
        rho = _f(radius_sde(protocol, lr=lr, wd=lam, sigma=sigma, d=d_))
        p = lam
        elr = _f(lr) if protocol == "fixed-elr" else _f(
            stationary_elr(lr=lr, wd=lam, sigma=sigma, d=d_)
        )
    V = _f(volume(rho))
    core = _vmf_core(_kappa(T), d_)
    U = core["one_minus_A"]
    S_u = core["entropy"]
    S = _f(total_entropy(S_u, rho, d_))
    state = {
        "T": T,
        "p": p,
        "V": V,
        "rho": rho,
        "U": U,
        "S_sphere": S_u,
        "S": S,
        "F": _f(helmholtz(U, T, S)),
        "G": _f(gibbs(U, T, S, p, V)),
        "grad_sq": _f(vmf_grad_sq(T, d_)),
        "elr": elr,
    }
    arrays = np.broadcast_arrays(*state.values())
    return {key: np.array(a, dtype=float) for key, a in zip(state, arrays)}


# ---------------------------------------------------------------------------------------------
# Maxwell relations
# ---------------------------------------------------------------------------------------------


def maxwell_prediction(protocol: str, d: ArrayLike) -> dict[str, Any]:
    """The Maxwell relation of a protocol as a linear combination of entropy derivatives.

    With ``x = log lr`` and ``y = log wd`` (fixed-sphere: ``y = log radius``) the prediction is
    ``weights[0]·∂S/∂x + weights[1]·∂S/∂y = value``:

    * fixed-lr: ``∂S/∂log η − ∂S/∂log λ = R``  (weights (1, −1), value R = (d−1)/2)
    * fixed-elr: ``∂S/∂log λ = −R`` at fixed η̃, i.e. (∂S/∂p)_T = −(∂V/∂T)_p  (weights (0, 1))
    * fixed-sphere: ``∂S/∂log ρ = d−1`` at fixed η̃, equivalent to (∂S/∂V)_T = (∂p/∂T)_V with
      ``p = (d−1)T/ρ²``  (weights (0, 1), value d−1)

    They hold exactly for the SDE stationary state at any T, and even if σ² varies with η̃
    (fixed sphere / ELR) or with ηλ (fixed LR). Returns a dict with keys ``protocol``, ``x``,
    ``y`` (names of the log-variables), ``y_param`` ("wd" or "radius"), ``weights``, ``value``
    and ``relation`` (human-readable).
    """
    check_protocol(protocol)
    R = _out(_f(gas_constant(d)))
    if protocol == "fixed-lr":
        return {
            "protocol": protocol,
            "x": "log lr (log η)",
            "y": "log wd (log λ)",
            "y_param": "wd",
            "weights": (1.0, -1.0),
            "value": R,
            "relation": "∂S/∂log η − ∂S/∂log λ = R = (d−1)/2",
        }
    if protocol == "fixed-elr":
        return {
            "protocol": protocol,
            "x": "log lr (log η̃)",
            "y": "log wd (log λ)",
            "y_param": "wd",
            "weights": (0.0, 1.0),
            "value": _out(-_f(R)),
            "relation": "∂S/∂log λ = −R at fixed η̃  ⇔  (∂S/∂p)_T = −(∂V/∂T)_p",
        }
    return {
        "protocol": protocol,
        "x": "log lr (log η̃)",
        "y": "log radius (log ρ)",
        "y_param": "radius",
        "weights": (0.0, 1.0),
        "value": _out(_f(d) - 1.0),
        "relation": "∂S/∂log ρ = d−1 at fixed η̃  ⇔  (∂S/∂V)_T = (∂p/∂T)_V, p = (d−1)T/ρ²",
    }


@dataclass(frozen=True)
class CoefficientTarget:
    """A normalised linear combination of quadratic-fit coefficients and its predicted value.

    The fit is ``S = a0 + a1 x + a2 y + a3 x² + a4 xy + a5 y²`` (see
    :func:`quadratic_features`). ``target(coeffs) = (weights · coeffs) / scale``; compare it
    with ``target.target``. ``coeffs`` may have a leading batch shape (last axis of length 6).
    """

    name: str
    weights: tuple[float, float, float, float, float, float]
    scale: float
    target: float

    def __call__(self, coeffs: ArrayLike) -> FloatOrArray:
        c = _f(coeffs)
        if c.shape[-1] != 6:
            raise ValueError("expected 6 coefficients (a0..a5) along the last axis")
        return _out(c @ np.asarray(self.weights) / self.scale)

    def deviation(self, coeffs: ArrayLike) -> FloatOrArray:
        """``self(coeffs) − target``."""
        return _out(_f(self(coeffs)) - self.target)


def maxwell_coefficient_targets(protocol: str, d: float) -> tuple[CoefficientTarget, ...]:
    """Targets for the quadratic fit of S over (x, y) = (log lr, log wd or log radius).

    The Maxwell relation must hold at every grid point, so for the fitted surface it fixes the
    constant part and forces the x- and y-slopes of the relation to vanish:

    * fixed-lr: ``(a1−a2)/R → 1``, ``(2a3−a4)/R → 0``, ``(a4−2a5)/R → 0``
    * fixed-elr: ``a2/(−R) → 1``, ``a4/R → 0``, ``a5/R → 0``
    * fixed-sphere (y = log ρ): ``a2/(d−1) → 1``, ``a4/(d−1) → 0``, ``a5/(d−1) → 0``

    ``d`` is a scalar. Returns a tuple of :class:`CoefficientTarget`.
    """
    check_protocol(protocol)
    d = float(d)
    R = (d - 1.0) / 2.0
    CT = CoefficientTarget
    if protocol == "fixed-lr":
        return (
            CT("(a1-a2)/R", (0, 1, -1, 0, 0, 0), R, 1.0),
            CT("(2a3-a4)/R", (0, 0, 0, 2, -1, 0), R, 0.0),
            CT("(a4-2a5)/R", (0, 0, 0, 0, 1, -2), R, 0.0),
        )
    if protocol == "fixed-elr":
        return (
            CT("a2/(-R)", (0, 0, 1, 0, 0, 0), -R, 1.0),
            CT("a4/R", (0, 0, 0, 0, 1, 0), R, 0.0),
            CT("a5/R", (0, 0, 0, 0, 0, 1), R, 0.0),
        )
    return (
        CT("a2/(d-1)", (0, 0, 1, 0, 0, 0), d - 1.0, 1.0),
        CT("a4/(d-1)", (0, 0, 0, 0, 1, 0), d - 1.0, 0.0),
        CT("a5/(d-1)", (0, 0, 0, 0, 0, 1), d - 1.0, 0.0),
    )


def quadratic_features(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Design matrix ``[1, x, y, x², xy, y²]`` (last axis) of the Maxwell quadratic fit."""
    x_, y_ = np.broadcast_arrays(_f(x), _f(y))
    return np.stack([np.ones_like(x_), x_, y_, x_**2, x_ * y_, y_**2], axis=-1)


def quadratic_gradient(
    coeffs: ArrayLike, x: ArrayLike, y: ArrayLike
) -> tuple[FloatOrArray, FloatOrArray]:
    """``(∂S/∂x, ∂S/∂y) = (a1 + 2a3x + a4y, a2 + a4x + 2a5y)`` of the fitted surface."""
    a = _f(coeffs)
    x_, y_ = _f(x), _f(y)
    return (
        _out(a[1] + 2 * a[3] * x_ + a[4] * y_),
        _out(a[2] + a[4] * x_ + 2 * a[5] * y_),
    )


def maxwell_ratio(
    protocol: str, dS_dx: ArrayLike, dS_dy: ArrayLike, d: ArrayLike
) -> FloatOrArray:
    """Observed Maxwell combination divided by its prediction (→ 1), pointwise.

    ``(w_x ∂S/∂x + w_y ∂S/∂y)/value`` with the weights and value of
    :func:`maxwell_prediction`; ``dS_dx``, ``dS_dy`` from finite differences or from
    :func:`quadratic_gradient`. ``|ratio − 1|`` is the relative error of the relation.
    """
    pred = maxwell_prediction(protocol, d)
    wx, wy = pred["weights"]
    return _out((wx * _f(dS_dx) + wy * _f(dS_dy)) / _f(pred["value"]))


# ---------------------------------------------------------------------------------------------
# Adiabats and isotherms in hyperparameter space
# ---------------------------------------------------------------------------------------------


def adiabat_invariant(
    protocol: str,
    *,
    lr: ArrayLike,
    wd: ArrayLike | None = None,
    radius: ArrayLike | None = None,
) -> FloatOrArray:
    """Quantity constant along an adiabat (pV^γ = const, γ = 2).

    fixed-lr: ``η`` (``wd`` not needed); fixed-elr: ``η̃²/λ``; fixed-sphere: ``η̃ρ²``.
    At small T the stationary entropy is ``S = (d−1)/2 · log(invariant) + const(σ, d)``.
    """
    check_protocol(protocol)
    lr_ = _f(lr)
    if protocol == "fixed-lr":
        return _out(lr_ if wd is None else lr_ + 0.0 * _f(wd))
    if protocol == "fixed-elr":
        return _out(lr_**2 / _require("wd", wd, protocol))
    return _out(lr_ * _require("radius", radius, protocol) ** 2)


def adiabat(protocol: str, lr: ArrayLike, *, invariant: ArrayLike) -> FloatOrArray:
    """The other hyperparameter along the adiabat through ``invariant``, as a function of lr.

    fixed-elr: ``wd = η̃²/invariant``; fixed-sphere: ``radius = sqrt(invariant/η̃)``.
    fixed-lr adiabats are the vertical lines ``η = invariant`` (any λ), not graphs over lr:
    this raises ``ValueError``; use :func:`adiabat_lr`, which works for every protocol.
    """
    check_protocol(protocol)
    if protocol == "fixed-lr":
        raise ValueError(
            "fixed-lr adiabats are the lines lr = invariant at any wd; "
            "use adiabat_lr(protocol, invariant=..., wd=...)"
        )
    if protocol == "fixed-elr":
        return _out(_f(lr) ** 2 / _f(invariant))
    return _out(np.sqrt(_f(invariant) / _f(lr)))


def adiabat_lr(
    protocol: str,
    *,
    invariant: ArrayLike,
    wd: ArrayLike | None = None,
    radius: ArrayLike | None = None,
) -> FloatOrArray:
    """The lr along the adiabat through ``invariant``, as a function of the other parameter.

    fixed-lr: ``η = invariant`` (broadcast to the shape of ``wd``); fixed-elr:
    ``η̃ = sqrt(invariant·λ)``; fixed-sphere: ``η̃ = invariant/ρ²``.
    """
    check_protocol(protocol)
    inv = _f(invariant)
    if protocol == "fixed-lr":
        return _out(inv + 0.0 * _require("wd", wd, protocol))
    if protocol == "fixed-elr":
        return _out(np.sqrt(inv * _require("wd", wd, protocol)))
    return _out(inv / _require("radius", radius, protocol) ** 2)


def isotherm_invariant(
    protocol: str,
    *,
    lr: ArrayLike,
    wd: ArrayLike | None = None,
    sigma: ArrayLike = 1.0,
    d: ArrayLike = 3,
) -> FloatOrArray:
    """Quantity constant along an isotherm: the temperature T itself.

    fixed-lr: ``T = sqrt(ηλσ²/(2(d−1)))`` (isotherms ηλ = const); fixed-elr, fixed-sphere:
    ``T = η̃σ²/2`` (isotherms η̃ = const, any λ or ρ).
    """
    return temperature(protocol, lr=lr, sigma=sigma, d=d, wd=wd)


def isotherm(
    protocol: str,
    lr: ArrayLike,
    *,
    invariant: ArrayLike,
    sigma: ArrayLike = 1.0,
    d: ArrayLike = 3,
) -> FloatOrArray:
    """The other hyperparameter along the isotherm T = ``invariant``, as a function of lr.

    fixed-lr: ``wd = 2(d−1)T²/(ησ²)``. For fixed-elr and fixed-sphere the isotherms are the
    vertical lines ``η̃ = 2T/σ²`` (any λ or ρ): this raises ``ValueError``; use
    :func:`isotherm_lr`, which works for every protocol.
    """
    check_protocol(protocol)
    if protocol != "fixed-lr":
        raise ValueError(
            f"{protocol} isotherms are the lines lr = 2T/sigma^2 at any wd/radius; "
            "use isotherm_lr(protocol, invariant=..., ...)"
        )
    T = _f(invariant)
    return _out(2.0 * (_f(d) - 1.0) * T**2 / (_f(lr) * _f(sigma) ** 2))


def isotherm_lr(
    protocol: str,
    *,
    invariant: ArrayLike,
    wd: ArrayLike | None = None,
    radius: ArrayLike | None = None,
    sigma: ArrayLike = 1.0,
    d: ArrayLike = 3,
) -> FloatOrArray:
    """The lr along the isotherm T = ``invariant``, as a function of the other parameter.

    fixed-lr: ``η = 2(d−1)T²/(λσ²)`` (``wd`` required); fixed-elr / fixed-sphere:
    ``η̃ = 2T/σ²`` broadcast to the shape of ``wd`` / ``radius`` if given.
    """
    check_protocol(protocol)
    T, s = _f(invariant), _f(sigma)
    if protocol == "fixed-lr":
        lam = _require("wd", wd, protocol)
        return _out(2.0 * (_f(d) - 1.0) * T**2 / (lam * s**2))
    other = wd if protocol == "fixed-elr" else radius
    lr = 2.0 * T / s**2
    return _out(lr if other is None else lr + 0.0 * _f(other))
