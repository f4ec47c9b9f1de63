r"""Many runs of one architecture trained as one batched model.

A grid of the paper's networks is many small models that differ only in their
hyperparameters and seeds. :class:`StackedModel` holds G such models as one: the trainable
parameters of the G members are one G × D tensor (a row per member, its parameters side by
side), every frozen parameter and buffer one stacked tensor (G × shape), and the forward pass
is ``torch.func.vmap`` over ``torch.func.functional_call`` of one stateless copy of the
architecture (the paper's ConvNet: grouped convolutions), each member on its own batch.
BatchNorm updates each member's running statistics in the stacked buffers.

The members keep their identity. Each member module's parameters are the *same*
``nn.Parameter`` objects as before, whose ``.data`` now views the member's slice of the stacked
storage, and whose ``.grad`` views the slice of the stacked gradient; its buffers likewise. So
the member's own optimizer (the protocol optimizer of a solo run), its measurement and its
checkpoints (``state_dict``/``load_state_dict``) work on it unchanged, and a step of the batched
model followed by each member's ``optimizer.step()`` is the solo step of every member: only
the order of summation inside the batched kernels differs (float64 trajectories agree with solo
runs to ~1e-12 over hundreds of steps, tested).

:func:`train_runs` steps the runs of a pack (:class:`sgdthermo.nn.training.RunState`, one per
member: its folder, sampler, optimizer, measurement, checkpoints) with one batched forward and
backward per step. The members' per-step work is taken over the stack too where it fits: their
protocol optimizers' steps as one (:func:`sgdthermo.nn.optim.step_stacked`) and their
thermometers' read-outs and entropy snapshots as one
(:class:`sgdthermo.nn.thermometer.StackedReader`), each member with its own hyperparameters,
``last_step``, accumulators and queue, as its own calls would leave them (tested); a member
with another optimizer or hooks on its step does its own. A member that diverges (non-finite
loss or weights) or fails is finished on its own (summary, or the exception as its result) and
the batch is rebuilt without it. The curves of the members that finish together are drawn
side by side in worker processes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .training import retain_freed_memory

__all__ = ["StackedModel", "train_runs"]


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
    return ([("p:" + n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in model.named_parameters()]
            + [("b:" + n, tuple(b.shape), b.dtype, False) for n, b in model.named_buffers()])


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    mod = model
    for part in path:
        mod = getattr(mod, part)
    return mod, leaf


class StackedModel:
    """G models of one architecture as one batched model (module docstring).

    ``models``: the members, identical in parameter and buffer names, shapes, dtypes and
    ``requires_grad`` (else a one-line ValueError naming the first difference) and on one
    device. From construction on their parameters and buffers live in the stacked storage (the
    values they had are copied in): the trainable parameters of all members in one G × D
    leaf tensor per dtype (:attr:`flats`, each member's row its parameters side by side in
    the order of ``named_parameters``, its ``.grad`` the stacked gradient), the frozen ones and
    the buffers in one stacked tensor each (:attr:`frozen`, :attr:`buffers`). :attr:`params`
    gives every parameter as a G × shape tensor, :meth:`side_by_side` a run of parameters as
    one G × n view, so that per-member work over the stack takes a few kernels.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        models = list(models)
        if not models:
            raise ValueError("StackedModel needs at least one model")
        ref = _layout(models[0])
        for k, m in enumerate(models[1:], 1):
            lay = _layout(m)
            if lay != ref:
                diff = next(((a, b) for a, b in zip(ref, lay) if a != b), None)
                what = (f"{diff[0][0][2:]} {diff[0][1]} vs {diff[1][0][2:]} {diff[1][1]}" if diff
                        else f"{len(ref)} vs {len(lay)} tensors")
                raise ValueError(f"model {k} has another architecture than model 0 ({what}); "
                                 "a batched model holds one architecture")
        self.members = models
        self.base = copy.deepcopy(models[0]).to("meta")  # the stateless architecture
        G = len(models)
        own = [dict(m.named_parameters()) for m in models]
        #: trainable parameter name -> (dtype, offset in its flat row, shape)
        self.slots: dict[str, tuple[torch.dtype, int, tuple[int, ...]]] = {}
        sizes: dict[torch.dtype, int] = {}
        for name, p in models[0].named_parameters():
            if p.requires_grad:
                self.slots[name] = (p.dtype, sizes.get(p.dtype, 0), tuple(p.shape))
                sizes[p.dtype] = sizes.get(p.dtype, 0) + p.numel()
        dev = next(models[0].parameters()).device if self.slots else torch.device("cpu")
        self.flats: dict[torch.dtype, torch.Tensor] = {}
        self.frozen: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for dtype, size in sizes.items():
                self.flats[dtype] = torch.empty(G, size, dtype=dtype, device=dev)
            for name, (dtype, off, shape) in self.slots.items():
                n = math.prod(shape)
                self.flats[dtype][:, off:off + n] = torch.stack([o[name].detach().reshape(-1) for o in own])
            for flat in self.flats.values():
                flat.requires_grad_(True)
                flat.grad = torch.zeros_like(flat)
            for name, p in models[0].named_parameters():
                if not p.requires_grad:
                    self.frozen[name] = torch.stack([o[name].detach() for o in own])
            for name in dict(models[0].named_buffers()):
                self.buffers[name] = torch.stack([dict(m.named_buffers())[name] for m in models])
        self._grads: list[tuple[nn.Parameter, torch.Tensor]] = []
        for k, m in enumerate(models):
            for name, p in m.named_parameters():
                if name in self.slots:
                    p.data = self.member_view(name, k)
                    p.grad = self.member_view(name, k, grad=True)
                    self._grads.append((p, p.grad))
                else:
                    p.data = self.frozen[name][k]
            for name in dict(m.named_buffers()):
                mod, leaf = _owner(m, name)
                mod._buffers[leaf] = self.buffers[name][k]
        from .models import ConvNet

        self.grouped = all(type(m) is ConvNet for m in models)  # noqa: E721 - exactly the paper's ConvNet
        self._call = torch.func.vmap(self._one, in_dims=(0, 0, 0), randomness="different")

    def __len__(self) -> int:
        return len(self.members)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Every parameter as a G × shape tensor: the trainable ones as views of their
        :attr:`flats` leaf that autograd follows (made afresh for each forward pass), the frozen
        ones stacked."""
        G = len(self.members)
        out = {}
        for name, (dtype, off, shape) in self.slots.items():
            out[name] = self.flats[dtype][:, off:off + math.prod(shape)].view(G, *shape)
        return {**out, **self.frozen}

    def view(self, name: str, *, grad: bool = False) -> torch.Tensor:
        """The trainable parameter ``name`` of every member (or its gradient): a G × shape view
        of the stacked storage, outside autograd."""
        dtype, off, shape = self.slots[name]
        flat = self.flats[dtype].grad if grad else self.flats[dtype].detach()
        return flat[:, off:off + math.prod(shape)].view(len(self.members), *shape)

    def member_view(self, name: str, k: int, *, grad: bool = False) -> torch.Tensor:
        """Member ``k``'s trainable parameter ``name`` (or its gradient) in the stacked storage."""
        return self.view(name, grad=grad)[k]

    def side_by_side(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The trainable parameters ``names`` of every member as one G × n view of the stack
        and the same view of its gradient, where they lie side by side in that order in one
        flat row; else None."""
        if not names or any(n not in self.slots for n in names):
            return None
        dtype, start, _ = self.slots[names[0]]
        end = start
        for n in names:
            dt, off, shape = self.slots[n]
            if dt != dtype or off != end:
                return None
            end = off + math.prod(shape)
        flat = self.flats[dtype]
        return flat.detach()[:, start:end], flat.grad[:, start:end]

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor):
        return torch.func.functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs on their own batches: ``x`` is G × batch × ..., the result
        G × batch × outputs. Train or eval mode as the members are (:meth:`train`)."""
        if x.shape[0] != len(self.members):
            raise ValueError(f"input for {x.shape[0]} members, the model has {len(self.members)}")
        if self.grouped:
            return self._convnet(x)
        return self._call(self.params, self.buffers, x)

    def _convnet(self, x: torch.Tensor) -> torch.Tensor:
        """The ConvNet of G members as one network of grouped convolutions: the members'
        channels side by side (member-major), each convolution with ``groups=G``, each
        BatchNorm over the G·C channels (a channel's statistics are its member's), channels-last
        memory (measured fastest on CPU), the frozen heads as one batched product."""
        G, B = x.shape[0], x.shape[1]
        params = self.params
        h = x.transpose(0, 1).reshape(B, G * x.shape[2], *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        prefix = "features."
        for i, layer in enumerate(self.base.features):
            if isinstance(layer, nn.Conv2d):
                w = params[f"{prefix}{i}.weight"]
                h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), stride=layer.stride, padding=layer.padding, groups=G)
            elif isinstance(layer, nn.BatchNorm2d):
                mean, var = self.buffers[f"{prefix}{i}.running_mean"], self.buffers[f"{prefix}{i}.running_var"]
                training = self.base.training
                if training:
                    self.buffers[f"{prefix}{i}.num_batches_tracked"].add_(1)
                h = F.batch_norm(h, mean.view(-1), var.view(-1), training=training, momentum=layer.momentum,
                                 eps=layer.eps)
            elif isinstance(layer, nn.ReLU):
                h = F.relu(h)
            elif isinstance(layer, nn.MaxPool2d):
                h = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding)
            else:  # pragma: no cover - ConvNet has no other layer
                raise TypeError(f"no grouped form of {type(layer).__name__}")
        h = F.adaptive_max_pool2d(h, 1).reshape(B, G, -1)
        return torch.einsum("bgc,goc->gbo", h, params["head.weight"])

    def train(self, mode: bool = True) -> "StackedModel":
        self.base.train(mode)
        for m in self.members:
            m.train(mode)
        return self

    def zero_grad(self) -> None:
        """Zero the stacked gradients in place and point every member's ``.grad`` at its slice
        again (a member's own code may have set it to None)."""
        for flat in self.flats.values():
            flat.grad.zero_()
        for p, g in self._grads:
            if p.grad is not g:
                p.grad = g


