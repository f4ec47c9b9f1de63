r"""The three training protocols of docs/theory.md as ``torch.optim.Optimizer`` subclasses.

Notation (docs/theory.md): the scale-invariant (SI) parameters form one vector ``w ∈ R^d`` (all
SI tensors concatenated), ``ρ = |w|`` is the norm of that whole vector, ``u = w/ρ`` its direction,
``g = g_B(w)`` the minibatch gradient, ``η`` the learning rate, ``η̃ = η/ρ²`` the effective
learning rate (ELR) and ``λ`` the weight decay.

=================  ===================================================  ===================
protocol           one step                                             hyperparameters
=================  ===================================================  ===================
``fixed-lr``       ``w ← w − η (g + λ w)``                              η, λ
``fixed-elr``      ``w ← w − η̃ ρ_t² (g + λ w)``  (η_t = η̃ ρ_t²)         η̃, λ
``fixed-sphere``   ``w' = w − η̃ ρ_t² g``,  ``w ← ρ · w'/|w'|``          η̃, ρ (no λ)
=================  ===================================================  ===================

``ρ_t`` is the norm of the SI group at the start of the step, recomputed every step. For fixed
sphere ``ρ_t`` equals the radius ``ρ`` to rounding once the group is on the sphere (after the
first step, or at once with ``project=True``); using the current norm keeps the step in
direction space at exactly the ELR ``η̃`` even on a first step taken off the sphere.

Parameter groups
----------------
* The SI group is one param group (``"si": True``), always treated as the single vector ``w``:
  its hyperparameters are ``lr`` = η (fixed LR) or ``elr`` = η̃ (fixed ELR, fixed sphere),
  ``weight_decay`` = λ (fixed LR, fixed ELR) and ``radius`` = ρ (fixed sphere). An SI tensor whose
  ``.grad`` is ``None`` counts as having a zero gradient: weight decay and the projection act on
  the whole vector.
* Non-SI trainable parameters (``other_params=``) get their own group (``"si": False``) and plain
  SGD ``p ← p − η_t (g_p + λ_o p)``, with ``η_t`` the learning rate the SI group uses in the same
  step (η; η̃ρ_t²; η̃ρ_t²) and their own weight decay ``λ_o`` (``other_weight_decay``, default 0).
  Tensors there without a gradient are skipped, as in ``torch.optim.SGD``.
* The hyperparameters live in ``param_groups`` and are read at every step (changing
  ``opt.param_groups[0]["elr"]`` changes the schedule); ``state_dict()`` / ``load_state_dict()``
  round-trip them and load with ``torch.load(weights_only=True)``. Every group also records its
  ``protocol``; loading a state dict of another protocol raises ``ValueError``.

Per-step statistics
-------------------
``step()`` stores plain Python floats in ``last_step``:

* ``rho``          ρ_t = |w| before the step;
* ``grad_sq``      ‖g_B(w)‖² of the SI group (the raw gradient, before weight decay);
* ``grad_sq_unit`` ρ_t²‖g_B(w)‖² = ‖g_B(u)‖², whose running mean estimates E‖g_B(u)‖² in the
  discrete-time radius identity (fixed LR ``ρ⁴ = η E‖g_B(u)‖²/(2λ)``, fixed ELR
  ``ρ² = η̃ E‖g_B(u)‖²/(2λ)``; docs/theory.md "Measuring a network under BatchNorm");
* ``lr``           η_t, the learning rate used in this step;
* ``norm_pre``     (fixed sphere only) |w'|, the norm of the iterate before projection, for the
  effective pressure ``p_eff = (E|w'| − ρ)/(η̃ρ³)`` (:func:`sgdthermo.theory.effective_pressure`).

All norms are accumulated in float64 (``torch._foreach_norm(..., dtype=float64)``); updates use
``torch._foreach_*`` ops on the parameters in their own dtype. Temperatures are in
:func:`sgdthermo.theory.temperature`.

Many runs at once
-----------------
:func:`step_stacked` takes one step of G optimizers of one protocol whose parameters are the
slices of stacked (G × shape) tensors, as a batched model holds them
(:class:`sgdthermo.nn.batched.StackedModel`): the same update and the same ``last_step`` as G
calls of :meth:`ProtocolOptimizer.step`, each member with its own hyperparameters and its own
ρ_t, in a few kernels over the stack instead of a few per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Optional

import torch

from ..protocols import PROTOCOLS, check_protocol

__all__ = [
    "PROTOCOLS",
    "ProtocolOptimizer",
    "FixedLR",
    "FixedELR",
    "FixedSphere",
    "make_optimizer",
    "step_stacked",
]


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _positive(name: str, value: Any) -> float:
    x = _as_float(name, value)
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{name} must be finite and positive, got {name}={value!r}")
    return x


def _nonnegative(name: str, value: Any) -> float:
    x = _as_float(name, value)
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{name} must be finite and non-negative, got {name}={value!r}")
    return x


def _sumsq64(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖t‖² over ``tensors`` as a float64 0-d tensor (float64 accumulation throughout)."""
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    norms = torch._foreach_norm(tensors, 2, dtype=torch.float64)
    dev = norms[0].device
    return torch.stack([n.to(dev) for n in norms]).square().sum()


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


