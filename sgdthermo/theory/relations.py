r"""Maxwell relations, adiabats and isotherms in hyperparameter space.

docs/theory.md, "Predictions to verify" (V3, V4). ``x = log lr``, ``y = log wd`` (fixed sphere:
``y = log radius``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..protocols import check_protocol
from ._util import FloatOrArray
from ._util import as_array as _f
from ._util import as_out as _out
from ._util import require as _require
from .gas import gas_constant, temperature

__all__ = ["maxwell_prediction", "CoefficientTarget", "maxwell_coefficient_targets", "quadratic_features",
           "quadratic_gradient", "maxwell_ratio", "adiabat_invariant", "adiabat_coordinates", "adiabat", "adiabat_lr",
           "isotherm_invariant", "isotherm", "isotherm_lr"]


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
    ``y`` (names of the log-variables), ``y_param`` ("wd" or "radius"), ``weights``, ``value``,
    ``relation`` (human-readable) and ``normalised`` (the relation divided by its value, = 1,
    as :func:`maxwell_ratio` evaluates it).
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
            "normalised": "(∂S/∂log η − ∂S/∂log λ)/R = 1",
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
            "normalised": "(∂S/∂log λ)/(−R) = 1",
        }
    return {
        "protocol": protocol,
        "x": "log lr (log η̃)",
        "y": "log radius (log ρ)",
        "y_param": "radius",
        "weights": (0.0, 1.0),
        "value": _out(_f(d) - 1.0),
        "relation": "∂S/∂log ρ = d−1 at fixed η̃  ⇔  (∂S/∂V)_T = (∂p/∂T)_V, p = (d−1)T/ρ²",
        "normalised": "(∂S/∂log ρ)/(d−1) = 1",
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
    label: str = ""  # the name as reports print it, with typographic minus signs

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

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
        # ∂S/∂x − ∂S/∂y = (a1 − a2) + (2a3 − a4)x + (a4 − 2a5)y = R
        return (
            CT("(a1-a2)/R", (0, 1, -1, 0, 0, 0), R, 1.0, "(a1 − a2)/R"),
            CT("(2a3-a4)/R", (0, 0, 0, 2, -1, 0), R, 0.0, "(2a3 − a4)/R"),
            CT("(a4-2a5)/R", (0, 0, 0, 0, 1, -2), R, 0.0, "(a4 − 2a5)/R"),
        )
    if protocol == "fixed-elr":
        # ∂S/∂y = a2 + a4x + 2a5y = −R
        return (
            CT("a2/(-R)", (0, 0, 1, 0, 0, 0), -R, 1.0, "a2/(−R)"),
            CT("a4/R", (0, 0, 0, 0, 1, 0), R, 0.0),
            CT("a5/R", (0, 0, 0, 0, 0, 1), R, 0.0),
        )
    # ∂S/∂log ρ = a2 + a4x + 2a5y = d − 1 at fixed η̃
    return (
        CT("a2/(d-1)", (0, 0, 1, 0, 0, 0), d - 1.0, 1.0, "a2/(d−1)"),
        CT("a4/(d-1)", (0, 0, 0, 0, 1, 0), d - 1.0, 0.0, "a4/(d−1)"),
        CT("a5/(d-1)", (0, 0, 0, 0, 0, 1), d - 1.0, 0.0, "a5/(d−1)"),
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


def adiabat_coordinates(protocol: str, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Log-coordinates of the adiabats: ``a = log(invariant)`` and ``b`` = y, from ``x = log lr``
    and ``y = log wd`` (fixed sphere: ``log radius``).

    fixed-lr: ``a = x`` (log η); fixed-elr: ``a = 2x − y`` (log η̃²/λ); fixed-sphere:
    ``a = x + 2y`` (log η̃ρ²): the log of :func:`adiabat_invariant`, taken in log space so that
    no precision is lost. Returns ``(a, b, a_label, b_label)``.
    """
    check_protocol(protocol)
    x_, y_ = _f(x), _f(y)
    if protocol == "fixed-lr":
        return x_, y_, "log η", "log λ"
    if protocol == "fixed-elr":
        return 2 * x_ - y_, y_, "log(η̃²/λ)", "log λ"
    return x_ + 2 * y_, y_, "log(η̃ρ²)", "log ρ"


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
