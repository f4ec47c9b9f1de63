"""``sgdthermo isotropic``: simulate the isotropic-noise model over a grid, with a report."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .common import StepProgress


def add_parser(sub) -> None:
    p = sub.add_parser("isotropic", help="simulate the isotropic-noise model over a grid")
    p.add_argument("--protocol", required=True, help="fixed-lr, fixed-elr or fixed-sphere")
    p.add_argument("--dim", type=int, default=3, help="dimension d >= 2 (default 3)")
    p.add_argument("--lr", required=True, help="η (fixed-lr) or η̃ (others): a SPEC (number, LO:HI:N or comma list)")
    p.add_argument("--wd", help="weight decay λ (fixed-lr, fixed-elr): a SPEC")
    p.add_argument("--radius", help="sphere radius ρ (fixed-sphere): a SPEC")
    p.add_argument("--sigma", type=float, default=1.0, help="noise scale σ (default 1)")
    p.add_argument("--iters", type=int, default=200_000, help="steps (default 200000)")
    p.add_argument("--burn-in", type=float, default=0.5, help="fraction discarded (default 0.5)")
    p.add_argument("--queue-size", type=int, default=1000, help="entropy queue length N")
    p.add_argument("--queue-every", default="auto",
                   help="steps between queue entries, or 'auto' (default): twice the slowest point's "
                        "direction correlation time 1/η̃, or the most the window allows (said so)")
    p.add_argument("--entropy-method", default=None, help="sphere entropy estimator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-report", action="store_true", help="skip report.md and figures")
    p.add_argument("--force", action="store_true", help="overwrite existing results")
    p.add_argument("--out", required=True, help="output folder (its parent must exist)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import io
    from ..entropy.correlation import queue_advice
    from ..isotropic import simulate_isotropic, validate_settings
    from ..specs import parse_spec, parse_stride

    try:
        lr = parse_spec(args.lr, "lr")
        wd = None if args.wd is None else parse_spec(args.wd, "wd")
        radius = None if args.radius is None else parse_spec(args.radius, "radius")

        every = parse_stride("--queue-every", args.queue_every)
        validate_settings(
            args.protocol, dim=args.dim, lr=lr, wd=wd, radius=radius, sigma=args.sigma,
            iters=args.iters, queue_size=args.queue_size, queue_every=1 if every == "auto" else every,
            burn_in=args.burn_in, entropy_method=args.entropy_method,
        )
        out = io.check_output_folder(args.out, marker="results.csv", force=args.force)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    res = simulate_isotropic(
        args.protocol, lr=lr, wd=wd, radius=radius, dim=args.dim, sigma=args.sigma,
        iters=args.iters, burn_in=args.burn_in, queue_size=args.queue_size,
        queue_every=every, seed=args.seed, entropy_method=args.entropy_method,
        progress=StepProgress(args.protocol),
    )
    out.mkdir(exist_ok=True)
    io.write_json({**res.settings, "runtime_s": res.runtime}, out / "settings.json")
    io.write_csv(res.trace, out / "trace.csv")
    io.write_csv(res.table, out / "results.csv")
    n_ns = int((~res.table["stationary"]).sum())
    n_corr = int((~res.table["entropy_ok"].astype(bool)).sum())
    flagged = (f"{n_corr} entropy estimate(s) from correlated snapshots ({queue_advice(every)}); "
               if n_corr else "")
    print(f"{len(res.table)} grid point(s) in {res.runtime:.1f} s; {n_ns} not stationary; {flagged}"
          f"results in {out / 'results.csv'}")
    if not args.no_report:
        from ..report import write_report

        report = write_report(res.table, out, title=f"Isotropic-noise model, {args.protocol}",
                              settings={**res.settings, "runtime (s)": round(res.runtime, 1)})
        print(f"report: {report}")
    return 0
