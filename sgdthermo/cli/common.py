"""What every subcommand shares: the parser class, progress on stderr, the training flags."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ..errors import UsageError

__all__ = ["Parser", "StepProgress", "SweepProgress", "add_training_options"]


_UNSIGNED = r"(?:(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|inf(?:inity)?|nan)"
#: A negative number or a SPEC/list starting with one: ``-1``, ``-1e-3:1:3``, ``-.5,0.1``, ``-inf``.
_NUMBER_LIKE = re.compile(rf"-{_UNSIGNED}(?:[:,][-+]?{_UNSIGNED})*", re.IGNORECASE)
_EXPECTED_ONE = re.compile(r"argument (-[^\s:/]+)(?:/\S+)?: expected one argument")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (:class:`UsageError`), with no usage block.

    An option that takes one value accepts a value starting with ``-`` that looks like a
    number or a SPEC (``--lr -1e-3:1:3``, ``--seed -1``): argparse alone would take it for an
    option and fail with "expected one argument"; it is passed as ``--lr=-1e-3:1:3`` and so
    reaches the option's validation. Each (sub)parser rewrites only its own options.
    """

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = sys.argv[1:] if args is None else list(args)
        self._last_args = args
        return super().parse_known_args(self._join_dash_values(args), namespace)

    def _takes_one_value(self, token: str) -> argparse.Action | None:
        """The action of ``token`` (an option string of this parser, or an unambiguous prefix
        of a long one) if it takes exactly one value, else None."""
        actions = self._option_string_actions
        action = actions.get(token)
        if action is None and self.allow_abbrev and token.startswith("--") and len(token) > 2:
            matches = {actions[o] for o in actions if o.startswith(token)}
            action = matches.pop() if len(matches) == 1 else None
        if action is None or action.nargs is not None:  # None: one value; 0 (flags), "?", "*", N: left alone
            return None
        return action

    def _is_option(self, token: str) -> bool:
        """``token`` names an option of this parser (exactly, as ``--opt=...``, or a prefix)."""
        actions = self._option_string_actions
        name = token.split("=", 1)[0]
        if name in actions or token[:2] in actions:
            return True
        return token.startswith("--") and any(o.startswith(name) for o in actions)

    def _join_dash_values(self, args: list[str]) -> list[str]:
        """``args`` with ``--opt VALUE`` written ``--opt=VALUE`` where ``--opt`` takes one value
        and VALUE is a negative number or a SPEC starting with one (``-1``, ``-1e-3:1:3``,
        ``-.5,0.1``, ``-inf``; :data:`_NUMBER_LIKE`) and no option of this parser: a word such
        as ``-x`` is left to argparse (a mistyped flag must not become a value). Stops at ``--``
        and at a subcommand's name (the subcommand's parser sees the rest)."""
        subcommands: set[str] = set()
        for action in self._actions:
            if action.nargs == argparse.PARSER:  # the subcommands (their parsers see their own part)
                subcommands.update(action.choices)
        out: list[str] = []
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--" or token in subcommands:
                return out + args[i:]
            if (token.startswith("-") and i + 1 < len(args) and self._takes_one_value(token) is not None
                    and _NUMBER_LIKE.fullmatch(args[i + 1]) and not self._is_option(args[i + 1])):
                out.append(f"{token}={args[i + 1]}")
                i += 2
                continue
            out.append(token)
            i += 1
        return out

    def _dash_value_after(self, option: str) -> bool:
        """In the last arguments parsed, ``option`` (or another string of its action) is
        followed by a token starting with '-' that is no option of this parser."""
        action = self._option_string_actions.get(option)
        args = getattr(self, "_last_args", [])
        return action is not None and any(
            self._takes_one_value(tok) is action and nxt.startswith("-") and nxt != "--"
            and not self._is_option(nxt) for tok, nxt in itertools.pairwise(args))

    def error(self, message: str) -> None:  # type: ignore[override]
        m = _EXPECTED_ONE.fullmatch(message)
        if m and self._dash_value_after(m.group(1)):  # e.g. --out -x: argparse took -x for an option
            message += f"; for a value starting with '-' write {m.group(1)}=VALUE"
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
        if rows is not getattr(self, "_rows", None):  # another sweep (reproduce runs several): restart the clock
            self._rows, self.t0 = rows, time.perf_counter()
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
