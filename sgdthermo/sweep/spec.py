r"""A sweep's specification: a base TrainConfig, grid axes and seeds, where to run; run ids."""

from __future__ import annotations

import argparse
import codecs
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import first_line
from ..nn.config import TrainConfig, field_kind, field_optional, parse_stride

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

__all__ = ["check_executor", "SweepSpec", "expand", "config_hash", "make_run_id", "EXECUTORS", "EXECUTOR_KEYS", "HASH_LEN",
           "flag_name", "MAX_RUNS"]


EXECUTORS = ("local", "ray", "slurm", "slurm-local", "batched")
HASH_LEN = 10
#: The most runs a sweep may hold (grid points x seeds), and so the most values of one axis:
#: a larger grid is refused before anything is built (:meth:`SweepSpec.validate`), not
#: looped over for hours.
MAX_RUNS = 100_000
#: The largest spec file read (bytes): a sweep's ``sweep.json`` with MAX_RUNS values per
#: axis stays far below it.
_MAX_SPEC_BYTES = 64 * 2**20

EXECUTOR_KEYS = ("executor", "jobs", "address", "cluster", "partition", "time_min",
                  "gpus_per_run", "cpus_per_run", "mem_gb", "pack")
_SWEEP_KEYS = ("grid", "seeds") + EXECUTOR_KEYS
_ALIASES = {"time": "time_min", "seed_list": "seeds"}
_SHORT = {"lr": "lr", "wd": "wd", "radius": "r", "width": "w", "batch_size": "bs", "iters": "it",
          "head_norm": "hn", "init_norm": "in", "samples_per_label": "spl", "noise_batches": "nb",
          "queue_size": "qs", "queue_every": "qe", "tail_fraction": "tf"}





def _io():
    from .. import io

    return io


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------------------------
# Values: SPEC strings, comma lists, typed coercion per TrainConfig field
# ---------------------------------------------------------------------------------------




def _coerce(name: str, v: Any) -> Any:
    """One value of field ``name`` in its type, or ValueError naming it."""
    kind = field_kind(name)
    flag = flag_name(name)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # NumPy scalars
        v = v.item()
    if v is None:
        if field_optional(name):
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
    if kind == "stride":
        return parse_stride(flag, v)
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
    from ..specs import spec_parts

    flag = flag_name(name)
    kind = field_kind(name)
    if isinstance(value, (list, tuple)):
        vals = []
        for v in value:
            if type(v) is float and kind == "float":  # already coerced (fast for long axes)
                vals.append(v)
            elif isinstance(v, str) and kind in ("int", "float") and ":" in v:
                vals.extend(_parse_values(name, v))
            else:
                vals.append(_coerce(name, v))
    elif isinstance(value, str) and kind in ("int", "float"):
        _check_spec_size(name, value)
        vals = []
        for arr, is_range in spec_parts(value, name.replace("_", "-")):
            # values of a LO:HI:N range are rounded to 12 digits: run ids must not hinge on an ulp
            xs = [float(f"{x:.12g}") for x in arr.tolist()] if is_range else [float(x) for x in arr.tolist()]
            # a float is its own coerced value (fast for long ranges); ints are checked one by one
            vals.extend(xs if kind == "float" else (_coerce(name, x) for x in xs))
    elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy arrays
        return _parse_values(name, value.tolist() if getattr(value, "ndim", 0) else [value.item()])
    else:
        vals = [_coerce(name, value)]
    if not vals:
        raise ValueError(f"{flag}: empty list of values")
    return vals


def _check_spec_size(name: str, spec: str) -> None:
    """Refuse a SPEC string naming more than :data:`MAX_RUNS` values before they are built
    (``1e-3:1e-1:1000000000000`` would allocate terabytes). Malformed parts are left to
    :func:`sgdthermo.specs.spec_parts`, which names them."""
    total = 0
    for part in spec.split(","):
        pieces = part.split(":")
        if len(pieces) == 3 and pieces[2].strip().isdigit():
            total += int(pieces[2].strip())
        else:
            total += 1
    if total > MAX_RUNS:
        raise ValueError(f"{flag_name(name)} {spec!r}: {total} values, more than the {MAX_RUNS} "
                         f"a sweep may hold; use a smaller N")


