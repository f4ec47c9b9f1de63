"""``sgdthermo reproduce {isotropic,nn}``: the paper's experiments with a report."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError, first_line
from .common import StepProgress, SweepProgress


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's experiments with a report")
    p.add_argument("what", choices=["isotropic", "nn"], help="which experiment")
    p.add_argument("--out", required=True, help="output folder (its parent must exist)")
    p.add_argument("--paper", action="store_true", help="the paper's settings (17x17, 2e6 steps)")
    p.add_argument("--iters", type=int, help="override the number of steps")
    p.add_argument("--grid", type=int, help="override the grid size per axis")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--queue-size", type=int, help="override the entropy queue length")
    p.add_argument("--queue-every", help="override the steps between queue entries (a number or 'auto')")
    p.add_argument("--force", action="store_true", help="recompute finished protocols or runs")
    nn = p.add_argument_group("nn (network grids)")
    nn.add_argument("--preset", default="digits", help="digits (CPU), cifar10-convnet, cifar10-resnet18, "
                    "cifar100-convnet, cifar100-resnet18")
    nn.add_argument("--data-dir", help="folder with the CIFAR files")
    nn.add_argument("--executor",
                    help="batched (each grid trained as batched models; the default for the ConvNet presets), "
                    "local (the default for ResNet-18), ray or slurm")
    nn.add_argument("--jobs", type=int, default=1, help="runs (packs) at a time")
    nn.add_argument("--pack", help="runs per batched model: N or auto (default auto with --executor batched)")
    nn.add_argument("--address", help="Ray cluster address")
    nn.add_argument("--device", help="override the preset's device")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _nn(args) if args.what == "nn" else _isotropic(args)


def _pack(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--pack {value!r}: must be a positive integer or auto") from None


def _nn(args: argparse.Namespace) -> int:
    from .. import io
    from ..reproduce import NN_PRESETS, reproduce_nn
    from ..specs import parse_stride
    from ..sweep.spec import check_executor

    try:
        if args.preset not in NN_PRESETS:
            raise UsageError(f"--preset {args.preset!r}: expected one of {', '.join(NN_PRESETS)}")
        if args.paper:
            raise UsageError("--paper is for the isotropic model; the paper's network settings are "
                             "the presets cifar10-convnet, cifar10-resnet18, cifar100-convnet, cifar100-resnet18")
        if args.executor is not None:
            check_executor(args.executor)
        if args.jobs < 1:
            raise UsageError(f"--jobs {args.jobs}: must be at least 1")
        for name, low in {"iters": 100, "grid": 2, "queue_size": 2, "seed": 0}.items():
            v = getattr(args, name)
            if v is not None and v < low:
                raise UsageError(f"--{name.replace('_', '-')} {v}: must be at least {low}")
        every = None if args.queue_every is None else parse_stride("--queue-every", args.queue_every)
        pack = None if args.pack is None else args.pack if args.pack == "auto" else _pack(args.pack)
        out = io.check_output_folder(args.out, marker="report.md", force=args.force)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        res = reproduce_nn(out, args.preset, data_dir=args.data_dir, executor=args.executor, jobs=args.jobs,
                           pack=pack,
                           address=args.address, device=args.device, iters=args.iters, n_grid=args.grid,
                           seed=args.seed, queue_size=args.queue_size, queue_every=every, force=args.force,
                           log=lambda m: print(m, file=sys.stderr), progress=SweepProgress())
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None
    mx = res.get("maxwell")
    if mx is not None and len(mx):
        print(mx.to_string(index=False))
    print(f"report: {out / 'report.md'} ({res['runtime_s'] / 60:.1f} min of training)")
    return 0


def _isotropic(args: argparse.Namespace) -> int:
    from .. import io
    from ..errors import ConfigError
    from ..reproduce import DEFAULT, PAPER, preset_with, reproduce_isotropic
    from ..specs import parse_stride

    try:
        every = None if args.queue_every is None else parse_stride("--queue-every", args.queue_every)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    minimum = {"iters": 100, "grid": 3, "queue_size": 2}
    for name, low in minimum.items():
        v = getattr(args, name)
        if v is not None and v < low:
            raise UsageError(f"--{name.replace('_', '-')} {v}: must be at least {low}")
    preset = preset_with(PAPER if args.paper else DEFAULT, iters=args.iters, n_grid=args.grid,
                         seed=args.seed, queue_size=args.queue_size, queue_every=every)
    span = (preset.queue_size - 1) * (1 if preset.queue_every == "auto" else preset.queue_every) + 1
    if span > preset.iters - int(preset.burn_in * preset.iters):
        raise UsageError(f"--iters {preset.iters}: too few for the entropy queue ({span} steps "
                         f"in the stationary half); use at least {2 * span}")
    try:
        out = io.check_output_folder(args.out)
        res = reproduce_isotropic(out, preset, force=args.force, progress_factory=StepProgress,
                                  log=print)
    except ConfigError as exc:  # a bad folder, or results of other settings there
        raise UsageError(str(exc)) from None
    v = res["verdicts"]
    if v is not None:
        for row in v.itertuples():
            print(f"{row.protocol:>12}  {row.check}  {'PASS' if row.passed else 'FAIL'}  {row.headline}")
    print(f"report: {res['report']}")
    return 0
