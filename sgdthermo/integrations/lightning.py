"""A Lightning callback that runs a :class:`~sgdthermo.Thermometer` during ``Trainer.fit``::

    from sgdthermo.integrations.lightning import ThermometerCallback

    cb = ThermometerCallback(log_every=200, noise_batches=8)
    trainer = lightning.Trainer(callbacks=[cb], ...)
    trainer.fit(module, train_loader)
    cb.to_frame()            # one row per (log point, group); also <log dir>/thermo/thermo.csv

Works with ``lightning.pytorch`` or ``pytorch_lightning`` (whichever is installed; extra
``sgdthermo[lightning]``). The callback only observes: the noise batches come from a loader of
its own (own shuffling generator), their forward passes run under a forked random state, and
the thermometer restores BatchNorm statistics and gradients, so training follows the same
trajectory with or without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from ..nn.models import forked_rng
from . import _noise_loader, _NoiseBatches, _scalars

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package
    try:
        from pytorch_lightning import Callback
    except ImportError as exc:
        raise ImportError("sgdthermo.integrations.lightning needs Lightning: pip install 'sgdthermo[lightning]' "
                          "(lightning or pytorch-lightning)") from exc

__all__ = ["ThermometerCallback", "training_step_loss"]


@contextmanager
def _quiet_log(module: Any):
    """``module.log`` and ``module.log_dict`` as no-ops: a training step run for a noise batch
    must not report its loss as the training loss."""
    def nop(*args: Any, **kwargs: Any) -> None:
        return None

    had = {name: name in vars(module) for name in ("log", "log_dict")}
    saved = {name: vars(module)[name] for name, h in had.items() if h}
    object.__setattr__(module, "log", nop)
    object.__setattr__(module, "log_dict", nop)
    try:
        yield
    finally:
        for name, h in had.items():
            if h:
                object.__setattr__(module, name, saved[name])
            else:
                object.__delattr__(module, name)


def training_step_loss(module: Any, batch: Any) -> torch.Tensor:
    """The loss of ``module.training_step(batch, 0)`` (a tensor, or a mapping with ``"loss"``),
    with the module's ``self.log`` calls muted: the default ``loss_fn`` for noise batches."""
    with _quiet_log(module):
        out = module.training_step(batch, 0)
    if isinstance(out, Mapping):
        out = out.get("loss")
    if not isinstance(out, torch.Tensor):
        raise ValueError("training_step returned no loss tensor for a noise batch: pass loss_fn=(model, batch) -> loss "
                         "to ThermometerCallback")
    return out


