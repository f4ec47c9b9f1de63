r"""A thermometer for any network, any optimizer, any training loop.

:class:`Thermometer` attaches to an ``nn.Module`` and a ``torch.optim.Optimizer``::

    th = Thermometer(model, optimizer, log_dir="run/thermo")
    for step, (x, y) in enumerate(loader, 1):
        loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward(); optimizer.step()
        th.step()                                     # cheap: reads weights and gradients
        if step % 200 == 0:
            th.log(step, noise_batches=lambda: next(noise_iter))   # optional: tr Σ from K batches
    df = th.to_frame()                                # one row per (log point, group)

**Groups.** The scale-invariant groups are found by testing the model's forward pass on the
first batch it sees (:func:`sgdthermo.nn.models.scale_invariant_groups`): every weight whose
scaling leaves the outputs unchanged (a layer followed by BatchNorm, LayerNorm, GroupNorm or
RMSNorm) is a group of its own, tensors invariant only together form the group ``"joint"``.
``groups=`` overrides the detection (``{name: [parameters]}``). The other trainable parameters
are listed (:attr:`Thermometer.others`), never dropped. Rows: one per group and one for the
whole scale-invariant set, ``group == "all"``.

**Per step** (:meth:`Thermometer.step`, after ``optimizer.step()``), for each group with
weights :math:`w` (before the step :math:`w_0`), :math:`\rho = |w|` and
:math:`\Delta = w - w_0`: the angle :math:`\theta = \angle(w_0, w)`, the radial and tangential
parts of the update (:math:`\Delta_r = \Delta\cdot w_0/|w_0|`,
:math:`\Delta_t^2 = |\Delta|^2 - \Delta_r^2`), and the minibatch gradient on the unit sphere
:math:`\|g_B(u)\|^2 = \rho_0^2\|g_B(w_0)\|^2` (the ``.grad`` the step used). All on the device,
without synchronising; nothing is read back until :meth:`log`.

**Per log point** (:meth:`Thermometer.log`): the interval's means — ``rho``, ``elr`` (the
effective learning rate: :math:`\eta/\rho^2` for SGD-type updates, :math:`\eta/\rho` for Adam-type
ones, whose update does not scale with ρ; η̃ for the protocols), ``angular_update`` (the RMS angle
per step, :math:`\sqrt{\overline{\theta^2}}`), ``radial_update``, ``tangential_update``,
``grad_sq_unit`` — the hyperparameters read from the optimizer's param groups at every step
(schedules are followed), and the predictions of :mod:`sgdthermo.theory.equilibrium` for the
optimizer in use: ``rho_pred``, ``angular_update_pred``, ``relaxation_steps``, with a
``verdict`` per group. With ``noise_batches`` (K batches at frozen weights, BatchNorm statistics
restored): ``grad_sq`` (:math:`\|\nabla L\|^2`), ``trace_cov`` with ``trace_cov_err``,
``sigma2`` (:math:`\rho^2\,\mathrm{tr}\Sigma/(d-1)` with ρ at the log point, ``rho_now``, where
the noise is measured) and ``T`` where the theory defines it.

**Verdicts.** ``diverging``: non-finite weights or gradients. ``interpolating``: the gradient on
the sphere and the radius falling at each of the last :data:`TREND_POINTS` log points (the
gradient by more than :data:`INTERPOLATION_DROP` in all) with the radius not above its
prediction: the loss is going to zero and there is no stationary state. ``equilibrated``: a claim, made only when
the angular update is within ``tolerance`` of its prediction (the rotational equilibrium, which
does not depend on the gradient's size) and the radius has stopped drifting, either within
``tolerance`` of its prediction or settled over the last :data:`TREND_POINTS` log points (the
radius prediction also assumes gradients uncorrelated from step to step, which a real loss
surface need not give; the ``reason`` then says how far off it settled). Once equilibrated, a
group keeps the verdict while it stays within :data:`HYSTERESIS` × ``tolerance``, so that
fluctuations of ρ between log points about the edge do not make the verdict flicker. ``approaching``: a prediction exists but is not met yet;
``steps_left`` is the expected number of steps to get within ``tolerance`` along the
predicted relaxation. ``unknown``: no prediction for this optimizer (the measured quantities are
still reported).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io, theory

__all__ = ["Thermometer", "StackedReader", "optimizer_kind", "VERDICTS", "FRAME_COLUMNS", "INTERPOLATION_DROP",
           "TREND_POINTS", "HYSTERESIS"]

#: The verdicts a group can get.
VERDICTS: tuple[str, ...] = ("approaching", "equilibrated", "interpolating", "diverging", "unknown")
#: Columns every row has (in this order first).
FRAME_COLUMNS: tuple[str, ...] = (
    "step", "group", "d", "optimizer", "lr", "wd", "rho", "rho_pred", "elr", "angular_update",
    "angular_update_pred", "radial_update", "tangential_update", "grad_sq_unit", "relaxation_steps",
    "steps_left", "verdict", "reason",
)
#: Relative fall of the gradient on the sphere and of the radius that marks interpolation.
INTERPOLATION_DROP: float = 0.3
#: Log points over which trends (drift, interpolation) are judged.
TREND_POINTS: int = 6
#: Once equilibrated, a group keeps the verdict until it is off by more than this many
#: tolerances (so that log-to-log fluctuations about the edge do not make it flicker).
HYSTERESIS: float = 1.5


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """``"sgd"``, ``"adamw"``, ``"adam"`` (L2 weight decay), a protocol of
    :mod:`sgdthermo.nn.optim` (``"fixed-lr"``, ...), or ``"unknown"``."""
    from .optim import ProtocolOptimizer

    if isinstance(optimizer, ProtocolOptimizer):
        return optimizer.protocol
    if isinstance(optimizer, torch.optim.AdamW):
        return "adamw"
    if isinstance(optimizer, torch.optim.Adam):
        decoupled = any(g.get("decoupled_weight_decay", False) for g in optimizer.param_groups)
        return "adamw" if decoupled else "adam"
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    return "unknown"


def _hyper(kind: str, group: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of one optimizer param group that the predictions need."""
    if kind == "sgd":
        return {"lr": float(group["lr"]), "wd": float(group.get("weight_decay", 0.0)),
                "momentum": float(group.get("momentum", 0.0)), "dampening": float(group.get("dampening", 0.0)),
                "nesterov": bool(group.get("nesterov", False))}
    if kind in ("adamw", "adam"):
        b1, b2 = group.get("betas", (0.9, 0.999))
        return {"lr": float(group["lr"]), "wd": float(group.get("weight_decay", 0.0)), "betas": (float(b1), float(b2))}
    if kind == "fixed-lr":
        return {"lr": float(group["lr"]), "wd": float(group["weight_decay"])}
    if kind == "fixed-elr":
        return {"lr": float(group["elr"]), "wd": float(group["weight_decay"])}
    if kind == "fixed-sphere":
        return {"lr": float(group["elr"]), "wd": float("nan"), "radius": float(group["radius"])}
    return {"lr": float(group.get("lr", float("nan"))), "wd": float(group.get("weight_decay", float("nan")))}


