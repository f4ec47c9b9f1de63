r"""Measuring the thermodynamics of a network while it trains.

:class:`Measurement` attaches to any training loop that uses one of the protocol optimizers
(:mod:`sgdthermo.nn.optim`). Call :meth:`Measurement.after_step` after every optimizer step
(it only reads numbers the step already computed) and :meth:`Measurement.log` at the log
steps (:func:`log_schedule`); it returns one row of metrics.

Gradient noise under BatchNorm (docs/theory.md, "Measuring a network under BatchNorm"): in
train mode BatchNorm normalises with the batch's statistics, so neither a pass over the
whole training set nor per-sample gradients give the minibatch gradient's mean and
covariance. With the weights frozen, K minibatch gradients :math:`g_1..g_K` of the training
batch size give

.. math::
    \hat\nabla L = \frac1K\sum_k g_k,\qquad
    \widehat{\mathrm{tr}\,\Sigma} = \frac{1}{K-1}\sum_k \|g_k - \hat\nabla L\|^2,\qquad
    \widehat{\|\nabla L\|^2} = \|\hat\nabla L\|^2 - \widehat{\mathrm{tr}\,\Sigma}/K,

all unbiased; :math:`\sigma^2 = \rho^2\,\mathrm{tr}\,\Sigma/(d-1)`. BatchNorm running
statistics are restored afterwards and the batches come from the measurement's own random
generator, so measuring never changes the training trajectory. The discrete-time radius
identity needs only :math:`E\|g_B(u)\|^2 = \rho^2 E\|g_B(w)\|^2`, which every training step
provides for free (``grad_sq_unit`` of the optimizer's last step): its running mean between
log points is kept as ``grad_sq_unit``.

Entropy: snapshots of the scale-invariant group are pushed into a queue (:class:`EntropyQueue`:
``queue_size`` entries every ``queue_every`` steps, or with ``"auto"`` a stride that follows the
run's measured correlation; stored in ``queue_dtype``, memory bounded and reported); the entropy
of their directions on :math:`S^{d-1}` is estimated whenever the queue has been refilled
completely since the last estimate, and :math:`S = S_u + (d-1)\log\bar\rho`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


__all__ = ["MeasureConfig", "Measurement", "EntropyQueue", "log_schedule", "gradient_noise", "noise_moments",
           "minibatch_gradients", "QUEUE_COLUMNS"]

#: The entropy queue's correlation at each entropy estimate (:mod:`sgdthermo.entropy.correlation`):
#: τ in snapshots (½ when independent), the independent snapshots N/(2τ), and the fraction of
#: snapshots whose nearest neighbour is adjacent in time.
QUEUE_COLUMNS: tuple[str, ...] = ("queue_tau", "queue_n_eff", "queue_nn_lag")


def log_schedule(iters: int, every: int = 200, linear_until: int = 10_000, per_decade: int = 20) -> list[int]:
    """Log steps: every ``every`` steps up to ``linear_until``, then ``per_decade`` log-spaced
    steps per decade, always including the last step (the paper's schedule by default)."""
    steps = set(range(every, min(iters, linear_until) + 1, every))
    if iters > linear_until:
        n = max(2, int(math.ceil(per_decade * math.log10(iters / linear_until))) + 1)
        steps.update(int(round(s)) for s in np.geomspace(linear_until, iters, n))
    steps.add(iters)
    return sorted(s for s in steps if 0 < s <= iters)


@dataclass
class MeasureConfig:
    noise_batches: int = 8  # K minibatch gradients per log point for ∇L and tr Σ
    batch_size: int = 128
    queue_size: int = 1000
    queue_every: int | str = "auto"  # steps, or "auto" (:class:`EntropyQueue`)
    queue_dtype: str = "float32"
    entropy_method: str | None = None
    max_queue_every: int | None = None  # ceiling of the "auto" stride (a full queue in the window)
    eval_batch_size: int = 1024
    seed: int = 0


def _bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for b in m.buffers()]


