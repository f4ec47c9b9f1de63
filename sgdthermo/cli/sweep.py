"""``sgdthermo sweep``: train every configuration of a grid, locally, on Ray or on Slurm."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError, first_line
from .common import SweepProgress, add_training_options


def add_parser(sub) -> None:
    from ..sweep.spec import EXECUTORS

    p = sub.add_parser("sweep", help="train a grid of configurations (locally, on Ray or on Slurm)",
                       description="Train every configuration of a grid: finished runs are skipped, "
                                   "interrupted ones resumed, failed ones recorded. SPEC: a number, "
                                   "LO:HI:N (N log-spaced values) or a comma list.")
    p.add_argument("--config", help="sweep spec in YAML (instead of the run flags)")
    g = p.add_argument_group("runs (as for train; SPEC values make grid axes)")
    add_training_options(g, sweep=True)
    g.add_argument("--seeds", help="seeds: S[,S...] (default 0)")
    e = p.add_argument_group("execution")
    e.add_argument("--executor", choices=list(EXECUTORS),
                   help="local (default), ray, slurm, or batched (local processes, each training a pack of runs "
                        "as one batched model)")
    e.add_argument("--jobs", type=int, help="runs (packs) at a time (default 1)")
    e.add_argument("--pack", help="runs trained together as one batched model: N or auto (default: 1; "
                                  "auto with --executor batched); with ray or slurm each task is a pack")
    e.add_argument("--address", help="Ray cluster address (default: a local instance)")
    e.add_argument("--partition", help="Slurm partition")
    e.add_argument("--time-min", type=int, help="Slurm time limit per run, minutes (default 240)")
    e.add_argument("--gpus-per-run", type=float, help="GPUs per run (default 1 on cuda, else 0)")
    e.add_argument("--cpus-per-run", type=int, help="CPUs reserved per run on Ray/Slurm (torch threads: --threads)")
    e.add_argument("--mem-gb", type=float, help="Slurm memory per run, GB")
    p.add_argument("--force", action="store_true",
                   help="rerun finished runs from scratch; in a folder of another spec, replace that sweep")
    p.add_argument("--add", action="store_true",
                   help="add this spec's runs to a folder holding a sweep of another spec")
    p.add_argument("--out", required=True, help="sweep folder (its parent must exist)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """0 if every run completed or diverged (now or earlier), 1 if any failed; bad input
    raises :class:`UsageError` before anything is written."""
    from ..nn.config import OPTIONS
    from ..sweep import SweepSpec
    from ..sweep.runner import execute_sweep, prepare_sweep

    try:
        if getattr(args, "config", None) is None:
            for opt in OPTIONS:
                if opt.required and getattr(args, opt.name, None) is None:
                    raise ValueError(f"{opt.flag} is required (or give --config FILE.yaml)")
        spec = SweepSpec.from_args(args)
        plan = prepare_sweep(spec, args.out, bool(getattr(args, "force", False)),
                             add=bool(getattr(args, "add", False)))
        plan.start()
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(first_line(exc)) from None
    df = execute_sweep(plan, progress=SweepProgress(), log=print)
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        print(f"sgdthermo: {n_failed} run(s) failed; see error.txt in their folders", file=sys.stderr)
        return 1
    return 0