class _Group:
    """One group's tensors (by position in the thermometer's flat tensor list), its optimizer
    param group, its accumulators and its history of rows."""

    def __init__(self, name: str, params: list[nn.Parameter], opt_group: int) -> None:
        self.name, self.params, self.opt_group = name, params, opt_group
        self.d = int(sum(p.numel() for p in params))
        self.history: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        # n, Σθ², Σρ, Σρ², Σ Δ_r, Σ Δ_t, Σ‖g_B(u)‖², Σ‖a‖² (Adam-type normalised update), nonfinite
        self.acc = torch.zeros(ACC_TERMS, dtype=torch.float64)


#: Accumulated terms per group (see :func:`step_terms`).
ACC_TERMS: int = 9
#: Steps whose per-tensor norms are held on the device before they are reduced to the groups'
#: accumulators (3 numbers per tensor and step).
STEP_BUFFER: int = 256


def step_terms(sq: torch.Tensor, psq: torch.Tensor, delta2: torch.Tensor, gsq: torch.Tensor,
               eta_wd: torch.Tensor | float = 0.0, eta: torch.Tensor | float = 1.0, adam: bool = False) -> torch.Tensor:
    r"""The accumulator increments of steps, elementwise over any shape, from
    :math:`|w|^2` (``sq``), :math:`|w_0|^2` (``psq``), :math:`|\Delta|^2` with
    :math:`\Delta = w - w_0` (``delta2``) and :math:`\|g_B(w_0)\|^2` (``gsq``); returns the
    :data:`ACC_TERMS` terms stacked on a new last axis:

    .. math::
        \Delta_r = \frac{|w|^2 - |w_0|^2 - |\Delta|^2}{2|w_0|},\quad
        \Delta_t = \sqrt{|\Delta|^2 - \Delta_r^2},\quad
        \theta = \operatorname{atan2}(\Delta_t, |w_0| + \Delta_r),

    :math:`\|g_B(u)\|^2 = |w_0|^2\|g_B(w_0)\|^2`, and for Adam-type updates
    :math:`w = (1-\eta\lambda)w_0 - \eta a`, so :math:`\|a\|^2 = \|\Delta + \eta\lambda w_0\|^2/\eta^2`
    (``eta_wd`` = ηλ for decoupled decay, 0 otherwise). Terms: 1, θ², ρ, ρ², Δ_r, Δ_t,
    ‖g_B(u)‖², ‖a‖², and 1 for a step with a non-finite input (counted, its terms zeroed)."""
    rho0 = psq.clamp_min(1e-300).sqrt()
    rd = (sq - psq - delta2) / 2  # Δ·w₀
    radial = rd / rho0
    tangential = (delta2 - radial**2).clamp_min(0.0).sqrt()
    theta2 = torch.atan2(tangential, rho0 + radial) ** 2
    zero = torch.zeros_like(sq)
    if adam:
        a2 = (delta2 + 2 * eta_wd * rd + eta_wd**2 * psq) / torch.as_tensor(eta, dtype=sq.dtype, device=sq.device) \
            .clamp_min(1e-300) ** 2
    else:
        a2 = zero
    bad = ~(torch.isfinite(sq) & torch.isfinite(psq) & torch.isfinite(delta2) & torch.isfinite(gsq))
    vals = torch.stack([torch.ones_like(sq), theta2, sq.sqrt(), sq, radial, tangential, psq * gsq, a2, zero], dim=-1)
    vals = torch.where(torch.isfinite(vals) & ~bad.unsqueeze(-1), vals, torch.zeros_like(vals))
    vals[..., 0] = 1.0  # a bad step is counted, not summed
    vals[..., -1] = bad.to(sq.dtype)
    return vals