def _count(n: int) -> str:
    """A run count as written in messages: exact up to a million, then ``1e+10``."""
    return str(n) if n < 10**6 else f"{n:.3g}"


def _is_axis_value(name: str, value: Any) -> bool:
    """A top-level value that names several values (a list, or a SPEC/comma string)."""
    if isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and getattr(value, "ndim", 0) > 0):
        return True
    return isinstance(value, str) and field_kind(name) in ("int", "float") and (":" in value or "," in value)


def _parse_seeds(value: Any) -> list[int]:
    try:
        vals = _parse_values("seed", value)
    except ValueError as exc:
        raise ValueError(f"--seeds {value!r}: expected integers S[,S...] ({first_line(exc)})") from None
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
    the run's resources; its torch threads are the runs' own ``threads``).
    ``pack``: runs trained together as one batched model (:mod:`sgdthermo.nn.batched`), an
    integer ≥ 1 or ``"auto"`` (as many as fit the memory budget); ``executor="batched"`` is
    local processes each training a pack (``pack`` default ``"auto"``), and a pack greater
    than 1 with ``ray`` or ``slurm`` makes each task or job a pack. Runs that cannot share a
    batched model (another architecture, data set or protocol) go to separate packs.
    """

    base: TrainConfig = field(default_factory=lambda: TrainConfig())
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
    pack: int | str | None = None

    def __post_init__(self) -> None:
        if self.executor == "slurm-local":
            self.executor, self.cluster = "slurm", self.cluster or "local"
        grid = {}
        for name, values in dict(self.grid).items():
            name = str(name).replace("-", "_")
            if name not in _FIELDS or field_kind(name) == "dict":
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
        d = {k: v for k, v in d.items() if k != "history"}  # a sweep folder's earlier specs (sweep.json)
        d = _normalised_keys(d, "sweep key")
        unknown = sorted(k for k in d if k not in _FIELDS and k not in _SWEEP_KEYS)
        if unknown:
            raise ValueError(f"unknown sweep key(s): {', '.join(unknown)} (allowed: TrainConfig fields, "
                             f"{', '.join(_SWEEP_KEYS)})")
        grid_in = d.get("grid") or {}
        if not isinstance(grid_in, dict):
            raise ValueError(f"grid: must be a mapping of axis name to values, got {grid_in!r}")
        grid: dict[str, Any] = _normalised_keys(grid_in, "grid axis", aliases=False)
        base_kw: dict[str, Any] = {}
        seeds = d.get("seeds")
        for name, value in d.items():  # in the given order (the order of the axes)
            if name not in _FIELDS:
                continue
            if _is_axis_value(name, value):
                vals = _parse_values(name, value)
                if name == "seed":
                    if seeds is not None:
                        raise ValueError("seeds given twice: as a list for 'seed' and as seeds")
                    seeds = vals
                elif name in grid:
                    raise ValueError(f"{flag_name(name)}: given both at the top level and in grid")
                elif len(vals) > 1:
                    grid[name] = vals
                else:
                    base_kw[name] = vals[0]
            else:
                if name in grid:
                    raise ValueError(f"{flag_name(name)}: given both at the top level and in grid")
                base_kw[name] = _coerce(name, value)
        kw = {k: d[k] for k in EXECUTOR_KEYS if k in d and d[k] is not None}
        if isinstance(kw.get("pack"), str) and kw["pack"] != "auto":
            try:
                kw["pack"] = int(kw["pack"])
            except ValueError:
                raise ValueError(f"--pack {kw['pack']!r}: must be a positive integer or auto") from None
        for k in ("jobs", "cpus_per_run", "time_min", "gpus_per_run", "mem_gb"):  # "2" from YAML
            if isinstance(kw.get(k), str):
                try:
                    num = float(kw[k])
                except ValueError:
                    raise ValueError(f"{flag_name(k)} {kw[k]!r}: must be a number") from None
                kw[k] = int(num) if num == int(num) and k not in ("gpus_per_run", "mem_gb") else num
        return cls(base=TrainConfig(**base_kw), grid=grid, seeds=seeds, **kw)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "SweepSpec":
        """Read the YAML format (JSON, e.g. a sweep's ``sweep.json``, is YAML too).

        A key given twice in a mapping (a ``<<:`` merge aside), a file that is missing, a
        folder, unreadable, not text, not valid YAML, empty or not a mapping: a one-line
        ValueError naming the file."""
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
            known = set(_FIELDS) | set(_SWEEP_KEYS) | set(_ALIASES) | {"config"}
            d.update({k: v for k, v in vars(args).items() if k in known})
        d.update(kwargs)
        d = _normalised_keys({k: v for k, v in d.items() if v is not None}, "setting")
        config = d.pop("config", None)
        if config is not None:
            run_keys = [k for k in d if k not in EXECUTOR_KEYS]
            if run_keys:
                raise ValueError(f"--config {config}: give the run settings in the file or as flags, "
                                 f"not both (got {flag_name(run_keys[0])})")
            try:  # the file's keys as from_dict reads them, so that a flag overrides its alias too
                merged = _normalised_keys(_load_yaml(config), "key")
            except ValueError as exc:
                msg = first_line(exc)
                raise ValueError(msg if msg.startswith("--config") else f"--config {config}: {msg}") from None
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
        for k in EXECUTOR_KEYS:
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
    def n_runs(self) -> int:
        """The number of runs: the product of the axes' lengths times the seeds (counted, not
        built: :meth:`validate` refuses more than :data:`MAX_RUNS`)."""
        return math.prod(len(v) for v in self.grid.values()) * len(self.all_seeds)

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
        check_executor(self.executor)
        if self.cluster is not None and self.cluster not in ("slurm", "local", "debug"):
            raise ValueError(f"cluster {self.cluster!r}: expected slurm, local or debug")

        def pos_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{flag_name(name)} {v}: must be a positive integer")

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
        pk = self.pack
        if pk is not None and pk != "auto" and (isinstance(pk, bool) or not isinstance(pk, int) or pk < 1):
            raise ValueError(f"--pack {pk!r}: must be a positive integer or auto")
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"grid axis {name}: no values")
        seeds = self.all_seeds
        if not seeds:
            raise ValueError("--seeds: empty list of seeds")
        if self.n_runs > MAX_RUNS:
            sizes = " x ".join(str(len(v)) for v in self.grid.values()) or "1"
            raise ValueError(f"grid of {sizes} values x {len(seeds)} seed(s) = {_count(self.n_runs)} runs: "
                             f"more than the {MAX_RUNS} a sweep may hold; use fewer values per axis")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds {','.join(map(str, seeds))}: repeated seed")


def _normalised_keys(d: dict[Any, Any], what: str, aliases: bool = True) -> dict[str, Any]:
    """``d`` with ``-`` in keys written ``_`` (and the aliases resolved); two keys that name the
    same setting (``batch-size`` and ``batch_size``, ``time`` and ``time_min``) are an error."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for k, v in d.items():
        name = str(k).replace("-", "_")
        if aliases:
            name = _ALIASES.get(name, name)
        if name in out:
            raise ValueError(f"{what} {name!r} given twice (as {given[name]!r} and {str(k)!r})")
        out[name], given[name] = v, str(k)
    return out


