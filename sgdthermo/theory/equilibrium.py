r"""Rotational equilibrium of common optimizers on one scale-invariant group.

docs/theory.md, "Equilibrium of common optimizers on a scale-invariant group". One group of
``d`` scale-invariant parameters ``w``, radius ``ρ = |w|``, direction ``u = w/ρ``; the loss
depends on ``u`` only, so the minibatch gradient is orthogonal to ``w`` and scales as
``g_B(w) = g_B(u)/ρ``. ``G = E‖g_B(u)‖² = ρ²E‖g_B(w)‖²`` is the scale-free gradient power on the
unit sphere (``grad_sq_unit``; ``last_step["grad_sq_unit"]`` of the protocol optimizers averages
to it). The hyperparameters are those a ``torch.optim`` param group holds: ``lr`` = η,
``wd`` = λ (``weight_decay``), ``momentum`` = μ, ``dampening`` = τ_d, ``betas`` = (β₁, β₂).

Every function solves the per-step norm balance ``E|w_{t+1}|² = E|w_t|²`` (rotational
equilibrium, Kosson, Messmer and Jaggi, "Rotational Equilibrium: How Weight Decay Balances
Learning Across Neural Networks", ICML 2024, arXiv:2305.17212) and returns an
:class:`Equilibrium`:

* ``rho``: the equilibrium radius ρ_eq;
* ``angular_update``: the angle θ between consecutive weight vectors ``w_t`` and ``w_{t+1}`` in
  equilibrium, in radians, in the RMS sense ``sqrt(E[θ²])``. It is computed from the mean
  squared step, ``θ = arccos(1 − E|w_{t+1} − w_t|²/(2ρ²))`` (exact for equal norms; equal to
  ``sqrt(E[θ²])`` up to the spread of θ from step to step, a relative correction of order the
  variance of θ²/E[θ²]² times θ², negligible here);
* ``relaxation_steps``: the e-folding time, in steps, of a small deviation of ρ from ρ_eq
  (the norm dynamics linearised around the equilibrium; ``δρ/ρ = δρ²/(2ρ²)`` relaxes at the same
  rate as ρ²);
* ``note``: why a field is NaN, or which approximation limits the result.

Common assumptions: the minibatch gradients are uncorrelated from step to step (noise
dominated: ``E⟨g_t, g_s⟩ = 0`` for t ≠ s; a persistent full-batch gradient adds long-run power
and only the momentum-free results stay exact), ``‖g_B(u)‖²`` has mean G independent of ρ, and
the fluctuations of ρ around ρ_eq are neglected (``E[1/ρ²] = 1/E[ρ²]``; for plain SGD the
relative variance of ρ² is ``ηλ Var‖g_B(u)‖²/(2G²)``, with momentum the random step directions
add a part that shrinks with d; the simulations in docs/theory.md resolve ρ to a few 1e-4).
All functions are pure (floats in, floats out) and raise a one-line ``ValueError`` naming a bad
argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from ..protocols import PROTOCOLS, check_protocol
from ._util import FloatOrArray
from ._util import as_array as _f
from ._util import as_out as _out
from .gas import radius_discrete

__all__ = ["Equilibrium", "EQUILIBRIUM_KINDS", "sgd_equilibrium", "adamw_equilibrium",
           "adam_l2_equilibrium", "protocol_equilibrium", "equilibrium", "steps_to_equilibrium"]

#: The optimizers :func:`equilibrium` knows: three torch optimizers and the three protocols.
EQUILIBRIUM_KINDS: tuple[str, ...] = ("sgd", "adamw", "adam") + PROTOCOLS

_NAN = float("nan")


@dataclass(frozen=True)
class Equilibrium:
    """Stationary state of one scale-invariant group under an optimizer.

    ``rho`` = ρ_eq; ``angular_update`` = the RMS angle ``sqrt(E[θ²])`` (radians) between
    consecutive weight vectors; ``relaxation_steps`` = e-folding time (steps) of a small deviation
    of ρ from ρ_eq; ``note``: why a field is NaN, or the approximation that limits the result
    (empty when the result is exact within the module's assumptions). A field that cannot be
    predicted from the inputs is NaN.
    """

    rho: float
    angular_update: float
    relaxation_steps: float
    note: str = ""


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a number, got {name}={value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {name}={value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {name}={value!r}")
    return x


def _positive(name: str, value: Any) -> float:
    x = _number(name, value)
    if x <= 0.0:
        raise ValueError(f"{name} must be positive, got {name}={value!r}")
    return x


def _fraction(name: str, value: Any) -> float:
    x = _number(name, value)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {name}={value!r}")
    return x


def _betas(betas: Any) -> tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got betas={betas!r}") from None
    return _fraction("beta1", b1), _fraction("beta2", b2)


def _dimension(d: Any) -> float:
    x = _number("d", d)
    if x < 2.0:
        raise ValueError(f"d must be >= 2 (a sphere S^(d-1)), got d={d!r}")
    return x


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _angle(one_minus_cos: float) -> float:
    """θ = arccos(1 − x), computed as 2·asin(sqrt(x/2)) (no cancellation at small x)."""
    if not 0.0 <= one_minus_cos <= 2.0:
        return _NAN
    return 2.0 * math.asin(math.sqrt(one_minus_cos / 2.0))


def _efold(r: float) -> float:
    """E-folding time ``−1/ln r`` of a mode that shrinks by the factor |r| per step."""
    r = abs(r)
    if r == 0.0:
        return 0.0
    if r >= 1.0:
        return _NAN
    return -1.0 / math.log(r)


def _lagged_second_moment_modes(p: float, q: float, beta2: float) -> tuple[float, float, float]:
    r"""Relaxation modes of the norm when Adam's second moment lags the gradient scale.

    Linearised, the relative deviation ``x = δρ²/ρ²`` obeys ``x_{t+1} = p x_t + q y_t`` with
    ``y_t = β₂ y_{t−1} + (1−β₂) x_t`` (v̂ is an EMA of ``g² ∝ 1/ρ²``, so the normalised update
    power is ``∝ 1 − x + y``). The ansatz ``x_t, y_t ∝ z^t`` gives
    ``z² − (p + β₂ + q(1−β₂)) z + p β₂ = 0``, with ``y = Y(z) x``, ``Y(z) = (1−β₂)z/(z−β₂)``.
    Returns ``(z_slow, z_fast, f)``: the two roots and the share ``f`` of an initial deviation
    that goes into the slow mode when v̂ starts adapted to the current ρ (``y_0 = x_0``, a fresh
    optimizer state): ``f = (1 − Y_fast)/(Y_slow − Y_fast)``. For β₂ = 0 (v̂ follows at once)
    there is one mode, ``z = p + q``.
    """
    if beta2 == 0.0:
        return p + q, 0.0, 1.0
    T = p + beta2 + q * (1.0 - beta2)
    disc = T * T - 4.0 * p * beta2
    if disc <= 0.0:  # a complex pair (or a double root): both have modulus sqrt(p β₂)
        z = math.sqrt(max(p * beta2, 0.0))
        return z, z, _NAN
    s = math.sqrt(disc)
    z1, z2 = 0.5 * (T + s), 0.5 * (T - s)
    if abs(z2) > abs(z1):
        z1, z2 = z2, z1

    def Y(z: float) -> float:
        return (1.0 - beta2) * z / (z - beta2)

    y1, y2 = Y(z1), Y(z2)
    return z1, z2, (1.0 - y2) / (y1 - y2)


def _lag_note(z_slow: float, z_fast: float, frac: float) -> str:
    """A note on the two-mode relaxation when the slow mode does not carry (nearly) all of it."""
    if math.isnan(frac) or frac < 0.9:
        return (f"; second-moment lag: two modes, tau_slow = {_efold(z_slow):.4g} (returned), "
                f"tau_fast = {_efold(z_fast):.4g}; from a fresh optimizer state the slow mode "
                f"carries about {frac:.2f} of the deviation")
    return ""


# ---------------------------------------------------------------------------------------------
# torch.optim.SGD (coupled weight decay, momentum, dampening, Nesterov)
# ---------------------------------------------------------------------------------------------


def _sgd_moments_jacobian(
    eta: float, lam: float, mu: float, c: float, alpha: float, beta: float, q1: float
) -> np.ndarray:
    r"""Jacobian of the mean-field second-moment map of SGD at its fixed point.

    State ``(A, B, C) = (|w|², ⟨w, b⟩, |b|²)`` with ``b`` the momentum buffer before the step;
    one step: ``d = g + λw``, ``b' = μb + c d``, ``s = α d + β b``, ``w' = w − η s`` (standard:
    ``α = c``, ``β = μ``; Nesterov: ``α = 1+μ``, ``β = μ²``, c = 1). With ``⟨g, w⟩ = 0``,
    ``E⟨g, b⟩ = 0`` and ``E|g|² = G/A``::

        C' = μ²C + 2μcλB + c²(λ²A + G/A)
        A' = A − 2η(αλA + βB) + η²(α²(λ²A + G/A) + 2αβλB + β²C)
        B' = μB + cλA − η(αc(λ²A + G/A) + (αμ + βc)λB + βμC)

    At the fixed point ``∂(G/A)/∂A = −G/A*² = −q₁`` (``q₁ = G/A*²``), so the Jacobian does not
    depend on G.
    """
    l2q = lam * lam - q1
    row_a = [1.0 - 2.0 * eta * alpha * lam + eta * eta * alpha * alpha * l2q,
             -2.0 * eta * beta + 2.0 * eta * eta * alpha * beta * lam,
             eta * eta * beta * beta]
    row_b = [c * lam - eta * alpha * c * l2q,
             mu - eta * lam * (alpha * mu + beta * c),
             -eta * beta * mu]
    row_c = [c * c * l2q, 2.0 * mu * c * lam, mu * mu]
    return np.array([row_a, row_b, row_c])


def sgd_equilibrium(
    lr: float,
    wd: float,
    grad_sq_unit: float,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
) -> Equilibrium:
    r"""Equilibrium of ``torch.optim.SGD`` with coupled weight decay on a scale-invariant group.

    One step (torch): ``d = g_B(w) + λw``; ``b ← μb + (1−τ_d) d`` (the first step sets ``b = d``);
    ``w ← w − η b``, or with Nesterov ``w ← w − η(d + μb)``. ``lr`` = η, ``wd`` = λ,
    ``grad_sq_unit`` = G = E‖g_B(u)‖², ``momentum`` = μ, ``dampening`` = τ_d (ignored by torch when
    μ = 0, and here too); ``c = 1 − τ_d`` scales the gradient and the decay alike.

    No momentum (exact: ``|w'|² = (1−ηλ)²ρ² + η²‖g_B(u)‖²/ρ²``, Pythagoras)::

        ρ⁴ = η G / (2λ (1 − ηλ/2)),      cos θ = 1 − ηλ,
        relaxation: δρ ∝ (1 − 4ηλ + 2η²λ²)^t,  τ = −1/ln(1 − 4ηλ + 2η²λ²) ≈ 1/(4ηλ).

    This is :func:`~sgdthermo.theory.radius_discrete` ("fixed-lr", ``trace_u + grad_sq_u`` = G)
    divided by ``(1 − ηλ/2)^{1/4}``, the factor its derivation neglects. In continuous time
    ``d(ρ⁴)/dt = −4ηλ(ρ⁴ − ρ_eq⁴)``: ρ⁴ relaxes at the rate 4ηλ at any distance, so far above
    the equilibrium ρ² decays as ``e^{−2ηλt}`` (ρ at ηλ) and far below ρ⁴ grows by 2η²G per step;
    ``relaxation_steps`` is the linearised time 1/(4ηλ) (with its discrete correction).

    Momentum (mean-field second moments of ``(|w|², ⟨w,b⟩, |b|²)``, closed under
    ``⟨g, w⟩ = 0``, ``E⟨g_t, b_{t−1}⟩ = 0``; solved exactly)::

        ρ⁴ = η c G / (2λ (1−μ) (1 − ηcλ/(2(1+μ)))),      cos θ = 1 − ηcλ/(1+μ)

    i.e. to leading order the effective learning rate ``η c/(1−μ)`` for both the decay and the
    noise, ``ρ⁴ ≈ ηcG/(2λ(1−μ))`` and ``θ ≈ sqrt(2ηcλ/(1+μ))``: Kosson et al. (2024), SGDM
    (their angular update ``sqrt(2ηλ/(1+μ))`` and equilibrium norm
    ``(ηE‖g̃‖²/(2λ(1−μ)))^{1/4}``, c = 1). Nesterov (c = 1)::

        ρ⁴ = η G (1 + μ + ηλμ(1+2μ)) / (λ (1 − μ + ηλμ) (2(1+μ) − ηλ(1+2μ)))
        1 − cos θ = ηλ (1 + 2μ − 2μ³ + ηλμ(1+μ)(1+2μ)) / (1 + μ + ηλμ(1+2μ))

    The same long-run norm ``ρ⁴ ≈ ηG/(2λ(1−μ))`` but a larger step, ``θ² ≈ 2ηλ(1+2μ−2μ³)/(1+μ)``:
    the norm depends on the total displacement ``η Σ_k h_k = η/(1−μ)`` a gradient causes, the
    angle on ``η² Σ_k h_k²``. ``relaxation_steps`` = ``−1/ln r``, r the spectral radius of the
    Jacobian of the second-moment map at the fixed point (≈ (1−μ)/(4ηcλ)). When ηλ is not small
    against (1−μ)², the slowest modes are a complex pair: the norm overshoots and oscillates as it
    relaxes (the note gives the period); r is then the decay rate of the envelope.

    Returns NaN fields with a note when no stable equilibrium exists (ηλ too large).
    """
    eta = _positive("lr", lr)
    lam = _positive("wd", wd)
    G = _positive("grad_sq_unit", grad_sq_unit)
    mu = _fraction("momentum", momentum)
    damp = _fraction("dampening", dampening)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise ValueError(f"nesterov must be True or False, got nesterov={nesterov!r}")
    if nesterov and (mu == 0.0 or damp != 0.0):
        raise ValueError(
            f"nesterov needs momentum > 0 and zero dampening, got momentum={momentum!r}, "
            f"dampening={dampening!r}"
        )
    c = 1.0 - damp if mu > 0.0 else 1.0
    k = eta * lam
    if nesterov:
        alpha, beta = 1.0 + mu, mu * mu
        den = (1.0 + mu) + k * mu * (1.0 + 2.0 * mu)
        q1 = lam * (1.0 - mu + k * mu) * (2.0 * (1.0 + mu) - k * (1.0 + 2.0 * mu)) / (eta * den)
        one_minus_cos = (
            k * (1.0 + 2.0 * mu - 2.0 * mu**3 + k * mu * (1.0 + mu) * (1.0 + 2.0 * mu)) / den
        )
    else:
        alpha, beta = c, mu
        q1 = 2.0 * lam * (1.0 - mu) * (1.0 - k * c / (2.0 * (1.0 + mu))) / (eta * c)
        one_minus_cos = k * c / (1.0 + mu)
    J = _sgd_moments_jacobian(eta, lam, mu, c, alpha, beta, q1)
    eig = np.linalg.eigvals(J)
    z = eig[int(np.argmax(np.abs(eig)))]
    r = float(abs(z))
    if not (q1 > 0.0 and math.isfinite(q1)) or r >= 1.0 or one_minus_cos > 2.0:
        return Equilibrium(_NAN, _NAN, _NAN,
                           f"no stable equilibrium: lr*wd = {k:g} is too large for momentum {mu:g}")
    rho = (G / q1) ** 0.25
    note = ""
    if mu > 0.0:
        note = "momentum: assumes gradients uncorrelated across steps"
        if abs(z.imag) > 1e-9 * r:
            note += (f"; underdamped: the norm oscillates with a period of "
                     f"{2.0 * math.pi / abs(math.atan2(z.imag, z.real)):.3g} steps as it relaxes")
    return Equilibrium(rho, _angle(one_minus_cos), _efold(r), note)


# ---------------------------------------------------------------------------------------------
# torch.optim.AdamW (decoupled weight decay)
# ---------------------------------------------------------------------------------------------


def adamw_equilibrium(
    lr: float,
    wd: float,
    d: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    update_sq: Optional[float] = None,
) -> Equilibrium:
    r"""Equilibrium of ``torch.optim.AdamW`` on a scale-invariant group of ``d`` parameters.

    One step (torch): ``w ← (1−ηλ) w − η m̂/(√v̂ + ε)``, ``m`` and ``v`` the EMAs (β₁, β₂) of the
    gradient and its square, bias-corrected. ``lr`` = η, ``wd`` = λ, ``κ = ηλ``. The normalised
    update ``s = m̂/√v̂`` is scale-free. With noise-dominated gradients and ε ≪ √v̂, each
    coordinate of ``g/√v̂`` has unit RMS, so the normalised gradient has power ``P = d`` per step,
    uncorrelated across steps, and ``s`` (its β₁-EMA) has ``E‖s‖² = U = d(1−β₁)/(1+β₁)``. The
    mean-field second moments of ``(|w|², ⟨w,m⟩, |m|²)`` then give exactly::

        ρ² = η² U (1 + β₁(1−κ)) / (κ(2−κ) (1 − β₁(1−κ)))      → ηd/(2λ)    (κ → 0)
        1 − cos θ = κ (1−β₁) / (1 + β₁(1−κ))                   → θ ≈ sqrt(2ηλ(1−β₁)/(1+β₁))

    (Kosson et al. 2024, AdamW: ``sqrt(ηC/(2λ))`` and ``sqrt(2ηλ(1−β₁)/(1+β₁))``, C = d.)

    ``update_sq``: a measured per-step ``E‖m̂/(√v̂+ε)‖²``; when given it replaces
    ``U = d(1−β₁)/(1+β₁)`` in the ρ² formula above (the long-run power is then taken as
    ``U(1+β₁)/(1−β₁)``, valid for updates uncorrelated across steps beyond the β₁ filter), and
    ``d`` is unused. The angle does not depend on U.

    Relaxation: with v̂ following the gradient at once, ρ² relaxes exactly as ``(1−κ)^{2t}``
    (τ = 1/(2ηλ)). But v̂ lags the gradient scale ``g² ∝ 1/ρ²`` by about ``β₂/(1−β₂)`` steps, which
    slows the relaxation: the relative deviation x of ρ² obeys
    ``x_{t+1} = (2(1−κ)² − 1) x_t + (1 − (1−κ)²) y_t``, y the β₂-EMA of x, and
    ``relaxation_steps = −1/ln z`` with z the slow root of
    ``z² − (p + β₂ + q(1−β₂)) z + pβ₂ = 0``, ``p = 2(1−κ)² − 1``, ``q = 1 − (1−κ)²``; to first
    order in ``2ηλβ₂/(1−β₂)``, ``τ ≈ 1/(2ηλ) + β₂/(1−β₂)``. When that product is not small there
    are two comparable modes and, from a fresh optimizer state, the slow one carries only part of
    the deviation (the note gives both times and the share). The β₁ filter enters at second order.

    Neglected: ε, the bias corrections (gone after a few 1/(1−β₂) steps), and the relative
    correction to P from the fluctuations of v̂ and its correlation with the current gradient,
    ``−(1−β₂)(k₄ − 1)/2`` for gradient coordinates of kurtosis k₄ (Gaussian: ``−(1−β₂)``, i.e. ρ
    lower by ``(1−β₂)/2``; measured in docs/theory.md).
    """
    eta = _positive("lr", lr)
    lam = _positive("wd", wd)
    b1, b2 = _betas(betas)
    if update_sq is None:
        U = _dimension(d) * (1.0 - b1) / (1.0 + b1)
        note = "noise-dominated gradients: normalised update power d per step"
    else:
        U = _positive("update_sq", update_sq)
        note = "measured update_sq; assumes updates uncorrelated across steps"
    k = eta * lam
    if k >= 2.0:
        return Equilibrium(_NAN, _NAN, _NAN, f"no equilibrium: lr*wd = {k:g} >= 2")
    rho2 = eta * eta * U * (1.0 + b1 * (1.0 - k)) / (k * (2.0 - k) * (1.0 - b1 * (1.0 - k)))
    one_minus_cos = k * (1.0 - b1) / (1.0 + b1 * (1.0 - k))
    a = (1.0 - k) ** 2
    z, z_fast, frac = _lagged_second_moment_modes(2.0 * a - 1.0, 1.0 - a, b2)
    note += _lag_note(z, z_fast, frac)
    return Equilibrium(math.sqrt(rho2), _angle(one_minus_cos), _efold(z), note)


# ---------------------------------------------------------------------------------------------
# torch.optim.Adam with weight_decay (L2: coupled, normalised by √v̂ too)
# ---------------------------------------------------------------------------------------------


def adam_l2_equilibrium(
    lr: float,
    wd: float,
    d: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    grad_sq_unit: Optional[float] = None,
) -> Equilibrium:
    r"""Equilibrium of ``torch.optim.Adam(weight_decay=λ)`` (L2) on a scale-invariant group.

    One step (torch): ``g ← g_B(w) + λw``, then Adam: ``w ← w − η m̂/(√v̂ + ε)``. The decay term is
    normalised by √v̂ as well, so the equilibrium depends on the gradient scale:
    ``grad_sq_unit`` = G = E‖g_B(u)‖² is needed (all fields NaN without it).

    Leading order, when the gradient noise dominates the decay term in v̂
    (``λ²ρ² ≪ ‖g_B(w)‖²``, i.e. ``r_v = λ²ρ⁴/G ≪ 1``) and ε ≪ √v̂: ``√v̂ ≈ ‖g_B(w)‖/√d =
    sqrt(G/d)/ρ`` per coordinate, and Adam acts as SGD with momentum β₁, dampening 1−β₁
    (total gain 1) and the ρ-dependent learning rate ``η_t = ηρ sqrt(d/G)``. The SGD balance
    ``ρ⁴ = η_t G/(2λ)`` gives::

        ρ³ = η sqrt(d G) / (2λ),      η_t λ = ηλρ sqrt(d/G) = 2λ²ρ⁴/G = 2 r_v
        θ ≈ sqrt(2 η_t λ (1−β₁)/(1+β₁))

    so the condition ``r_v ≪ 1`` is the same as a small per-step decay ``η_t λ ≪ 1``; the
    neglected terms are relative corrections of order η_tλ (the decay's share of v̂, which also
    depends on how ``w``'s energy spreads over its coordinates, and the discrete-time terms).
    The angle depends on G (``θ ∝ (η⁴λ²d²/G)^{1/6}``): groups with different gradient scales
    rotate at different rates, unlike AdamW (Kosson et al. 2024, Adam+ℓ2).

    Relaxation (linearised, v̂ lagging ``g² ∝ 1/ρ²`` as in :func:`adamw_equilibrium`): the
    relative deviation x of ρ² obeys ``x_{t+1} = x_t + η_tλ(y_t − 4x_t)``, y the β₂-EMA of x;
    ``relaxation_steps = −1/ln z`` with z the slow root of
    ``z² − (1 − 4η_tλ + β₂ + η_tλ(1−β₂)) z + (1 − 4η_tλ)β₂ = 0``
    (``τ = 1/(3η_tλ)`` when v̂ follows at once; ``τ ≈ 1/(3η_tλ) + β₂/(3(1−β₂))`` to first order
    in ``3η_tλβ₂/(1−β₂)``; beyond it, two modes, see the note). The β₁ lag of the decay term
    (relative O(η_tλ β₁/(1−β₁))) is neglected.
    """
    eta = _positive("lr", lr)
    lam = _positive("wd", wd)
    dd = _dimension(d)
    b1, b2 = _betas(betas)
    if grad_sq_unit is None:
        return Equilibrium(_NAN, _NAN, _NAN,
                           "Adam with L2 weight decay: the equilibrium depends on the gradient "
                           "scale; pass grad_sq_unit=E|g_B(u)|^2")
    G = _positive("grad_sq_unit", grad_sq_unit)
    rho = (eta * math.sqrt(dd * G) / (2.0 * lam)) ** (1.0 / 3.0)
    e = 2.0 * lam * lam * rho**4 / G  # η_t λ
    theta = math.sqrt(2.0 * e * (1.0 - b1) / (1.0 + b1))
    z, z_fast, frac = _lagged_second_moment_modes(1.0 - 4.0 * e, e, b2)
    note = f"leading order in lr_t*wd = 2*wd^2*rho^4/G = {e:.3g}"
    if e / 2.0 > 0.05:
        note += ": too large, the decay term is not negligible in v (outside the range)"
    note += _lag_note(z, z_fast, frac)
    return Equilibrium(rho, theta, _efold(z), note)


# ---------------------------------------------------------------------------------------------
# The three protocols of sgdthermo.nn.optim
# ---------------------------------------------------------------------------------------------


def protocol_equilibrium(
    protocol: str,
    lr: float,
    *,
    wd: Optional[float] = None,
    radius: Optional[float] = None,
    grad_sq_unit: float,
) -> Equilibrium:
    r"""Equilibrium of the protocols of :mod:`sgdthermo.nn.optim` (exact per-step balances).

    ``lr`` is η (fixed-lr) or η̃ (fixed-elr, fixed-sphere); ``wd`` = λ (fixed-lr, fixed-elr);
    ``radius`` = ρ (fixed-sphere); ``grad_sq_unit`` = G = E‖g_B(u)‖².

    * fixed-lr, ``w ← w − η(g_B(w) + λw)``: plain SGD, :func:`sgd_equilibrium` with μ = 0:
      ``ρ⁴ = ηG/(2λ(1 − ηλ/2))`` (:func:`~sgdthermo.theory.radius_discrete` over
      ``(1 − ηλ/2)^{1/4}``), ``cos θ = 1 − ηλ``, τ = −1/ln(1 − 4ηλ + 2η²λ²) ≈ 1/(4ηλ).
    * fixed-elr, ``w ← w − η̃ρ_t²(g_B(w) + λw)``: ``|w'|² = ρ²((1 − y)² + η̃²‖g_B(u)‖²)`` with the
      per-step decay ``y = η̃λρ²``. Balance: ``y = 1 − sqrt(1 − η̃²G)``, i.e.
      ``ρ² = y/(η̃λ) = η̃G/(2λ(1 − y/2))`` (:func:`~sgdthermo.theory.radius_discrete` squared over
      ``1 − y/2``); ``sin θ = η̃ sqrt(G)`` exactly; ρ² relaxes by the factor ``1 − 2y(1−y)`` per
      step, τ ≈ 1/(2y) ≈ 1/(η̃²G) (in continuous time ``dρ²/dt = η̃²Gρ² − 2η̃λρ⁴``, a logistic
      law: growth at the rate η̃²G far below, fast decay far above). No equilibrium when
      ``η̃²G ≥ 1`` (NaN).
    * fixed-sphere, ``w ← ρ·normalize(w − η̃ρ²g_B(w))``: ``tan θ = η̃ sqrt(G)``; ρ is the
      hyperparameter and is restored every step, so ``relaxation_steps`` = 0.

    RMS angles: exact when ‖g_B(u)‖² ≡ G; otherwise to leading order in θ.
    """
    check_protocol(protocol)
    eta = _positive("lr", lr)
    G = _positive("grad_sq_unit", grad_sq_unit)
    if protocol == "fixed-sphere":
        if wd is not None and _number("wd", wd) != 0.0:
            raise ValueError(f"fixed-sphere has no weight decay, got wd={wd!r}")
        if radius is None:
            raise ValueError("protocol 'fixed-sphere' requires radius=...")
        rho = _positive("radius", radius)
        return Equilibrium(rho, math.atan(eta * math.sqrt(G)), 0.0,
                           "fixed sphere: the norm is projected back every step")
    if radius is not None:
        raise ValueError(
            f"radius is only for 'fixed-sphere', got radius={radius!r} for {protocol!r}"
        )
    if wd is None:
        raise ValueError(f"protocol {protocol!r} requires wd=...")
    lam = _positive("wd", wd)
    if protocol == "fixed-lr":
        eq = sgd_equilibrium(eta, lam, G)
        if math.isnan(eq.rho):
            return eq
        rho = float(radius_discrete("fixed-lr", lr=eta, wd=lam, trace_u=G, grad_sq_u=0.0))
        rho /= (1.0 - eta * lam / 2.0) ** 0.25
        return Equilibrium(rho, eq.angular_update, eq.relaxation_steps, eq.note)
    x = eta * eta * G
    if x >= 1.0:
        return Equilibrium(_NAN, _NAN, _NAN,
                           f"no equilibrium: elr^2*G = {x:g} >= 1, the norm grows without bound")
    y = x / (1.0 + math.sqrt(1.0 - x))  # 1 − sqrt(1 − η̃²G) without cancellation
    rho2 = float(radius_discrete("fixed-elr", lr=eta, wd=lam, trace_u=G, grad_sq_u=0.0)) ** 2
    rho2 /= 1.0 - y / 2.0
    return Equilibrium(math.sqrt(rho2), math.asin(math.sqrt(x)), _efold(1.0 - 2.0 * y * (1.0 - y)))


# ---------------------------------------------------------------------------------------------
# Dispatcher and helper
# ---------------------------------------------------------------------------------------------


def equilibrium(kind: str, **hyper: Any) -> Equilibrium:
    """Equilibrium of ``kind`` ("sgd" | "adamw" | "adam" | "fixed-lr" | "fixed-elr" |
    "fixed-sphere"); ``hyper`` are the keyword arguments of :func:`sgd_equilibrium`,
    :func:`adamw_equilibrium`, :func:`adam_l2_equilibrium` or :func:`protocol_equilibrium`
    (``lr`` included)."""
    if kind == "sgd":
        return sgd_equilibrium(**hyper)
    if kind == "adamw":
        return adamw_equilibrium(**hyper)
    if kind == "adam":
        return adam_l2_equilibrium(**hyper)
    if kind in PROTOCOLS:
        return protocol_equilibrium(kind, **hyper)
    raise ValueError(
        f"unknown optimizer kind {kind!r}: expected one of {', '.join(EQUILIBRIUM_KINDS)}"
    )


def steps_to_equilibrium(
    rho: ArrayLike, rho_eq: float, relaxation_steps: float, tol: float = 0.05
) -> FloatOrArray:
    r"""Expected steps left until ``|ρ/ρ_eq − 1| < tol`` along the linearised relaxation.

    With ``δ_t = ρ_t/ρ_eq − 1 = δ_0 e^{−t/τ}`` (τ = ``relaxation_steps``):
    ``t = τ ln(|δ_0|/tol)`` when ``|δ_0| ≥ tol``, else 0. τ = 0 (fixed sphere) gives 0, τ = NaN
    gives NaN (0 if already within ``tol``). ``rho`` may be an array (a trajectory). Far from
    equilibrium the true dynamics are not linear (plain SGD far above ρ_eq relaxes ρ at ηλ, not
    4ηλ), so the result is the time of the final, linear stretch.
    """
    r = _f(rho)
    if np.any(~np.isfinite(r)) or np.any(r <= 0.0):
        raise ValueError(f"rho must be finite and positive, got rho={rho!r}")
    req = _positive("rho_eq", rho_eq)
    bad = f"relaxation_steps must be >= 0 or NaN, got relaxation_steps={relaxation_steps!r}"
    if isinstance(relaxation_steps, (bool, str, bytes)) or relaxation_steps is None:
        raise ValueError(bad)
    try:
        tau = float(relaxation_steps)
    except (TypeError, ValueError):
        raise ValueError(bad) from None
    if not (math.isnan(tau) or tau >= 0.0):
        raise ValueError(bad)
    tl = _positive("tol", tol)
    dev = np.abs(r / req - 1.0)
    inside = dev < tl
    if tau == 0.0:
        return _out(np.zeros_like(dev))
    with np.errstate(invalid="ignore"):  # inf·0 inside the tolerance, replaced by 0 below
        t = tau * np.log(np.where(inside, tl, dev) / tl)
    return _out(np.where(inside, 0.0, t))