class _StepReader:
    """The per-step readout of every group's tensors, vectorised: per step fused multi-tensor
    kernels (``torch._foreach_*``) write |w_i| (float64), |Δ_i| and |g_i| of every tensor i
    into a row of a device buffer (not read back) and keep a copy of the weights for the next
    step. :meth:`flush` reduces the held rows to per-group terms (a membership matrix,
    :func:`step_terms`) in one pass."""

    def __init__(self, tensors: list[torch.Tensor], membership: torch.Tensor,
                 before: list[torch.Tensor] | None = None) -> None:
        self.tensors = tensors
        self.n = len(tensors)
        dev = tensors[0].device
        self.member = membership.to(dev)  # (groups + 1) × n, the last row all ones
        self.prev = [(t if before is None else b).detach().clone() for t, b in zip(tensors, before or tensors)]
        self.last_sq = torch.stack(torch._foreach_norm(self.prev, 2, dtype=torch.float64)) ** 2
        self.zeros = [torch.zeros((), dtype=t.dtype, device=dev) for t in tensors]
        self.buf = torch.zeros(STEP_BUFFER, 3 * self.n, dtype=torch.float64, device=dev)
        self.stage = torch.zeros(3 * self.n, dtype=torch.float64, device=dev)
        self.slots = list(self.stage.unbind())  # 0-d views: one multi-tensor copy fills the row
        self.rows = 0
        self.hyper: list[tuple[float, ...]] = []

    @torch.no_grad()
    def read(self, hyper: tuple[float, ...] | None) -> None:
        cur = [t.detach() for t in self.tensors]
        norms = torch._foreach_norm(cur, 2, dtype=torch.float64)
        torch._foreach_sub_(self.prev, cur)  # −Δ
        dnorms = torch._foreach_norm(self.prev)
        grads = [t.grad if t.grad is not None else z for t, z in zip(self.tensors, self.zeros)]
        gnorms = torch._foreach_norm(grads)
        torch._foreach_copy_(self.slots, [*norms, *dnorms, *gnorms])
        self.buf[self.rows].copy_(self.stage)
        torch._foreach_copy_(self.prev, cur)
        if hyper is not None:
            self.hyper.append(hyper)
        self.rows += 1

    @property
    def full(self) -> bool:
        return self.rows >= STEP_BUFFER

    @torch.no_grad()
    def flush(self, adam: bool, opt_of_group: list[int]) -> torch.Tensor:
        """The summed terms of the held steps, (groups + 1) × :data:`ACC_TERMS` on the CPU (the
        last row: the whole set, as one vector under plain SGD-type bookkeeping)."""
        R, n = self.rows, self.n
        if R == 0:
            return torch.zeros(self.member.shape[0], ACC_TERMS, dtype=torch.float64)
        per = self.buf[:R].view(R, 3, n) ** 2  # |w_i|², |Δ_i|², |g_i|²
        psq_t = torch.cat([self.last_sq[None], per[:-1, 0]])  # |w_{0,i}|²
        self.last_sq = per[-1, 0].clone()
        sums = torch.cat([per, psq_t[:, None]], dim=1) @ self.member.T  # R × 4 × (groups + 1)
        sq, delta2, gsq, psq = sums.unbind(1)
        if adam and self.hyper:
            h = torch.tensor(self.hyper, dtype=torch.float64, device=sq.device)  # R × (2 per opt group)
            cols = torch.tensor(opt_of_group, device=sq.device)
            eta_wd, eta = h[:, 2 * cols], h[:, 2 * cols + 1]
            terms = step_terms(sq[:, :-1], psq[:, :-1], delta2[:, :-1], gsq[:, :-1], eta_wd, eta, adam=True)
            terms = torch.cat([terms, step_terms(sq[:, -1:], psq[:, -1:], delta2[:, -1:], gsq[:, -1:])], dim=1)
        else:
            terms = step_terms(sq, psq, delta2, gsq)
        self.rows, self.hyper = 0, []
        return terms.sum(0).cpu()


class StackedReader:
    """The per-step read-out (:meth:`Thermometer.step`) of G thermometers whose tensors lie in
    a stack, as a batched model holds them (:class:`sgdthermo.nn.batched.StackedModel`):
    ``flat`` is a G × d view whose row k is thermometer k's read-out tensors (its groups'
    tensors in order) side by side, ``grad`` the same view of their gradients. Each step's
    per-tensor norms of every member are a few kernels over the stack (each accumulated in
    float64), written into each member's own buffer, and the members' entropy
    queues take their snapshots together (:func:`sgdthermo.nn.measure.push_together`): every
    thermometer ends as its own :meth:`Thermometer.step` calls would leave it (only the order
    of summation inside the norms differs).

    The previous step's weights are held as one G × d tensor: each member's read-out views
    its row until :meth:`release` gives it storage of its own again. Thermometers of Adam-type
    optimizers (whose read-out also records hyperparameters) or not yet set up are refused
    with a ValueError, as are tensors that are not the rows of ``flat``.
    """

    def __init__(self, thermometers: Sequence["Thermometer"], flat: torch.Tensor, grad: torch.Tensor) -> None:
        self.thermometers = list(thermometers)
        self.flat, self.grad = flat, grad
        G = len(self.thermometers)
        if flat.dim() != 2 or flat.shape[0] != G or grad.shape != flat.shape:
            raise ValueError(f"flat {tuple(flat.shape)} and grad {tuple(grad.shape)}: need G × d for G = {G}")
        sizes = [t.numel() for t in self.thermometers[0]._reader.tensors] if self.thermometers[0]._reader else []
        for k, th in enumerate(self.thermometers):
            r = th._reader
            if r is None or not th.groups:
                raise ValueError(f"thermometer {k} has not read a step yet: no groups")
            if th.kind in ("adamw", "adam"):
                raise ValueError(f"thermometer {k} measures an Adam-type optimizer: read it alone")
            offs = [0]
            for t in r.tensors:
                offs.append(offs[-1] + t.numel())
            if ([t.numel() for t in r.tensors] != sizes or offs[-1] != flat.shape[1]
                    or any(t.data_ptr() != flat[k, o:].data_ptr() for t, o in zip(r.tensors, offs))):
                raise ValueError(f"thermometer {k}: its tensors are not row {k} of the stack")
        self.spans = list(zip(offs[:-1], offs[1:]))  # each tensor's columns
        with torch.no_grad():
            self.prev = torch.stack([torch.cat([p.reshape(-1) for p in th._reader.prev]) for th in self.thermometers])
        for k, th in enumerate(self.thermometers):
            row = self.prev[k]
            th._reader.prev = [row[o:o + t.numel()].view_as(t) for t, o in zip(th._reader.tensors, offs[:-1])]

    @torch.no_grad()
    def read(self, steps: Sequence[int], members: Sequence[int]) -> None:
        """Read the step just taken for the members ``members`` (indices), member k at its
        training step ``steps[k]``: :meth:`Thermometer.step` of each. The previous weights of
        every member move on (a member left out is expected to leave the stack)."""
        from .measure import push_together

        self.prev.sub_(self.flat)  # −Δ
        # member k's row: |w_i|, |Δ_i|, |g_i| of its n tensors, each norm accumulated in float64
        stage = torch.stack([torch.linalg.vector_norm(x[:, a:b], dim=1, dtype=torch.float64)
                             for x in (self.flat, self.prev, self.grad) for a, b in self.spans], dim=1)
        self.prev.copy_(self.flat)
        snap = []
        for k in members:
            th = self.thermometers[k]
            r = th._reader
            th._steps = int(steps[k])
            r.buf[r.rows].copy_(stage[k])
            r.rows += 1
            if r.full:
                th._flush()
            if th.queue is not None and th.queue.wants(th._steps):
                snap.append(k)
        if snap:
            push_together([self.thermometers[k].queue for k in snap], [self.thermometers[k]._steps for k in snap],
                          self.flat[torch.tensor(snap, device=self.flat.device)])

    def release(self) -> None:
        """Give every member's read-out storage of its own for its previous weights."""
        for th in self.thermometers:
            th._reader.prev = [p.clone() for p in th._reader.prev]


