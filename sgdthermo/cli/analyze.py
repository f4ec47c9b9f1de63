"""``sgdthermo analyze``: analyse a sweep folder of network runs into a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="analyse a sweep folder of network runs (V1, noise, V3, V2) into a report")
    p.add_argument("dir", metavar="DIR", help="sweep folder: one sub-folder per run")
    p.add_argument("--out", required=True, metavar="REPORT", help="report folder (its parent must exist)")
    p.add_argument("--force", action="store_true", help="overwrite an existing REPORT/report.md")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Bad input raises :class:`UsageError` (one line, exit 2) before anything is written."""
    from .. import io
    from ..analysis.network import find_run_folders, usable
    from ..report.markdown import fmt, pm
    from ..report.network import analyze

    src = Path(args.dir)
    if not src.exists():
        raise UsageError(f"{args.dir}: no such folder")
    if not src.is_dir():
        raise UsageError(f"{args.dir}: not a folder")
    try:
        out = io.check_output_folder(args.out, marker="report.md", what="a report",
                                     force=getattr(args, "force", False))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not find_run_folders(src):
        raise UsageError(f"{args.dir}: holds no runs (no sub-folder with config.json, summary.json or error.txt)")
    tables = analyze(src, out, figures=not getattr(args, "no_figures", False))
    df = tables["runs"]
    n_ok = int(usable(df).sum())
    print(f"{len(df)} run(s), {n_ok} usable, {len(df) - n_ok} excluded")
    for _, r in tables["radius_verdicts"].iterrows():
        print(f"{r['group']:>14}  V1  {r['verdict']:<10} {r['headline']}")
    for _, r in tables["maxwell"].iterrows():
        extra = f"{r['combo1_name']} = {pm(r['combo1'], r['combo1_err'], 3)}, R² = {fmt(r['r2'], 4)}" if r["fitted"] else r["note"]
        print(f"{r['group']:>14}  V3  {r['verdict']:<10} {extra}")
    print(f"report: {out / 'report.md'}")
    return 0
