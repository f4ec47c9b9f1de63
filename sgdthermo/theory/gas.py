r"""The ideal gas of SGD: temperature, volume, pressure, stationary radius, potentials.

docs/theory.md, "Thermodynamic variables", "Stationary radius and the ideal gas law" and
"Discrete-time correction". ``lr`` is η for fixed LR and η̃ for fixed ELR / fixed sphere;
``wd`` = λ = p; ``radius`` = ρ; ``sigma`` = σ of the isotropic noise model.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..protocols import check_protocol
from ._util import FloatOrArray
from ._util import as_array as _f
from ._util import as_out as _out
from ._util import require as _require

__all__ = ["gas_constant", "volume", "radius_from_volume", "temperature", "radius_sde",
           "radius_discrete", "pressure_sphere", "pressure_sphere_discrete", "effective_pressure",
           "stationary_elr", "heat_capacity_v", "heat_capacity_p", "adiabatic_index", "total_entropy",
           "helmholtz", "gibbs"]


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
    mean_norm_before_projection: ArrayLike | None = None,
    *,
    lr: ArrayLike,
    radius: ArrayLike,
    norm_excess: ArrayLike | None = None,
) -> FloatOrArray:
    """Measured fixed-sphere pressure ``p_eff = (E|w'| − ρ)/(η̃ρ³)``.

    ``mean_norm_before_projection`` = E|w'| (norm of the iterate after the gradient step and
    before projecting back onto the sphere), or ``norm_excess`` = E|w'| − ρ directly (what the
    simulator and the training loop accumulate, free of the cancellation against ρ);
    ``lr`` = η̃, ``radius`` = ρ. The map is linear in the excess, so the standard error of
    ``norm_excess`` gives the standard error of p the same way.
    """
    rho = _f(radius)
    if (mean_norm_before_projection is None) == (norm_excess is None):
        raise ValueError("pass exactly one of mean_norm_before_projection and norm_excess")
    excess = _f(norm_excess) if norm_excess is not None else _f(mean_norm_before_projection) - rho
    return _out(excess / (_f(lr) * rho**3))


def stationary_elr(
    *, lr: ArrayLike, wd: ArrayLike, sigma: ArrayLike, d: ArrayLike
) -> FloatOrArray:
    """Stationary effective learning rate of fixed LR: ``η̃ = η/ρ*²``, ``ρ*⁴ = ησ²(d−1)/(2λ)``.

    ``lr`` = η, ``wd`` = λ. Equals ``sqrt(2ηλ/(σ²(d−1)))``, so ``T = η̃σ²/2`` holds here too.
    """
    rho = _f(radius_sde("fixed-lr", lr=lr, wd=wd, sigma=sigma, d=d))
    return _out(_f(lr) / rho**2)


def direction_correlation_steps(elr: ArrayLike) -> FloatOrArray:
    """Correlation time of the direction u in steps, ``τ_u ≈ 1/η̃``.

    Near the minimum of a scale-invariant loss the tangential part of ``u`` relaxes at the rate
    η̃ per step (the restoring gradient of ``L(u) = 1 + ⟨μ, u⟩`` is ``sin θ`` at angle θ, scaled
    by the effective learning rate), so snapshots ``k`` steps apart are correlated as
    ``e^{−η̃k}``. Measured on the isotropic model (docs/entropy.md, "Correlated snapshots"):
    snapshots ``2/η̃`` apart are independent enough for the entropy at d = 3 and d = 100.
    """
    return _out(1.0 / _f(elr))


def heat_capacity_v(d: ArrayLike) -> FloatOrArray:
    """Small-T heat capacity at constant volume ``C_V = (d−1)/2`` (= R)."""
    return _out((_f(d) - 1.0) / 2.0)


def heat_capacity_p(d: ArrayLike) -> FloatOrArray:
    """Small-T heat capacity at constant pressure ``C_p = C_V + R = d−1``."""
    return _out(_f(d) - 1.0)


def adiabatic_index(d: ArrayLike) -> FloatOrArray:
    """Adiabatic index ``γ = C_p/C_V = 2`` (small T, any d ≥ 2); shape of ``d``."""
    return _out(np.full_like(_f(d), 2.0))


def total_entropy(S_sphere: ArrayLike, rho: ArrayLike, d: ArrayLike) -> FloatOrArray:
    """Total entropy ``S = S_u + (d−1) log ρ`` (``S_sphere`` = S_u, ``rho`` = ρ)."""
    return _out(_f(S_sphere) + (_f(d) - 1.0) * np.log(_f(rho)))


def helmholtz(U: ArrayLike, T: ArrayLike, S: ArrayLike) -> FloatOrArray:
    """Helmholtz free energy ``F = U − TS``."""
    return _out(_f(U) - _f(T) * _f(S))


def gibbs(U: ArrayLike, T: ArrayLike, S: ArrayLike, p: ArrayLike, V: ArrayLike) -> FloatOrArray:
    """Gibbs free energy ``G = U − TS + pV``."""
    return _out(_f(U) - _f(T) * _f(S) + _f(p) * _f(V))
