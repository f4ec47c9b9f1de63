r"""The three training protocols: their names, hyperparameters and one validation of them.

docs/theory.md, "The three training protocols":

=============  ========================================================  ====================
protocol       one SGD step                                              hyperparameters
=============  ========================================================  ====================
fixed sphere   :math:`w \leftarrow \rho\,\mathrm{normalize}(w - \tilde\eta\rho^2 g_B(w))`   ELR η̃, radius ρ
fixed ELR      :math:`w \leftarrow w - \tilde\eta\rho_t^2 (g_B(w) + \lambda w)`          ELR η̃, WD λ
fixed LR       :math:`w \leftarrow w - \eta (g_B(w) + \lambda w)`                        LR η, WD λ
=============  ========================================================  ====================

Every module names a protocol by these strings. ``lr`` is η for fixed LR and η̃ for the
other two; the second grid axis is the weight decay ``wd`` = λ, or for fixed sphere the
``radius`` = ρ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError

__all__ = ["PROTOCOLS", "REPORT_ORDER", "check_protocol", "second_axis", "lr_symbol",
           "SECOND_SYMBOL", "validate_hyperparameters"]

#: The protocols in the paper's order (most constrained first). Runs execute in this order.
PROTOCOLS: tuple[str, str, str] = ("fixed-sphere", "fixed-elr", "fixed-lr")
#: The order reports and tables show them: plain SGD first, the protocol people train with.
REPORT_ORDER: tuple[str, str, str] = ("fixed-lr", "fixed-elr", "fixed-sphere")
#: Symbol of the second hyperparameter, by column name.
SECOND_SYMBOL: dict[str, str] = {"wd": "λ", "radius": "ρ"}


def check_protocol(protocol: Any) -> str:
    """Return ``protocol`` if it is one of :data:`PROTOCOLS`, else raise :class:`ConfigError`."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return protocol


def second_axis(protocol: str) -> str:
    """Column of the second hyperparameter: ``radius`` for fixed sphere, else ``wd``."""
    return "radius" if protocol == "fixed-sphere" else "wd"


def lr_symbol(protocol: str) -> str:
    """η for fixed LR, η̃ (the effective learning rate) for fixed ELR and fixed sphere."""
    return "η" if protocol == "fixed-lr" else "η̃"


def _values(v: Any) -> list[Any]:
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        return [v]
    return list(v)


def _check_positive(name: str, values: Any) -> None:
    for v in _values(values):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if not ok:
            shown = f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else v
            raise ConfigError(f"--{name} {shown}: must be a positive finite number")


def validate_hyperparameters(protocol: Any, *, lr: Any, wd: Any = None, radius: Any = None) -> None:
    """Check a protocol and its hyperparameters (scalars or sequences of values).

    ``lr`` > 0 always; fixed sphere needs ``radius`` > 0 and no ``wd``; fixed ELR and fixed
    LR need ``wd`` > 0 (no stationary radius without weight decay) and no ``radius``.
    Raises :class:`ConfigError` naming the bad value and what is allowed.
    """
    check_protocol(protocol)
    _check_positive("lr", lr)
    if protocol == "fixed-sphere":
        if radius is None:
            raise ConfigError("fixed-sphere needs --radius (the fixed radius ρ), not --wd")
        if wd is not None:
            raise ConfigError("fixed-sphere takes --radius, not --wd (it has no weight decay)")
        _check_positive("radius", radius)
        return
    if wd is None:
        raise ConfigError(f"{protocol} needs --wd (weight decay λ > 0)")
    if radius is not None:
        raise ConfigError(f"{protocol} takes --wd, not --radius")
    if any(v == 0 for v in _values(wd)):
        raise ConfigError(f"--wd 0: {protocol} needs λ > 0 (no stationary radius without weight decay)")
    _check_positive("wd", wd)
