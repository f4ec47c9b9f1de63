r"""Running a sweep: one run per folder, skipped when finished, resumed when interrupted.

See :mod:`sgdthermo.sweep` for the folder layout. :func:`run_one` is what every executor runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError, RunBusyError
from ..nn.config import TrainConfig
from ..nn.training import run_lock
from .spec import SweepSpec, expand
from ..errors import first_line as _first_line

if TYPE_CHECKING:
    import pandas as pd

ProgressFn = Callable[[list[dict[str, Any]], "dict[str, Any] | None"], None]
_log = logging.getLogger("sgdthermo.sweep")

__all__ = ["run_sweep", "prepare_sweep", "execute_sweep", "SweepPlan", "run_one", "finished_summary", "SweepJob", "FINAL_STATUSES", "STATUS_COLUMNS"]

FINAL_STATUSES = ("completed", "diverged")  # a run folder whose summary says so is finished


def _io():
    from .. import io

    return io


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


_TRAIN_OUTPUTS = ("summary.json", "checkpoint.pt", "metrics.csv", "thermo.csv", "config.json", "curves.png",
                  "error.txt", "log.txt")


def _clear_run(run_dir: Path) -> None:
    """Remove a run's outputs (force), unless another process is training it."""
    if not run_dir.is_dir():
        return
    try:
        with run_lock(run_dir):
            for name in _TRAIN_OUTPUTS:
                (run_dir / name).unlink(missing_ok=True)
    except RunBusyError:
        pass  # run_one will report it


def _open_run(run_id: str, run_dir: Path, force: bool, stack: Any, notes: list[str],
              header: str) -> Callable[[str], None] | dict[str, Any]:
    """Take ``run_dir`` for training on ``stack`` (its lock, ``log.txt`` open for appending) and
    return the run's log function, or the ``skipped`` row of a run finished (now, or meanwhile
    by another process) unless ``force``, which instead removes its outputs. Messages of a
    resume are also kept in ``notes``."""
    import contextlib

    done = finished_summary(run_dir)
    if done is not None and not force:
        return _skipped_row(run_id, done)
    run_dir.mkdir(exist_ok=True)
    member = stack.enter_context(contextlib.ExitStack())
    member.enter_context(run_lock(run_dir))
    done = finished_summary(run_dir)  # finished meanwhile by another process?
    if done is not None and not force:
        member.close()
        return _skipped_row(run_id, done)
    if force:
        for name in _TRAIN_OUTPUTS:
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "error.txt").unlink(missing_ok=True)
    logf = member.enter_context(open(run_dir / "log.txt", "a", encoding="utf-8"))

    def log(msg: str) -> None:
        logf.write(f"{msg}\n")
        logf.flush()
        if msg.startswith("resumed at step"):
            notes.append(msg)

    log(header)
    return log


def _reject_checkpoint(run_dir: Path, exc: CheckpointError, log: Callable[[str], None], notes: list[str]) -> None:
    """Keep a checkpoint that cannot continue its run as ``checkpoint.pt.rejected``, saying so."""
    os.replace(run_dir / "checkpoint.pt", run_dir / "checkpoint.pt.rejected")
    note = f"{_first_line(exc)}: kept as checkpoint.pt.rejected, run started over"
    log(note)
    notes.append(note.replace(str(run_dir) + os.sep, ""))


def _record_summary(row: dict[str, Any], summary: dict[str, Any], notes: list[str]) -> None:
    """The status row of a run that ended with ``summary``."""
    status = summary.get("status")
    if status not in FINAL_STATUSES:
        raise RuntimeError(f"train returned status {status!r}")
    msg = summary.get("message") or ""
    if status == "completed" and not summary.get("stationary"):
        msg = summary.get("reason") or "not stationary"
    row.update(status=status, result=status, stationary=summary.get("stationary"),
               steps=summary.get("steps"), message="; ".join(notes + ([msg] if msg else [])))


def _record_failure(row: dict[str, Any], exc: BaseException, run_dir: Path) -> None:
    """The status row of a run that failed with ``exc``, its traceback in ``error.txt`` (not for
    a run another process is training: not this process's folder to touch)."""
    if isinstance(exc, RunBusyError):
        row.update(status="failed", result=None, message=f"RunBusyError: {exc}")
        return
    row.update(status="failed", result=None, message=f"{type(exc).__name__}: {_first_line(exc)}")
    try:
        if run_dir.parent.is_dir():
            run_dir.mkdir(exist_ok=True)
            _io().atomic_write_text(run_dir / "error.txt", "".join(traceback.format_exception(exc)))
    except OSError:
        pass