class ProtocolOptimizer(torch.optim.Optimizer):
    """Common base of :class:`FixedLR`, :class:`FixedELR` and :class:`FixedSphere`.

    Not instantiated directly. Attributes: ``protocol`` ("fixed-lr" | "fixed-elr" |
    "fixed-sphere"), ``last_step`` (statistics of the latest :meth:`step`, empty before the
    first; keys ``rho``, ``grad_sq``, ``grad_sq_unit``, ``lr`` and, for fixed sphere,
    ``norm_pre``). Param group 0 is the scale-invariant group; group 1, if present, holds the
    non-SI parameters (see the module docstring).
    """

    protocol: str = ""

    def __init__(
        self,
        si_params: Iterable[torch.Tensor],
        si_hyper: dict[str, Any],
        other_params: Optional[Iterable[torch.Tensor]],
        other_weight_decay: Any,
    ) -> None:
        owd = _nonnegative("other_weight_decay", other_weight_decay)
        if isinstance(si_params, torch.Tensor):
            raise TypeError("si_params must be an iterable of Tensors, got a Tensor")
        si_list = list(si_params)
        if not si_list:
            raise ValueError("si_params is empty: the scale-invariant group needs parameters")
        groups: list[dict[str, Any]] = [
            {"params": si_list, "si": True, "protocol": self.protocol, **si_hyper}
        ]
        if other_params is not None:
            if isinstance(other_params, torch.Tensor):
                raise TypeError("other_params must be an iterable of Tensors, got a Tensor")
            other_list = list(other_params)
            if other_list:
                groups.append(
                    {
                        "params": other_list,
                        "si": False,
                        "protocol": self.protocol,
                        "weight_decay": owd,
                    }
                )
        super().__init__(groups, {})
        self.last_step: dict[str, float] = {}

    # -- groups ------------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group. Without ``"si": True`` it is a non-SI group (plain SGD at the SI group's
        η_t, ``weight_decay`` default 0); there can be only one SI group."""
        group = dict(param_group)
        si = bool(group.get("si", False))
        group["si"] = si
        if si and any(g["si"] for g in self.param_groups):
            raise ValueError("there can be only one scale-invariant (si=True) param group")
        if not si:
            group["weight_decay"] = _nonnegative("weight_decay", group.get("weight_decay", 0.0))
        group.setdefault("protocol", self.protocol)
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        group["params"] = params
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if len(tensors) != len({id(t) for t in tensors}):
            raise ValueError("a param group contains the same tensor twice")
        if si:
            for t in tensors:
                if isinstance(t, torch.Tensor) and not t.is_floating_point():
                    raise ValueError(
                        f"scale-invariant parameters must be floating point, got {t.dtype}"
                    )
        super().add_param_group(group)

    def _si_group(self) -> dict[str, Any]:
        for g in self.param_groups:
            if g["si"]:
                return g
        raise RuntimeError("optimizer has no scale-invariant param group")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Standard loading; refuses a state dict saved by another protocol or group layout."""
        saved = state_dict["param_groups"]
        for i, (g, s) in enumerate(zip(self.param_groups, saved)):
            if s.get("protocol") != self.protocol:
                raise ValueError(
                    f"state dict is for protocol {s.get('protocol')!r}, "
                    f"this optimizer is {self.protocol!r}"
                )
            if bool(s.get("si")) != g["si"]:
                raise ValueError(f"param group {i}: scale-invariant flag does not match")
        super().load_state_dict(state_dict)

    # -- measurements --------------------------------------------------------------------------

    @torch.no_grad()
    def si_norm(self) -> float:
        """ρ = |w|, the norm of the whole SI group (float64 accumulation)."""
        return math.sqrt(_sumsq64(list(self._si_group()["params"])).item())

    def effective_lr(self) -> float:
        """The effective learning rate η̃ (fixed LR: η/ρ² with the current ρ)."""
        raise NotImplementedError

    # -- the step --------------------------------------------------------------------------------

    def _eta(self, group: dict[str, Any], rho2: float) -> float:
        """η_t for this step, given ρ_t²."""
        raise NotImplementedError

    def _update_si(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        with_grad: list[torch.Tensor],
        grads: list[torch.Tensor],
        eta: float,
        stats: dict[str, float],
    ) -> None:
        """Default (fixed LR, fixed ELR): ``w ← (1 − η_t λ) w − η_t g``."""
        decay = 1.0 - eta * group["weight_decay"]
        if decay != 1.0:
            torch._foreach_mul_(params, decay)
        if with_grad:
            torch._foreach_add_(with_grad, grads, alpha=-eta)

    @staticmethod
    def _update_si_stacked(groups: list[dict[str, Any]], params: list[torch.Tensor], grads: list[torch.Tensor],
                           etas: list[float], stats: list[dict[str, float]]) -> list[Exception | None]:
        """:meth:`_update_si` of G members at once (see :func:`step_stacked`): member k's
        group ``groups[k]``, η_t ``etas[k]``, its slices of the stacked ``params`` and ``grads``.
        Returns each member's error (None: none)."""
        _sgd_stacked(params, grads, etas, [g["weight_decay"] for g in groups])
        return [None] * len(groups)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One step of the protocol (see the class docstring); fills :attr:`last_step`.

        ``closure`` (optional) re-evaluates the model and returns the loss, as in
        ``torch.optim``; its value is returned.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        group = self._si_group()
        params: list[torch.Tensor] = list(group["params"])
        with_grad = [p for p in params if p.grad is not None]
        grads = [p.grad for p in with_grad]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")

        rho2, gsq = torch.stack([_sumsq64(params), _sumsq64(grads).to(params[0].device)]).tolist()
        eta = self._eta(group, rho2)
        stats = {
            "rho": math.sqrt(rho2),
            "grad_sq": gsq,
            "grad_sq_unit": rho2 * gsq,
            "lr": eta,
        }
        self._update_si(group, params, with_grad, grads, eta, stats)

        for g in self.param_groups:
            if g["si"]:
                continue
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            gs = [p.grad for p in ps]
            if any(x.is_sparse for x in gs):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            decay = 1.0 - eta * g["weight_decay"]
            if decay != 1.0:
                torch._foreach_mul_(ps, decay)
            torch._foreach_add_(ps, gs, alpha=-eta)

        self.last_step = stats
        return loss


