r"""Hyperparameter sweeps of :func:`sgdthermo.training.train`, locally, on Ray or on Slurm.

A :class:`SweepSpec` is a base :class:`~sgdthermo.training.TrainConfig`, a grid of axes
(any TrainConfig field with a list of values; typically ``lr``, ``wd`` or ``radius``) and a
list of seeds, plus where to run (``executor``, ``jobs`` and the executor's options).
:func:`expand` turns it into the full product of axes × seeds, one validated, resolved
TrainConfig per run, each with a run id: a readable prefix and a short hash of the resolved
configuration, e.g. ``lr0.1_wd0.001_s0-1a2b3c4d5e``.

:func:`run_sweep` trains every run into ``OUT/<run_id>/`` (the layout of
:func:`~sgdthermo.training.train`, plus ``log.txt``; ``error.txt`` with the traceback when a
run fails) and keeps ``OUT/sweep.json`` (the spec) and ``OUT/status.csv`` (one row per run,
rewritten atomically as runs finish). It is safe to call again: finished runs are skipped,
interrupted ones resume from their checkpoint, a run that raises is recorded as ``failed``
and never stops the others.

Executors (one interface, :class:`Executor`):

- ``local``: a ``concurrent.futures.ProcessPoolExecutor`` (spawn) with ``jobs`` workers, each
  with ``cpu_count // jobs`` torch threads; ``jobs=1`` runs in this process.
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

import argparse
import concurrent.futures as cf
import contextlib
import copy
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # imported lazily: building the CLI parser must not load torch
    import pandas as pd

    from .training import TrainConfig

__all__ = [
    "SweepSpec", "expand", "run_sweep", "run_one", "config_hash", "make_run_id",
    "RunBusyError", "Executor", "LocalExecutor", "RayExecutor", "SubmititExecutor", "SweepJob", "make_executor",
    "sweep_argument_parser", "cmd_sweep", "EXECUTORS", "FINAL_STATUSES",
]

EXECUTORS = ("local", "ray", "slurm", "slurm-local")
FINAL_STATUSES = ("completed", "diverged")  # a run folder whose summary says so is finished
HASH_LEN = 10

_EXECUTOR_KEYS = ("executor", "jobs", "address", "cluster", "partition", "time_min",
                  "gpus_per_run", "cpus_per_run", "mem_gb")
_SWEEP_KEYS = ("grid", "seeds") + _EXECUTOR_KEYS
_ALIASES = {"time": "time_min", "seed_list": "seeds"}
_SHORT = {"lr": "lr", "wd": "wd", "radius": "r", "width": "w", "batch_size": "bs", "iters": "it",
          "head_norm": "hn", "init_norm": "in", "samples_per_label": "spl", "noise_batches": "nb",
          "queue_size": "qs", "queue_every": "qe", "tail_fraction": "tf"}


def _tc() -> type[TrainConfig]:
    from .training import TrainConfig

    return TrainConfig


@functools.lru_cache(maxsize=None)
def _fields() -> dict[str, dataclasses.Field]:
    """TrainConfig's fields by name."""
    return {f.name: f for f in dataclasses.fields(_tc())}


def _io():
    from . import io

    return io


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else (type(exc).__name__ if isinstance(exc, BaseException) else "")


# ---------------------------------------------------------------------------------------
# Values: SPEC strings, comma lists, typed coercion per TrainConfig field
# ---------------------------------------------------------------------------------------
def _kind(name: str) -> str:
    """'int', 'float', 'str', 'bool' or 'dict' for a TrainConfig field."""
    t = str(_fields()[name].type)
    if t.startswith("dict"):
        return "dict"
    for k in ("bool", "float", "int", "str"):
        if re.search(rf"\b{k}\b", t):
            return k
    return "str"  # pragma: no cover - every field has one of the above


def _optional(name: str) -> bool:
    return "None" in str(_fields()[name].type)


def _coerce(name: str, v: Any) -> Any:
    """One value of field ``name`` in its type, or ValueError naming it."""
    kind = _kind(name)
    flag = _flag(name)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # NumPy scalars
        v = v.item()
    if v is None:
        if _optional(name):
            return None
        raise ValueError(f"{flag}: a value is required")
    if kind == "dict":
        if not isinstance(v, dict):
            raise ValueError(f"{flag} {v!r}: must be a mapping")
        return copy.deepcopy(v)
    if kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return v.strip().lower() in ("true", "yes", "1")
        raise ValueError(f"{flag} {v!r}: must be true or false")
    if kind == "str":
        if not isinstance(v, str):
            raise ValueError(f"{flag} {v!r}: must be a string")
        return v
    if isinstance(v, bool):
        raise ValueError(f"{flag} {v!r}: must be a number")
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise ValueError(f"{flag} {v!r}: malformed; expected a number") from None
    if not isinstance(v, (int, float)):
        raise ValueError(f"{flag} {v!r}: must be a number")
    if kind == "int":
        if isinstance(v, float):
            if not math.isfinite(v) or abs(v - round(v)) > 1e-9 * max(1.0, abs(v)):
                raise ValueError(f"{flag} {v!r}: must be an integer")
            v = int(round(v))
        return int(v)
    return float(v)


