"""Scale-invariant networks trained under the three protocols, with measurement.

- :mod:`~sgdthermo.nn.config`: :class:`TrainConfig`, the configuration of one run (no torch import);
- :mod:`~sgdthermo.nn.models`: ConvNet, pre-activation ResNet-18, MLP with frozen heads, and the
  detection of the scale-invariant group;
- :mod:`~sgdthermo.nn.data`: digits, CIFAR-10/100 (torchvision's on-disk format), synthetic data,
  the i.i.d. batch sampler;
- :mod:`~sgdthermo.nn.optim`: the protocols as drop-in torch optimizers;
- :mod:`~sgdthermo.nn.measure`: the measurement that attaches to a training loop;
- :mod:`~sgdthermo.nn.thermometer`: :class:`Thermometer`, for any model, optimizer and loop;
- :mod:`~sgdthermo.nn.training`: :func:`train`, one run into a folder, with checkpoints and resume;
- :mod:`~sgdthermo.nn.batched`: :class:`StackedModel` and :func:`train_runs`, many runs of one
  architecture trained as one batched model.

Names are imported on first use, so ``sgdthermo.nn.config`` does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "default_head_norm": "config",
    "build_model": "models", "find_scale_invariant": "models", "check_scale_invariance": "models",
    "set_si_norm": "models", "si_norm": "models",
    "DataSet": "data", "load_dataset": "data", "BatchSampler": "data",
    "make_optimizer": "optim", "FixedLR": "optim", "FixedELR": "optim", "FixedSphere": "optim",
    "ProtocolOptimizer": "optim",
    "Measurement": "measure", "MeasureConfig": "measure", "gradient_noise": "measure", "log_schedule": "measure",
    "train": "training", "summarize": "training", "Thermometer": "thermometer",
    "scale_invariant_groups": "models", "StackedModel": "batched", "train_runs": "batched",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
