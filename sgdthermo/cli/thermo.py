"""``sgdthermo thermo RUN_DIR``: a Thermometer's current verdicts, and its curves."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("thermo", help="print a run's Thermometer verdicts per group and draw its curves",
                       description="Read RUN_DIR/thermo.csv (or RUN_DIR/thermo/thermo.csv), written by "
                                   "sgdthermo.Thermometer or sgdthermo train, print the latest verdict of "
                                   "every group and draw measured against predicted curves.")
    p.add_argument("dir", metavar="RUN_DIR", help="a run folder or a Thermometer's log_dir")
    p.add_argument("--plot", metavar="PNG", help="figure path (default: thermo.png next to thermo.csv)")
    p.add_argument("--no-plot", action="store_true", help="print only")
    p.set_defaults(run=run)


def find_thermo_csv(folder: Path) -> Path | None:
    for p in (folder / "thermo.csv", folder / "thermo" / "thermo.csv"):
        if p.is_file():
            return p
    return None


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from .. import io

    src = Path(args.dir)
    if not src.is_dir():
        raise UsageError(f"{args.dir}: no such folder")
    csv = find_thermo_csv(src)
    if csv is None:
        raise UsageError(f"{args.dir}: no thermo.csv here or in {args.dir}/thermo (write one with "
                         "sgdthermo.Thermometer(..., log_dir=...) or sgdthermo train)")
    try:
        df = pd.read_csv(csv)
    except Exception as exc:  # noqa: BLE001 - any unreadable table is the same answer
        raise UsageError(f"{csv}: unreadable ({type(exc).__name__})") from None
    need = {"step", "group", "d", "rho", "rho_pred", "angular_update", "angular_update_pred", "verdict"}
    if df.empty or not need <= set(df.columns):
        raise UsageError(f"{csv}: not a Thermometer table (needs columns {', '.join(sorted(need))})")
    plot = None
    if not args.no_plot:
        plot = Path(args.plot) if args.plot else csv.with_name("thermo.png")
        try:
            io.check_output_folder(plot.parent, flag="--plot")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    last = df[df["step"] == df["step"].max()]
    step = int(last["step"].iloc[0])
    opt = last["optimizer"].iloc[0] if "optimizer" in last else "?"
    print(f"{csv}: step {step}, optimizer {opt}, {int((last['group'] != 'all').sum())} group(s)")
    cols = ["group", "d", "rho", "rho_pred", "angular_update", "angular_update_pred", "verdict", "steps_left"]
    view = last[[c for c in cols if c in last]].copy()
    for c in ("rho", "rho_pred", "angular_update", "angular_update_pred"):
        view[c] = [f"{v:.4g}" for v in view[c]]
    if "steps_left" in view:
        view["steps_left"] = ["" if v != v else f"{v:.0f}" for v in view["steps_left"]]
    print(view.to_string(index=False))
    why = last.loc[last["group"] == "all", "reason"] if "reason" in last else []
    if len(why):
        print(f"all: {why.iloc[0]}")
    if plot is not None:
        from ..figures.thermo import plot_thermometer

        plot_thermometer(df, plot, title=str(src))
        print(f"figure: {plot}")
    return 0
