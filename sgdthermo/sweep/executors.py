r"""Executors of a sweep: local processes, Ray tasks, Slurm job arrays (one interface)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .runner import PackJob, SweepJob, pack_key, run_one, run_pack
from .spec import SweepSpec, check_executor
from ..errors import first_line as _first_line

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "SubmititExecutor", "PackedExecutor", "make_executor",
           "plan_packs", "MAX_PACK"]


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


_WATCHED = False  # this process already dies with its parent


def _init_worker(parent: int) -> None:
    """Start of a local worker process: die with the sweep process ``parent``.

    A worker left behind by a killed sweep would finish its run, then wait forever for a
    parent that is gone, holding its run's lock. On Linux the kernel sends the worker
    SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); elsewhere, and as a second line,
    a daemon thread checks once a second that the parent is still the one that started it.
    Checkpoints are written atomically, so a worker killed at any moment loses at most the
    steps since its last checkpoint.
    """
    import signal
    import threading

    global _WATCHED
    if _WATCHED:
        return
    _WATCHED = True
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sgdthermo-parent-watch", daemon=True).start()


class LocalExecutor:
    """``jobs`` spawned worker processes (``jobs=1``: in this process, no pool); a worker
    dies with the sweep (:func:`_init_worker`); each run pins its own torch threads.

    A worker that dies (killed, out of memory) breaks the pool: a new pool is started and
    the unfinished runs are submitted again (they resume from their checkpoints), at most
    ``max_retries`` times per run, like Ray's ``max_retries``.
    """

    def __init__(self, jobs: int = 1, *, max_retries: int = 3) -> None:
        self.jobs = int(jobs)
        self.max_retries = int(max_retries)
        self._pool: cf.ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return "in this process" if self.jobs == 1 else f"{self.jobs} local processes"

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
                    initializer=_init_worker, initargs=(os.getpid(),))
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


def _ray_task(fn: Callable[..., Any], *args: Any) -> Any:
    """A Ray task: ``fn(*args)`` in a worker that dies with its raylet (:func:`_init_worker`),
    so that the workers of a local instance do not outlive a killed sweep."""
    _init_worker(os.getppid())
    return fn(*args)


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
                            retry_exceptions=False)(_ray_task)
        todo = list(enumerate(items))[::-1]
        index: dict[Any, int] = {}
        try:
            while todo or index:
                while todo and len(index) < self.jobs:
                    i, item = todo.pop()
                    index[remote.remote(fn, *item)] = i
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
        job_fn = SweepJob() if fn is run_one else PackJob() if fn is run_pack else fn
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


#: The most runs in one pack (``--pack auto`` never goes above it).
MAX_PACK: int = 64
#: The share of the device's memory a pack chosen by ``--pack auto`` may fill.
PACK_MEMORY_SHARE: float = 0.5


def auto_pack(cfg_dict: dict[str, Any], jobs: int = 1) -> int:
    """How many runs like ``cfg_dict`` fit one pack: :data:`PACK_MEMORY_SHARE` of the device's
    memory (shared by ``jobs`` packs at a time) over a member's memory
    (:func:`sgdthermo.budget.estimate_train_memory` without the data set, which the pack
    holds once), at most :data:`MAX_PACK`."""
    from .. import budget
    from ..nn.config import TrainConfig

    cfg = TrainConfig.from_dict(cfg_dict).resolved()
    parts = budget.estimate_train_memory(cfg)
    member = max(1, sum(v for k, v in parts.items() if k != "data set"))
    room = PACK_MEMORY_SHARE * budget.available_memory(cfg.device) / max(1, jobs) - parts["data set"]
    return int(max(1, min(MAX_PACK, room // member)))


def plan_packs(items: Sequence[tuple], pack: int | str, jobs: int = 1) -> list[list[int]]:
    """The runs ``items`` (``(run_id, config, out, force)``) in packs: runs of one
    :func:`~sgdthermo.sweep.runner.pack_key` (architecture, data set, protocol, batch size,
    device, threads) together in order, at most ``pack`` per pack (``"auto"``:
    :func:`auto_pack`); runs that differ in those settings are never packed together."""
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(pack_key(item[1]), []).append(i)
    packs = []
    for idx in groups.values():
        size = auto_pack(items[idx[0]][1], jobs) if pack == "auto" else int(pack)
        packs.extend(idx[k:k + size] for k in range(0, len(idx), size))
    return packs


class PackedExecutor:
    """Another executor (``inner``) running packs of runs (:func:`plan_packs`) instead of single
    runs: each task trains its pack as one batched model (:func:`~sgdthermo.sweep.runner.run_pack`)
    and the pack's rows are yielded run by run, as ``inner`` would yield single runs. A pack the
    executor lost (a killed worker, a failed job) is reported for each of its runs."""

    def __init__(self, inner: Any, pack: int | str, jobs: int = 1, cpus: int | None = None) -> None:
        self.inner, self.pack, self.jobs, self.cpus = inner, pack, int(jobs), cpus
        self.packs: list[list[int]] = []

    def describe(self) -> str:
        sizes = f"{len(self.packs)} pack(s) of up to {max(map(len, self.packs))} runs" if self.packs \
            else f"packs of {self.pack}"
        return f"{sizes} trained as batched models, {self.inner.describe()}"

    def start(self) -> None:
        self.inner.start()

    def map(self, fn, items):
        if fn is not run_one:
            raise ValueError("PackedExecutor runs sweep runs (run_one) only")
        self.packs = plan_packs(items, self.pack, self.jobs)
        # a pack's torch threads: the CPUs of its task (Ray, Slurm), or this machine's shared by
        # the packs that run at once
        threads = self.cpus or max(1, (os.cpu_count() or 1) // max(1, min(self.jobs, len(self.packs))))
        work = [([(items[i][0], items[i][1]) for i in pk], items[pk[0]][2], items[pk[0]][3], threads)
                for pk in self.packs]
        for j, res in self.inner.map(run_pack, work):
            pk = self.packs[j]
            if isinstance(res, BaseException) or not isinstance(res, list) or len(res) != len(pk):
                err = res if isinstance(res, BaseException) else RuntimeError(f"pack returned {type(res).__name__}")
                for i in pk:
                    yield i, err
                continue
            for i, row in zip(pk, res):
                yield i, row

    def close(self) -> None:
        self.inner.close()


def make_executor(spec: SweepSpec, out_dir: str | os.PathLike) -> Any:
    """The spec's executor (checks that its package is installed; starts nothing); with
    ``executor="batched"`` or a ``pack`` above 1, a :class:`PackedExecutor` around it."""
    pack = spec.pack if spec.pack is not None else ("auto" if spec.executor == "batched" else 1)
    if pack != 1 or spec.executor == "batched":
        inner = make_executor(dataclasses.replace(spec, executor="local" if spec.executor == "batched"
                                                  else spec.executor, pack=1), out_dir)
        return PackedExecutor(inner, pack, spec.jobs, None if spec.executor in ("local", "batched")
                              else spec.cpus_per_run)
    if spec.executor == "local":
        return LocalExecutor(spec.jobs)
    if spec.executor == "ray":
        return RayExecutor(spec.jobs, address=spec.address, cpus_per_run=spec.cpus_per_run, gpus=spec.gpus())
    if spec.executor in ("slurm", "slurm-local"):
        return SubmititExecutor(Path(out_dir) / "submitit", jobs=spec.jobs, cluster=spec.cluster,
                                partition=spec.partition, time_min=spec.time_min, gpus=int(spec.gpus()),
                                cpus_per_run=spec.cpus_per_run, mem_gb=spec.mem_gb)
    raise ValueError(f"--executor {check_executor(spec.executor)!r}: no executor")  # pragma: no cover