def _new_row(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "status": "failed", "result": None, "stationary": None, "runtime_s": None,
            "message": "", "steps": None}


def run_one(run_id: str, cfg_dict: dict[str, Any], out_dir: str | os.PathLike,
            force: bool = False) -> dict[str, Any]:
    """Train one run into ``out_dir/run_id`` and return its status row (never raises).

    Finished runs are skipped (unless ``force``: start over); interrupted ones (a
    checkpoint, no final summary) resume exactly. A checkpoint that cannot continue the
    run (unreadable, another configuration, an impossible step) is kept as
    ``checkpoint.pt.rejected`` and the run starts over, saying so in its message. An
    exception is caught: the row says ``failed`` with its first line, and ``error.txt``
    holds the traceback. The training log goes to ``log.txt``. The run pins its own torch
    thread count (``TrainConfig.threads``), whatever the executor.
    """
    import contextlib

    t0 = time.perf_counter()
    row = _new_row(run_id)
    run_dir = Path(out_dir) / run_id
    try:
        from ..nn import training

        cfg = TrainConfig.from_dict(cfg_dict)
        notes: list[str] = []
        with contextlib.ExitStack() as stack:
            log = _open_run(run_id, run_dir, force, stack, notes,
                            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} run {run_id} (pid {os.getpid()})")
            if isinstance(log, dict):
                return log
            try:
                summary = training.train(cfg, run_dir, resume=True, log=log)
            except CheckpointError as exc:  # start over; the rejected file is kept
                _reject_checkpoint(run_dir, exc, log, notes)
                summary = training.train(cfg, run_dir, force=True, log=log)
        _record_summary(row, summary, notes)
    except Exception as exc:  # a failed run never stops the sweep
        _record_failure(row, exc, run_dir)
    row["runtime_s"] = round(time.perf_counter() - t0, 3)
    return row


#: Settings that members of one pack (:func:`run_pack`) share: what fixes the batched model's
#: architecture, its data and batches, its protocol and where it runs.
PACK_KEYS: tuple[str, ...] = ("model", "width", "head_norm", "loss", "dataset", "data_dir", "samples_per_label",
                              "protocol", "batch_size", "device", "threads")


def pack_key(cfg_dict: dict[str, Any]) -> tuple:
    """The settings a run shares with the others of its pack (:data:`PACK_KEYS`, resolved)."""
    cfg = TrainConfig.from_dict(cfg_dict).resolved()
    return tuple((k, getattr(cfg, k)) for k in PACK_KEYS)


def run_pack(members: Sequence[tuple[str, dict[str, Any]]], out_dir: str | os.PathLike,
             force: bool = False, threads: int | None = None) -> list[dict[str, Any]]:
    """Train the runs ``members`` (``(run_id, config)``, one :func:`pack_key`) into
    ``out_dir/run_id`` together, as one batched model (:func:`sgdthermo.nn.batched.train_runs`),
    and return their status rows in order (never raises).

    Each member is what :func:`run_one` makes of it: skipped when finished (unless ``force``),
    resumed from its checkpoint (a checkpoint that cannot continue it is kept as
    ``checkpoint.pt.rejected`` and the member starts over), its own lock, ``log.txt``,
    ``error.txt`` when it fails; its folder holds the same files with the same numbers as a
    solo run. A member that fails or diverges leaves the others training. ``threads``: torch
    threads of the batched model (default: the members' ``threads``); a pack's float32 results
    equal its members' solo runs in distribution, not to the last bit, whatever the threads.
    """
    import contextlib

    t0 = time.perf_counter()
    rows = [_new_row(rid) for rid, _ in members]
    states: list[Any] = []
    where: list[int] = []
    notes: list[list[str]] = [[] for _ in members]
    with contextlib.ExitStack() as stack:
        try:
            from ..nn import batched, training
        except Exception as exc:  # noqa: BLE001 - every member gets the same answer
            for row, (rid, _) in zip(rows, members):
                _record_failure(row, exc, Path(out_dir) / rid)
            return rows
        shared: dict[tuple, Any] = {}  # one copy of each data set in the pack
        for i, (run_id, cfg_dict) in enumerate(members):
            run_dir = Path(out_dir) / run_id
            try:
                cfg = TrainConfig.from_dict(cfg_dict).resolved()
                log = _open_run(run_id, run_dir, force, stack, notes[i],
                                f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} run {run_id} (pid {os.getpid()}), "
                                f"in a pack of {len(members)} on {threads or cfg.threads} torch thread(s)")
                if isinstance(log, dict):
                    rows[i] = log
                    continue
                try:
                    state = training.RunState(cfg, run_dir, resume=True, force=False, log=log, stack=stack,
                                              shared=shared)
                except CheckpointError as exc:  # start over; the rejected file is kept
                    _reject_checkpoint(run_dir, exc, log, notes[i])
                    state = training.RunState(cfg, run_dir, resume=False, force=True, log=log, stack=stack,
                                              shared=shared)
                states.append(state)
                where.append(i)
            except Exception as exc:  # noqa: BLE001 - a member's failure is its own
                _record_failure(rows[i], exc, run_dir)
        if states:
            results = batched.train_runs(states, threads=threads or states[0].cfg.threads)
            for i, res in zip(where, results):
                try:
                    if isinstance(res, BaseException):
                        raise res
                    _record_summary(rows[i], res, notes[i])
                except Exception as exc:  # noqa: BLE001
                    _record_failure(rows[i], exc, Path(out_dir) / members[i][0])
    elapsed = round(time.perf_counter() - t0, 3)
    for r in rows:
        if r["runtime_s"] is None:
            r["runtime_s"] = elapsed
    return rows