def _parse_values(name: str, value: Any) -> list[Any]:
    """Values of an axis: a list, a number, or for numeric fields a string with a
    comma-separated list of numbers and ``LO:HI:N`` specs (N log-spaced values, inclusive;
    rounded to 12 significant digits so that run ids do not hinge on the last ulp)."""
    from .simulation import parse_spec

    flag = _flag(name)
    if isinstance(value, (list, tuple)):
        vals = []
        for v in value:
            if isinstance(v, str) and _kind(name) in ("int", "float") and ":" in v:
                vals.extend(_parse_values(name, v))
            else:
                vals.append(_coerce(name, v))
    elif isinstance(value, str) and _kind(name) in ("int", "float"):
        text = value.strip()
        if not text:
            raise ValueError(f"{flag}: empty value; expected a number, LO:HI:N or a comma list")
        vals = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise ValueError(f"{flag} {value!r}: malformed; expected a number, LO:HI:N or a comma list")
            if ":" in part:
                arr = parse_spec(part, name.replace("_", "-"))
                vals.extend(_coerce(name, float(f"{float(x):.12g}")) for x in arr)
            else:
                try:
                    x = float(part)
                except ValueError:
                    raise ValueError(f"{flag} {value!r}: malformed; expected a number, LO:HI:N "
                                     "or a comma list") from None
                vals.append(_coerce(name, x))
    elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy arrays
        return _parse_values(name, value.tolist() if getattr(value, "ndim", 0) else [value.item()])
    else:
        vals = [_coerce(name, value)]
    if not vals:
        raise ValueError(f"{flag}: empty list of values")
    return vals


def _is_axis_value(name: str, value: Any) -> bool:
    """A top-level value that names several values (a list, or a SPEC/comma string)."""
    if isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and getattr(value, "ndim", 0) > 0):
        return True
    return isinstance(value, str) and _kind(name) in ("int", "float") and (":" in value or "," in value)


def _parse_seeds(value: Any) -> list[int]:
    try:
        vals = _parse_values("seed", value)
    except ValueError as exc:
        raise ValueError(f"--seeds {value!r}: expected integers S[,S...] ({_first_line(exc)})") from None
    for s in vals:
        if s < 0:
            raise ValueError(f"--seeds {s}: seeds must be non-negative integers")
    return vals


