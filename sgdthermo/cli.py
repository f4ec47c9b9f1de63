"""Command-line interface: a thin layer over :mod:`sgdthermo.simulation` and friends.

    sgdthermo isotropic --protocol fixed-lr --dim 3 --lr 1e-3:1e-1:9 --wd 1e-3:1e-1:9 --out DIR
    sgdthermo reproduce isotropic --out DIR [--paper]

Bad input gives one line on stderr naming the value and what is allowed, exit code 2, and
creates nothing. A folder that already holds results is not overwritten without --force.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def _progress_printer(label: str, stream=sys.stderr) -> Callable[[int, int], None]:
    """Progress to stderr: a carriage-return bar on a terminal, a line per 10 % otherwise."""
    t0 = time.perf_counter()
    tty = stream.isatty()
    last = [-1]

    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        pct = int(100 * frac)
        if not tty and pct // 10 == last[0] // 10 and done < total:
            return
        last[0] = pct
        el = time.perf_counter() - t0
        eta = el * (1 - frac) / frac if frac > 0 else float("nan")
        bar = "#" * (pct // 5) + "." * (20 - pct // 5)
        msg = f"[{label}] [{bar}] {pct:3d}% {done}/{total} steps, {el:.1f}s elapsed, ~{eta:.0f}s left"
        if tty:
            stream.write("\r" + msg + ("\n" if done >= total else ""))
        else:
            stream.write(msg + "\n")
        stream.flush()

    return show


def _check_out(out: str, force: bool, marker: str) -> Path:
    path = Path(out)
    if not path.parent.exists():
        raise UsageError(f"--out {out}: parent folder {str(path.parent)!r} does not exist")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if (path / marker).exists() and not force:
        raise UsageError(f"--out {out}: already holds results ({marker}); pass --force to overwrite")
    return path


def _add_isotropic(sub) -> None:
    p = sub.add_parser("isotropic", help="simulate the isotropic-noise model over a grid")
    p.add_argument("--protocol", required=True, help="fixed-lr, fixed-elr or fixed-sphere")
    p.add_argument("--dim", type=int, default=3, help="dimension d >= 2 (default 3)")
    p.add_argument("--lr", required=True, help="η (fixed-lr) or η̃ (others): a number or LO:HI:N")
    p.add_argument("--wd", help="weight decay λ (fixed-lr, fixed-elr): a number or LO:HI:N")
    p.add_argument("--radius", help="sphere radius ρ (fixed-sphere): a number or LO:HI:N")
    p.add_argument("--sigma", type=float, default=1.0, help="noise scale σ (default 1)")
    p.add_argument("--iters", type=int, default=200_000, help="steps (default 200000)")
    p.add_argument("--burn-in", type=float, default=0.5, help="fraction discarded (default 0.5)")
    p.add_argument("--queue-size", type=int, default=1000, help="entropy queue length N")
    p.add_argument("--queue-every", type=int, default=50, help="steps between queue entries")
    p.add_argument("--entropy-method", default=None, help="sphere entropy estimator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-report", action="store_true", help="skip report.md and figures")
    p.add_argument("--force", action="store_true", help="overwrite existing results")
    p.add_argument("--out", required=True, help="output folder (its parent must exist)")


def _add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's experiments with a report")
    p.add_argument("what", choices=["isotropic", "nn"], help="which experiment")
    p.add_argument("--out", required=True, help="output folder (its parent must exist)")
    p.add_argument("--paper", action="store_true", help="the paper's settings (17x17, 2e6 steps)")
    p.add_argument("--iters", type=int, help="override the number of steps")
    p.add_argument("--grid", type=int, help="override the grid size per axis")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--queue-size", type=int, help="override the entropy queue length")
    p.add_argument("--queue-every", type=int, help="override the steps between queue entries")
    p.add_argument("--force", action="store_true", help="recompute finished protocols or runs")
    nn = p.add_argument_group("nn (network grids)")
    nn.add_argument("--preset", default="digits", help="digits (CPU), cifar10-convnet, cifar10-resnet18, "
                    "cifar100-convnet, cifar100-resnet18")
    nn.add_argument("--data-dir", help="folder with the CIFAR files")
    nn.add_argument("--executor", default="local", help="local, ray or slurm")
    nn.add_argument("--jobs", type=int, default=1, help="runs at a time")
    nn.add_argument("--address", help="Ray cluster address")
    nn.add_argument("--device", help="override the preset's device")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a scale-invariant network under one protocol, with measurement")
    p.add_argument("--model", required=True, help="convnet, resnet18 or mlp")
    p.add_argument("--width", type=int, help="width multiplier k (default: 4 on digits)")
    p.add_argument("--head-norm", type=float, help="norm of the frozen head (default: 2 on digits, 10 otherwise, 1.5 for MSE)")
    p.add_argument("--loss", default="ce", help="ce (cross-entropy) or mse")
    p.add_argument("--dataset", required=True, help="digits, cifar10, cifar100 or synthetic")
    p.add_argument("--data-dir", help="folder with the CIFAR files (torchvision layout)")
    p.add_argument("--download", action="store_true", help="download CIFAR (needs torchvision)")
    p.add_argument("--samples-per-label", type=int, help="class-balanced training subset")
    p.add_argument("--protocol", required=True, help="fixed-lr, fixed-elr or fixed-sphere")
    p.add_argument("--lr", type=float, required=True, help="η (fixed-lr) or the ELR η̃ (others)")
    p.add_argument("--wd", type=float, help="weight decay λ (fixed-lr, fixed-elr)")
    p.add_argument("--radius", type=float, help="sphere radius ρ (fixed-sphere)")
    p.add_argument("--init-norm", type=float, default=1.0, help="initial norm of the scale-invariant group")
    p.add_argument("--iters", type=int, required=True, help="training steps")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=200, help="log period up to step 10000, log-spaced after")
    p.add_argument("--noise-batches", type=int, default=8, help="minibatch gradients per log point for tr Σ")
    p.add_argument("--queue-size", type=int, default=1000, help="entropy queue length (paper: 4000)")
    p.add_argument("--queue-every", type=int, default=25, help="steps between snapshots (paper: 25)")
    p.add_argument("--queue-dtype", default="float32", help="storage dtype of the snapshots")
    p.add_argument("--entropy-method", default=None, help="sphere entropy estimator")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="start over in a folder holding a run")
    p.add_argument("--out", required=True, help="run folder (its parent must exist)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgdthermo", description="Thermodynamics of SGD on scale-invariant networks.")
    parser.add_argument("--version", action="version", version=f"sgdthermo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_isotropic(sub)
    _add_reproduce(sub)
    _add_train(sub)
    from .sweep import sweep_argument_parser
    from .sweep_analysis import analyze_argument_parser

    sweep_argument_parser(sub)
    analyze_argument_parser(sub)
    return parser


def _cmd_isotropic(args: argparse.Namespace) -> int:
    from . import io
    from .simulation import parse_spec, simulate_isotropic, validate_settings

    try:
        lr = parse_spec(args.lr, "lr")
        wd = None if args.wd is None else parse_spec(args.wd, "wd")
        radius = None if args.radius is None else parse_spec(args.radius, "radius")
        validate_settings(
            args.protocol, dim=args.dim, lr=lr, wd=wd, radius=radius, sigma=args.sigma,
            iters=args.iters, queue_size=args.queue_size, queue_every=args.queue_every,
            burn_in=args.burn_in, entropy_method=args.entropy_method,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = _check_out(args.out, args.force, "results.csv")
    res = simulate_isotropic(
        args.protocol, lr=lr, wd=wd, radius=radius, dim=args.dim, sigma=args.sigma,
        iters=args.iters, burn_in=args.burn_in, queue_size=args.queue_size,
        queue_every=args.queue_every, seed=args.seed, entropy_method=args.entropy_method,
        progress=_progress_printer(args.protocol),
    )
    out.mkdir(exist_ok=True)
    io.write_json({**res.settings, "runtime_s": res.runtime}, out / "settings.json")
    io.write_csv(res.trace, out / "trace.csv")
    io.write_csv(res.table, out / "results.csv")
    n_ns = int((~res.table["stationary"]).sum())
    print(f"{len(res.table)} grid point(s) in {res.runtime:.1f} s; {n_ns} not stationary; "
          f"results in {out / 'results.csv'}")
    if not args.no_report:
        from .report import write_report

        report = write_report(res.table, out, title=f"Isotropic-noise model, {args.protocol}",
                              settings={**res.settings, "runtime (s)": round(res.runtime, 1)})
        print(f"report: {report}")
    return 0


def _cmd_reproduce_nn(args: argparse.Namespace) -> int:
    from .reproduce import NN_PRESETS, reproduce_nn

    if args.preset not in NN_PRESETS:
        raise UsageError(f"--preset {args.preset!r}: expected one of {', '.join(NN_PRESETS)}")
    if args.executor not in ("local", "ray", "slurm"):
        raise UsageError(f"--executor {args.executor!r}: expected one of local, ray, slurm")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    if args.iters is not None and args.iters < 100:
        raise UsageError(f"--iters {args.iters}: must be at least 100")
    out = _check_out(args.out, args.force, "report.md")
    try:
        res = reproduce_nn(out, args.preset, data_dir=args.data_dir, executor=args.executor, jobs=args.jobs,
                           address=args.address, device=args.device, iters=args.iters, force=args.force,
                           log=lambda m: print(m, file=sys.stderr))
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    mx = res.get("maxwell")
    if mx is not None and len(mx):
        print(mx.to_string(index=False))
    print(f"report: {out / 'report.md'} ({res['runtime_s'] / 60:.1f} min of training)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    if args.what == "nn":
        return _cmd_reproduce_nn(args)
    from .reproduce import DEFAULT, PAPER, ResultsExistError, preset_with, reproduce_isotropic

    minimum = {"iters": 100, "grid": 3, "queue_size": 2, "queue_every": 1}
    for name, low in minimum.items():
        v = getattr(args, name)
        if v is not None and v < low:
            raise UsageError(f"--{name.replace('_', '-')} {v}: must be at least {low}")
    preset = preset_with(PAPER if args.paper else DEFAULT, iters=args.iters, n_grid=args.grid,
                         seed=args.seed, queue_size=args.queue_size, queue_every=args.queue_every)
    span = (preset.queue_size - 1) * preset.queue_every + 1
    if span > preset.iters - int(preset.burn_in * preset.iters):
        raise UsageError(f"--iters {preset.iters}: too few for the entropy queue ({span} steps "
                         f"in the stationary half); use at least {2 * span}")
    out = _check_out(args.out, True, "report.md")
    try:
        res = reproduce_isotropic(out, preset, force=args.force, progress_factory=_progress_printer)
    except ResultsExistError as exc:
        raise UsageError(str(exc)) from None
    v = res["verdicts"]
    if v is not None:
        for row in v.itertuples():
            print(f"{row.protocol:>12}  {row.check}  {'PASS' if row.passed else 'FAIL'}  {row.headline}")
    print(f"report: {res['report']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, width=args.width, head_norm=args.head_norm, loss=args.loss,
        dataset=args.dataset, data_dir=args.data_dir, samples_per_label=args.samples_per_label,
        download=args.download, protocol=args.protocol, lr=args.lr, wd=args.wd, radius=args.radius,
        init_norm=args.init_norm, iters=args.iters, batch_size=args.batch_size, seed=args.seed,
        device=args.device, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        noise_batches=args.noise_batches, queue_size=args.queue_size, queue_every=args.queue_every,
        queue_dtype=args.queue_dtype, entropy_method=args.entropy_method, tensorboard=args.tensorboard,
    )
    try:
        cfg.resolved().validate()
        summary = train(cfg, args.out, resume=args.resume, force=args.force,
                        log=lambda m: print(m, file=sys.stderr),
                        progress=_progress_printer(f"{args.model} {args.protocol}"))
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "isotropic":
            return _cmd_isotropic(args)
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "sweep":
            from .sweep import cmd_sweep

            return cmd_sweep(args)
        if args.command == "analyze":
            from .sweep_analysis import cmd_analyze

            return cmd_analyze(args)
        return _cmd_reproduce(args)
    except UsageError as exc:
        print(f"sgdthermo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sgdthermo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