def train_runs(states: Sequence[Any], *, threads: int | None = None, stop_after: int | None = None) -> list[Any]:
    """Train the runs ``states`` (:class:`sgdthermo.nn.training.RunState`, one architecture,
    one data set, one batch size) together to their end, one batched forward and backward per
    step, and return for each its summary (``RunState.finish``) or the exception that ended it.

    Each member draws its own batch from its own sampler, takes its own optimizer step and
    does its own measurement, log points and checkpoints (``RunState.after_step``): its folder
    ends as a solo run's would (the curves of the members that finish at one step drawn side
    by side, one worker process per torch thread). A member that diverges is finished as
    ``diverged`` and one that raises is finished with its exception; the others go on, in a
    batch rebuilt without them.
    ``threads``: torch CPU threads while training (restored afterwards). ``stop_after``: stop
    every member (as if killed, after its checkpoint of that step if any) once it has taken
    that many steps; its result is then ``{"status": "stopped", "step": ...}``.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    retain_freed_memory()  # the stacked activations: half the step's time in page faults without it
    results: list[Any] = [None] * len(states)
    try:
        active, ended_now = [], []
        for i, st in enumerate(states):
            if st.done:
                results[i] = _finish(st)
                ended_now.append(i)
            else:
                active.append(i)
        _draw_curves([states[i] for i in ended_now if isinstance(results[i], dict)])
        while active:
            stacked = StackedModel([states[i].model for i in active])
            stacked.train()
            members = [states[i] for i in active]
            opt_groups = _optimizer_groups(stacked, members)
            reader = _stacked_reader(stacked, members)
            train_sets = [(st.data.train_x, st.data.train_y) for st in members]
            one_loss = len({st.cfg.loss for st in members}) == 1
            while True:
                xb, yb = _rows(train_sets, torch.stack([states[i].sampler.next() for i in active]))
                stacked.zero_grad()
                out = stacked(xb)
                if one_loss:  # every member's batch mean, from one per-sample loss of the whole stack
                    losses = states[active[0]].loss_fn(out.flatten(0, 1), yb.flatten(),
                                                       reduction="none").view(len(active), -1).mean(1)
                else:
                    losses = torch.stack([states[i].loss_fn(out[k], yb[k]) for k, i in enumerate(active)])
                losses.sum().backward()
                ended = []
                for i, err in zip(active, _optimizer_steps(opt_groups, members)):
                    if err is not None:  # a member's error is its own
                        results[i] = err
                        ended.append(i)
                loss_values = losses.detach().tolist()
                if reader is not None:  # the thermometers of the members that go on, together
                    live = [k for k, i in enumerate(active) if results[i] is None and states[i].finite(loss_values[k])]
                    try:
                        reader.read([st.step + 1 for st in members], live)
                    except Exception as exc:  # noqa: BLE001 - not one member's: each that read gets it
                        for k in live:
                            results[active[k]] = exc
                            ended.append(active[k])
                measured = _log_inputs(stacked, [states[i] if results[i] is None else None for i in active])
                finished = []
                for k, (i, loss) in enumerate(zip(active, loss_values)):
                    if results[i] is not None:
                        continue
                    try:
                        states[i].after_step(loss, measured.get(k), read=reader is None)
                        if states[i].done:
                            results[i] = _finish(states[i])
                            ended.append(i)
                            finished.append(i)
                        elif stop_after is not None and states[i].step >= stop_after:
                            results[i] = {"status": "stopped", "step": states[i].step}
                            ended.append(i)
                    except Exception as exc:  # noqa: BLE001
                        results[i] = exc
                        ended.append(i)
                _draw_curves([states[i] for i in finished if isinstance(results[i], dict)])
                if ended:
                    break
            active = [i for i in active if results[i] is None]
            if reader is not None:
                reader.release()
            _release(stacked)
    finally:
        torch.set_num_threads(before)
    return results


def _names(model: nn.Module, tensors: Sequence[torch.Tensor]) -> list[str] | None:
    """The parameter names of ``tensors`` in ``model`` (None if one is not its parameter)."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    names = [name_of.get(id(t)) for t in tensors]
    return None if None in names else names


