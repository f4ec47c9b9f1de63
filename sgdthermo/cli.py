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
    p.add_argument("what", choices=["isotropic"], help="which experiment")
    p.add_argument("--out", required=True, help="output folder (its parent must exist)")
    p.add_argument("--paper", action="store_true", help="the paper's settings (17x17, 2e6 steps)")
    p.add_argument("--iters", type=int, help="override the number of steps")
    p.add_argument("--grid", type=int, help="override the grid size per axis")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--queue-size", type=int, help="override the entropy queue length")
    p.add_argument("--queue-every", type=int, help="override the steps between queue entries")
    p.add_argument("--force", action="store_true", help="recompute finished protocols")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgdthermo", description="Thermodynamics of SGD on scale-invariant networks.")
    parser.add_argument("--version", action="version", version=f"sgdthermo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_isotropic(sub)
    _add_reproduce(sub)
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
            burn_in=args.burn_in,
        )
        if args.entropy_method is not None:
            from .entropy import METHODS

            if args.entropy_method not in METHODS:
                raise ValueError(f"--entropy-method {args.entropy_method!r}: expected one of {', '.join(METHODS)}")
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


def _cmd_reproduce(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "isotropic":
            return _cmd_isotropic(args)
        return _cmd_reproduce(args)
    except UsageError as exc:
        print(f"sgdthermo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sgdthermo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
