r"""Running a sweep: one run per folder, skipped when finished, resumed when interrupted.

See :mod:`sgdthermo.sweep` for the folder layout. :func:`run_one` is what every executor runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunBusyError
from ..nn.config import TrainConfig
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
        from ..nn import training

        cfg = TrainConfig.from_dict(cfg_dict)
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


# ---------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------
STATUS_COLUMNS = ("status", "result", "stationary", "runtime_s", "message")


@dataclass
class SweepPlan:
    """What :func:`prepare_sweep` found: the runs, their status rows, which are left to run,
    and the executor (started by :meth:`start`, before anything is written)."""

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


def prepare_sweep(spec: SweepSpec, out_dir: str | os.PathLike, force: bool = False) -> SweepPlan:
    """Validate everything and find what is left to run; reads only, writes nothing."""
    runs = expand(spec)
    out = _io().check_output_folder(out_dir)
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
    plan = SweepPlan(spec, out, runs, rows, todo, force)
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
    plan.start()  # may raise ValueError (Ray cannot start, no Slurm): nothing written yet
    out = plan.out_dir
    try:
        out.mkdir(exist_ok=True)
        _io().write_json(plan.spec.to_dict(), out / "sweep.json")
        _io().write_csv(_table(plan), out / "status.csv")
        n, k = len(plan.runs), len(plan.runs) - len(plan.todo)
        where = plan.executor.describe() if plan.todo else "nothing to run"
        log(f"sweep: {n} run(s), {k} finished earlier, {len(plan.todo)} to run ({where}); output in {out}")
        show = progress if callable(progress) else None
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
              progress: ProgressFn | None = None, log: Callable[[str], None] = _log.info) -> pd.DataFrame:
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
    atomically as runs finish). ``progress(rows, last_row)`` is called as runs finish (the
    command line draws a bar with it); ``log`` receives the start line and the final table
    (default: the ``sgdthermo.sweep`` logger).
    """
    plan = prepare_sweep(spec, out_dir, force)
    return execute_sweep(plan, progress=progress, log=log)