def _optimizer_groups(stacked: StackedModel, states: Sequence[Any]) -> tuple[list, list] | None:
    """The stacked parameters and gradients of the members' param groups, for one stacked step
    of their optimizers (:func:`sgdthermo.nn.optim.step_stacked`; a group lying side by side
    in the stack as one G × n view): where every member has a protocol optimizer of one class
    over the same trainable parameters, with no step hooks and its own ``step`` not replaced
    (say, by a scheduler's counter). Else None: each member steps alone."""
    from torch.optim import optimizer as torch_optimizer

    from .optim import ProtocolOptimizer

    opts = [st.opt for st in states]
    if not isinstance(opts[0], ProtocolOptimizer) or any(type(o) is not type(opts[0]) for o in opts):
        return None
    if any(o._optimizer_step_pre_hooks or o._optimizer_step_post_hooks or "step" in vars(o) for o in opts) \
            or getattr(torch_optimizer, "_global_optimizer_pre_hooks", None) \
            or getattr(torch_optimizer, "_global_optimizer_post_hooks", None):
        return None
    layout = [_names(states[0].model, g["params"]) for g in opts[0].param_groups]
    if any(names is None or any(n not in stacked.slots for n in names) for names in layout):
        return None
    for st in states:
        if [_names(st.model, g["params"]) for g in st.opt.param_groups] != layout:
            return None
    params, grads = [], []
    for names in layout:
        together = stacked.side_by_side(names)
        if together is not None:
            params.append([together[0]])
            grads.append([together[1]])
        else:
            params.append([stacked.view(n) for n in names])
            grads.append([stacked.view(n, grad=True) for n in names])
    return params, grads