def minibatch_gradients(
    model: nn.Module,
    param_sets: Sequence[Sequence[torch.Tensor]],
    batches: Sequence[Any],
    loss_of: Callable[[Any], torch.Tensor],
) -> list[torch.Tensor]:
    """The gradients of ``loss_of(batch)`` for each batch at frozen weights, as one K × d_j
    float64 matrix per parameter set in ``param_sets`` (a parameter the loss does not reach
    gets zeros). The model runs in train mode (BatchNorm normalises with each batch's own
    statistics, as in training); BatchNorm running statistics and the train/eval mode are
    restored afterwards and the parameters' ``.grad`` are left as they were."""
    flat_params = [p for ps in param_sets for p in ps]
    saved = [b.clone() for b in _bn_buffers(model)]
    was_training = model.training
    model.train()
    rows: list[list[torch.Tensor]] = [[] for _ in param_sets]
    try:
        for batch in batches:
            grads = torch.autograd.grad(loss_of(batch), flat_params, allow_unused=True)
            k = 0
            for j, ps in enumerate(param_sets):
                parts = []
                for p in ps:
                    g = grads[k]
                    k += 1
                    parts.append((g if g is not None else torch.zeros_like(p)).reshape(-1).double())
                rows[j].append(torch.cat(parts))
    finally:
        for b, s in zip(_bn_buffers(model), saved):
            b.copy_(s)
        model.train(was_training)
    return [torch.stack(r) for r in rows]


def gradient_noise(
    model: nn.Module,
    params: Sequence[torch.Tensor],
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    batches: Sequence[torch.Tensor],
) -> dict[str, float]:
    r"""Mean gradient and gradient-noise trace from K minibatches at frozen weights.

    ``batches``: K index tensors into (x, y), each of the training batch size. Returns
    :func:`noise_moments` of the K gradients (:func:`minibatch_gradients`): ``grad_sq``
    (unbiased :math:`\|\nabla L\|^2`), ``trace_cov`` (unbiased :math:`\mathrm{tr}\,\Sigma`),
    ``trace_cov_err`` (its standard error over the K draws) and ``grad_norm``, all for the
    parameters ``params`` in weight space. Train-mode BatchNorm; running statistics restored.
    """
    if len(batches) < 2:
        raise ValueError("gradient_noise needs at least 2 minibatches")
    (G,) = minibatch_gradients(model, [params], batches, lambda idx: loss_fn(model(x[idx]), y[idx]))
    return noise_moments(G)


