r"""Hyperparameter sweeps of :func:`sgdthermo.nn.training.train`, locally, on Ray or on Slurm.

A :class:`SweepSpec` is a base :class:`~sgdthermo.nn.config.TrainConfig`, a grid of axes
(any TrainConfig field with a list of values; typically ``lr``, ``wd`` or ``radius``) and a
list of seeds, plus where to run (``executor``, ``jobs`` and the executor's options).
:func:`expand` turns it into the full product of axes × seeds, one validated, resolved
TrainConfig per run, each with a run id: a readable prefix and a short hash of the resolved
configuration, e.g. ``lr0.1_wd0.001_s0-1a2b3c4d5e``.

:func:`run_sweep` trains every run into ``OUT/<run_id>/`` (the layout of
:func:`~sgdthermo.nn.training.train`, plus ``log.txt``; ``error.txt`` with the traceback when a
run fails) and keeps ``OUT/sweep.json`` (the spec) and ``OUT/status.csv`` (one row per run,
rewritten atomically as runs finish). It is safe to call again: finished runs are skipped,
interrupted ones resume from their checkpoint, a run that raises is recorded as ``failed``
and never stops the others.

Executors (one interface, :class:`Executor`):

- ``local``: a ``concurrent.futures.ProcessPoolExecutor`` (spawn) with ``jobs`` workers that
  die with the sweep; ``jobs=1`` runs in this process.

Whatever the executor, a run trains with its own ``threads`` (a TrainConfig field, 1 by
default, part of its run id), so its metrics do not depend on ``jobs`` or on where it ran.
- ``ray``: one Ray task per run (``pip install 'sgdthermo[ray]'``), on the cluster at
  ``address`` or on a local instance with ``jobs`` CPUs; ``max_retries=3`` for lost
  workers, no retry of a run's own error.
- ``slurm``: a submitit job array (``pip install 'sgdthermo[slurm]'``); preempted or timed
  out jobs are requeued and resume from the run's checkpoint. ``cluster="local"`` (or
  ``executor="slurm-local"``) runs the same code path through submitit's local executor.

YAML (and ``sweep.json``) format: a flat mapping of TrainConfig fields (a list value, or a
``LO:HI:N`` / comma-list string for a numeric field, makes that field an axis), ``grid``
(axis name → list of values or SPEC string), ``seeds``, ``executor``, ``jobs``, ``address``,
``cluster``, ``partition``, ``time_min``, ``gpus_per_run``, ``cpus_per_run``, ``mem_gb``::

    model: convnet
    width: 4
    dataset: digits
    protocol: fixed-lr
    iters: 600
    grid:
      lr: 0.02:0.2:3
      wd: [0.001, 0.01]
    seeds: [0, 1]
    executor: ray
    jobs: 2
"""

from __future__ import annotations

import importlib
from typing import Any

# names are imported on first use, so that the spec (and the command line) do not pull in torch
_EXPORTS = {
    "Executor": "executors", "LocalExecutor": "executors", "RayExecutor": "executors",
    "SubmititExecutor": "executors", "make_executor": "executors",
    "FINAL_STATUSES": "runner", "STATUS_COLUMNS": "runner", "SweepJob": "runner", "finished_summary": "runner",
    "run_one": "runner", "run_sweep": "runner",
    "EXECUTORS": "spec", "SweepSpec": "spec", "config_hash": "spec", "expand": "spec", "make_run_id": "spec",
}

__all__ = ["SweepSpec", "expand", "run_sweep", "run_one", "config_hash", "make_run_id", "finished_summary",
           "Executor", "LocalExecutor", "RayExecutor", "SubmititExecutor", "SweepJob", "make_executor",
           "EXECUTORS", "FINAL_STATUSES", "STATUS_COLUMNS"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