def _optimizer_steps(groups: tuple[list, list] | None, states: Sequence[Any]) -> list[Exception | None]:
    """Every member's optimizer step: one stacked step where ``groups`` (above), else each
    its own. Each member's error or None."""
    from .optim import step_stacked

    if groups is None:
        errors: list[Exception | None] = []
        for st in states:
            try:
                st.opt.step()
                errors.append(None)
            except Exception as exc:  # noqa: BLE001 - a member's error is its own
                errors.append(exc)
        return errors
    try:
        return step_stacked([st.opt for st in states], *groups)
    except Exception as exc:  # noqa: BLE001 - not one member's: every member gets it
        return [exc] * len(states)


def _stacked_reader(stacked: StackedModel, states: Sequence[Any]) -> Any:
    """A :class:`~sgdthermo.nn.thermometer.StackedReader` of the members' thermometers, where
    they read the same trainable parameters, side by side in the stack; else None (each
    reads its own)."""
    from .thermometer import StackedReader

    ths = [st.meas.thermometer for st in states]
    if any(th._reader is None for th in ths):
        return None
    layout = _names(states[0].model, ths[0]._reader.tensors)
    if layout is None or any(_names(st.model, th._reader.tensors) != layout for st, th in zip(states, ths)):
        return None
    together = stacked.side_by_side(layout)
    if together is None:
        return None
    try:
        return StackedReader(ths, *together)
    except ValueError:
        return None


