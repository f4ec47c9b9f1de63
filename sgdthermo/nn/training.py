r"""Training scale-invariant networks under the three protocols, with measurement.

:func:`train` runs one configuration (:class:`TrainConfig`) into a run folder:

- ``config.json``: the whole resolved configuration (and d, the number of scale-invariant
  parameters);
- ``metrics.csv``: one row per log step (:func:`sgdthermo.nn.measure.log_schedule`);
- ``summary.json``: status, stationarity, stationary averages with errors, the theory
  predictions (SDE radius with the measured σ², the discrete-time identity, T, and for
  fixed sphere the effective pressure);
- ``thermo.csv``: the rows of the :class:`~sgdthermo.nn.thermometer.Thermometer` that measures
  the run (:class:`~sgdthermo.nn.measure.Measurement`): the angular update, the equilibrium
  predicted for the protocol, a verdict; ``sgdthermo thermo OUT`` reads it;
- ``curves.png``: the run's curves; ``checkpoint.pt``: the latest checkpoint.

Checkpoints are written atomically every ``checkpoint_every`` steps with the model, the
optimizer, the step, every random state (torch, the batch sampler, the measurement's
generator), the entropy queue and the metrics so far; ``resume=True`` continues from the
latest one and reproduces an uninterrupted run exactly on CPU. Checkpoints hold only
tensors and plain containers and are loaded with ``torch.load(weights_only=True)``.

Digits defaults (docs/networks.md): a ConvNet of width 4 with a frozen head of norm 2
(the paper's 10 lets the loss reach zero on digits: no stationary state).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import io, stats, theory
from ..entropy.correlation import entropy_ok, queue_advice
from ..errors import CheckpointError, RunBusyError, RunExistsError, first_line
from .config import TrainConfig
from .measure import QUEUE_COLUMNS, MeasureConfig, Measurement, log_schedule

__all__ = ["train", "summarize", "read_checkpoint", "run_lock"]

_log = logging.getLogger("sgdthermo.train")

def _loss_fn(kind: str, num_classes: int) -> Callable:
    if kind == "ce":
        return F.cross_entropy

    def mse(logits, y, reduction="mean"):
        target = F.one_hot(y, num_classes).to(logits.dtype)
        per = ((logits - target) ** 2).sum(1)
        return per if reduction == "none" else per.mean() if reduction == "mean" else per.sum()

    return mse


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Let the process keep the memory that freed tensors give back, instead of returning it
    to the operating system after every operation (glibc's ``mallopt``: blocks up to 32 MiB
    from the heap, the heap trimmed only above 1 GiB free). Returns whether the setting took.

    A training step allocates and frees the same activation buffers every step. With glibc's
    defaults, buffers above its mmap threshold are mapped and unmapped each time, and every
    step pays page faults on fresh memory: the stacked activations of a batched model
    (:mod:`sgdthermo.nn.batched`) ran at half speed for it (digits ConvNet, 16 members, 2 threads:
    21 ms a step before, 11 ms after; a solo run's buffers are mostly below the threshold and it
    did not change). Process-wide and once; a no-op where the C library has no ``mallopt``.
    """
    global _retained
    if _retained is None:
        _retained = False
        try:
            import ctypes

            mallopt = ctypes.CDLL(None).mallopt
            _retained = mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
        except (OSError, AttributeError):  # not glibc
            pass
    return _retained


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state()}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_CHECKPOINT_KEYS = ("config", "step", "model", "optimizer", "sampler", "measurement", "rng", "metrics")