class Thermometer:
    """Measure any network under any optimizer, with the theory's predictions next to it.

    Parameters
    ----------
    model, optimizer : the network and its ``torch.optim.Optimizer`` (any; predictions for
        ``SGD`` (momentum, Nesterov, coupled weight decay), ``AdamW``, ``Adam`` (L2 weight
        decay) and the protocol optimizers of :mod:`sgdthermo.nn.optim`).
    log_dir : folder for ``thermo.csv`` (rewritten at every log point) and, at :meth:`close`,
        ``thermo.parquet`` (with ``parquet=True``; needs pyarrow) and ``groups.json``.
    groups : ``{name: [parameters]}`` instead of the detection.
    example : a batch for the detection now (a tensor, a tuple of positional inputs, or a
        mapping of keyword inputs); by default the first batch the model sees is used.
    loss_fn : ``loss_fn(model, batch) -> loss`` for noise batches (default: cross-entropy of
        ``model(batch[0])`` against ``batch[1]``).
    noise_k : noise batches per log point when :meth:`log` gets ``noise_batches``.
    tolerance : relative distance to the predictions within which a group is ``equilibrated``.
    queue_size, queue_every, queue_dtype, entropy_method, queue_max_every : an entropy queue of
        the whole scale-invariant set (off with ``queue_size=0``, the default; see
        :class:`sgdthermo.nn.measure.EntropyQueue`, whose ``max_stride`` is ``queue_max_every``).
    tensorboard : also write the scalars with ``torch.utils.tensorboard`` to ``log_dir``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, log_dir: str | os.PathLike | None = None,
                 groups: Mapping[str, Sequence[nn.Parameter]] | None = None, example: Any = None,
                 loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None, noise_k: int = 8,
                 tolerance: float = 0.1, queue_size: int = 0, queue_every: int | str = "auto",
                 queue_dtype: str = "float32", entropy_method: str | None = None, queue_max_every: int | None = None,
                 tensorboard: bool = False,
                 parquet: bool = False, seed: int = 0) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError("the model has no trainable parameters (frozen): nothing to measure")
        if noise_k < 2:
            raise ValueError(f"noise_k {noise_k}: must be at least 2")
        if not 0 < tolerance < 1:
            raise ValueError(f"tolerance {tolerance}: must be in (0, 1)")
        self.model, self.optimizer = model, optimizer
        self.kind = optimizer_kind(optimizer)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.loss_fn = loss_fn or _default_loss
        self.noise_k, self.tolerance = int(noise_k), float(tolerance)
        self.parquet, self.seed = bool(parquet), int(seed)
        self.queue_cfg = (int(queue_size), queue_every, queue_dtype, entropy_method, queue_max_every)
        self.rows: list[dict[str, Any]] = []
        self.groups: dict[str, _Group] = {}
        self.others: list[str] = []
        self.queue = None
        self._hook = None
        self._writer = None
        self._names = {id(p): n for n, p in model.named_parameters()}
        self._opt_index = {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
        self._steps = 0
        self._all = torch.zeros(ACC_TERMS, dtype=torch.float64)
        self._reader: _StepReader | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.log_dir))
        if groups is not None:
            self._set_groups({str(k): list(v) for k, v in groups.items()}, None)
        elif example is not None:
            self._detect(*_as_inputs(example))
        else:  # the first batch the model sees
            self._pending = {id(p): p.detach().clone() for p in model.parameters() if p.requires_grad}
            self._hook = model.register_forward_pre_hook(self._capture, with_kwargs=True)

    # ------------------------------------------------------------------ groups
    def _capture(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._hook.remove()
        self._hook = None
        self._captured = (tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args),
                          {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()})

    def _detect(self, args: tuple, kwargs: dict, before: dict[int, torch.Tensor] | None = None) -> None:
        from .models import scale_invariant_groups

        found, _ = scale_invariant_groups(self.model, args, kwargs)
        if not found:
            raise ValueError("no scale-invariant parameters found: the model has no weights followed by a "
                             "normalisation layer (BatchNorm, LayerNorm, GroupNorm, RMSNorm); pass groups= to name them")
        self._set_groups(found, before)

    def _set_groups(self, found: dict[str, list[nn.Parameter]], before: dict[int, torch.Tensor] | None) -> None:
        params = {id(p) for p in self.model.parameters()}
        for name, ps in found.items():
            if not ps:
                raise ValueError(f"group {name!r}: no parameters")
            for p in ps:
                if id(p) not in params:
                    raise ValueError(f"group {name!r}: holds a tensor that is not a parameter of the model")
                if id(p) not in self._opt_index:
                    raise ValueError(f"parameter {self._names.get(id(p), '?')!r} (group {name!r}) is not in the "
                                     "optimizer: add it to a param group, or leave it out with groups=")
                if not torch.isfinite(p.detach()).all():
                    raise ValueError(f"parameter {self._names.get(id(p), '?')!r} holds NaN or inf weights")
            opt = {self._opt_index[id(p)] for p in ps}
            if len(opt) > 1:
                raise ValueError(f"group {name!r} spans optimizer param groups {sorted(opt)}: its tensors must "
                                 "share one learning rate and weight decay")
            self.groups[name] = _Group(name, ps, opt.pop())
        self._start_reader(before)
        used = {id(p) for g in self.groups.values() for p in g.params}
        self.others = [n for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in used]
        size, every, dtype, _, max_every = self.queue_cfg
        if size > 0:
            from .measure import EntropyQueue

            d = sum(g.d for g in self.groups.values())
            self.queue = EntropyQueue(size, d, stride=every, dtype=getattr(torch, dtype), max_stride=max_every,
                                      device=next(iter(self.groups.values())).params[0].device, seed=self.seed)
        if self.log_dir is not None:
            io.write_json({"optimizer": self.kind, "groups": {k: {"d": g.d, "parameters": [self._names.get(id(p), "?")
                                                                                           for p in g.params]}
                                                              for k, g in self.groups.items()},
                           "others": self.others}, self.log_dir / "groups.json")

    def _start_reader(self, before: dict[int, torch.Tensor] | None = None) -> None:
        """A fresh per-step reader from the current weights (or ``before``: the weights before
        the first step, when the detection came after it)."""
        tensors = [p for g in self.groups.values() for p in g.params]
        member = torch.zeros(len(self.groups) + 1, len(tensors), dtype=torch.float64)
        i = 0
        for k, g in enumerate(self.groups.values()):
            member[k, i:i + len(g.params)] = 1.0
            i += len(g.params)
        member[-1] = 1.0
        self._reader = _StepReader(tensors, member, None if before is None else [before[id(t)] for t in tensors])

    def _flush(self) -> None:
        """Reduce the reader's held steps into the groups' accumulators."""
        if self._reader is None or self._reader.rows == 0:
            return
        groups = list(self.groups.values())
        terms = self._reader.flush(self.kind in ("adamw", "adam"), [g.opt_group for g in groups])
        for g, t in zip(groups, terms[:-1]):
            g.acc += t
        self._all += terms[-1]

    @property
    def d(self) -> int:
        """Scale-invariant parameters in all groups."""
        return sum(g.d for g in self.groups.values())

    # ------------------------------------------------------------------ per step
    @torch.no_grad()
    def step(self, step: int | None = None) -> None:
        """Read the step just taken (call after every ``optimizer.step()``). ``step``: the
        training step's number when the count of calls is not it (a thermometer attached
        mid-run); it sets when the entropy queue takes a snapshot."""
        if not self.groups:
            if getattr(self, "_captured", None) is None:
                raise RuntimeError("Thermometer.step() before the model saw a batch: call it after optimizer.step()")
            args, kwargs = self._captured
            self._captured = None
            self._detect(args, kwargs, before=self._pending)
            self._pending = None
        self._steps = self._steps + 1 if step is None else int(step)
        hyper = None
        if self.kind in ("adamw", "adam"):  # (ηλ, η) of every param group: ‖a‖² needs this step's
            hyper = tuple(x for pg in self.optimizer.param_groups
                          for x in (float(pg["lr"]) * float(pg.get("weight_decay", 0.0)) if self.kind == "adamw"
                                    else 0.0, float(pg["lr"])))
        self._reader.read(hyper)
        if self._reader.full:
            self._flush()
        if self.queue is not None and self.queue.wants(self._steps):
            self.queue.push(self._steps, [p for g in self.groups.values() for p in g.params])

    # ------------------------------------------------------------------ log point
    def log(self, step: int, noise_batches: Callable[[], Any] | Iterable[Any] | None = None, *,
            noise_gradients: Sequence[torch.Tensor] | None = None) -> list[dict[str, Any]]:
        """The rows of this log point (one per group, then ``"all"``); also kept for
        :meth:`to_frame` and written to ``log_dir``. ``noise_batches``: a callable returning
        one batch per call, or an iterable of batches; :attr:`noise_k` are used. Or
        ``noise_gradients``: the K minibatch gradients already taken at the current weights,
        one K × d_j matrix per group in the groups' order (as
        :func:`~sgdthermo.nn.measure.minibatch_gradients` returns them)."""
        if not self.groups:
            raise RuntimeError("Thermometer.log() before the first step()")
        self._flush()
        if noise_gradients is not None:
            noise = self._noise_moments(list(noise_gradients))
        else:
            noise = self._noise(noise_batches) if noise_batches is not None else {}
        rows = []
        for name, g in self.groups.items():
            row = self._row(step, name, g.acc.numpy(), g.d, g.opt_group, g.history,
                            noise.get(name))
            rows.append({k: _plain(v) for k, v in row.items()})  # plain Python: checkpoints load weights-only
            g.history.append(rows[-1])
            g.reset()
        rows.append({k: _plain(v) for k, v in self._all_row(step, rows, noise.get("all")).items()})
        self._all.zero_()
        if self.queue is not None:
            self._entropy(rows[-1])
        self.rows.extend(rows)
        self._write(rows)
        return rows

    def _row(self, step: int, name: str, acc: np.ndarray, d: int, opt_group: int, history: list[dict[str, Any]],
             noise: dict[str, float] | None) -> dict[str, Any]:
        pg = self.optimizer.param_groups[opt_group]
        kind = self.kind
        if kind in ("fixed-lr", "fixed-elr", "fixed-sphere"):
            kind, hyper = self._protocol_part(name, pg)
        else:
            hyper = _hyper(kind, pg)
        n = max(acc[0], 1.0)
        rho = acc[2] / n
        row: dict[str, Any] = {"step": int(step), "group": name, "d": d, "optimizer": self.kind,
                               "lr": hyper["lr"], "wd": hyper["wd"], "steps": int(acc[0]), "rho": rho,
                               "rho2_mean": acc[3] / n, "angular_update": math.sqrt(acc[1] / n),
                               "radial_update": acc[4] / n, "tangential_update": acc[5] / n,
                               "grad_sq_unit": acc[6] / n, "update_sq": acc[7] / n if self.kind in ("adamw", "adam")
                               else float("nan")}
        row["elr"] = _elr(kind, hyper, rho)
        with torch.no_grad():
            row["rho_now"] = float(torch.stack(torch._foreach_norm(self.groups[name].params, 2, dtype=torch.float64))
                                   .square().sum().sqrt())
        if noise:  # σ² at the weights the noise was measured at
            row.update(noise)
            row["sigma2"] = row["rho_now"]**2 * noise["trace_cov"] / (d - 1) if d > 1 else float("nan")
            row["T"] = _temperature(kind, hyper, row["sigma2"], d)
        eq = _predict(kind, hyper, row, d)
        row["rho_pred"], row["angular_update_pred"] = eq.rho, eq.angular_update
        row["relaxation_steps"], row["prediction_note"] = eq.relaxation_steps, eq.note
        verdict, steps_left, reason = self._verdict(row, history, bad=acc[8] > 0 or not math.isfinite(rho))
        row["verdict"], row["steps_left"], row["reason"] = verdict, steps_left, reason
        return row

    def _protocol_part(self, name: str, pg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The update a group gets from a protocol optimizer: the protocol itself when the group
        is the whole scale-invariant vector; for a part of it (one tensor of the set) or a
        tensor of the other param group, plain SGD with coupled decay at the step's learning
        rate η_t (fixed LR: η; otherwise η̃ρ_t²), which is what each tensor sees."""
        g = self.groups[name]
        if pg.get("si") and {id(p) for p in g.params} == {id(p) for p in pg["params"]}:
            return self.kind, _hyper(self.kind, pg)
        eta = float(getattr(self.optimizer, "last_step", {}).get("lr", float("nan")))
        wd = float(pg.get("weight_decay", 0.0) or 0.0)
        if self.kind == "fixed-sphere" and pg.get("si"):
            # a part of the sphere: projected with the rest, no decay of its own to balance
            return "unknown", {"lr": eta, "wd": float("nan")}
        return "sgd", {"lr": eta, "wd": wd, "momentum": 0.0, "dampening": 0.0, "nesterov": False}

    def _all_row(self, step: int, rows: list[dict[str, Any]], noise: dict[str, float] | None) -> dict[str, Any]:
        acc = self._all.numpy()
        n = max(acc[0], 1.0)
        d = sum(r["d"] for r in rows)
        row: dict[str, Any] = {"step": int(step), "group": "all", "d": d, "optimizer": self.kind,
                               "lr": rows[0]["lr"], "wd": rows[0]["wd"], "steps": int(acc[0]), "rho": acc[2] / n,
                               "rho2_mean": acc[3] / n, "angular_update": math.sqrt(acc[1] / n),
                               "radial_update": acc[4] / n, "tangential_update": acc[5] / n,
                               "grad_sq_unit": acc[6] / n, "elr": float("nan")}
        row["rho_now"] = math.sqrt(sum(r["rho_now"] ** 2 for r in rows))
        if noise:
            row.update(noise)
            row["sigma2"] = row["rho_now"] ** 2 * noise["trace_cov"] / (d - 1)
        # predictions of the whole set from its groups': |w|² adds up; θ² is the ρ²-weighted mean
        preds = [(r["rho_pred"], r["angular_update_pred"], r["rho"]) for r in rows]
        if all(math.isfinite(p[0]) and math.isfinite(p[1]) for p in preds):
            rp2 = sum(p[0] ** 2 for p in preds)
            row["rho_pred"] = math.sqrt(rp2)
            row["angular_update_pred"] = math.sqrt(sum(p[0] ** 2 * p[1] ** 2 for p in preds) / rp2)
        else:
            row["rho_pred"] = row["angular_update_pred"] = float("nan")
        row["relaxation_steps"] = max((r["relaxation_steps"] for r in rows), default=float("nan"))
        verdicts = [r["verdict"] for r in rows]
        left = [r["steps_left"] for r in rows if r["verdict"] == "approaching"]
        for v in ("diverging", "approaching", "interpolating", "unknown"):
            if v in verdicts:
                who = [r["group"] for r in rows if r["verdict"] == v]
                row["verdict"], row["reason"] = v, f"{len(who)} of {len(rows)} group(s) {v}: {', '.join(who[:3])}"
                break
        else:
            row["verdict"], row["reason"] = "equilibrated", f"all {len(rows)} group(s) equilibrated"
        row["steps_left"] = max(left) if left else (0.0 if row["verdict"] == "equilibrated" else float("nan"))
        return row

    def _verdict(self, row: dict[str, Any], history: list[dict[str, Any]], bad: bool) -> tuple[str, float, str]:
        from ..theory.equilibrium import steps_to_equilibrium

        tol = self.tolerance
        if bad:
            return "diverging", float("nan"), "non-finite weights or gradients"
        if history and history[-1].get("verdict") == "equilibrated":
            tol *= HYSTERESIS  # a group stays equilibrated through fluctuations about the edge
        recent = [*history[-(TREND_POINTS - 1):], row]
        if len(recent) >= TREND_POINTS and self.kind != "fixed-sphere":
            gs, rs = [r["grad_sq_unit"] for r in recent], [r["rho"] for r in recent]
            g0, g1, r0, r1 = gs[0], gs[-1], rs[0], rs[-1]
            falling = all(b < a for a, b in zip(gs, gs[1:])) and all(b < a for a, b in zip(rs, rs[1:]))
            below = not math.isfinite(row["rho_pred"]) or r1 <= (1 + tol) * row["rho_pred"]
            if falling and below and g0 > 0 and g1 < (1 - INTERPOLATION_DROP) * g0:
                return "interpolating", float("nan"), (f"gradient on the sphere fell {100 * (1 - g1 / g0):.0f} % "
                                                       f"and the radius {100 * (1 - r1 / r0):.1f} % over "
                                                       f"{len(recent)} log points")
        rp, ap = row["rho_pred"], row["angular_update_pred"]
        if not (math.isfinite(rp) and math.isfinite(ap)):
            return "unknown", float("nan"), row.get("prediction_note") or f"no prediction for {self.kind}"
        dr = row["rho"] / rp - 1
        da = row["angular_update"] / ap - 1
        drift = _drift([r["rho"] for r in recent])  # the radius's trend over the recent log points
        # settled: no trend over a window long enough to see the relaxation (≥ 3 relaxation
        # times); for fixed ELR the angle holds at every step, so only the radius can tell
        window = recent[-1]["step"] - recent[0]["step"]
        tau = row["relaxation_steps"]
        settled = (len(recent) >= TREND_POINTS and drift <= tol / 2 and math.isfinite(tau)
                   and window >= 3 * tau and self.kind != "fixed-elr")
        if abs(da) <= tol and drift <= tol / 2 and (abs(dr) <= tol or settled):
            why = f"radius {100 * dr:+.1f} %, angular update {100 * da:+.1f} % of the prediction"
            if abs(dr) > tol:  # the angle is the rotational equilibrium; the radius also needs E‖g_B(u)‖²
                why += (f"; the radius has settled (trend {100 * drift:.1f} % over {len(recent)} log points) "
                        "off its prediction, which assumes gradients uncorrelated from step to step")
            return "equilibrated", 0.0, why
        left = steps_to_equilibrium(row["rho"], rp, row["relaxation_steps"], tol=tol)
        why = f"radius {100 * dr:+.1f} %, angular update {100 * da:+.1f} % of the prediction"
        if abs(dr) <= tol and abs(da) <= tol:
            why += f"; the radius still drifts ({100 * drift:.1f} % over the last {len(recent)} log points)"
        # at least until the next log point, which must confirm it
        return "approaching", float(max(left, row["steps"])), why

    # ------------------------------------------------------------------ gradient noise
    def _noise(self, source: Callable[[], Any] | Iterable[Any]) -> dict[str, dict[str, float]]:
        """tr Σ and ‖∇L‖² per group from :attr:`noise_k` batches at frozen weights."""
        from .measure import minibatch_gradients

        it = None if callable(source) else iter(source)
        batches = [source() if it is None else next(it) for _ in range(self.noise_k)]
        flat = minibatch_gradients(self.model, [g.params for g in self.groups.values()], batches,
                                   lambda batch: self.loss_fn(self.model, batch))
        return self._noise_moments(flat)

    def _noise_moments(self, flat: list[torch.Tensor]) -> dict[str, dict[str, float]]:
        from .measure import noise_moments

        groups = list(self.groups.values())
        if len(flat) != len(groups) or any(f.shape[1] != g.d for f, g in zip(flat, groups)):
            raise ValueError(f"noise gradients of widths {[int(f.shape[1]) for f in flat]}, the groups have "
                             f"{[g.d for g in groups]}")
        out = {g.name: noise_moments(f) for g, f in zip(groups, flat)}
        out["all"] = out[groups[0].name] if len(groups) == 1 else noise_moments(torch.cat(flat, dim=1))
        return out

    def _entropy(self, row: dict[str, Any]) -> None:
        from ..entropy import sphere_entropy

        q = self.queue
        q.adapt()
        row["queue_every"] = q.stride
        if q.full and q.fresh >= q.size:
            method = self.queue_cfg[3]
            est = sphere_entropy(q.ordered(), return_details=True, ordered=True,
                                 **({} if method is None else {"method": method}))
            row.update(S_sphere=float(est.value), S_sphere_err=float(est.stderr), queue_tau=float(est.queue_tau),
                       queue_n_eff=float(est.n_eff), queue_nn_lag=float(est.nn_lag_fraction),
                       S=float(theory.total_entropy(est.value, float(q.rho.mean()), self.d)))
            q.mark_estimated()

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Rows, accumulators and the entropy queue (tensors and plain containers only)."""
        self._flush()
        return {"rows": [dict(r) for r in self.rows], "steps": self._steps, "all": self._all.cpu(),
                "groups": {k: {"acc": g.acc.cpu(), "history": [dict(r) for r in g.history]}
                           for k, g in self.groups.items()},
                "queue": None if self.queue is None else self.queue.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (after the model's weights were restored: the
        next step is measured from them)."""
        if set(state["groups"]) != set(self.groups):
            raise ValueError(f"Thermometer state for groups {sorted(state['groups'])}, "
                             f"not {sorted(self.groups)}")
        self.rows = [dict(r) for r in state["rows"]]
        self._steps = int(state["steps"])
        self._all = state["all"].cpu().double().clone()
        for k, g in self.groups.items():
            g.acc = state["groups"][k]["acc"].cpu().double().clone()
            g.history = [dict(r) for r in state["groups"][k]["history"]]
        self._start_reader()
        if self.queue is not None and state.get("queue") is not None:
            self.queue.load_state_dict(state["queue"])

    # ------------------------------------------------------------------ output
    def to_frame(self):
        """Every row so far as a pandas DataFrame (:data:`FRAME_COLUMNS` first)."""
        import pandas as pd

        df = pd.DataFrame(self.rows)
        if df.empty:
            return pd.DataFrame(columns=list(FRAME_COLUMNS))
        first = [c for c in FRAME_COLUMNS if c in df]
        return df[first + [c for c in df.columns if c not in first]]

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.log_dir is not None:
            io.write_csv(self.to_frame(), self.log_dir / "thermo.csv")
        if self._writer is not None:
            for r in rows:
                for k, v in r.items():
                    if k not in ("step", "d", "steps") and isinstance(v, (int, float)) and not isinstance(v, bool) \
                            and math.isfinite(v):
                        self._writer.add_scalar(f"thermo/{r['group']}/{k}", v, r["step"])

    def close(self) -> None:
        """Flush the files (``thermo.parquet`` with ``parquet=True``) and the TensorBoard writer."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.log_dir is not None and self.rows:
            io.write_csv(self.to_frame(), self.log_dir / "thermo.csv")
            if self.parquet:
                self.to_frame().to_parquet(self.log_dir / "thermo.parquet", index=False)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "Thermometer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# Helpers: inputs, loss, effective learning rate, temperature, predictions
# ---------------------------------------------------------------------------------------
def _drift(values: Sequence[float]) -> float:
    """|Relative change| over ``values`` (log points, oldest first): of a straight-line fit for
    three or more (so that noise about a level is not taken for a drift), else of the two."""
    v = np.asarray(values, float)
    if v.size < 2 or not np.all(np.isfinite(v)) or v.mean() <= 0:
        return float("inf")
    if v.size == 2:
        return float(abs(v[1] / v[0] - 1))
    slope = np.polyfit(np.arange(v.size), v, 1)[0]
    return float(abs(slope * (v.size - 1)) / v.mean())


def _plain(v: Any) -> Any:
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _as_inputs(example: Any) -> tuple[tuple, dict]:
    if isinstance(example, Mapping):
        return (), dict(example)
    if isinstance(example, tuple):
        return example, {}
    return (example,), {}


def _default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    import torch.nn.functional as F

    if isinstance(batch, Mapping):
        out = model(**batch)
        loss = out["loss"] if isinstance(out, Mapping) else getattr(out, "loss", None)
        if loss is None:
            raise ValueError("a mapping batch needs a model that returns a loss (or pass loss_fn=)")
        return loss
    x, y = batch[0], batch[1]
    return F.cross_entropy(model(x), y)


def _elr(kind: str, hyper: dict[str, Any], rho: float) -> float:
    if kind in ("fixed-elr", "fixed-sphere"):
        return hyper["lr"]
    if rho <= 0 or not math.isfinite(rho):
        return float("nan")
    return hyper["lr"] / rho if kind in ("adamw", "adam") else hyper["lr"] / rho**2


def _temperature(kind: str, hyper: dict[str, Any], sigma2: float, d: int) -> float:
    """T where the theory defines it: the protocols, and SGD as fixed LR with the momentum's
    effective learning rate η/(1−μ)."""
    if not math.isfinite(sigma2) or sigma2 < 0:
        return float("nan")
    sig = math.sqrt(sigma2)
    if kind in ("fixed-lr", "fixed-elr"):
        return float(theory.temperature(kind, lr=hyper["lr"], sigma=sig, d=d, wd=hyper["wd"]))
    if kind == "fixed-sphere":
        return float(theory.temperature(kind, lr=hyper["lr"], sigma=sig, d=d))
    if kind == "sgd" and hyper["wd"] > 0:
        return float(theory.temperature("fixed-lr", lr=hyper["lr"] / (1 - hyper["momentum"]), sigma=sig, d=d,
                                        wd=hyper["wd"]))
    return float("nan")


def _predict(kind: str, hyper: dict[str, Any], row: dict[str, Any], d: int):
    from ..theory.equilibrium import Equilibrium, equilibrium

    nan = float("nan")
    try:
        if kind == "sgd":
            return equilibrium("sgd", lr=hyper["lr"], wd=hyper["wd"], grad_sq_unit=row["grad_sq_unit"],
                               momentum=hyper["momentum"], dampening=hyper["dampening"], nesterov=hyper["nesterov"])
        if kind == "adamw":
            return equilibrium("adamw", lr=hyper["lr"], wd=hyper["wd"], d=d, betas=hyper["betas"])
        if kind == "adam":
            return equilibrium("adam", lr=hyper["lr"], wd=hyper["wd"], d=d, betas=hyper["betas"],
                               grad_sq_unit=row["grad_sq_unit"])
        if kind in ("fixed-lr", "fixed-elr"):
            return equilibrium(kind, lr=hyper["lr"], wd=hyper["wd"], grad_sq_unit=row["grad_sq_unit"])
        if kind == "fixed-sphere":
            return equilibrium(kind, lr=hyper["lr"], radius=hyper["radius"], grad_sq_unit=row["grad_sq_unit"])
    except ValueError as exc:  # e.g. no weight decay: no equilibrium
        return Equilibrium(nan, nan, nan, str(exc))
    return Equilibrium(nan, nan, nan, f"no prediction for the optimizer {kind!r}")