class PackJob:
    """The callable submitted to Slurm through submitit for a pack (:func:`run_pack`);
    requeued with resume on preemption, as :class:`SweepJob`."""

    def __call__(self, members: list, out: str, force: bool = False, threads: int | None = None,
                 resume: bool = False) -> list[dict[str, Any]]:
        return run_pack(members, out, force and not resume, threads)

    def checkpoint(self, members: list, out: str, force: bool = False, threads: int | None = None,
                   resume: bool = False):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, members, out, False, threads, resume=True)


class SweepJob:
    """The callable submitted to Slurm through submitit: one run.

    On preemption or timeout submitit calls :meth:`checkpoint`, which requeues the same run
    with ``resume=True``: it continues from the run's ``checkpoint.pt`` (never starting
    over, even if the sweep was forced).
    """

    def __call__(self, run_id: str, cfg_dict: dict[str, Any], out: str, force: bool = False,
                 resume: bool = False) -> dict[str, Any]:
        return run_one(run_id, cfg_dict, out, force and not resume)

    def checkpoint(self, run_id: str, cfg_dict: dict[str, Any], out: str, force: bool = False,
                   resume: bool = False):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, run_id, cfg_dict, out, False, resume=True)


# ---------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------
STATUS_COLUMNS = ("status", "result", "stationary", "runtime_s", "message")


@dataclass
class SweepPlan:
    """What :func:`prepare_sweep` found: the runs, their status rows, which are left to run,
    the folder's earlier specs and what to do with them, and the executor. :meth:`start`
    takes the folder's lock and starts the executor, before anything else is written."""

    spec: SweepSpec
    out_dir: Path
    runs: list[tuple[str, TrainConfig]]
    rows: list[dict[str, Any]]
    todo: list[int]
    force: bool
    executor: Any = None
    started: bool = False
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    remove: list[Path] = dataclasses.field(default_factory=list)  # runs of a replaced spec
    _lock: Any = None

    def start(self) -> None:
        """Take the sweep folder's lock (creating the folder), then start the executor.

        Raises :class:`~sgdthermo.errors.ConfigError` when another sweep holds the folder.
        """
        if self._lock is None:
            self._lock = _SweepLock(self.out_dir)
        if self.todo and not self.started:
            try:
                self.executor.start()
            except BaseException:
                self.close(discard=True)
                raise
            self.started = True

    def close(self, discard: bool = False) -> None:
        """Stop the executor and release the folder's lock (``discard``: nothing was done,
        so the lock file, and the folder if the lock created it, are removed)."""
        try:
            if self.executor is not None and self.started:
                self.executor.close()
        finally:
            self.started = False
            if self._lock is not None:
                self._lock.release(discard=discard)
                self._lock = None