def _rows(sets: Sequence[tuple[torch.Tensor, torch.Tensor]], idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Member k's rows ``idx[k]`` of its own data set ``sets[k]`` (x, y), stacked: one gather
    where the members hold one data set (a pack's runs of one data seed share it), else one
    per member (another seed can mean another train/test split)."""
    x0, y0 = sets[0]
    if all(x is x0 and y is y0 for x, y in sets):
        return x0[idx], y0[idx]
    return (torch.stack([x[i] for (x, _), i in zip(sets, idx)]),
            torch.stack([y[i] for (_, y), i in zip(sets, idx)]))


def _log_inputs(stacked: StackedModel, states: Sequence[Any]) -> dict[int, Any]:
    """The log point's evaluations and noise gradients (:class:`~sgdthermo.nn.measure.LogInputs`)
    of every member (``states[k]``, None for one that left) whose next step is a log point,
    taken with the batched model: the train and test sets in eval mode, then the K noise
    batches (each member's own, from :meth:`Measurement.noise_indices`) in train mode, the
    BatchNorm statistics restored afterwards, exactly what each member's measurement would
    do alone. Keyed by member; empty where no member logs, or where the members' measurement
    settings differ (each then measures alone), or where measuring together failed (say, out
    of memory: the members' noise generators are rewound and each measures alone)."""
    due = [k for k, st in enumerate(states) if st is not None and st.logs_next]
    if not due:
        return {}
    cfgs = {(states[k].meas.cfg.noise_batches, states[k].meas.cfg.batch_size, states[k].meas.cfg.eval_batch_size)
            for k in due}
    if len(cfgs) != 1:
        return {}
    (n_noise, _, eval_batch), = cfgs
    names = {}
    for k in due:
        names[k] = _names(states[k].model, states[k].meas.params)
        if names[k] is None or any(n not in stacked.slots for n in names[k]):  # not trainable in the stack
            return {}
    first = states[due[0]]
    # a member that left the pack is fed the first due member's data (its outputs unused)
    data = [(st if st is not None and k in due else first).data for k, st in enumerate(states)]
    if len({(d.train_x.shape[0], d.test_x.shape[0]) for d in data}) != 1:
        return {}
    gens = {k: states[k].meas.gen.get_state() for k in due}
    try:
        return _measure_together(stacked, states, due, names, data, n_noise, eval_batch)
    except Exception:  # noqa: BLE001 - say, out of memory: each member measures alone, on the same batches
        for k, g in gens.items():
            states[k].meas.gen.set_state(g)
        return {}


def _measure_together(stacked: StackedModel, states: Sequence[Any], due: list[int], names: dict[int, list[str]],
                      data: list[Any], n_noise: int, eval_batch: int) -> dict[int, Any]:
    """The work of :func:`_log_inputs` once its checks passed."""
    from .measure import LogInputs

    G = len(stacked)
    evals: dict[int, list[tuple[float, float]]] = {k: [] for k in due}
    stacked.train(False)
    try:
        with torch.no_grad():
            for part in ("train", "test"):
                sets = [(getattr(d, part + "_x"), getattr(d, part + "_y")) for d in data]
                n, dev = sets[0][0].shape[0], sets[0][0].device
                loss_sum, correct = dict.fromkeys(due, 0.0), dict.fromkeys(due, 0)
                for i in range(0, n, eval_batch):
                    xb, yb = _rows(sets, torch.arange(i, min(i + eval_batch, n), device=dev).expand(G, -1))
                    out = stacked(xb)
                    hits = (out.argmax(2) == yb).sum(1).tolist()
                    for k in due:
                        loss_sum[k] += float(states[k].loss_fn(out[k], yb[k], reduction="sum"))
                        correct[k] += int(hits[k])
                for k in due:
                    evals[k].append((loss_sum[k] / n, correct[k] / n))
    finally:
        stacked.train(True)
    # the noise batches in train mode: the batch statistics of each batch, running statistics kept
    draws = {k: states[k].meas.noise_indices() for k in due}
    saved = {n: b.clone() for n, b in stacked.buffers.items()}
    rows: dict[int, list[torch.Tensor]] = {k: [] for k in due}
    train_sets = [(d.train_x, d.train_y) for d in data]
    try:
        for j in range(n_noise):
            xb, yb = _rows(train_sets, torch.stack([draws[k][j] if k in draws else draws[due[0]][j] for k in range(G)]))
            out = stacked(xb)
            loss = sum(states[k].loss_fn(out[k], yb[k]) for k in due)
            flat = dict(zip(stacked.flats, torch.autograd.grad(loss, list(stacked.flats.values()), allow_unused=True)))
            for k in due:
                parts = []
                for n in names[k]:
                    dtype, off, shape = stacked.slots[n]
                    parts.append(flat[dtype][k, off:off + math.prod(shape)])
                rows[k].append(torch.cat(parts).double())
    finally:
        with torch.no_grad():
            for n, b in stacked.buffers.items():
                b.copy_(saved[n])
    return {k: LogInputs(train=evals[k][0], test=evals[k][1], noise_gradients=torch.stack(rows[k])) for k in due}


def _finish(state: Any) -> Any:
    """The member's summary (its curves left to :func:`_draw_curves`), or its error."""
    try:
        return state.finish(draw=False)
    except Exception as exc:  # noqa: BLE001
        return exc


def _draw_curves(states: Sequence[Any]) -> None:
    """The curves of the members that finished together, drawn side by side in as many worker
    processes as the pack has torch threads (:func:`sgdthermo.figures.style.draw_all`: the
    same bytes as drawn one after another; one thread: drawn here); a figure that fails is
    logged in its run, as a solo run logs it."""
    if not states:
        return
    try:
        from ..figures.style import draw_all

        jobs = [st.curves_job() for st in states]
    except Exception as exc:  # noqa: BLE001 - figures never fail a run
        for st in states:
            st.curves_failed(exc)
        return
    for st, drawn in zip(states, draw_all(jobs, workers=torch.get_num_threads())):
        if drawn.error is not None:
            st.curves_failed(drawn.error)


def _release(stacked: StackedModel) -> None:
    """Give every member back storage of its own (its values as they are), so that a member
    that left the batch does not keep the whole stacked tensor alive and the next batch can
    stack the rest afresh."""
    with torch.no_grad():
        for m in stacked.members:
            for _, p in m.named_parameters():
                p.data = p.data.clone()
                if p.grad is not None:
                    p.grad = p.grad.clone()
            for name, b in list(m.named_buffers()):
                mod, leaf = _owner(m, name)
                mod._buffers[leaf] = b.clone()