class ThermometerCallback(Callback):
    """Measure the scale-invariant groups of a LightningModule during training.

    Parameters
    ----------
    log_every : a log point every ``log_every`` optimizer steps (``trainer.global_step``).
    noise_batches : K extra batches per log point for the gradient-noise estimate (``trace_cov``,
        ``sigma2``, ``T``); 0 (the default) for none, else at least 2.
    log_dir : the thermometer's folder (``thermo.csv``, ``groups.json``); default
        ``trainer.log_dir/thermo`` (the first logger's folder, or ``default_root_dir``). Files
        are written by the global-zero process only.
    noise_data : where noise batches come from: an iterable of batches (restarted when
        exhausted); default the training dataloader, re-sampled independently (same dataset,
        batch size and collate function, own generator seeded ``noise_seed``).
    loss_fn : ``loss_fn(module, batch) -> loss`` for noise batches; default
        :func:`training_step_loss` (``module.training_step(batch, 0)``). Needed with manual
        optimization, whose training step steps the optimizer itself.
    optimizer_index : which of ``trainer.optimizers`` to follow.
    log_metrics : send the ``"all"`` row's numeric scalars to the trainer's loggers and to
        ``module.log`` (``logger=False``: available in ``trainer.callback_metrics``) under
        ``prefix``.
    **thermometer_options : passed to :class:`~sgdthermo.Thermometer` (``groups``, ``example``,
        ``tolerance``, ``tensorboard``, ``parquet``, ``queue_size``, ...).

    Attributes: :attr:`thermometer` (None before training starts), :attr:`latest` (the last log
    point's ``"all"`` scalars), :meth:`to_frame`.
    """

    def __init__(self, log_every: int = 200, noise_batches: int = 0, log_dir: str | os.PathLike | None = None, *,
                 noise_data: Iterable[Any] | None = None, noise_seed: int = 0,
                 loss_fn: Callable[[Any, Any], torch.Tensor] | None = None, optimizer_index: int = 0,
                 log_metrics: bool = True, prefix: str = "thermo/", **thermometer_options: Any) -> None:
        super().__init__()
        if int(log_every) < 1:
            raise ValueError(f"log_every {log_every}: must be at least 1")
        if int(noise_batches) < 0 or int(noise_batches) == 1:
            raise ValueError(f"noise_batches {noise_batches}: 0 (none) or at least 2")
        for key in ("log_dir", "loss_fn", "noise_k"):
            if key in thermometer_options:
                raise TypeError(f"{key!r} is set through the callback's own arguments")
        self.log_every, self.noise_batches = int(log_every), int(noise_batches)
        self.log_dir = log_dir
        self.noise_data, self.noise_seed = noise_data, int(noise_seed)
        self.loss_fn, self.optimizer_index = loss_fn, int(optimizer_index)
        self.log_metrics, self.prefix = bool(log_metrics), str(prefix)
        self.thermometer_options = thermometer_options
        self.thermometer: Any = None
        self.latest: dict[str, float] = {}
        self._noise: _NoiseBatches | None = None
        self._last_step: int | None = None

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        from ..nn.thermometer import Thermometer

        optimizers = trainer.optimizers
        if not optimizers:
            raise ValueError("ThermometerCallback: the trainer has no optimizer")
        optimizer = optimizers[self.optimizer_index]
        optimizer = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer wrapper
        log_dir = self._log_dir(trainer)
        loss_fn = self.loss_fn
        if loss_fn is None:
            if self.noise_batches and not getattr(pl_module, "automatic_optimization", True):
                raise ValueError("ThermometerCallback: with manual optimization the training step steps the "
                                 "optimizer; pass loss_fn=(module, batch) -> loss for the noise batches")
            loss_fn = training_step_loss
        options = dict(self.thermometer_options)
        if self.noise_batches:
            options["noise_k"] = self.noise_batches
        self.thermometer = Thermometer(pl_module, optimizer, log_dir=log_dir, loss_fn=loss_fn, **options)
        if self.noise_batches:
            data = self.noise_data
            if data is None:
                train = trainer.train_dataloader
                if train is None or isinstance(train, (Mapping, list, tuple)):
                    raise ValueError("ThermometerCallback: no single training dataloader to draw noise batches "
                                     "from; pass noise_data=")
                data = _noise_loader(train, self.noise_seed)
            self._noise = _NoiseBatches(data, prepare=trainer.strategy.batch_to_device)
        self._last_step = int(trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        th = self.thermometer
        if th is None:
            return
        step = int(trainer.global_step)
        if step == self._last_step:  # no optimizer step in this batch (gradient accumulation)
            return
        self._last_step = step
        try:
            th.step()
        except RuntimeError as exc:
            if th.groups:
                raise
            raise RuntimeError(f"{exc}. The LightningModule was never called (its training_step may call a "
                               "submodule directly): pass example=<inputs of module(...)> or groups= to "
                               "ThermometerCallback") from exc
        if step % self.log_every == 0:
            self._log_point(trainer, pl_module, step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    # ------------------------------------------------------------------ helpers
    def _log_dir(self, trainer: Any) -> str | None:
        if self.log_dir is not None:
            path = os.fspath(self.log_dir)
        else:
            base = trainer.log_dir or trainer.default_root_dir  # log_dir must be read on every process
            path = os.path.join(base, "thermo")
        return path if trainer.is_global_zero else None

    def _log_point(self, trainer: Any, pl_module: Any, step: int) -> None:
        if self._noise is not None:
            with forked_rng(pl_module.device):
                rows = self.thermometer.log(step, noise_batches=self._noise)
        else:
            rows = self.thermometer.log(step)
        self.latest = _scalars(rows)
        if not self.log_metrics or not self.latest:
            return
        metrics = {f"{self.prefix}{k}": v for k, v in self.latest.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, logger=False, prog_bar=False)

    def _close(self) -> None:
        if self.thermometer is not None:
            self.thermometer.close()
        self._noise = None

    def to_frame(self):
        """Every row so far (pandas; see :meth:`sgdthermo.Thermometer.to_frame`)."""
        if self.thermometer is None:
            import pandas as pd

            from ..nn.thermometer import FRAME_COLUMNS

            return pd.DataFrame(columns=list(FRAME_COLUMNS))
        return self.thermometer.to_frame()