class _SweepLock:
    """An exclusive ``flock`` on ``OUT/.sweep.lock`` (holding the owner's pid) for as long
    as a sweep works in ``OUT``. The kernel releases it when the process dies, so the lock
    of a killed sweep is simply taken over. A folder created here and left empty is removed
    again when the lock cannot be had."""

    def __init__(self, out: Path) -> None:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / ".sweep.lock"
        self.new_dir, self.new_file = created, not self.path.exists()
        try:
            self.fh = _io().lock_file(self.path)
        except _io().LockHeld as held:
            if created:
                self.path.unlink(missing_ok=True)
                out.rmdir()
            raise ConfigError(f"--out {out}: another sweep is running in this folder (pid {held.owner}); "
                              "wait for it to finish or use another folder") from None

    def release(self, discard: bool = False) -> None:
        if discard and self.new_file:
            self.path.unlink(missing_ok=True)
        self.fh.close()
        if discard and self.new_dir:
            try:
                self.path.parent.rmdir()
            except OSError:  # not empty after all: leave it
                pass


# ---------------------------------------------------------------------------------------
# A folder's specs: one sweep per folder unless runs are added explicitly
# ---------------------------------------------------------------------------------------
def _runs_key(d: dict[str, Any]) -> str:
    """What makes two specs the same sweep: the spec's flat mapping without the executor's
    settings (where or how fast runs execute does not change them), normalised by a round
    trip through :class:`SweepSpec` so that defaults added later compare equal."""
    import json

    from .spec import EXECUTOR_KEYS

    flat = {k: v for k, v in d.items() if k != "history"}
    try:
        flat = SweepSpec.from_dict(flat).to_dict()
    except (ValueError, TypeError):  # a spec this version cannot read: compare as written
        pass
    flat = {k: v for k, v in flat.items() if k not in EXECUTOR_KEYS}
    return json.dumps(_io().jsonable(flat), sort_keys=True)


def _spec_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    from .spec import EXECUTOR_KEYS

    keys = [k for k in dict.fromkeys([*new, *old]) if k not in EXECUTOR_KEYS and k != "history"]
    diff = [f"{k} {_io().jsonable(old.get(k))!r} -> {_io().jsonable(new.get(k))!r}"
            for k in keys if _io().jsonable(old.get(k)) != _io().jsonable(new.get(k))]
    return "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")


