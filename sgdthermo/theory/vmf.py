r"""The von Mises–Fisher test function and its exact thermodynamics.

``L(w) = 1 + ⟨μ, w/|w|⟩`` with ``|μ| = 1``. Its Gibbs distribution ``p(u) ∝ exp(−L(u)/T)`` is
VMF with mean direction ``−μ`` and concentration ``κ = 1/T``. With the mean resultant length
``A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ)``:
``U = 1 − A_d(κ)``, ``S_u = −log C_d(κ) − κA_d(κ)``,
``C_d(κ) = κ^{d/2−1}/((2π)^{d/2} I_{d/2−1}(κ))``, ``E‖∇L(u)‖² = (d−1)A_d(κ)/κ``,
``C_V = ∂U/∂T = κ² A'_d(κ)``, ``A'_d = 1 − A_d² − (d−1)A_d/κ``.

The Bessel pieces (``log I_ν``, ``A_d``, ``1 − A_d``, ``A'_d``) and their accuracy are in
:mod:`sgdthermo.theory.bessel`; this module combines them into U, S_u, C_V and the stationary
state of the isotropic model at temperature T.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from ..protocols import check_protocol
from ._util import FloatOrArray
from ._util import as_array as _f
from ._util import as_out as _out
from ._util import check_d as _check_d
from ._util import require as _require
from .bessel import DEBYE_MIN_S as _DEBYE_MIN_S
from .bessel import LOG_2PI as _LOG_2PI
from .bessel import bessel_ratio_pieces as _bessel_ratio_pieces
from .bessel import debye_sum as _debye_sum
from .bessel import log_bessel_iv
from .gas import (
    gibbs,
    helmholtz,
    pressure_sphere,
    radius_sde,
    stationary_elr,
    temperature,
    total_entropy,
    volume,
)

__all__ = ["vmf_mean_resultant", "vmf_log_normalizer", "vmf_energy", "vmf_entropy", "uniform_sphere_entropy",
           "vmf_energy_small_T", "vmf_entropy_small_T", "vmf_grad_sq", "vmf_heat_capacity", "stationary_state"]


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
