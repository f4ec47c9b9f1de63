"""A Hugging Face ``Trainer`` callback that runs a :class:`~sgdthermo.Thermometer`::

    from sgdthermo.integrations.huggingface import ThermometerTrainerCallback

    cb = ThermometerTrainerCallback(log_every=200, noise_batches=8)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])
    trainer.train()
    cb.to_frame()            # one row per (log point, group); also <output_dir>/thermo/thermo.csv

Needs ``transformers`` and ``accelerate`` (extra ``sgdthermo[huggingface]``). The thermometer
is stepped in ``on_optimizer_step``, right after ``optimizer.step()``, while the step's
gradients and learning rate are still in place (the Trainer zeroes the gradients and steps
the scheduler before ``on_step_end``); log points are taken in ``on_step_end``. The callback
only observes: noise batches come from a loader of its own, their forward passes run under a
forked random state, and the thermometer restores BatchNorm statistics and gradients.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..nn.models import forked_rng
from . import _noise_loader, _NoiseBatches, _scalars

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError("sgdthermo.integrations.huggingface needs transformers: "
                      "pip install 'sgdthermo[huggingface]'") from exc

__all__ = ["ThermometerTrainerCallback", "model_loss", "unwrap_optimizer"]


def unwrap_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` (or any wrapper that
    keeps it as ``.optimizer``)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def model_loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """``model(**batch).loss`` (the output's ``"loss"`` entry, or its first element for a
    tuple): the default ``loss_fn`` for noise batches."""
    if isinstance(batch, Mapping):
        out = model(**batch)
    elif isinstance(batch, (tuple, list)):
        out = model(*batch)
    else:
        out = model(batch)
    if isinstance(out, Mapping):
        loss = out.get("loss")
    elif isinstance(out, (tuple, list)) and out:
        loss = out[0]
    else:
        loss = getattr(out, "loss", out)
    if not isinstance(loss, torch.Tensor):
        raise ValueError("the model returned no loss for a noise batch (give the batch labels, or pass "
                         "loss_fn=(model, batch) -> loss to ThermometerTrainerCallback)")
    return loss


def _to_device(batch: Any, device: torch.device) -> Any:
    from accelerate.utils import send_to_device

    return send_to_device(batch, device)


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class ThermometerTrainerCallback(TrainerCallback):
    """Measure the scale-invariant groups of a model trained by ``transformers.Trainer``.

    Parameters
    ----------
    log_every : a log point every ``log_every`` optimizer steps (``state.global_step``).
    noise_batches : K extra batches per log point for the gradient-noise estimate; 0 (the
        default) for none, else at least 2.
    log_dir : the thermometer's folder; default ``args.output_dir/thermo``. Written by the main
        process only.
    noise_data : an iterable of batches for the noise estimate (restarted when exhausted);
        default the Trainer's training dataloader, re-sampled independently (same dataset,
        per-device batch size and collator, own generator seeded ``noise_seed``).
    loss_fn : ``loss_fn(model, batch) -> loss`` for noise batches; default :func:`model_loss`.
    **thermometer_options : passed to :class:`~sgdthermo.Thermometer` (``groups``, ``example``,
        ``tolerance``, ``tensorboard``, ``parquet``, ...).

    Attributes: :attr:`thermometer` (None before training starts), :attr:`latest` (the last log
    point's ``"all"`` scalars), :meth:`to_frame`.
    """

    def __init__(self, log_every: int = 200, noise_batches: int = 0, log_dir: str | os.PathLike | None = None, *,
                 noise_data: Iterable[Any] | None = None, noise_seed: int = 0,
                 loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
                 **thermometer_options: Any) -> None:
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
        self.loss_fn = loss_fn
        self.thermometer_options = thermometer_options
        self.thermometer: Any = None
        self.latest: dict[str, float] = {}
        self._model: torch.nn.Module | None = None
        self._noise: _NoiseBatches | None = None
        self._stepped = False

    # ------------------------------------------------------------------ events
    def on_train_begin(self, args: Any, state: Any, control: Any, model: torch.nn.Module | None = None,
                       optimizer: Any = None, train_dataloader: Any = None, **kwargs: Any) -> None:
        from ..nn.thermometer import Thermometer

        if model is None or optimizer is None:
            raise ValueError("ThermometerTrainerCallback: the Trainer passed no model or optimizer")
        optimizer = unwrap_optimizer(optimizer)
        if self.log_dir is not None:
            log_dir = os.fspath(self.log_dir)
        else:
            log_dir = os.path.join(args.output_dir, "thermo")
        if not getattr(state, "is_world_process_zero", True):
            log_dir = None
        options = dict(self.thermometer_options)
        if self.noise_batches:
            options["noise_k"] = self.noise_batches
        self._model = model
        self.thermometer = Thermometer(model, optimizer, log_dir=log_dir, loss_fn=self.loss_fn or model_loss,
                                       **options)
        if self.noise_batches:
            data = self.noise_data if self.noise_data is not None else (
                None if train_dataloader is None else _noise_loader(train_dataloader, self.noise_seed))
            if data is None:
                raise ValueError("ThermometerTrainerCallback: the Trainer passed no training dataloader to draw "
                                 "noise batches from; pass noise_data=")
            device = _device(model)
            self._noise = _NoiseBatches(data, prepare=lambda batch: _to_device(batch, device))
        self._stepped = False

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.thermometer is not None:
            self.thermometer.step()
            self._stepped = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        th = self.thermometer
        if th is None:
            return
        if not self._stepped:  # a transformers without on_optimizer_step: step here (gradients are gone)
            th.step()
        self._stepped = False
        step = int(state.global_step)
        if step % self.log_every == 0:
            if self._noise is not None:
                with forked_rng(_device(self._model)):
                    rows = th.log(step, noise_batches=self._noise)
            else:
                rows = th.log(step)
            self.latest = _scalars(rows)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
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