def noise_moments(G: torch.Tensor) -> dict[str, float]:
    r"""The unbiased gradient-noise estimates from K minibatch gradients ``G`` (K × d):
    :math:`\widehat{\mathrm{tr}\,\Sigma} = rac{1}{K-1}\sum_k\|g_k-ar g\|^2` (``trace_cov``, with
    its standard error ``trace_cov_err`` over the draws) and
    :math:`\widehat{\|
abla L\|^2} = \|ar g\|^2 - \widehat{\mathrm{tr}\,\Sigma}/K` (``grad_sq``;
    ``grad_norm`` its clipped square root)."""
    K = int(G.shape[0])
    if K < 2:
        raise ValueError("noise_moments needs at least 2 minibatch gradients")
    mean = G.mean(0)
    dev2 = ((G - mean) ** 2).sum(1)  # ‖g_k − ḡ‖²
    trace = float(dev2.sum() / (K - 1))
    # per-draw unbiased pieces K/(K−1)‖g_k − ḡ‖² average to the estimate; their spread / √K
    pieces = dev2 * K / (K - 1)
    trace_err = float(pieces.std(unbiased=True) / math.sqrt(K))
    gsq = float((mean * mean).sum()) - trace / K
    return {"grad_sq": gsq, "grad_norm": math.sqrt(max(gsq, 0.0)), "trace_cov": trace,
            "trace_cov_err": trace_err}


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode (BatchNorm running statistics)."""
    was_training = model.training
    model.eval()
    tot_loss, correct = 0.0, 0
    for i in range(0, x.shape[0], batch):
        out = model(x[i:i + batch])
        tot_loss += float(loss_fn(out, y[i:i + batch], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    n = x.shape[0]
    return tot_loss / n, correct / n


#: ``queue_every="auto"``: snapshots at least this many correlation times apart.
AUTO_STRIDE_FACTOR: float = 2.0
#: Random directions the snapshots are projected onto to measure their correlation online.
AUTO_PROJECTIONS: int = 8
#: Fewest snapshots from which ``auto`` measures a correlation time.
AUTO_MIN_SNAPSHOTS: int = 32


class EntropyQueue:
    r"""The last ``size`` snapshots of a flat parameter group, taken every ``stride`` steps.

    With a fixed stride it is a plain ring buffer.  With ``auto=True`` the stride starts at 1
    step and follows the run's own measured correlation: every snapshot's direction is projected
    onto :data:`AUTO_PROJECTIONS` fixed random directions (O(d) per snapshot), and
    :meth:`adapt` (called at log points) measures the integrated autocorrelation time τ of those
    projections in snapshots (:func:`sgdthermo.stats.autocorr_time`, ½ when independent).  When
    τ > 1 the stride is multiplied by the power of two ≥ :data:`AUTO_STRIDE_FACTOR`·τ, so that the
    snapshots end up at least two correlation times apart, and the queue is thinned to the
    snapshots that lie on the new stride (they stay valid; the rest refill).  The stride never
    exceeds ``max_stride`` (the most for which a full queue fits the run's stationary window);
    when the correlation asks for more, :attr:`note` says so and the entropy is flagged by its
    measured correlation (``entropy_ok``).
    """

    def __init__(self, size: int, d: int, *, stride: int | str, dtype: torch.dtype, device: torch.device,
                 max_stride: int | None = None, seed: int = 0) -> None:
        self.size, self.d = int(size), int(d)
        self.auto = stride == "auto"
        self.stride = 1 if self.auto else int(stride)
        self.max_stride = None if max_stride is None else max(1, int(max_stride))
        self.data = torch.zeros(self.size, self.d, dtype=dtype, device=device)
        self.rho = torch.zeros(self.size, dtype=torch.float64)
        self.step = torch.full((self.size,), -1, dtype=torch.int64)
        self.proj = torch.zeros(self.size, AUTO_PROJECTIONS if self.auto else 0, dtype=torch.float64)
        self.head = 0  # next slot
        self.valid = 0  # snapshots held
        self.last_estimate_step = -1
        self.note = ""
        self._dirs = _directions(int(seed), self.d, torch.device(device)) if self.auto else None

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    @property
    def full(self) -> bool:
        return self.valid >= self.size

    @property
    def fresh(self) -> int:
        """Snapshots taken since the last entropy estimate."""
        return int((self.step > self.last_estimate_step).sum())

    def wants(self, step: int) -> bool:
        return step % self.stride == 0

    @torch.no_grad()
    def push(self, step: int, params: Sequence[torch.Tensor]) -> None:
        """Take the snapshot of ``params`` (the group's tensors, in order) at ``step``."""
        row = self.data[self.head]
        off = 0
        for p in params:
            n = p.numel()
            row[off:off + n].copy_(p.detach().reshape(-1))
            off += n
        rho, proj = _snapshot_stats(row[None], self._dirs)
        self._advance(step, float(rho[0]), None if proj is None else proj[0])

    def _advance(self, step: int, rho: float, proj: torch.Tensor | None) -> None:
        """Record the snapshot just written to the head slot (its radius and projections)."""
        self.rho[self.head] = rho
        self.step[self.head] = int(step)
        if proj is not None:
            self.proj[self.head] = proj
        self.head = (self.head + 1) % self.size
        self.valid = min(self.valid + 1, self.size)

    def order(self) -> torch.Tensor:
        """Slots of the held snapshots, oldest first."""
        held = torch.nonzero(self.step >= 0).flatten()
        return held[torch.argsort(self.step[held])]

    def ordered(self) -> torch.Tensor:
        """The held snapshots in float64, oldest first (time order = row order)."""
        idx = self.order().to(self.data.device)
        return self.data.index_select(0, idx).double()

    def mark_estimated(self) -> None:
        self.last_estimate_step = int(self.step.max())

    def adapt(self) -> None:
        """``auto`` only: raise the stride when the held snapshots are correlated (class doc)."""
        if not self.auto or self.valid < AUTO_MIN_SNAPSHOTS:
            return
        from ..stats import autocorr_time

        series = self.proj[self.order()].T.numpy()
        tau = float(np.max(autocorr_time(series)))
        if not np.isfinite(tau) or tau <= 1.0:
            return
        factor = 2 ** int(math.ceil(math.log2(AUTO_STRIDE_FACTOR * tau)))
        want = self.stride * factor
        # a multiple of the current stride, so that the held snapshots stay evenly spaced
        cap = None if self.max_stride is None else max(self.stride, self.max_stride // self.stride * self.stride)
        new = want if cap is None else min(want, cap)
        if self.max_stride is not None and want > self.max_stride:
            self.note = (f"--queue-every auto: snapshots {self.stride} steps apart are correlated "
                         f"(τ = {tau:.1f} snapshots), which asks for about {want} steps between them; "
                         f"{self.size} such snapshots do not fit the stationary window, so the stride "
                         f"stays at most {self.max_stride}; use more --iters or a smaller --queue-size")
        if new <= self.stride:
            return
        self._thin(new)

    def _thin(self, stride: int) -> None:
        keep = [int(i) for i in self.order() if int(self.step[i]) % stride == 0]
        m = len(keep)
        idx = torch.tensor(keep, dtype=torch.int64)
        self.data[:m] = self.data.index_select(0, idx.to(self.data.device))
        self.rho[:m], self.step[:m], self.proj[:m] = self.rho[idx], self.step[idx], self.proj[idx]
        self.step[m:] = -1
        self.valid, self.head, self.stride = m, m % self.size, int(stride)

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data.cpu(), "rho": self.rho, "step": self.step, "proj": self.proj,
                "head": self.head, "valid": self.valid, "stride": self.stride,
                "last_estimate_step": self.last_estimate_step, "note": self.note}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data.copy_(state["data"].to(self.data.device))
        for key in ("rho", "step", "proj"):
            getattr(self, key).copy_(state[key])
        self.head, self.valid, self.stride = int(state["head"]), int(state["valid"]), int(state["stride"])
        self.last_estimate_step, self.note = int(state["last_estimate_step"]), str(state["note"])


_DIRECTIONS: "weakref.WeakValueDictionary[tuple[int, int, str], torch.Tensor]" = weakref.WeakValueDictionary()


def _directions(seed: int, d: int, device: torch.device) -> torch.Tensor:
    """The :data:`AUTO_PROJECTIONS` fixed random unit directions of a queue of dimension ``d``
    and ``seed``: one tensor (read only) shared by the queues of that seed, dimension and
    device that are alive, freed with the last of them."""
    key = (int(seed), int(d), str(device))
    dirs = _DIRECTIONS.get(key)
    if dirs is None:
        g = torch.Generator(device="cpu").manual_seed(seed + 104729)
        q = torch.randn(AUTO_PROJECTIONS, d, generator=g, dtype=torch.float64)
        dirs = (q / q.norm(dim=1, keepdim=True)).to(device)
        _DIRECTIONS[key] = dirs
    return dirs


def _snapshot_stats(rows: torch.Tensor, dirs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Radius ρ of each stored snapshot ``rows`` (m × d, as stored) and, for an ``auto``
    queue, the projections ``dirs · (row/ρ)`` (m × :data:`AUTO_PROJECTIONS`), in float64 on the CPU."""
    flat = rows.double()
    rho = torch.linalg.vector_norm(flat, dim=1)
    proj = None if dirs is None else ((dirs @ flat.T).T / rho[:, None]).cpu()  # this order: the faster product on CPU
    return rho.cpu(), proj


@torch.no_grad()
def push_together(queues: Sequence[EntropyQueue], steps: Sequence[int], rows: torch.Tensor) -> None:
    """:meth:`EntropyQueue.push` of many queues at once: ``rows[j]`` (flat, the queue's d
    values in its tensors' order) is the snapshot of ``queues[j]`` at ``steps[j]``. The radii
    and, where the queues share their directions (one seed and dimension), the projections
    are taken in one product per set of directions instead of one per queue."""
    if len(queues) != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} snapshots for {len(queues)} queues")
    dtypes = {q.data.dtype for q in queues}
    as_stored = rows.to(dtypes.pop()) if len(dtypes) == 1 else None  # the rows as the queues hold them
    for q, row in zip(queues, rows):
        q.data[q.head].copy_(row)
    by_dirs: dict[int, list[int]] = {}
    for j, q in enumerate(queues):
        by_dirs.setdefault(id(q._dirs), []).append(j)
    for js in by_dirs.values():
        snaps = (as_stored if len(js) == len(queues) else as_stored[js]) if as_stored is not None \
            else torch.stack([queues[j].data[queues[j].head] for j in js])
        rho, proj = _snapshot_stats(snaps, queues[js[0]]._dirs)
        for n, (j, r) in enumerate(zip(js, rho.tolist())):
            queues[j]._advance(steps[j], r, None if proj is None else proj[n])


@dataclass(frozen=True)
class LogInputs:
    """What a log point measures at the current weights, taken outside :meth:`Measurement.log`:
    ``train`` and ``test`` (mean loss, accuracy) in eval mode (:func:`evaluate`) and the K × d
    float64 ``noise_gradients`` of the scale-invariant set on :meth:`Measurement.noise_indices`
    (train mode, as :func:`minibatch_gradients`)."""

    train: tuple[float, float]
    test: tuple[float, float]
    noise_gradients: torch.Tensor


class Measurement:
    """Thermodynamic measurement of a training run under a protocol optimizer (attach to any loop).

    A :class:`~sgdthermo.nn.thermometer.Thermometer` with the scale-invariant set as one group
    (``"si"``) does the measuring: the per-step radius and ``grad_sq_unit``, the noise batches,
    the entropy queue (:attr:`thermometer`, whose rows are ``thermo.csv``). This class adds
    what a protocol run reports besides: the training and test loss and accuracy, the batch
    loss, the effective pressure's ``norm_excess`` (fixed sphere, from the optimizer's
    ``last_step``) and the row of ``metrics.csv``.

    Parameters
    ----------
    model, si_params : the network and its scale-invariant group (d parameters)
    optimizer : a :class:`sgdthermo.nn.optim.ProtocolOptimizer`
    loss_fn : ``loss_fn(logits, targets, reduction="mean"|"sum")``
    data : a :class:`sgdthermo.nn.data.DataSet`
    config : :class:`MeasureConfig`
    """

    def __init__(self, model: nn.Module, si_params: Sequence[torch.Tensor], optimizer: Any,
                 loss_fn: Callable, data: Any, config: MeasureConfig | None = None) -> None:
        from .thermometer import Thermometer

        self.model = model
        self.params = list(si_params)
        self.opt = optimizer
        self.loss_fn = loss_fn
        self.data = data
        self.cfg = config or MeasureConfig()
        self.d = int(sum(p.numel() for p in self.params))
        if self.cfg.noise_batches < 2:
            raise ValueError(f"noise_batches {self.cfg.noise_batches}: must be at least 2")
        self.gen = torch.Generator(device="cpu").manual_seed(int(self.cfg.seed) + 7919)
        x, y = data.train_x, data.train_y
        self.thermometer = Thermometer(
            model, optimizer, groups={"si": self.params}, noise_k=self.cfg.noise_batches,
            loss_fn=lambda m, idx: loss_fn(m(x[idx]), y[idx]), queue_size=self.cfg.queue_size,
            queue_every=self.cfg.queue_every, queue_dtype=self.cfg.queue_dtype,
            entropy_method=self.cfg.entropy_method, queue_max_every=self.cfg.max_queue_every, seed=self.cfg.seed)
        self._reset_acc()

    # ------------------------------------------------------------------ bookkeeping
    @property
    def queue(self) -> EntropyQueue:
        return self.thermometer.queue

    @property
    def queue_bytes(self) -> int:
        return 0 if self.queue is None else self.queue.nbytes

    def _reset_acc(self) -> None:
        self.acc = {"n": 0, "norm_excess": 0.0, "batch_loss": 0.0}

    def after_step(self, step: int, batch_loss: float, *, read: bool = True) -> None:
        """Read the step just taken (the thermometer; a snapshot every ``queue_every``).
        ``read=False``: the thermometer has read this step already (the members of a batched
        model are read together, :class:`~sgdthermo.nn.thermometer.StackedReader`)."""
        if read:
            self.thermometer.step(step=step)
        a = self.acc
        a["n"] += 1
        a["batch_loss"] += batch_loss
        ls = getattr(self.opt, "last_step", None) or {}
        if ls.get("norm_pre") is not None:
            a["norm_excess"] += ls["norm_pre"] - ls["rho"]

    # ------------------------------------------------------------------ log point
    def noise_indices(self) -> list[torch.Tensor]:
        """The K training batches (index tensors) of this log point's gradient noise, drawn
        from the measurement's own generator."""
        x = self.data.train_x
        return [torch.randint(0, x.shape[0], (self.cfg.batch_size,), generator=self.gen).to(x.device)
                for _ in range(self.cfg.noise_batches)]

    def log(self, step: int, measured: LogInputs | None = None) -> dict[str, float]:
        """One row of metrics at ``step`` (see the module docstring).

        The protocol and its hyperparameters (η or η̃, λ) are read from the optimizer's
        scale-invariant group, so a schedule that edits them is measured as it runs.
        ``measured``: the evaluations and noise gradients of this log point, already taken
        at the current weights on the batches of :meth:`noise_indices` (a batched model does
        them for all its members at once); by default they are taken here.
        """
        protocol = self.opt.protocol
        x, y = self.data.train_x, self.data.train_y
        row: dict[str, float] = {"step": step}
        if measured is None:
            row["train_loss"], row["train_acc"] = evaluate(self.model, self.loss_fn, x, y, self.cfg.eval_batch_size)
            row["test_loss"], row["test_acc"] = evaluate(self.model, self.loss_fn, self.data.test_x,
                                                         self.data.test_y, self.cfg.eval_batch_size)
        else:
            (row["train_loss"], row["train_acc"]), (row["test_loss"], row["test_acc"]) = measured.train, measured.test
        a = self.acc
        n = max(a["n"], 1)
        row["batch_loss"] = a["batch_loss"] / n
        if measured is None:
            si, whole = self.thermometer.log(step, noise_batches=self.noise_indices())
        else:
            si, whole = self.thermometer.log(step, noise_gradients=[measured.noise_gradients])
        rho = si["rho_now"]
        row["rho"] = rho
        row["rho_mean"] = si["rho"]
        row["rho2_mean"] = si["rho2_mean"]
        row["elr"] = float(self.opt.effective_lr())
        row["grad_sq_unit"] = si["grad_sq_unit"]  # E‖g_B(u)‖² over the interval (free)
        if protocol == "fixed-sphere":
            row["norm_excess"] = a["norm_excess"] / n  # E|w'| − ρ
        for key in ("grad_sq", "grad_norm", "trace_cov", "trace_cov_err"):
            row[key] = si[key]
        row["trace_cov_unit"] = rho**2 * si["trace_cov"]
        row["sigma2"] = si["sigma2"]
        row["snr"] = si["grad_sq"] / si["trace_cov"] if si["trace_cov"] > 0 else float("nan")
        row["T"] = si["T"]
        for key in ("S_sphere", "S_sphere_err", "S", *QUEUE_COLUMNS):
            row[key] = float(whole.get(key, float("nan")))
        row["queue_every"] = whole.get("queue_every", float("nan"))
        self._reset_acc()
        return row

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "acc": dict(self.acc), "thermometer": self.thermometer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.acc = {k: state["acc"][k] for k in ("n", "norm_excess", "batch_loss")}
        if "thermometer" in state:
            self.thermometer.load_state_dict(state["thermometer"])
        else:  # made before the thermometer measured: only the queue carries over
            self.queue.load_state_dict(state["queue"])