def _folder_specs(out: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The folder's current spec (``sweep.json``) and its history (earlier specs)."""
    p = out / "sweep.json"
    if not p.exists():
        return None, []
    try:
        d = _io().read_json(p)
        if not isinstance(d, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--out {out}: sweep.json is unreadable ({_first_line(exc)}); "
                          "pass --force to start the folder over") from None
    history = d.get("history") or []
    if not isinstance(history, list):
        history = []
    return {k: v for k, v in d.items() if k != "history"}, [h for h in history if isinstance(h, dict)]


def _plan_folder(spec: SweepSpec, out: Path, run_ids: set[str], *, force: bool,
                 add: bool) -> tuple[list[dict[str, Any]], list[Path]]:
    """The history to write into ``sweep.json`` and the run folders to remove.

    A folder holds the runs of its specs: the current one and those added with ``add``. The
    same spec (up to executor settings) goes on; another spec is refused unless ``add``
    (its runs join the folder; the earlier spec moves to the history) or ``force`` (it
    replaces the folder's specs, whose run folders that are not runs of the new spec are
    removed, so that no analysis mixes them)."""
    from ..io import find_run_folders

    current, history = _folder_specs(out)
    if current is None:
        return [], []
    now = spec.to_dict()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    active = [current] + [h["spec"] for h in history if h.get("status") == "added" and isinstance(h.get("spec"), dict)]
    key = _runs_key(now)
    if any(_runs_key(a) == key for a in active):  # the same sweep again
        return [h for h in history if _runs_key(h.get("spec") or {}) != key] + (
            [] if _runs_key(current) == key else [{"spec": current, "status": "added", "until": stamp}]), []
    if add:
        return history + [{"spec": current, "status": "added", "until": stamp}], []
    if force:
        remove = [p for p in find_run_folders(out, max_depth=1) if p.name not in run_ids]
        replaced = [dict(h, status="replaced") for h in history]
        return replaced + [{"spec": current, "status": "replaced", "until": stamp}], remove
    n_old = len(find_run_folders(out, max_depth=1))
    raise ConfigError(f"--out {out}: holds a sweep of another spec ({n_old} run folder(s); "
                      f"{_spec_difference(current, now)}); pass --add to add these runs to it, --force to "
                      "replace it (its runs that are not in this spec are deleted), or use another folder")


def _hyper_columns(spec: SweepSpec) -> list[str]:
    cols = ["protocol", "lr", "wd", "radius"]
    cols += [n for n in spec.grid if n not in cols and n != "seed"]
    return cols + ["seed"]


def prepare_sweep(spec: SweepSpec, out_dir: str | os.PathLike, force: bool = False, *,
                  add: bool = False, parents: bool = False) -> SweepPlan:
    """Validate everything and find what is left to run; reads only, writes nothing.

    A folder holding a sweep of another spec is refused unless ``add`` or ``force``
    (:func:`_plan_folder`). ``parents``: the folders above ``out_dir`` may be missing."""
    runs = expand(spec)
    out = _io().check_output_folder(out_dir, parents=parents)
    out = out.resolve()
    history, remove = _plan_folder(spec, out, {rid for rid, _ in runs}, force=force, add=add)
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
    plan = SweepPlan(spec, out, runs, rows, todo, force, history=history, remove=remove)
    if todo:
        from .executors import make_executor

        plan.executor = make_executor(spec, out)
    return plan




def _table(plan: SweepPlan) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(plan.rows)
    if "stationary" in df:
        df["stationary"] = df["stationary"].astype(object)
    return df


def execute_sweep(plan: SweepPlan, *, progress: ProgressFn | None = None,
                  log: Callable[[str], None] = _log.info) -> pd.DataFrame:
    plan.start()  # may raise ValueError (another sweep here, Ray cannot start, no Slurm)
    out = plan.out_dir
    try:
        if plan.remove:
            import shutil

            for p in plan.remove:
                shutil.rmtree(p, ignore_errors=True)
            log(f"sweep: removed {len(plan.remove)} run folder(s) of the spec this one replaces")
        sweep = plan.spec.to_dict()
        if plan.history:
            sweep["history"] = plan.history
        _io().write_json(sweep, out / "sweep.json")
        _io().write_csv(_table(plan), out / "status.csv")
        n, k = len(plan.runs), len(plan.runs) - len(plan.todo)
        where = plan.executor.describe() if plan.todo else "nothing to run"
        log(f"sweep: {n} run(s), {k} finished earlier, {len(plan.todo)} to run ({where}); output in {out}")
        show = progress if callable(progress) else None
        if show is not None:  # the state at the start (and the clock of a progress line starts here)
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
        plan.close()
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


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, *, force: bool = False, add: bool = False,
              progress: ProgressFn | None = None, log: Callable[[str], None] = _log.info) -> pd.DataFrame:
    """Run every configuration of ``spec`` into ``out_dir/<run_id>/`` and return the status table.

    Columns: ``run_id``, the hyperparameters (``protocol, lr, wd, radius``, other axes,
    ``seed``), ``status`` (completed, diverged, failed, or skipped: finished earlier),
    ``result`` (the training status, also for skipped runs), ``stationary``, ``runtime_s``
    (this call's wall time, or the training time of a skipped run) and ``message`` (the
    error of a failed run, why a run is not stationary, "resumed at step N").

    A folder holds one sweep: another spec there is refused (ConfigError) unless ``add``
    (its runs join the folder; ``sweep.json`` keeps the earlier specs under ``history``) or
    ``force`` (it replaces the folder's sweep: every run starts over and the run folders of
    the earlier specs are removed). Another sweep working in the same folder is refused
    (``OUT/.sweep.lock``). Executor settings (``executor``, ``jobs``, ...) may change between
    calls.

    Everything is validated before anything is written (ValueError, one line). Finished
    runs are skipped unless ``force``; interrupted runs resume from their checkpoint; a run
    that raises is recorded as failed (``error.txt`` in its folder) and the others go on.
    ``out_dir/sweep.json`` holds the spec, ``out_dir/status.csv`` the table (rewritten
    atomically as runs finish). ``progress(rows)`` is called once at the start and
    ``progress(rows, last_row)`` as runs finish (the command line draws a bar with it);
    ``log`` receives the start line and the final table (default: the ``sgdthermo.sweep``
    logger).
    """
    plan = prepare_sweep(spec, out_dir, force, add=add)
    return execute_sweep(plan, progress=progress, log=log)