# ---------------------------------------------------------------------------------------------
# The three protocols
# ---------------------------------------------------------------------------------------------


class FixedLR(ProtocolOptimizer):
    r"""Fixed LR: plain SGD with weight decay, ``w ← w − η (g_B(w) + λ w)``.

    Args:
        si_params: the scale-invariant tensors (one vector w).
        lr: η, the learning rate (finite, > 0); group key ``"lr"``.
        weight_decay: λ, the weight decay = pressure p (finite, > 0); group key
            ``"weight_decay"``.
        other_params: non-SI tensors, updated by plain SGD with the same η.
        other_weight_decay: λ_o for ``other_params`` (finite, ≥ 0; default 0).

    ``effective_lr()`` is η/ρ² at the current ρ; ``last_step["lr"]`` is η.
    Temperature ``T = sqrt(ηλσ²/(2(d−1)))``.
    """

    protocol = "fixed-lr"

    def __init__(
        self,
        si_params: Iterable[torch.Tensor],
        lr: float,
        weight_decay: float,
        *,
        other_params: Optional[Iterable[torch.Tensor]] = None,
        other_weight_decay: float = 0.0,
    ) -> None:
        hyper = {
            "lr": _positive("lr", lr),
            "weight_decay": _positive("weight_decay", weight_decay),
        }
        super().__init__(si_params, hyper, other_params, other_weight_decay)

    def _eta(self, group: dict[str, Any], rho2: float) -> float:
        return float(group["lr"])

    def effective_lr(self) -> float:
        rho = self.si_norm()
        lr = float(self._si_group()["lr"])
        return lr / (rho * rho) if rho > 0.0 else math.inf