def read_checkpoint(path: Path, cfg_dict: dict[str, Any], schedule: set[int]) -> dict[str, Any]:
    """The checkpoint at ``path`` after checking that it can continue the run ``cfg_dict``.

    Raises :class:`~sgdthermo.errors.CheckpointError` (one line naming the file) when the
    file cannot be read (empty, truncated, not a checkpoint, or holding anything but
    tensors and plain containers: it is loaded with ``weights_only=True``), when it was made
    with another configuration (the differing settings are named), or when its step is
    impossible: outside ``[0, iters]``, different from the number of batches its sampler
    drew, or not matching its metrics (the log points of :func:`log_schedule` up to that
    step must all be there, and none after it).
    """
    try:
        ck = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same answer
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                              "pass --force to start the run over") from None
    if not isinstance(ck, dict) or any(k not in ck for k in _CHECKPOINT_KEYS):
        missing = [k for k in _CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
        raise CheckpointError(f"{path}: not a checkpoint of this program (missing {', '.join(missing)}); "
                              "pass --force to start the run over")
    saved, now = ck["config"], io.jsonable(cfg_dict)
    if saved != now:
        keys = sorted(set(saved) | set(now)) if isinstance(saved, dict) else []
        diff = [f"{k}={saved.get(k)!r} (now {now.get(k)!r})" for k in keys if saved.get(k) != now.get(k)]
        raise CheckpointError(f"{path}: made with another configuration ({'; '.join(diff[:4]) or 'unreadable'}); "
                              "run with the checkpoint's settings, or pass --force to start over")
    iters = int(cfg_dict["iters"])
    try:
        step = int(ck["step"])
        drawn = int(ck["sampler"]["steps"])
        logged = [int(r["step"]) for r in ck["metrics"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                              "pass --force to start the run over") from None
    expected = sorted(t for t in schedule if t <= step)
    if not 0 <= step <= iters or drawn != step or logged != expected:
        why = (f"step {step} outside [0, {iters}]" if not 0 <= step <= iters
               else f"step {step} but {drawn} batches drawn" if drawn != step
               else f"step {step} but metrics logged up to step {logged[-1] if logged else 0}")
        raise CheckpointError(f"{path}: impossible checkpoint ({why}); pass --force to start the run over")
    return ck


_HELD_LOCKS: set[str] = set()  # run folders whose lock this process holds


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """An exclusive, non-blocking ``flock`` on ``run_dir/.lock`` (holding the trainer's pid)
    while a run trains, so that two processes never train the same run at once; raises
    :class:`~sgdthermo.errors.RunBusyError` naming the other's pid. Re-entrant within a
    process (a sweep holds it around :func:`train`, which takes it too). The kernel releases
    it when the process dies, so the lock of a killed trainer is taken over by the next;
    where the file system has no locks, runs go unlocked."""
    key = str(Path(run_dir).resolve())
    if key in _HELD_LOCKS:
        yield
        return
    try:
        fh = io.lock_file(Path(run_dir) / ".lock")
    except io.LockHeld as held:
        raise RunBusyError(f"{Path(run_dir).name} is being trained by another process (pid {held.owner})") from None
    _HELD_LOCKS.add(key)
    try:
        yield
    finally:
        _HELD_LOCKS.discard(key)
        fh.close()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _setup(cfg: TrainConfig, log: Callable[[str], None], shared: dict | None = None):
    """The run's data, model, loss, scale-invariant set, optimizer, sampler and measurement,
    exactly as every run of ``cfg`` gets them. ``shared``: data sets already loaded (by their
    loading arguments), so that the runs of a pack hold each one once."""
    from .data import BatchSampler, depends_on_seed, load_dataset
    from .models import (
        build_model,
        check_scale_invariance,
        find_scale_invariant,
        set_si_norm,
    )
    from .optim import make_optimizer

    dev = _resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    seed = cfg.seed if depends_on_seed(cfg.dataset, cfg.samples_per_label) else None  # else one copy for all seeds
    key = (cfg.dataset, cfg.data_dir, str(dev), cfg.samples_per_label, cfg.download, seed)
    data = None if shared is None else shared.get(key)
    if data is None:
        data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, device=dev,
                            samples_per_label=cfg.samples_per_label, download=cfg.download, seed=cfg.seed)
        if shared is not None:
            shared[key] = data
    model = build_model(cfg.model, in_channels=data.in_channels, num_classes=data.num_classes,
                        width=cfg.width, head_norm=cfg.head_norm, image_size=data.image_size).to(dev)
    loss_fn = _loss_fn(cfg.loss, data.num_classes)
    probe = torch.arange(min(cfg.batch_size, data.train_x.shape[0]), device=dev)
    si, other = find_scale_invariant(model, data.train_x[probe], data.train_y[probe], loss_fn)
    if not si:
        raise ValueError(f"model {cfg.model!r} has no scale-invariant parameters")
    dev_rel = check_scale_invariance(model, si, data.train_x[probe], data.train_y[probe], loss_fn)
    d = int(sum(p.numel() for p in si))
    log(f"{cfg.model} (width {cfg.width}, head norm {cfg.head_norm}) on {cfg.dataset}: d = {d} "
        f"scale-invariant parameters in {len(si)} tensors, {sum(p.numel() for p in other)} other trainable; "
        f"invariance check max |ΔL|/L = {dev_rel:.1e}")
    radius = cfg.radius if cfg.protocol == "fixed-sphere" else cfg.init_norm
    set_si_norm(si, radius)
    opt = make_optimizer(cfg.protocol, si, lr=cfg.lr, weight_decay=cfg.wd, radius=cfg.radius,
                         other_params=other or None)
    sampler = BatchSampler(data.train_x.shape[0], cfg.batch_size, seed=cfg.seed, device=dev)
    meas = Measurement(model, si, opt, loss_fn, data, MeasureConfig(
        noise_batches=cfg.noise_batches, batch_size=cfg.batch_size, queue_size=cfg.queue_size,
        queue_every=cfg.queue_every, queue_dtype=cfg.queue_dtype, entropy_method=cfg.entropy_method,
        max_queue_every=max(1, int(cfg.tail_fraction * cfg.iters) // cfg.queue_size), seed=cfg.seed))
    return data, model, loss_fn, si, d, opt, sampler, meas, dev_rel


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] = _log.info,
    progress: Callable[[int, int], None] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train one configuration into the folder ``out`` and return its summary.

    ``resume``: continue from ``out/checkpoint.pt``. ``force``: start over even if ``out``
    holds a finished run. ``stop_after``: stop (as if killed) after that many steps, after
    the checkpoint of that step if any (for tests of resumption).
    """
    cfg = config.resolved()
    cfg.validate()
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)  # part of the run: the last bits of CPU results depend on it
    retain_freed_memory()
    try:
        with contextlib.ExitStack() as stack:
            return _train(cfg, Path(out), resume=resume, force=force, log=log, progress=progress,
                          stop_after=stop_after, stack=stack)
    finally:
        torch.set_num_threads(before)


def _train(cfg: TrainConfig, out: Path, *, resume: bool, force: bool, log: Callable[[str], None],
           progress: Callable[[int, int], None] | None, stop_after: int | None,
           stack: contextlib.ExitStack) -> dict[str, Any]:
    run = RunState(cfg, out, resume=resume, force=force, log=log, stack=stack)
    x, y = run.data.train_x, run.data.train_y
    model, opt, loss_fn = run.model, run.opt, run.loss_fn
    while not run.done:
        idx = run.sampler.next()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        run.after_step(float(loss.detach()))
        if progress is not None:
            progress(run.step, cfg.iters)
        if stop_after is not None and run.step >= stop_after:
            return {"status": "stopped", "step": run.step}
    return run.finish()


class RunState:
    """One run in its folder, between the training steps: everything :func:`train` does
    except the forward, backward and optimizer step, so that a loop that steps many runs at
    once (:mod:`sgdthermo.nn.batched`) writes exactly what :func:`train` writes.

    Construction does every check before the first write (a finished run, a checkpoint that
    cannot continue the run: :class:`~sgdthermo.errors.RunExistsError`,
    :class:`~sgdthermo.errors.CheckpointError`), builds the run (:func:`_setup`), restores the
    checkpoint, takes the run lock on ``stack`` and writes ``config.json``. Then per step:
    the sampler's batch (``sampler.next()``), the caller's step, :meth:`after_step` with the
    batch loss (divergence check, measurement, log points, checkpoints), until :attr:`done`;
    :meth:`finish` writes the summary and the curves. ``shared``: see :func:`_setup`.
    """

    def __init__(self, cfg: TrainConfig, out: Path, *, resume: bool, force: bool, log: Callable[[str], None],
                 stack: contextlib.ExitStack, shared: dict | None = None) -> None:
        out = io.check_output_folder(out)
        ckpt_path = out / "checkpoint.pt"
        if (out / "summary.json").exists() and not force and not resume:
            raise RunExistsError(f"--out {out}: holds a finished run; pass --force to overwrite")
        if ckpt_path.exists() and not resume and not force:
            raise RunExistsError(f"--out {out}: holds an unfinished run; pass --resume to continue or --force")
        self.cfg, self.out, self.log, self.ckpt_path = cfg, out, log, ckpt_path
        self.cfg_dict = dataclasses.asdict(cfg)
        self.schedule = set(log_schedule(cfg.iters, cfg.log_every, cfg.log_linear_until, cfg.log_per_decade))
        # every check before the first write: a refused resume leaves the folder as it was
        ck = (read_checkpoint(ckpt_path, self.cfg_dict, self.schedule)
              if resume and ckpt_path.exists() and not force else None)
        (self.data, self.model, self.loss_fn, self.si, self.d, self.opt, self.sampler, self.meas,
         inv) = _setup(cfg, log, shared)
        self.rows: list[dict[str, float]] = []
        self.step = 0
        self.earlier_s = 0.0  # training time before the last resume
        if ck is not None:
            try:
                self.model.load_state_dict(ck["model"])
                self.opt.load_state_dict(ck["optimizer"])
                self.sampler.load_state_dict(ck["sampler"])
                self.meas.load_state_dict(ck["measurement"])
                torch.set_rng_state(ck["rng"]["torch"])
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
                raise CheckpointError(f"{ckpt_path}: does not fit this run ({type(exc).__name__}: "
                                      f"{first_line(exc)}); pass --force to start over") from None
            self.rows = [dict(r) for r in ck["metrics"]]
            self.step = int(ck["step"])
            self.earlier_s = float(ck.get("runtime_s", 0.0))
        out.mkdir(exist_ok=True)
        stack.enter_context(run_lock(out))  # another process training here: RunBusyError, nothing written
        io.write_json({**self.cfg_dict, "d": self.d, "invariance_check": inv}, out / "config.json")
        log(f"entropy queue: {cfg.queue_size} x {self.d} {cfg.queue_dtype} = {self.meas.queue_bytes / 2**20:.1f} MiB; "
            f"{cfg.threads} torch thread(s)")
        if ck is not None:
            log(f"resumed at step {self.step}")
        else:  # a fresh start: outputs of an earlier run (force) no longer describe this one
            for name in ("summary.json", "checkpoint.pt", "metrics.csv", "thermo.csv"):
                (out / name).unlink(missing_ok=True)
        self.writer = _tensorboard(out) if cfg.tensorboard else None
        self.model.train()
        self.status, self.message = "completed", ""
        self.t0 = time.perf_counter()

    @property
    def done(self) -> bool:
        """Finished its steps, or diverged."""
        return self.step >= self.cfg.iters or self.status == "diverged"

    @property
    def logs_next(self) -> bool:
        """The next step is a log point."""
        return self.step + 1 in self.schedule

    def finite(self, loss: float) -> bool:
        """The step just taken kept the run alive: finite batch loss, radius and gradient."""
        last = self.opt.last_step
        return math.isfinite(loss) and math.isfinite(last["rho"]) and math.isfinite(last["grad_sq"])

    def after_step(self, loss: float, measured: Any = None, *, read: bool = True) -> None:
        """Everything after the optimizer's step: the divergence check (a step that is not
        :meth:`finite` ends the run as ``diverged``), the measurement, the log point's rows
        (``metrics.csv``, ``thermo.csv``, TensorBoard) and the checkpoint when due.
        ``measured``: the log point's :class:`~sgdthermo.nn.measure.LogInputs`, if taken
        already (see :meth:`Measurement.log`). ``read=False``: the thermometer has read the
        step already (see :meth:`Measurement.after_step`)."""
        cfg, out = self.cfg, self.out
        self.step += 1
        step = self.step
        if not self.finite(loss):
            self.status = "diverged"
            self.message = f"non-finite loss or weights at step {step} (loss {loss}); lower the learning rate"
            return
        self.meas.after_step(step, loss, read=read)
        if step in self.schedule:
            row = self.meas.log(step, measured)
            self.rows.append(row)
            io.write_csv(pd.DataFrame(self.rows), out / "metrics.csv")
            io.write_csv(self.meas.thermometer.to_frame(), out / "thermo.csv")
            if self.writer is not None:
                for k, v in row.items():
                    if k != "step" and isinstance(v, float) and math.isfinite(v):
                        self.writer.add_scalar(k, v, step)
        if step % cfg.checkpoint_every == 0 or step == cfg.iters:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (the run can continue from it exactly)."""
        _atomic_torch_save({
            # copies: a member of a batched model views the whole stack, which torch.save would write
            "config": io.jsonable(self.cfg_dict), "step": self.step,
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(), "sampler": self.sampler.state_dict(),
            "measurement": self.meas.state_dict(), "rng": _rng_state(), "metrics": self.rows,
            "runtime_s": self.earlier_s + time.perf_counter() - self.t0,
        }, self.ckpt_path)

    def finish(self, *, draw: bool = True) -> dict[str, Any]:
        """Write ``metrics.csv``, ``summary.json`` and ``curves.png``; return the summary.
        ``draw=False`` leaves the curves to the caller (:meth:`curves_job`, and
        :meth:`curves_failed` where it fails; a pack draws its members' curves side by side)."""
        cfg, out, log = self.cfg, self.out, self.log
        if self.writer is not None:
            self.writer.close()
        runtime = self.earlier_s + time.perf_counter() - self.t0  # training time over every resume
        metrics = pd.DataFrame(self.rows)
        io.write_csv(metrics, out / "metrics.csv")
        summary = summarize(metrics, cfg, self.d)
        summary.update({"status": self.status, "message": self.message, "steps": self.step, "runtime_s": runtime,
                        "queue_stride": self.meas.queue.stride, "queue_note": self.meas.queue.note})
        if self.status == "diverged":
            summary["stationary"] = False
            log(f"diverged: {self.message}")
        io.write_json(summary, out / "summary.json")
        self._metrics = metrics
        if draw:
            try:
                fn, args, kwargs = self.curves_job()
                fn(*args, **kwargs)
            except Exception as exc:  # figures never fail a run
                self.curves_failed(exc)
        return summary

    def curves_job(self) -> tuple[Callable[..., Path], tuple, dict[str, Any]]:
        """The curves of a finished run as a figure job of
        :func:`sgdthermo.figures.style.draw_all`: ``(plot_curves, (metrics, path), kwargs)``."""
        from ..figures.run import plot_curves  # lazy: matplotlib only here

        cfg = self.cfg
        return plot_curves, (self._metrics, self.out / "curves.png"), {
            "title": f"{cfg.model} on {cfg.dataset}, {cfg.protocol}"}

    def curves_failed(self, error: BaseException) -> None:
        """Log why the curves were not drawn (a curves job's error): figures never fail a run."""
        self.log(f"curves.png not written: {error}")


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # pragma: no cover - optional
        raise ValueError("--tensorboard needs the tensorboard package (pip install tensorboard)") from exc
    return SummaryWriter(str(out / "tensorboard"))


# ---------------------------------------------------------------------------------------
# Stationary summary
# ---------------------------------------------------------------------------------------
def _tail(metrics: pd.DataFrame, frac: float) -> pd.DataFrame:
    last = metrics["step"].max()
    return metrics[metrics["step"] > last * (1 - frac)]


def _trend(steps: np.ndarray, values: np.ndarray) -> float:
    """Relative change of ``values`` over the window from a linear fit (fraction)."""
    v = np.asarray(values, float)
    if v.size < 3 or not np.all(np.isfinite(v)):
        return float("nan")
    slope, icpt = np.polyfit(steps, v, 1)
    span = steps.max() - steps.min()
    mean = abs(v.mean()) if v.mean() != 0 else 1.0
    return float(slope * span / mean)


def summarize(metrics: pd.DataFrame, cfg: TrainConfig, d: int) -> dict[str, Any]:
    r"""Stationary averages over the tail of the log with errors, verdicts, and theory.

    Errors and the verdict come from :func:`sgdthermo.stats.stationarity` on the tail's log
    series (radius, loss, σ²), with at least 5 independent samples required. The
    interpolation regime (docs/theory.md; the paper's Appendix H) is flagged when over the
    tail the training loss and tr Σ both fall by more than 30 % while the radius shrinks:
    such runs have no stationary state and are reported, not averaged as if settled.

    Theory (docs/theory.md), with :math:`\bar\sigma^2` and :math:`g_u = E\|g_B(u)\|^2`
    the tail averages: fixed LR :math:`\rho^4 = \eta\sigma^2(d-1)/(2\lambda)` (SDE) and
    :math:`\rho^4 = \eta g_u/(2\lambda)` (discrete); fixed ELR
    :math:`\rho^2 = \tilde\eta\sigma^2(d-1)/(2\lambda)` and :math:`\tilde\eta g_u/(2\lambda)`;
    fixed sphere :math:`p = (d-1)T/\rho^2` and :math:`\tilde\eta g_u/(2\rho^2)` against the
    measured :math:`p_{\rm eff} = (E|w'|-\rho)/(\tilde\eta\rho^3)`.
    """
    out: dict[str, Any] = {"d": d, "protocol": cfg.protocol, "lr": cfg.lr, "wd": cfg.wd,
                           "radius": cfg.radius, "n_logs": int(len(metrics))}
    if metrics.empty:
        out.update({"stationary": False, "interpolating": False, "reason": "no log points"})
        return out
    tail = _tail(metrics, cfg.tail_fraction)
    out["tail_logs"] = int(len(tail))
    watched = {"rho": "rho_mean", "train_loss": "batch_loss", "sigma2": "sigma2"}
    verdicts = {}
    for name, col in [("rho", "rho_mean"), ("rho2", "rho2_mean"), ("train_loss", "batch_loss"),
                      ("test_loss", "test_loss"), ("train_acc", "train_acc"), ("test_acc", "test_acc"),
                      ("sigma2", "sigma2"), ("trace_cov", "trace_cov"), ("grad_sq", "grad_sq"),
                      ("grad_sq_unit", "grad_sq_unit"), ("elr", "elr"), ("norm_excess", "norm_excess"),
                      ("T", "T"), ("snr", "snr")]:
        if col not in tail or tail[col].isna().all():
            continue
        series = tail[col].to_numpy(float)
        if series.size >= 4:
            st = stats.stationarity(series, min_independent=5.0)
            out[name], out[name + "_err"] = float(st["mean"]), float(st["stderr"])
            verdicts[name] = bool(st["stationary"])
            if name in watched:
                out[f"{name}_drift_z"] = float(st["z"])
                out[f"{name}_n_eff"] = float(st["n_eff"])
        else:
            out[name], out[name + "_err"] = float(series.mean()), float("nan")
            verdicts[name] = False
    ent = tail.dropna(subset=["S_sphere"]) if "S_sphere" in tail else tail.iloc[0:0]
    if len(ent):
        out["S_sphere"] = float(ent["S_sphere"].iloc[-1])
        out["S_sphere_err"] = float(ent["S_sphere_err"].iloc[-1])
        out["S"] = float(ent["S"].iloc[-1])
        out["S_err"] = out["S_sphere_err"]
        last = ent.iloc[-1]
        for key in QUEUE_COLUMNS:
            out[key] = float(last[key]) if key in ent and pd.notna(last[key]) else None
        if out["queue_tau"] is not None and out["queue_nn_lag"] is not None:
            ok, why = entropy_ok(out["queue_nn_lag"], cfg.queue_size, out["queue_tau"],
                                 advice=queue_advice(cfg.queue_every))
            out["entropy_ok"], out["entropy_note"] = bool(ok), why
        else:
            out["entropy_ok"], out["entropy_note"] = None, "queue correlation not measured"
    else:
        out["S_sphere"] = out["S_sphere_err"] = out["S"] = out["S_err"] = None
    steps = tail["step"].to_numpy(float)
    loss_trend = _trend(steps, tail["train_loss"].to_numpy(float))
    cov_trend = _trend(steps, tail["trace_cov"].to_numpy(float))
    rho_trend = _trend(steps, tail["rho_mean"].to_numpy(float))
    out["trend_train_loss"], out["trend_trace_cov"], out["trend_rho"] = loss_trend, cov_trend, rho_trend
    interpolating = bool(loss_trend < -0.3 and cov_trend < -0.3 and rho_trend < 0)
    out["interpolating"] = interpolating
    keys = ["rho", "train_loss", "sigma2"] if cfg.protocol != "fixed-sphere" else ["train_loss", "sigma2", "norm_excess"]
    stationary = all(verdicts.get(k, False) for k in keys) and not interpolating
    out["stationary"] = stationary
    out["reason"] = ("" if stationary else "interpolation regime: loss and gradient noise still falling, radius shrinking"
                     if interpolating else "not settled: " + ", ".join(k for k in keys if not verdicts.get(k, False)))
    # temperature and theory with the tail's σ² and E‖g_B(u)‖²
    sigma2 = out.get("sigma2")
    gu = out.get("grad_sq_unit")
    if sigma2 is not None and sigma2 > 0:
        sig = math.sqrt(sigma2)
        wd = None if cfg.protocol == "fixed-sphere" else cfg.wd
        out["T"] = float(theory.temperature(cfg.protocol, lr=cfg.lr, sigma=sig, d=d, wd=wd))
        out["R"] = float(theory.gas_constant(d))
        if cfg.protocol == "fixed-sphere":
            out["rho_theory"] = out["rho_theory_discrete"] = cfg.radius
            out["p"] = (float(theory.effective_pressure(norm_excess=out["norm_excess"], lr=cfg.lr, radius=cfg.radius))
                        if "norm_excess" in out else None)
            out["p_err"] = (float(theory.effective_pressure(norm_excess=out["norm_excess_err"], lr=cfg.lr,
                                                            radius=cfg.radius))
                            if "norm_excess_err" in out else None)
            out["p_theory"] = float(theory.pressure_sphere(lr=cfg.lr, radius=cfg.radius, sigma=sig, d=d))
            out["p_theory_discrete"] = (float(theory.pressure_sphere_discrete(lr=cfg.lr, radius=cfg.radius,
                                                                              trace_u=gu, grad_sq_u=0.0))
                                        if gu else None)
            out["rho"], out["rho_err"] = cfg.radius, 0.0
        else:
            out["rho_theory"] = float(theory.radius_sde(cfg.protocol, lr=cfg.lr, wd=cfg.wd, sigma=sig, d=d))
            out["rho_theory_discrete"] = (float(theory.radius_discrete(cfg.protocol, lr=cfg.lr, wd=cfg.wd,
                                                                      trace_u=gu, grad_sq_u=0.0))
                                          if gu else None)
            out["p"], out["p_err"] = cfg.wd, 0.0
        if out.get("rho"):
            out["V"] = float(theory.volume(out["rho"]))
    return out