def check_executor(name: Any) -> str:
    """``name`` if it is one of :data:`EXECUTORS`, else a one-line ValueError."""
    if name not in EXECUTORS:
        raise ValueError(f"--executor {name!r}: expected one of local, ray, slurm, batched")
    return name


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is installed with the package
        raise ValueError("reading or writing YAML needs PyYAML: pip install pyyaml") from None
    return yaml


class _DuplicateKey(Exception):
    """A mapping key given twice in a spec file (lines counted from 1)."""

    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


_LOADER: Any = None


def _loader() -> Any:
    """A SafeLoader that refuses a mapping key given twice (``yaml.safe_load`` keeps the last
    silently). Keys brought in by a ``<<:`` merge may be overridden (what merges are for): the
    check looks at the keys written in each mapping, before merges are resolved."""
    global _LOADER
    if _LOADER is None:
        yaml = _yaml()

        class UniqueKeyLoader(yaml.SafeLoader):
            def get_single_node(self) -> Any:
                node = super().get_single_node()
                if node is not None:
                    self._check_unique_keys(node)
                return node

            def _check_unique_keys(self, root: Any) -> None:
                todo, done = [root], set()
                while todo:  # no recursion: aliases may make cycles, documents may nest deeply
                    node = todo.pop()
                    if id(node) in done:
                        continue
                    done.add(id(node))
                    if isinstance(node, yaml.SequenceNode):
                        todo.extend(node.value)
                    elif isinstance(node, yaml.MappingNode):
                        seen: dict[Any, int] = {}
                        for key_node, value_node in node.value:
                            todo.append(value_node)
                            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                                continue
                            key = self.construct_object(key_node)
                            try:
                                hash(key)
                            except TypeError:  # pragma: no cover - scalars are hashable
                                continue
                            line = key_node.start_mark.line + 1
                            if key in seen:
                                raise _DuplicateKey(key, seen[key], line)
                            seen[key] = line

        _LOADER = UniqueKeyLoader
    return _LOADER