class FixedELR(ProtocolOptimizer):
    r"""Fixed ELR: ``w ← w − η̃ ρ_t² (g_B(w) + λ w)``, the LR η_t = η̃ρ_t² rescaled every step.

    Args:
        si_params: the scale-invariant tensors (one vector w, ρ_t = |w| before the step).
        elr: η̃, the effective learning rate (finite, > 0); group key ``"elr"``.
        weight_decay: λ, the weight decay = pressure p (finite, > 0); group key
            ``"weight_decay"``.
        other_params: non-SI tensors, updated by plain SGD with the same η_t = η̃ρ_t².
        other_weight_decay: λ_o for ``other_params`` (finite, ≥ 0; default 0).

    ``effective_lr()`` is η̃; ``last_step["lr"]`` is η_t = η̃ρ_t². Temperature ``T = η̃σ²/2``.
    """

    protocol = "fixed-elr"

    def __init__(
        self,
        si_params: Iterable[torch.Tensor],
        elr: float,
        weight_decay: float,
        *,
        other_params: Optional[Iterable[torch.Tensor]] = None,
        other_weight_decay: float = 0.0,
    ) -> None:
        hyper = {
            "elr": _positive("elr", elr),
            "weight_decay": _positive("weight_decay", weight_decay),
        }
        super().__init__(si_params, hyper, other_params, other_weight_decay)

    def _eta(self, group: dict[str, Any], rho2: float) -> float:
        return float(group["elr"]) * rho2

    def effective_lr(self) -> float:
        return float(self._si_group()["elr"])


class FixedSphere(ProtocolOptimizer):
    r"""Fixed sphere: ``w' = w − η̃ ρ_t² g_B(w)``, ``w ← ρ · w'/|w'|`` (no weight decay).

    The whole SI group is projected back onto the sphere of radius ρ after every step.

    Args:
        si_params: the scale-invariant tensors (one vector w; ρ_t = |w| before the step,
            equal to ``radius`` to rounding once on the sphere).
        elr: η̃, the effective learning rate (finite, > 0); group key ``"elr"``.
        radius: ρ, the radius of the sphere (finite, > 0); group key ``"radius"``.
        project: if true, rescale the group onto the sphere of radius ρ now (in place).
        other_params: non-SI tensors, updated by plain SGD with the same η_t = η̃ρ_t².
        other_weight_decay: λ_o for ``other_params`` (finite, ≥ 0; default 0).

    ``effective_lr()`` is η̃; ``last_step["lr"]`` is η_t = η̃ρ_t² and ``last_step["norm_pre"]`` is
    |w'|, for the effective pressure ``p_eff = (E|w'| − ρ)/(η̃ρ³)``. Temperature ``T = η̃σ²/2``.
    """

    protocol = "fixed-sphere"

    def __init__(
        self,
        si_params: Iterable[torch.Tensor],
        elr: float,
        radius: float,
        *,
        project: bool = False,
        other_params: Optional[Iterable[torch.Tensor]] = None,
        other_weight_decay: float = 0.0,
    ) -> None:
        hyper = {
            "elr": _positive("elr", elr),
            "radius": _positive("radius", radius),
        }
        super().__init__(si_params, hyper, other_params, other_weight_decay)
        if project:
            self.project()

    @torch.no_grad()
    def project(self) -> None:
        """Rescale the SI group in place onto the sphere of radius ρ (``radius``)."""
        group = self._si_group()
        rho = self.si_norm()
        if not (math.isfinite(rho) and rho > 0.0):
            raise ValueError(f"cannot project onto the sphere: the group norm is {rho!r}")
        torch._foreach_mul_(list(group["params"]), float(group["radius"]) / rho)

    def _eta(self, group: dict[str, Any], rho2: float) -> float:
        return float(group["elr"]) * rho2

    def _update_si(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        with_grad: list[torch.Tensor],
        grads: list[torch.Tensor],
        eta: float,
        stats: dict[str, float],
    ) -> None:
        if with_grad:
            torch._foreach_add_(with_grad, grads, alpha=-eta)  # w' = w − η_t g
        norm_pre = math.sqrt(_sumsq64(params).item())
        if norm_pre == 0.0:
            raise RuntimeError("fixed-sphere: the iterate w' has zero norm and cannot be projected")
        torch._foreach_mul_(params, float(group["radius"]) / norm_pre)
        stats["norm_pre"] = norm_pre

    @staticmethod
    def _update_si_stacked(groups: list[dict[str, Any]], params: list[torch.Tensor], grads: list[torch.Tensor],
                           etas: list[float], stats: list[dict[str, float]]) -> list[Exception | None]:
        """:meth:`_update_si` of G members at once: each member's w' = w − η_t g, then back
        onto its own sphere (its ``norm_pre`` in ``stats``)."""
        for p, g in zip(params, grads):
            p.addcmul_(g, _per_member([-eta for eta in etas], p))  # w' = w − η_t g
        norms = _sumsq64_stacked(params).sqrt().tolist()
        errors: list[Exception | None] = [None] * len(groups)
        scale = []
        for k, (norm_pre, g) in enumerate(zip(norms, groups)):
            if norm_pre == 0.0:  # as step() raises, the member's w' left as it is
                errors[k] = RuntimeError("fixed-sphere: the iterate w' has zero norm and cannot be projected")
                scale.append(1.0)
            else:
                scale.append(float(g["radius"]) / norm_pre)
                stats[k]["norm_pre"] = norm_pre
        for p in params:
            p.mul_(_per_member(scale, p))
        return errors

    def effective_lr(self) -> float:
        return float(self._si_group()["elr"])