# ---------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------
@dataclass
class SweepSpec:
    """A sweep: base TrainConfig, grid axes, seeds, and where to run.

    ``grid`` maps TrainConfig field names to lists of values (product over all axes);
    a ``seed`` axis is moved to ``seeds``. ``seeds=None`` means ``[base.seed]``.
    ``executor``: ``local``, ``ray`` or ``slurm`` (``slurm-local`` = slurm with
    ``cluster="local"``, submitit's local executor). ``jobs``: runs at a time.
    ``address``: Ray cluster address (None: a local instance). Slurm: ``partition``,
    ``time_min`` (minutes per job), ``mem_gb``. ``gpus_per_run`` (default 1 when the
    device is cuda, else 0; fractional allowed on Ray) and ``cpus_per_run`` (Ray, Slurm:
    the run's resources and torch threads).
    """

    base: TrainConfig = field(default_factory=lambda: _tc()())
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] | None = None
    executor: str = "local"
    jobs: int = 1
    address: str | None = None
    cluster: str | None = None
    partition: str | None = None
    time_min: int = 240
    gpus_per_run: float | None = None
    cpus_per_run: int = 1
    mem_gb: float | None = None

    def __post_init__(self) -> None:
        if self.executor == "slurm-local":
            self.executor, self.cluster = "slurm", self.cluster or "local"
        grid = {}
        for name, values in dict(self.grid).items():
            name = str(name).replace("-", "_")
            if name not in _fields() or _kind(name) == "dict":
                raise ValueError(f"grid axis {name!r}: not a TrainConfig field "
                                 f"(axes are fields such as lr, wd, radius, width)")
            grid[name] = _parse_values(name, values)
        if "seed" in grid:
            if self.seeds is not None:
                raise ValueError("seeds given twice: as a 'seed' grid axis and as seeds")
            self.seeds = grid.pop("seed")
        self.grid = grid
        if self.seeds is not None:
            self.seeds = _parse_seeds(self.seeds)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepSpec":
        """From the flat mapping of the YAML format (see the module docstring)."""
        if not isinstance(d, dict):
            raise ValueError(f"sweep spec must be a mapping, got {type(d).__name__}")
        d = {_ALIASES.get(str(k).replace("-", "_"), str(k).replace("-", "_")): v for k, v in d.items()}
        unknown = sorted(k for k in d if k not in _fields() and k not in _SWEEP_KEYS)
        if unknown:
            raise ValueError(f"unknown sweep key(s): {', '.join(unknown)} (allowed: TrainConfig fields, "
                             f"{', '.join(_SWEEP_KEYS)})")
        grid_in = d.get("grid") or {}
        if not isinstance(grid_in, dict):
            raise ValueError(f"grid: must be a mapping of axis name to values, got {grid_in!r}")
        grid: dict[str, Any] = {str(k).replace("-", "_"): v for k, v in grid_in.items()}
        base_kw: dict[str, Any] = {}
        seeds = d.get("seeds")
        for name, value in d.items():  # in the given order (the order of the axes)
            if name not in _fields():
                continue
            if _is_axis_value(name, value):
                vals = _parse_values(name, value)
                if name == "seed":
                    if seeds is not None:
                        raise ValueError("seeds given twice: as a list for 'seed' and as seeds")
                    seeds = vals
                elif name in grid:
                    raise ValueError(f"{_flag(name)}: given both at the top level and in grid")
                elif len(vals) > 1:
                    grid[name] = vals
                else:
                    base_kw[name] = vals[0]
            else:
                if name in grid:
                    raise ValueError(f"{_flag(name)}: given both at the top level and in grid")
                base_kw[name] = _coerce(name, value)
        kw = {k: d[k] for k in _EXECUTOR_KEYS if k in d and d[k] is not None}
        for k in ("jobs", "cpus_per_run", "time_min", "gpus_per_run", "mem_gb"):  # "2" from YAML
            if isinstance(kw.get(k), str):
                try:
                    num = float(kw[k])
                except ValueError:
                    raise ValueError(f"{_flag(k)} {kw[k]!r}: must be a number") from None
                kw[k] = int(num) if num == int(num) and k not in ("gpus_per_run", "mem_gb") else num
        return cls(base=_tc()(**base_kw), grid=grid, seeds=seeds, **kw)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "SweepSpec":
        """Read the YAML format (JSON, e.g. a sweep's ``sweep.json``, is YAML too)."""
        return cls.from_dict(_load_yaml(path))

    @classmethod
    def from_args(cls, args: argparse.Namespace | None = None, /, **kwargs: Any) -> "SweepSpec":
        """From the ``sweep`` subcommand's Namespace and/or keywords in the flat format.

        Values may be SPEC strings (``"0.01:0.1:3"``, ``"0.1,0.2"``), lists or numbers; unset
        (None) values are ignored. With ``config`` (a YAML file), only executor options may
        be given besides, and they override the file's.
        """
        d: dict[str, Any] = {}
        if args is not None:  # only the sweep's own settings (the CLI may add others)
            known = set(_fields()) | set(_SWEEP_KEYS) | set(_ALIASES) | {"config"}
            d.update({k: v for k, v in vars(args).items() if k in known})
        d.update(kwargs)
        d = {str(k).replace("-", "_"): v for k, v in d.items() if v is not None}
        config = d.pop("config", None)
        if config is not None:
            run_keys = [k for k in d if k not in _EXECUTOR_KEYS]
            if run_keys:
                raise ValueError(f"--config {config}: give the run settings in the file or as flags, "
                                 f"not both (got {_flag(run_keys[0])})")
            merged = _load_yaml(config)
            if not isinstance(merged, dict):
                raise ValueError(f"--config {config}: expected a mapping of settings")
            merged.update(d)
            d = merged
        return cls.from_dict(d)

    # -- output ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The flat mapping of the YAML format; ``from_dict(to_dict())`` gives the same sweep."""
        out: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self.base).items():
            if name in self.grid or (name == "seed" and self.seeds is not None):
                continue
            out[name] = value
        out["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.seeds is not None:
            out["seeds"] = list(self.seeds)
        for k in _EXECUTOR_KEYS:
            out[k] = getattr(self, k)
        return out

    def to_yaml(self, path: str | os.PathLike) -> Path:
        yaml = _yaml()
        return _io().atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    # -- checks ------------------------------------------------------------------------
    @property
    def all_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.base.seed]

    @property
    def remote(self) -> bool:
        """Runs execute on other machines (a Slurm cluster, a Ray cluster at ``address``)."""
        return (self.executor == "slurm" and self.cluster in (None, "slurm")) or (
            self.executor == "ray" and self.address is not None)

    def gpus(self) -> float:
        """GPUs requested per run: 0 on CPU; ``gpus_per_run``, default 1, on cuda/auto."""
        if self.base.device == "cpu" and not any(str(v) != "cpu" for v in self.grid.get("device", [])):
            return 0.0
        return 1.0 if self.gpus_per_run is None else float(self.gpus_per_run)

    def validate(self) -> None:
        """Check the executor settings and the grid's shape (each run: :func:`expand`)."""
        if self.executor not in EXECUTORS:
            raise ValueError(f"--executor {self.executor!r}: expected one of local, ray, slurm")
        if self.cluster is not None and self.cluster not in ("slurm", "local", "debug"):
            raise ValueError(f"cluster {self.cluster!r}: expected slurm, local or debug")

        def pos_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{_flag(name)} {v}: must be a positive integer")

        for name in ("jobs", "cpus_per_run", "time_min"):
            pos_int(name)
        g = self.gpus_per_run
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float))
                              or not math.isfinite(g) or g < 0):
            raise ValueError(f"--gpus-per-run {g}: must be a non-negative number")
        if g is not None and self.executor == "slurm" and float(g) != int(g):
            raise ValueError(f"--gpus-per-run {g}: Slurm needs a whole number of GPUs")
        m = self.mem_gb
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float))
                              or not math.isfinite(m) or m <= 0):
            raise ValueError(f"--mem-gb {m}: must be a positive number")
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"--address {self.address!r}: must be a string (host:port or ray://...)")
        if self.address is not None and self.executor != "ray":
            raise ValueError(f"--address {self.address}: only for --executor ray")
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"grid axis {name}: no values")
        seeds = self.all_seeds
        if not seeds:
            raise ValueError("--seeds: empty list of seeds")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds {','.join(map(str, seeds))}: repeated seed")


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is installed with the package
        raise ValueError("reading or writing YAML needs PyYAML: pip install pyyaml") from None
    return yaml


