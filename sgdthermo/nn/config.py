r"""The configuration of one training run: :class:`TrainConfig`, saved whole as ``config.json``.

Its fields, their defaults and the hash of the resolved configuration are what a sweep's run
ids are made of (:func:`sgdthermo.sweep.config_hash`), so they are stable: a new field gets a
default that reproduces the old behaviour. Importing this module does not import torch (the
command line builds its flags from it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..protocols import validate_hyperparameters
from ..specs import parse_stride

__all__ = ["TrainConfig", "default_head_norm", "MODELS", "DATASETS", "LOSSES", "QUEUE_DTYPES",
           "DEFAULT_WIDTHS", "Option", "OPTIONS", "field_kind", "parse_stride", "field_optional", "field_default"]

#: Models :func:`sgdthermo.nn.models.build_model` builds.
MODELS: tuple[str, ...] = ("convnet", "resnet18", "mlp")
#: Data sets :func:`sgdthermo.nn.data.load_dataset` loads.
DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "synthetic")
#: Training losses: cross-entropy and squared error on one-hot targets.
LOSSES: tuple[str, ...] = ("ce", "mse")
#: Default width multiplier of each model (the paper's: ConvNet 8, ResNet-18 4; MLP hidden size 64).
DEFAULT_WIDTHS: dict[str, int] = {"convnet": 8, "resnet18": 4, "mlp": 64}
#: The most torch threads a run may ask for (more than any machine has; the OpenMP runtime
#: fails allocating per-thread state long before a million).
MAX_THREADS: int = 1024
#: Storage dtypes of the entropy queue's snapshots.
QUEUE_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")


def default_head_norm(dataset: str, loss: str = "ce") -> float:
    """Frozen-head norm: 1.5 for MSE; for cross-entropy 10 (the paper), 2 on digits.

    On digits a head of norm 10 lets a small ConvNet interpolate at small ELR (loss → 0,
    no stationary state) and go chaotic at large ELR; norm 2 bounds the logits, keeps the
    loss above zero and gives stationary runs (docs/theory.md).
    """
    if loss == "mse":
        return 1.5
    return 2.0 if dataset in ("digits", "synthetic") else 10.0


@dataclass
class TrainConfig:
    """Everything that defines a run; saved whole as ``config.json``."""

    model: str = "convnet"
    width: int | None = None  # None: 4 for the ConvNet on digits, the model's default otherwise
    head_norm: float | None = None  # None: default_head_norm(dataset, loss)
    loss: str = "ce"
    dataset: str = "digits"
    data_dir: str | None = None
    samples_per_label: int | None = None
    download: bool = False
    protocol: str = "fixed-elr"
    lr: float = 0.01  # η (fixed-lr) or η̃ (fixed-elr, fixed-sphere)
    wd: float | None = None
    radius: float | None = None
    init_norm: float = 1.0  # initial norm of the scale-invariant group (paper: 1)
    iters: int = 5000
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # torch CPU threads: part of the run (results depend on it), pinned in train
    checkpoint_every: int = 1000
    log_every: int = 200
    log_linear_until: int = 10_000
    log_per_decade: int = 20
    noise_batches: int = 8
    queue_size: int = 1000
    queue_every: int | str = "auto"  # steps between snapshots, or "auto" (nn.measure.EntropyQueue)
    queue_dtype: str = "float32"
    entropy_method: str | None = None
    tail_fraction: float = 0.5
    tensorboard: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "TrainConfig":
        """A copy with the data-dependent defaults filled in."""
        c = dataclasses.replace(self)
        if c.head_norm is None:
            c.head_norm = default_head_norm(c.dataset, c.loss)
        if c.width is None and c.model in MODELS:
            small = c.dataset in ("digits", "synthetic") and c.model == "convnet"
            c.width = 4 if small else DEFAULT_WIDTHS[c.model]
        return c

    def validate(self) -> None:
        """Raise ValueError with one line naming the bad value and what is allowed."""
        def pos(name: str, v: Any) -> None:
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} {v}: must be a positive finite number")

        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}: expected one of {', '.join(DATASETS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        validate_hyperparameters(self.protocol, lr=self.lr, wd=self.wd, radius=self.radius)
        if self.head_norm is not None:
            pos("head_norm", self.head_norm)
        pos("init_norm", self.init_norm)
        for name in ("iters", "batch_size", "threads", "checkpoint_every", "log_every", "queue_size",
                     "queue_every"):
            v = getattr(self, name)
            if name == "queue_every" and v == "auto":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                allowed = "a positive integer or 'auto'" if name == "queue_every" else "a positive integer"
                raise ConfigError(f"--{name.replace('_', '-')} {v!r}: must be {allowed}")
        if self.threads > MAX_THREADS:
            raise ConfigError(f"--threads {self.threads}: at most {MAX_THREADS}")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ConfigError(f"--width {self.width}: must be a positive integer")
        if self.noise_batches < 2:
            raise ConfigError(f"--noise-batches {self.noise_batches}: must be at least 2")
        if self.queue_size < 2:
            raise ConfigError(f"--queue-size {self.queue_size}: must be at least 2")
        from ..entropy import (
            check_method_option,  # lazy: this module does not import torch
        )

        check_method_option(self.entropy_method)
        if self.queue_dtype not in QUEUE_DTYPES:
            raise ConfigError(f"--queue-dtype {self.queue_dtype}: expected float16, bfloat16, float32 or float64")
        if not 0 < self.tail_fraction <= 1:
            raise ConfigError(f"--tail-fraction {self.tail_fraction}: must be in (0, 1]")
        if self.samples_per_label is not None and self.samples_per_label < 1:
            raise ConfigError(f"--samples-per-label {self.samples_per_label}: must be a positive integer")
        if self.dataset in ("cifar10", "cifar100") and self.data_dir is None:
            raise ConfigError(f"--dataset {self.dataset} needs --data-dir (the folder holding the CIFAR files)")
        if self.data_dir is not None and not self.download and not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir}: no such folder (pass --download to fetch CIFAR)")
        if self.device != "cpu" and not self.device.startswith("cuda") and self.device != "auto":
            raise ConfigError(f"--device {self.device}: expected cpu, cuda, cuda:N or auto")
        if self.device.startswith("cuda") and not _cuda_available():
            raise ConfigError(f"--device {self.device}: CUDA is not available on this machine")
        _check_log_schedule(self)
        from ..budget import check_train_budget  # only needed here

        check_train_budget(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)




def _check_log_schedule(cfg: TrainConfig) -> None:
    """The log schedule's settings (:func:`sgdthermo.nn.measure.log_schedule`): linear logging
    up to a positive step (it divides by it), a positive number of log points per decade."""
    what = {"log_linear_until": "the step up to which log points are evenly spaced",
            "log_per_decade": "log points per decade after log_linear_until"}
    for name, meaning in what.items():
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name} {v!r}: must be a positive integer ({meaning})")


def _cuda_available() -> bool:
    import torch  # only when a CUDA device is asked for

    return bool(torch.cuda.is_available())


# ---------------------------------------------------------------------------------------
# The training options: one declaration, from which `train` and `sweep` build their flags
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """A :class:`TrainConfig` field as a command-line option.

    The type and the default come from the field itself (:func:`field_kind`,
    ``dataclasses.fields``). ``required``: ``train`` needs it (``sweep`` too, unless given a
    ``--config`` file). ``axis``: ``sweep`` takes a SPEC (several values make a grid axis).
    ``sweep``: ``sweep`` has the flag at all (``seed`` is ``--seeds`` there).
    """

    name: str
    help: str
    required: bool = False
    axis: bool = False
    sweep: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


#: Every training option of the command line, in the order ``--help`` lists them.
OPTIONS: tuple[Option, ...] = (
    Option("model", f"network: {', '.join(MODELS)}", required=True),
    Option("width", "width multiplier k (default: 4 on digits, the model's default otherwise)", axis=True),
    Option("head_norm", "norm of the frozen head (default: 2 on digits, 10 otherwise, 1.5 for MSE)", axis=True),
    Option("loss", "ce (cross-entropy) or mse"),
    Option("dataset", f"data set: {', '.join(DATASETS)}", required=True),
    Option("data_dir", "folder with the CIFAR files (torchvision layout)"),
    Option("download", "download CIFAR (needs torchvision)"),
    Option("samples_per_label", "class-balanced training subset"),
    Option("protocol", "fixed-lr, fixed-elr or fixed-sphere", required=True),
    Option("lr", "η (fixed-lr) or the ELR η̃ (fixed-elr, fixed-sphere)", required=True, axis=True),
    Option("wd", "weight decay λ (fixed-lr, fixed-elr)", axis=True),
    Option("radius", "sphere radius ρ (fixed-sphere)", axis=True),
    Option("init_norm", "initial norm of the scale-invariant group"),
    Option("iters", "training steps", required=True),
    Option("batch_size", "batch size", axis=True),
    Option("seed", "random seed (weights, batches, measurement)", sweep=False),
    Option("checkpoint_every", "steps between checkpoints"),
    Option("log_every", "log period up to step 10000, log-spaced after"),
    Option("noise_batches", "minibatch gradients per log point for tr Σ"),
    Option("queue_size", "entropy queue length (paper: 4000)"),
    Option("queue_every", "steps between snapshots (paper: 25), or auto: at least two correlation "
                          "times, measured as the run goes"),
    Option("queue_dtype", f"storage dtype of the snapshots: {', '.join(QUEUE_DTYPES)}"),
    Option("entropy_method", "sphere entropy estimator"),
    Option("device", "cpu, cuda, cuda:N or auto"),
    Option("threads", "torch CPU threads of the run; recorded, since the last bits of a CPU run "
                      "depend on it"),
    Option("tensorboard", "also log to OUT/tensorboard", sweep=False),
)


def field_kind(name: str) -> str:
    """``"int"``, ``"float"``, ``"str"``, ``"bool"``, ``"dict"`` or ``"stride"`` (a positive
    integer or ``"auto"``): the type of a TrainConfig field."""
    t = str(_FIELDS[name].type)
    if t.startswith("dict"):
        return "dict"
    if t.replace(" ", "") == "int|str":
        return "stride"
    for k in ("bool", "float", "int", "str"):
        if k in t.replace("|", " ").split():
            return k
    return "str"  # pragma: no cover - every field has one of the above


def field_optional(name: str) -> bool:
    """Whether a TrainConfig field may be None."""
    return "None" in str(_FIELDS[name].type)


def field_default(name: str) -> Any:
    """The default of a TrainConfig field."""
    f = _FIELDS[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