# ---------------------------------------------------------------------------------------------
# Many runs at once
# ---------------------------------------------------------------------------------------------


def _per_member(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """``values`` (one per member) as a tensor that broadcasts over a stacked ``like``
    (G × shape), in ``like``'s dtype, as a scalar of ``step()`` is cast to it."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


def _sgd_stacked(params: list[torch.Tensor], grads: list[torch.Tensor | None], etas: list[float],
                 weight_decays: list[float]) -> None:
    """``p ← (1 − η_t λ) p − η_t g`` of every member (its η_t and λ) on the stacked ``params``;
    tensors without a gradient are skipped, as ``step()`` skips them."""
    decay = [1.0 - eta * wd for eta, wd in zip(etas, weight_decays)]
    step = [-eta for eta in etas]
    for p, g in zip(params, grads):
        if g is None:
            continue
        if any(x != 1.0 for x in decay):
            p.mul_(_per_member(decay, p))
        p.addcmul_(g, _per_member(step, p))


def _sumsq64_stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Each member's Σ‖t‖² over the stacked ``tensors`` (G × shape each): a float64 (G,)
    tensor, accumulated as :func:`_sumsq64` accumulates one member's."""
    G = tensors[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(t.reshape(G, -1), dim=1, dtype=torch.float64) for t in tensors])
    return norms.square().sum(0)