def _load_yaml(path: str | os.PathLike) -> Any:
    yaml = _yaml()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {path}: no such file")
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: not valid YAML ({_first_line(exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of settings, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------
# Expansion and run ids
# ---------------------------------------------------------------------------------------
def config_hash(cfg: TrainConfig, n: int = HASH_LEN) -> str:
    """First ``n`` hex digits of the SHA-1 of the resolved config as JSON with sorted keys.

    Independent of the process, the Python version and the order in which fields or
    grid axes were given (floats are written with their shortest round-trip repr).
    """
    d = dataclasses.asdict(cfg.resolved())
    text = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def make_run_id(cfg: TrainConfig, axes: Iterable[str] = ()) -> str:
    """``<prefix>-<hash>``: the prefix names the other axes (sorted), then lr, wd or radius,
    then the seed (e.g. ``w8_lr0.1_wd0.001_s0``); the hash is :func:`config_hash`."""
    c = cfg.resolved()
    parts = []
    for name in sorted(set(axes) - {"lr", "wd", "radius", "seed"}):
        v = getattr(c, name)
        parts.append(str(v) if isinstance(v, str) else f"{_SHORT.get(name, name.replace('_', ''))}{_fmt(v)}")
    parts.append(f"lr{_fmt(c.lr)}")
    if c.wd is not None:
        parts.append(f"wd{_fmt(c.wd)}")
    if c.radius is not None:
        parts.append(f"r{_fmt(c.radius)}")
    parts.append(f"s{c.seed}")
    prefix = re.sub(r"[^A-Za-z0-9._+-]+", "-", "_".join(parts)).strip("-")[:80]
    return f"{prefix}-{config_hash(c)}"


def _check_run(cfg: TrainConfig, remote: bool) -> None:
    """TrainConfig.validate, without the local CUDA check when runs execute elsewhere."""
    if remote and cfg.device != "cpu":
        if not (cfg.device == "auto" or re.fullmatch(r"cuda(:\d+)?", cfg.device)):
            raise ValueError(f"--device {cfg.device}: expected cpu, cuda, cuda:N or auto")
        dataclasses.replace(cfg, device="cpu").validate()
    else:
        cfg.validate()
    if cfg.entropy_method is not None:
        from .entropy import METHODS

        if cfg.entropy_method not in METHODS:
            raise ValueError(f"--entropy-method {cfg.entropy_method!r}: expected one of {', '.join(METHODS)}")


def expand(spec: SweepSpec) -> list[tuple[str, TrainConfig]]:
    """Every run of the sweep: (run id, resolved TrainConfig), axes × seeds in grid order.

    All configurations are validated first; the first bad one raises a one-line
    ValueError naming the value (and the grid point). ``data_dir`` is made absolute (runs
    may execute in another working directory). Two grid points with the same resolved
    configuration are an error.
    """
    spec.validate()
    names = list(spec.grid)
    runs: list[tuple[str, TrainConfig]] = []
    seen: dict[str, str] = {}
    for combo in itertools.product(*(spec.grid[n] for n in names)):
        point = dict(zip(names, combo))
        for seed in spec.all_seeds:
            cfg = dataclasses.replace(copy.deepcopy(spec.base), **point, seed=seed).resolved()
            if cfg.data_dir is not None:
                cfg.data_dir = str(Path(cfg.data_dir).expanduser().absolute())
            where = ", ".join(f"{k}={_fmt(v)}" for k, v in {**point, "seed": seed}.items())
            try:
                _check_run(cfg, spec.remote)
            except ValueError as exc:
                raise ValueError(f"{_first_line(exc)} (grid point {where})") from None
            rid = make_run_id(cfg, names)
            if rid in seen:
                raise ValueError(f"grid points {seen[rid]} and {where} are the same run (repeated values)")
            seen[rid] = where
            runs.append((rid, cfg))
    return runs


# ---------------------------------------------------------------------------------------
# One run (shared by all executors)
# ---------------------------------------------------------------------------------------
def finished_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's summary if it finished (status completed or diverged), else None."""
    p = Path(run_dir) / "summary.json"
    if not p.is_file():
        return None
    try:
        s = _io().read_json(p)
    except (OSError, ValueError):
        return None
    return s if isinstance(s, dict) and s.get("status") in FINAL_STATUSES else None


def _skipped_row(run_id: str, s: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "status": "skipped", "result": s.get("status"),
            "stationary": s.get("stationary"), "runtime_s": s.get("runtime_s"),
            "message": f"finished earlier ({s.get('status')})", "steps": s.get("steps")}


class RunBusyError(RuntimeError):
    """Another process is training this run (its folder's lock is held)."""


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """An exclusive, non-blocking ``flock`` on ``run_dir/.lock`` while a run trains, so two
    sweeps sharing a folder never train the same run at once (released when the process
    dies; where the file system has no locks, runs go unlocked)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fh = open(run_dir / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"{run_dir.name} is being trained by another process") from None
        except OSError:  # no locking on this file system
            pass
        yield
    finally:
        fh.close()


_TRAIN_OUTPUTS = ("summary.json", "checkpoint.pt", "metrics.csv", "config.json", "curves.png",
                  "error.txt", "log.txt")


def _clear_run(run_dir: Path) -> None:
    """Remove a run's outputs (force), unless another process is training it."""
    if not run_dir.is_dir():
        return
    try:
        with _run_lock(run_dir):
            for name in _TRAIN_OUTPUTS:
                (run_dir / name).unlink(missing_ok=True)
    except RunBusyError:
        pass  # run_one will report it


def run_one(run_id: str, cfg_dict: dict[str, Any], out_dir: str | os.PathLike, force: bool = False,
            *, threads: int | None = None) -> dict[str, Any]:
    """Train one run into ``out_dir/run_id`` and return its status row (never raises).

    Finished runs are skipped (unless ``force``: start over); interrupted ones (a
    checkpoint, no final summary) resume exactly. An exception is caught: the row says
    ``failed`` with its first line, and ``error.txt`` holds the traceback. The training
    log goes to ``log.txt``. ``threads``: torch threads for this run.
    """
    t0 = time.perf_counter()
    row: dict[str, Any] = {"run_id": run_id, "status": "failed", "result": None, "stationary": None,
                           "runtime_s": None, "message": "", "steps": None}
    run_dir = Path(out_dir) / run_id
    try:
        if threads is not None:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        from . import training

        cfg = _tc().from_dict(cfg_dict)
        done = finished_summary(run_dir)
        if done is not None and not force:
            return _skipped_row(run_id, done)
        run_dir.mkdir(exist_ok=True)
        with _run_lock(run_dir):
            done = finished_summary(run_dir)  # finished meanwhile by another process?
            if done is not None and not force:
                return _skipped_row(run_id, done)
            if force:
                for name in _TRAIN_OUTPUTS:
                    (run_dir / name).unlink(missing_ok=True)
            (run_dir / "error.txt").unlink(missing_ok=True)
            notes: list[str] = []
            with open(run_dir / "log.txt", "a", encoding="utf-8") as logf:
                def log(msg: str) -> None:
                    logf.write(f"{msg}\n")
                    logf.flush()
                    if msg.startswith("resumed at step"):
                        notes.append(msg)

                log(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} run {run_id} (pid {os.getpid()})")
                summary = training.train(cfg, run_dir, resume=True, log=log)
        status = summary.get("status")
        if status not in FINAL_STATUSES:
            raise RuntimeError(f"train returned status {status!r}")
        msg = summary.get("message") or ""
        if status == "completed" and not summary.get("stationary"):
            msg = summary.get("reason") or "not stationary"
        row.update(status=status, result=status, stationary=summary.get("stationary"),
                   steps=summary.get("steps"), message="; ".join(notes + ([msg] if msg else [])))
    except RunBusyError as exc:  # not this process's run to touch: no error.txt
        row.update(status="failed", result=None, message=f"RunBusyError: {exc}")
    except Exception as exc:  # a failed run never stops the sweep
        row.update(status="failed", result=None, message=f"{type(exc).__name__}: {_first_line(exc)}")
        try:
            if run_dir.parent.is_dir():
                run_dir.mkdir(exist_ok=True)
                _io().atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        except OSError:
            pass
    row["runtime_s"] = round(time.perf_counter() - t0, 3)
    return row


# ---------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------
class Executor(Protocol):
    """Runs ``fn(*item)`` for each item; :meth:`map` yields ``(index, result)`` as runs
    finish, where ``result`` is fn's return value or the exception that kept the executor
    from getting one (a lost worker, a failed cluster job)."""

    def start(self) -> None: ...

    def map(self, fn: Callable[..., Any], items: Sequence[tuple]) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class LocalExecutor:
    """``jobs`` spawned worker processes (``jobs=1``: in this process, no pool).

    A worker that dies (killed, out of memory) breaks the pool: a new pool is started and
    the unfinished runs are submitted again (they resume from their checkpoints), at most
    ``max_retries`` times per run, like Ray's ``max_retries``.
    """

    def __init__(self, jobs: int = 1, *, max_retries: int = 3) -> None:
        self.jobs = int(jobs)
        self.threads = max(1, _cpu_count() // self.jobs)
        self.max_retries = int(max_retries)
        self._pool: cf.ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return "in this process" if self.jobs == 1 else f"{self.jobs} local processes x {self.threads} threads"

    def start(self) -> None:
        pass

    def map(self, fn, items):
        if self.jobs == 1:
            for i, item in enumerate(items):
                try:
                    yield i, fn(*item)
                except Exception as exc:
                    yield i, exc
            return
        remaining = list(range(len(items)))
        lost = [0] * len(items)
        try:
            while remaining:
                self._pool = cf.ProcessPoolExecutor(
                    max_workers=min(self.jobs, len(remaining)),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(self.threads,))
                futures = {self._pool.submit(fn, *items[i]): i for i in remaining}
                retry = []
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        res = fut.result()
                    except cf.process.BrokenProcessPool as exc:  # a worker died
                        lost[i] += 1
                        if lost[i] <= self.max_retries:
                            retry.append(i)
                            continue
                        res = exc
                    except Exception as exc:
                        res = exc
                    yield i, res
                self.close()
                remaining = sorted(retry)
        except BaseException:  # interrupted: stop our workers (checkpoints are atomic)
            self._terminate()
            raise
        finally:
            self.close()

    def _terminate(self) -> None:
        if self._pool is None:
            return
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to a ``host:port`` or ``ray://host:port`` address, or ValueError."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"--address {address}: no Ray cluster reachable there ({exc.strerror or exc})") from None


class RayExecutor:
    """One Ray task per run, at most ``jobs`` in flight, collected with ``ray.wait``.

    ``address``: connect to that cluster; None: start a local instance with
    ``jobs × cpus_per_run`` CPUs, shut down afterwards (an instance already initialised in
    this process is used and left running). Tasks get ``num_cpus=cpus_per_run`` and
    ``num_gpus=gpus``, ``max_retries=3`` (lost workers; a retried run resumes from its
    checkpoint) and ``retry_exceptions=False`` (run_one records a run's own error).
    """

    def __init__(self, jobs: int = 1, *, address: str | None = None, cpus_per_run: int = 1,
                 gpus: float = 0.0) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'sgdthermo[ray]'") from None
        self.jobs, self.address = int(jobs), address
        self.cpus_per_run, self.gpus = int(cpus_per_run), float(gpus)
        self._started = False
        self._pending: list[Any] = []

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "local Ray instance"
        return f"{where}, {self.jobs} at a time, {self.cpus_per_run} CPU(s)" + (
            f" and {self.gpus:g} GPU(s)" if self.gpus else "") + " per run"

    def start(self) -> None:
        import ray

        if ray.is_initialized():
            return
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        if self.address:
            _check_reachable(self.address)  # ray.init retries an unreachable address for minutes
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.jobs * self.cpus_per_run, **kw)
        except Exception as exc:
            where = f"--address {self.address}" if self.address else "--executor ray"
            raise ValueError(f"{where}: cannot start Ray ({type(exc).__name__}: {_first_line(exc)})") from None
        self._started = True

    def map(self, fn, items):
        import ray

        remote = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus, max_retries=3,
                            retry_exceptions=False)(fn)
        todo = list(enumerate(items))[::-1]
        index: dict[Any, int] = {}
        try:
            while todo or index:
                while todo and len(index) < self.jobs:
                    i, item = todo.pop()
                    kw = {"threads": self.cpus_per_run} if fn is run_one else {}
                    index[remote.remote(*item, **kw)] = i
                self._pending = list(index)
                ready, _ = ray.wait(list(index), num_returns=1)
                ref = ready[0]
                i = index.pop(ref)
                try:
                    yield i, ray.get(ref)
                except Exception as exc:  # worker lost after the retries, task cancelled, ...
                    yield i, RuntimeError(f"Ray task failed: {type(exc).__name__}: {_first_line(exc)}")
        finally:
            for ref in index:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # pragma: no cover - best effort
                    pass
            self._pending = []

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class SweepJob:
    """The callable submitted to Slurm through submitit: one run.

    On preemption or timeout submitit calls :meth:`checkpoint`, which requeues the same run
    with ``resume=True``: it continues from the run's ``checkpoint.pt`` (never starting
    over, even if the sweep was forced).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, run_id: str, cfg_dict: dict[str, Any], out: str, force: bool = False,
                 resume: bool = False) -> dict[str, Any]:
        return run_one(run_id, cfg_dict, out, force and not resume, threads=self.threads)

    def checkpoint(self, run_id: str, cfg_dict: dict[str, Any], out: str, force: bool = False,
                   resume: bool = False):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, run_id, cfg_dict, out, False, resume=True)


class SubmititExecutor:
    """A submitit job array: Slurm (``cluster=None``/``"slurm"``), or submitit's local
    executor (``cluster="local"``, for tests). Jobs write their logs to ``folder``."""

    def __init__(self, folder: str | os.PathLike, *, jobs: int = 1, cluster: str | None = None,
                 partition: str | None = None, time_min: int = 240, gpus: int = 0,
                 cpus_per_run: int = 1, mem_gb: float | None = None, poll_s: float | None = None) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ValueError("--executor slurm needs submitit: pip install 'sgdthermo[slurm]'") from None
        self.folder = Path(folder)
        self.jobs, self.cluster = int(jobs), cluster or "slurm"
        self.partition, self.time_min, self.gpus = partition, int(time_min), int(gpus)
        self.cpus_per_run, self.mem_gb = int(cpus_per_run), mem_gb
        self.poll_s = poll_s if poll_s is not None else (15.0 if self.cluster == "slurm" else 0.5)
        self._jobs: list[Any] = []

    def describe(self) -> str:
        return (f"submitit {self.cluster} job array, {self.jobs} at a time, {self.cpus_per_run} CPU(s), "
                f"{self.gpus} GPU(s), {self.time_min} min per run")

    def parameters(self) -> dict[str, Any]:
        p: dict[str, Any] = {"name": "sgdthermo-sweep", "timeout_min": self.time_min,
                             "cpus_per_task": self.cpus_per_run, "gpus_per_node": self.gpus,
                             "slurm_array_parallelism": self.jobs}
        if self.mem_gb is not None:
            p["mem_gb"] = self.mem_gb
        if self.partition:
            p["slurm_partition"] = self.partition
        return p

    def start(self) -> None:
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--executor slurm: Slurm is not available here (no sbatch on PATH); "
                             "use --executor local or ray")

    def map(self, fn, items):
        import submitit

        ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        ex.update_parameters(**self.parameters())
        job_fn = SweepJob(threads=self.cpus_per_run) if fn is run_one else fn
        columns = [list(c) for c in zip(*items)]
        self._jobs = ex.map_array(job_fn, *columns)
        index = {id(j): i for i, j in enumerate(self._jobs)}
        try:
            for job in submitit.helpers.as_completed(self._jobs, poll_frequency=self.poll_s):
                i = index[id(job)]
                try:
                    yield i, job.result()
                except Exception as exc:
                    yield i, RuntimeError(f"{self.cluster} job {job.job_id} failed: "
                                          f"{type(exc).__name__}: {_first_line(exc)}")
        finally:
            for job in self._jobs:
                if not job.done():
                    try:
                        job.cancel(check=False)
                    except Exception:  # pragma: no cover - best effort
                        pass
            self._jobs = []

    def close(self) -> None:
        pass


def make_executor(spec: SweepSpec, out_dir: str | os.PathLike) -> LocalExecutor | RayExecutor | SubmititExecutor:
    """The spec's executor (checks that its package is installed; starts nothing)."""
    if spec.executor == "local":
        return LocalExecutor(spec.jobs)
    if spec.executor == "ray":
        return RayExecutor(spec.jobs, address=spec.address, cpus_per_run=spec.cpus_per_run, gpus=spec.gpus())
    if spec.executor in ("slurm", "slurm-local"):
        return SubmititExecutor(Path(out_dir) / "submitit", jobs=spec.jobs, cluster=spec.cluster,
                                partition=spec.partition, time_min=spec.time_min, gpus=int(spec.gpus()),
                                cpus_per_run=spec.cpus_per_run, mem_gb=spec.mem_gb)
    raise ValueError(f"--executor {spec.executor!r}: expected one of local, ray, slurm")


# ---------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------
STATUS_COLUMNS = ("status", "result", "stationary", "runtime_s", "message")


@dataclass
class _Plan:
    spec: SweepSpec
    out_dir: Path
    runs: list[tuple[str, TrainConfig]]
    rows: list[dict[str, Any]]
    todo: list[int]
    force: bool
    executor: Any = None
    started: bool = False

    def start(self) -> None:
        if self.todo and not self.started:
            self.executor.start()
            self.started = True


def _hyper_columns(spec: SweepSpec) -> list[str]:
    cols = ["protocol", "lr", "wd", "radius"]
    cols += [n for n in spec.grid if n not in cols and n != "seed"]
    return cols + ["seed"]


def _prepare(spec: SweepSpec, out_dir: str | os.PathLike, force: bool = False) -> _Plan:
    """Validate everything and find what is left to run; reads only, writes nothing."""
    runs = expand(spec)
    out = Path(out_dir).expanduser()
    if not out.parent.exists():
        raise ValueError(f"--out {out_dir}: parent folder {str(out.parent)!r} does not exist")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a folder")
    out = out.resolve()
    cols = _hyper_columns(spec)
    rows, todo = [], []
    for i, (rid, cfg) in enumerate(runs):
        row: dict[str, Any] = {"run_id": rid, **{c: getattr(cfg, c) for c in cols}}
        done = None if force else finished_summary(out / rid)
        if done is not None:
            row.update({k: v for k, v in _skipped_row(rid, done).items() if k in STATUS_COLUMNS})
        else:
            row.update(status="pending", result=None, stationary=None, runtime_s=None, message="")
            todo.append(i)
        rows.append(row)
    plan = _Plan(spec, out, runs, rows, todo, force)
    if todo:
        plan.executor = make_executor(spec, out)
    return plan


class _SweepProgress:
    """Runs done/total and counts by status on stderr (a bar on a terminal, else a line per run)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()

    def __call__(self, rows: list[dict[str, Any]], last: dict[str, Any] | None = None) -> None:
        counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "diverged", "failed", "skipped")}
        done = sum(counts.values())
        frac = done / self.total if self.total else 1.0
        el = time.perf_counter() - self.t0
        ran = done - counts["skipped"]
        left = self.total - done
        eta = f", ~{el / ran * left:.0f}s left" if ran and left else ""
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        msg = (f"[sweep] [{bar}] {done}/{self.total} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items())
               + f"; {el:.0f}s elapsed{eta}")
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if done >= self.total else ""))
        else:
            if last is not None:
                msg += f"  ({last['run_id']}: {last['status']})"
            self.stream.write(msg + "\n")
        self.stream.flush()


def _table(plan: _Plan) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(plan.rows)
    if "stationary" in df:
        df["stationary"] = df["stationary"].astype(object)
    return df


def _execute(plan: _Plan, *, progress: bool | Callable = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    plan.start()  # may raise ValueError (Ray cannot start, no Slurm): nothing written yet
    out = plan.out_dir
    try:
        out.mkdir(exist_ok=True)
        _io().write_json(plan.spec.to_dict(), out / "sweep.json")
        _io().write_csv(_table(plan), out / "status.csv")
        n, k = len(plan.runs), len(plan.runs) - len(plan.todo)
        where = plan.executor.describe() if plan.todo else "nothing to run"
        log(f"sweep: {n} run(s), {k} finished earlier, {len(plan.todo)} to run ({where}); output in {out}")
        show = (_SweepProgress(n) if progress is True else progress) if progress else None
        if show is not None and k:
            show(plan.rows)
        if plan.todo:
            if plan.force:  # start over here, so that retried or requeued runs resume
                for i in plan.todo:
                    _clear_run(out / plan.runs[i][0])
            items = [(plan.runs[i][0], dataclasses.asdict(plan.runs[i][1]), str(out), False)
                     for i in plan.todo]
            for j, res in plan.executor.map(run_one, items):
                i = plan.todo[j]
                row = plan.rows[i]
                if isinstance(res, BaseException):
                    res = {"status": "failed", "result": None, "stationary": None, "runtime_s": None,
                           "message": f"{type(res).__name__}: {_first_line(res)}"}
                row.update({c: res.get(c) for c in STATUS_COLUMNS})
                _io().write_csv(_table(plan), out / "status.csv")
                if show is not None:
                    show(plan.rows, row)
    finally:
        if plan.executor is not None and plan.started:
            plan.executor.close()
            plan.started = False
    df = _table(plan)
    view = df[["run_id", *STATUS_COLUMNS]].copy()
    view["runtime_s"] = [f"{v:.1f}" if isinstance(v, (int, float)) and v == v else "" for v in view["runtime_s"]]
    view["message"] = [str(m or "")[:70] for m in view["message"]]
    view["stationary"] = [("" if v is None or v != v else str(bool(v))) for v in view["stationary"]]
    view["result"] = [("" if v is None or v != v else v) for v in view["result"]]
    log(view.to_string(index=False))
    counts = df["status"].value_counts().to_dict()
    log(f"sweep: {len(df)} run(s): " + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; status in {out / 'status.csv'}")
    return df


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, *, force: bool = False,
              progress: bool | Callable = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every configuration of ``spec`` into ``out_dir/<run_id>/`` and return the status table.

    Columns: ``run_id``, the hyperparameters (``protocol, lr, wd, radius``, other axes,
    ``seed``), ``status`` (completed, diverged, failed, or skipped: finished earlier),
    ``result`` (the training status, also for skipped runs), ``stationary``, ``runtime_s``
    (this call's wall time, or the training time of a skipped run) and ``message`` (the
    error of a failed run, why a run is not stationary, "resumed at step N").

    Everything is validated before anything is written (ValueError, one line). Finished
    runs are skipped unless ``force``; interrupted runs resume from their checkpoint; a run
    that raises is recorded as failed (``error.txt`` in its folder) and the others go on.
    ``out_dir/sweep.json`` holds the spec, ``out_dir/status.csv`` the table (rewritten
    atomically as runs finish). ``progress``: a line on stderr per finished run (a bar on a
    terminal); ``log``: receives the start line and the final table.
    """
    plan = _prepare(spec, out_dir, force)
    return _execute(plan, progress=progress, log=log)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
_REQUIRED_FLAGS = ("model", "dataset", "protocol", "lr", "iters")


def sweep_argument_parser(sub) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to an argparse subparsers object; returns its parser."""
    p = sub.add_parser("sweep", help="train a grid of configurations (locally, on Ray or on Slurm)",
                       description="Train every configuration of a grid: finished runs are skipped, "
                                   "interrupted ones resumed, failed ones recorded. SPEC: a number, "
                                   "LO:HI:N (N log-spaced values) or a comma list.")
    p.add_argument("--config", help="sweep spec in YAML (instead of the run flags)")
    g = p.add_argument_group("runs (as for train; SPEC values make grid axes)")
    g.add_argument("--model", help="convnet, resnet18 or mlp")
    g.add_argument("--width", help="width multiplier k: SPEC of integers")
    g.add_argument("--head-norm", help="norm of the frozen head: SPEC")
    g.add_argument("--loss", help="ce (cross-entropy) or mse")
    g.add_argument("--dataset", help="digits, cifar10, cifar100 or synthetic")
    g.add_argument("--data-dir", help="folder with the CIFAR files")
    g.add_argument("--download", action="store_true", default=None, help="download CIFAR")
    g.add_argument("--samples-per-label", type=int, help="class-balanced training subset")
    g.add_argument("--protocol", help="fixed-lr, fixed-elr or fixed-sphere")
    g.add_argument("--lr", help="η (fixed-lr) or η̃ (others): SPEC")
    g.add_argument("--wd", help="weight decay λ (fixed-lr, fixed-elr): SPEC")
    g.add_argument("--radius", help="sphere radius ρ (fixed-sphere): SPEC")
    g.add_argument("--init-norm", type=float, help="initial norm of the scale-invariant group")
    g.add_argument("--iters", type=int, help="training steps per run")
    g.add_argument("--batch-size", help="batch size (default 128): SPEC of integers")
    g.add_argument("--seeds", help="seeds: S[,S...] (default 0)")
    g.add_argument("--checkpoint-every", type=int)
    g.add_argument("--log-every", type=int)
    g.add_argument("--noise-batches", type=int)
    g.add_argument("--queue-size", type=int)
    g.add_argument("--queue-every", type=int)
    g.add_argument("--queue-dtype")
    g.add_argument("--entropy-method")
    g.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    e = p.add_argument_group("execution")
    e.add_argument("--executor", choices=list(EXECUTORS), help="local (default), ray or slurm")
    e.add_argument("--jobs", type=int, help="runs at a time (default 1)")
    e.add_argument("--address", help="Ray cluster address (default: a local instance)")
    e.add_argument("--partition", help="Slurm partition")
    e.add_argument("--time-min", type=int, help="Slurm time limit per run, minutes (default 240)")
    e.add_argument("--gpus-per-run", type=float, help="GPUs per run (default 1 on cuda, else 0)")
    e.add_argument("--cpus-per-run", type=int, help="CPUs (and torch threads) per run on Ray/Slurm")
    e.add_argument("--mem-gb", type=float, help="Slurm memory per run, GB")
    p.add_argument("--force", action="store_true", help="rerun finished runs from scratch")
    p.add_argument("--out", required=True, help="sweep folder (its parent must exist)")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """The ``sweep`` subcommand: 0 if every run completed or diverged (now or earlier),
    1 if any failed; bad input raises :class:`sgdthermo.cli.UsageError` before anything
    is written."""
    from .cli import UsageError

    try:
        if getattr(args, "config", None) is None:
            for name in _REQUIRED_FLAGS:
                if getattr(args, name, None) is None:
                    raise ValueError(f"{_flag(name)} is required (or give --config FILE.yaml)")
        spec = SweepSpec.from_args(args)
        plan = _prepare(spec, args.out, bool(getattr(args, "force", False)))
        plan.start()
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(_first_line(exc)) from None
    df = _execute(plan, progress=True, log=print)
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        print(f"sgdthermo: {n_failed} run(s) failed; see error.txt in their folders", file=sys.stderr)
        return 1
    return 0
