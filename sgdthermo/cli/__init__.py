"""The command line: one module per subcommand, over the library.

    sgdthermo isotropic --protocol fixed-lr --dim 3 --lr 1e-3:1e-1:9 --wd 1e-3:1e-1:9 --out DIR
    sgdthermo reproduce isotropic --out DIR [--paper]
    sgdthermo train --model convnet --dataset digits --protocol fixed-elr --lr 0.02 --wd 0.01 ...
    sgdthermo sweep ... --out DIR          sgdthermo analyze DIR --out REPORT
    sgdthermo thermo RUN_DIR                (a Thermometer's verdicts and curves)

This package is the only place that prints for the user and turns errors into exit codes:
bad input gives one line on stderr naming the value and what is allowed, exit code 2, and
creates nothing (:class:`~sgdthermo.errors.UsageError`). A folder that already holds results
is not overwritten without --force.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import UsageError
from . import analyze, isotropic, reproduce, sweep, thermo, train
from .common import Parser

__all__ = ["main", "build_parser", "EXIT_USAGE"]

EXIT_USAGE = 2
_SUBCOMMANDS = (isotropic, reproduce, train, sweep, analyze, thermo)


def build_parser() -> argparse.ArgumentParser:
    """The ``sgdthermo`` parser with every subcommand (each sets ``run`` to its handler)."""
    parser = Parser(prog="sgdthermo", description="Thermodynamics of SGD on scale-invariant networks.")
    parser.add_argument("--version", action="version", version=f"sgdthermo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in _SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a run failed, 2 bad input, 130
    interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(f"sgdthermo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sgdthermo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
