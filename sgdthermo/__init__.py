"""sgdthermo: the ideal-gas thermodynamics of SGD on scale-invariant networks.

The curated API (names are imported on first use, so ``import sgdthermo`` is cheap)::

    from sgdthermo import theory                      # closed forms: gas laws, VMF, relations
    from sgdthermo import simulate_isotropic, verify  # the isotropic model and its V1–V4 checks
    from sgdthermo import sphere_entropy              # k-NN entropy of directions on S^{d-1}
    from sgdthermo import TrainConfig, train          # one network run into a folder
    from sgdthermo import Thermometer                 # measure any model, optimizer and loop
    from sgdthermo import SweepSpec, run_sweep, analyze

Layers, lowest first (a module imports only from layers below it): ``errors``,
``protocols``, ``specs``, ``io``, ``stats``, ``theory`` and ``entropy``; ``isotropic`` (the
simulator) and ``nn`` (models, data, optimizers, measurement, training); ``sweep``;
``analysis``; ``figures``; ``report``; ``reproduce`` (the paper's experiments); ``cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → module that defines it.
_EXPORTS: dict[str, str] = {
    # protocols and errors
    "PROTOCOLS": "protocols", "ConfigError": "errors", "UsageError": "errors",
    "parse_spec": "specs",
    # the isotropic model
    "simulate_isotropic": "isotropic", "SimulationResult": "isotropic",
    # entropy
    "sphere_entropy": "entropy", "sphere_entropy_batch": "entropy", "kl_entropy": "entropy",
    "EntropyEstimate": "entropy",
    # statistics
    "stationarity": "stats", "autocorr_time": "stats",
    # checks and reports
    "verify": "analysis", "Verdict": "analysis", "verdicts_frame": "analysis",
    "synthetic_results": "analysis", "write_report": "report",
    # networks
    "TrainConfig": "nn.config", "train": "nn.training", "build_model": "nn.models",
    "find_scale_invariant": "nn.models", "set_si_norm": "nn.models", "load_dataset": "nn.data",
    "BatchSampler": "nn.data", "make_optimizer": "nn.optim", "Measurement": "nn.measure",
    "MeasureConfig": "nn.measure", "Thermometer": "nn.thermometer",
    # sweeps and their analysis
    "SweepSpec": "sweep", "run_sweep": "sweep", "load_runs": "analysis.network", "analyze": "report.network",
    # reproductions
    "reproduce_isotropic": "reproduce", "reproduce_nn": "reproduce",
}
_MODULES = ("theory", "entropy", "stats", "analysis", "figures", "report", "isotropic", "nn", "sweep",
            "protocols", "specs", "io", "errors", "reproduce", "cli")

__all__ = ["__version__", *sorted(_EXPORTS), *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