def _read_text(path: str | os.PathLike) -> str:
    """The text of a spec file, or a one-line ValueError naming it (missing, a folder, not
    readable, too large, not text)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--config {path}: is a folder, not a spec file")
    if not p.exists():
        raise ValueError(f"--config {path}: no such file")
    if not p.is_file():
        raise ValueError(f"--config {path}: not a regular file")
    try:
        size = p.stat().st_size
        if size > _MAX_SPEC_BYTES:
            raise ValueError(f"--config {path}: {size / 2**20:.0f} MiB is too large for a sweep spec "
                             f"(at most {_MAX_SPEC_BYTES // 2**20} MiB)")
        raw = p.read_bytes()
    except PermissionError:
        raise ValueError(f"--config {path}: permission denied (the file is not readable)") from None
    except OSError as exc:
        raise ValueError(f"--config {path}: cannot be read ({exc.strerror or first_line(exc)})") from None
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--config {path}: not a text file (byte 0x{raw[exc.start]:02x} at offset "
                         f"{exc.start} is not UTF-8); expected YAML or JSON") from None
    if "\x00" in text:
        raise ValueError(f"--config {path}: not a text file (it holds NUL bytes); expected YAML or JSON")
    return text


def _load_yaml(path: str | os.PathLike) -> Any:
    """The mapping of a spec file in YAML (or JSON, which is YAML too), or a one-line
    ValueError naming the file: unreadable, not text, not valid YAML, a key given twice,
    empty, or not a mapping."""
    yaml = _yaml()
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except _DuplicateKey as exc:
        where = f"both on line {exc.first}" if exc.first == exc.second else f"lines {exc.first} and {exc.second}"
        raise ValueError(f"--config {path}: key {exc.key!r} given twice ({where})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or first_line(exc)
        raise ValueError(f"--config {path}: not valid YAML{at}: {what}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise ValueError(f"--config {path}: not valid YAML (nested too deeply)") from None
    if data is None:
        raise ValueError(f"--config {path}: the file is empty; expected a mapping of settings")
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of settings, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------
# Expansion and run ids
# ---------------------------------------------------------------------------------------
#: Fields added to TrainConfig after run ids were first issued, with the value that leaves
#: them out of the hash (so the ids of runs made before they existed do not change).
_LATER_FIELDS: dict[str, Any] = {"threads": 1}


def config_hash(cfg: TrainConfig, n: int = HASH_LEN) -> str:
    """First ``n`` hex digits of the SHA-1 of the resolved config as JSON with sorted keys.

    Independent of the process, the Python version and the order in which fields or
    grid axes were given (floats are written with their shortest round-trip repr). Fields
    of :data:`_LATER_FIELDS` at their listed value are left out.
    """
    d = dataclasses.asdict(cfg.resolved())
    for name, value in _LATER_FIELDS.items():  # ids from before these fields existed stay valid
        if d.get(name) == value:
            del d[name]
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


def expand(spec: SweepSpec) -> list[tuple[str, TrainConfig]]:
    """Every run of the sweep: (run id, resolved TrainConfig), axes × seeds in grid order.

    The number of runs is checked first (at most :data:`MAX_RUNS`, before any is built); all
    configurations are then validated; the first bad one raises a one-line
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
                raise ValueError(f"{first_line(exc)} (grid point {where})") from None
            rid = make_run_id(cfg, names)
            if rid in seen:
                raise ValueError(f"grid points {seen[rid]} and {where} are the same run (repeated values)")
            seen[rid] = where
            runs.append((rid, cfg))
    return runs


