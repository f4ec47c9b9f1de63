"""``sgdthermo train``: train one scale-invariant network under one protocol, with measurement."""

from __future__ import annotations

import argparse
import sys

from ..errors import RunBusyError, UsageError, first_line
from .common import StepProgress, add_training_options


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a scale-invariant network under one protocol, with measurement")
    add_training_options(p, sweep=False)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="start over in a folder holding a run")
    p.add_argument("--out", required=True, help="run folder (its parent must exist)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..nn.config import OPTIONS, TrainConfig
    from ..nn.training import train

    cfg = TrainConfig(**{o.name: getattr(args, o.name) for o in OPTIONS})
    try:
        cfg.resolved().validate()
        summary = train(cfg, args.out, resume=args.resume, force=args.force,
                        log=lambda m: print(m, file=sys.stderr),
                        progress=StepProgress(f"{args.model} {args.protocol}"))
    except (ValueError, FileNotFoundError, RunBusyError) as exc:
        raise UsageError(first_line(exc)) from None
    keys = ["status", "stationary", "d", "rho", "rho_err", "rho_theory", "rho_theory_discrete", "sigma2", "T", "S"]
    if args.protocol == "fixed-sphere":
        keys = [k for k in keys if not k.startswith("rho")] + ["p", "p_err", "p_theory", "p_theory_discrete"]

    def fmt(v):
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    print("  ".join(f"{k}={fmt(summary.get(k))}" for k in keys))
    if summary["status"] == "diverged":
        print(f"sgdthermo: run diverged: {summary['message']}", file=sys.stderr)
        return 1
    if not summary.get("stationary"):
        print(f"note: not stationary ({summary.get('reason')})", file=sys.stderr)
    return 0
