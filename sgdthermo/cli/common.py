"""What every subcommand shares: the parser class, progress on stderr, the training flags."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from ..errors import UsageError

__all__ = ["Parser", "StepProgress", "SweepProgress", "add_training_options"]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (:class:`UsageError`), with no usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Bar:
    """A progress line on stderr: redrawn in place on a terminal, else one line per update."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()

    @staticmethod
    def bar(frac: float) -> str:
        n = int(20 * min(max(frac, 0.0), 1.0))
        return "#" * n + "." * (20 - n)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write(self, msg: str, finished: bool) -> None:
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if finished else ""))
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()


class StepProgress(_Bar):
    """Steps done of a run or a grid: ``[label] [####....]  40% 400/1000 steps, ...``; off a
    terminal, a line per 10 %."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.label = label
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        pct = int(100 * frac)
        if not self.tty and pct // 10 == self.last // 10 and done < total:
            return
        self.last = pct
        el = self.elapsed()
        eta = el * (1 - frac) / frac if frac > 0 else float("nan")
        self.write(f"[{self.label}] [{self.bar(pct / 100)}] {pct:3d}% {done}/{total} steps, {el:.1f}s elapsed, "
                   f"~{eta:.0f}s left", done >= total)


class SweepProgress(_Bar):
    """Runs done of a sweep with counts by status; off a terminal, a line per finished run."""

    def __call__(self, rows: list[dict[str, Any]], last: dict[str, Any] | None = None) -> None:
        self.total = len(rows)
        counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "diverged", "failed", "skipped")}
        done = sum(counts.values())
        frac = done / self.total if self.total else 1.0
        el = self.elapsed()
        ran = done - counts["skipped"]
        left = self.total - done
        eta = f", ~{el / ran * left:.0f}s left" if ran and left else ""
        msg = (f"[sweep] [{self.bar(frac)}] {done}/{self.total} runs: "
               + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {el:.0f}s elapsed{eta}")
        if not self.tty and last is not None:
            msg += f"  ({last['run_id']}: {last['status']})"
        self.write(msg, done >= self.total)


def add_training_options(parser: argparse.ArgumentParser | Any, *, sweep: bool) -> None:
    """Add the flags of :data:`sgdthermo.nn.config.OPTIONS` to ``parser``.

    ``train`` (``sweep=False``): typed flags with TrainConfig's defaults; the required ones
    required. ``sweep``: SPEC strings for the options that can be grid axes, typed flags for
    the others, every default None (unset: the file's or TrainConfig's value).
    """
    from ..nn.config import OPTIONS, field_default, field_kind, parse_stride

    def stride(text: str) -> int | str:
        try:
            return parse_stride("", text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer or 'auto'") from None

    types = {"int": int, "float": float, "str": str, "stride": stride}
    for opt in OPTIONS:
        if sweep and not opt.sweep:
            continue
        kind = field_kind(opt.name)
        default = None if sweep else field_default(opt.name)
        if kind == "bool":
            parser.add_argument(opt.flag, action="store_true", default=None if sweep else False, help=opt.help)
            continue
        if sweep and opt.axis:
            parser.add_argument(opt.flag, metavar="SPEC", help=f"{opt.help}: SPEC")
            continue
        shown = "" if default is None or sweep else f" (default {default})"
        parser.add_argument(opt.flag, type=types[kind], default=default, required=opt.required and not sweep,
                            help=opt.help + shown)