@torch.no_grad()
def step_stacked(optimizers: list[ProtocolOptimizer], params: list[list[torch.Tensor]],
                 grads: list[list[torch.Tensor | None]]) -> list[Exception | None]:
    """One :meth:`ProtocolOptimizer.step` of each of G optimizers of one protocol class, whose
    parameters are the member slices of stacked tensors: ``params[j]`` holds param group j of
    every member, as stacked (G × ...) tensors whose slice k is member k's, either one per
    parameter or the group's parameters flattened side by side in fewer (the update is the
    same: a group's tensors together are one vector); ``grads[j]`` the matching stacked
    gradients (None: zero). The update and ``last_step`` of every member are those of its own
    ``step()``, each with its own hyperparameters (read now, as ``step()`` reads them) and its
    own ρ_t; only the order of summation inside the norms differs. A member's parameter whose
    ``.grad`` would be ``None`` in ``step()`` is one with a zero gradient here.

    Returns each member's error, None where it has none: a fixed-sphere member whose iterate
    has zero norm gets the ``RuntimeError`` of its ``step()`` and is left unprojected, the
    others step. Optimizers of different classes or group sizes raise ``ValueError``. Step
    hooks are not run (the caller steps members that have any alone).
    """
    opts = list(optimizers)
    if not opts:
        return []
    cls = type(opts[0])
    G = len(opts)
    layout = [(g["si"], sum(p.numel() for p in g["params"])) for g in opts[0].param_groups]
    for k, opt in enumerate(opts):
        if type(opt) is not cls or not isinstance(opt, ProtocolOptimizer):
            raise ValueError(f"optimizer {k} is a {type(opt).__name__}, optimizer 0 a {cls.__name__}: "
                             "a stacked step takes one protocol")
        if [(g["si"], sum(p.numel() for p in g["params"])) for g in opt.param_groups] != layout:
            raise ValueError(f"optimizer {k} has other param groups than optimizer 0")
    if len(params) != len(layout) or len(grads) != len(layout) or any(
            sum(t.numel() for t in ts) != G * n or len(gs) != len(ts) for ts, gs, (_, n) in zip(params, grads, layout)):
        raise ValueError("the stacked tensors do not hold the optimizers' param groups")
    si = next(j for j, (flag, _) in enumerate(layout) if flag)
    ps = list(params[si])
    gs = [g if g is not None else torch.zeros_like(p) for p, g in zip(ps, grads[si])]
    if any(g.is_sparse for g in gs):
        raise RuntimeError(f"{cls.__name__} does not support sparse gradients")
    rho2s, gsqs = torch.stack([_sumsq64_stacked(ps), _sumsq64_stacked(gs).to(ps[0].device)]).tolist()
    si_groups = [opt.param_groups[si] for opt in opts]
    etas = [opt._eta(g, rho2) for opt, g, rho2 in zip(opts, si_groups, rho2s)]
    stats = [{"rho": math.sqrt(rho2), "grad_sq": gsq, "grad_sq_unit": rho2 * gsq, "lr": eta}
             for rho2, gsq, eta in zip(rho2s, gsqs, etas)]
    errors = cls._update_si_stacked(si_groups, ps, gs, etas, stats)
    etas = [0.0 if err is not None else eta for eta, err in zip(etas, errors)]  # step() raised before these
    for j, (ts, tgs) in enumerate(zip(params, grads)):
        if j != si:
            _sgd_stacked(ts, tgs, etas, [opt.param_groups[j]["weight_decay"] for opt in opts])
    for opt, st, err in zip(opts, stats, errors):
        if err is None:
            opt.last_step = st
    return errors


# ---------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------


def make_optimizer(
    protocol: str,
    si_params: Iterable[torch.Tensor],
    *,
    lr: float,
    weight_decay: Optional[float] = None,
    radius: Optional[float] = None,
    other_params: Optional[Iterable[torch.Tensor]] = None,
    other_weight_decay: float = 0.0,
    project: bool = False,
) -> ProtocolOptimizer:
    """The optimizer of ``protocol`` ("fixed-sphere" | "fixed-elr" | "fixed-lr").

    ``lr`` is the protocol's learning-rate hyperparameter: η for fixed LR, η̃ for fixed ELR and
    fixed sphere (the same convention as :func:`sgdthermo.theory.temperature`).
    ``weight_decay`` = λ is required for fixed LR / ELR; fixed sphere takes ``radius`` = ρ
    instead (and refuses a non-zero weight decay; ``project=True`` puts the group on the
    sphere now). ``other_params`` / ``other_weight_decay``: see the module docstring.
    Bad values raise a one-line ``ValueError`` naming the value.
    """
    check_protocol(protocol)
    if protocol == "fixed-sphere":
        if radius is None:
            raise ValueError("protocol 'fixed-sphere' requires radius=...")
        if weight_decay is not None and _as_float("weight_decay", weight_decay) != 0.0:
            raise ValueError(
                f"protocol 'fixed-sphere' has no weight decay, got weight_decay={weight_decay!r}"
            )
        return FixedSphere(
            si_params,
            lr,
            radius,
            project=project,
            other_params=other_params,
            other_weight_decay=other_weight_decay,
        )
    if weight_decay is None:
        raise ValueError(f"protocol {protocol!r} requires weight_decay=...")
    if radius is not None:
        raise ValueError(
            f"radius is only for 'fixed-sphere', got radius={radius!r} for protocol {protocol!r}"
        )
    if project:
        raise ValueError(f"project=True is only for 'fixed-sphere', not {protocol!r}")
    cls = FixedLR if protocol == "fixed-lr" else FixedELR
    return cls(
        si_params,
        lr,
        weight_decay,
        other_params=other_params,
        other_weight_decay=other_weight_decay,
    )
