"""Markdown building blocks shared by the reports: numbers, errors, percentages, tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["num", "fmt", "pm", "pct", "md_escape", "md_table", "value_range", "unique_values"]


def num(x: Any, digits: int = 4) -> str:
    """Compact number: ints as is, floats with ``digits`` significant digits, booleans yes/no,
    None and NaN as a dash, ±∞ as ∞ / −∞; anything else as ``str``."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            return "—" if math.isnan(float(x)) else ("∞" if x > 0 else "−∞")
        return f"{float(x):.{digits}g}"
    return str(x)


def fmt(x: Any, digits: int = 4) -> str:
    """:func:`num`, with the strings "nan" and "None" (values read back from CSV) as a dash."""
    s = num(x, digits)
    return "—" if s in ("nan", "None") else s


def pm(v: Any, e: Any, digits: int = 4) -> str:
    """``v ± e`` (the error with 2 digits); ``v`` alone without a positive finite error; a dash
    when ``v`` is missing."""
    if not isinstance(v, (int, float, np.floating)) or not math.isfinite(float(v)):
        return "—"
    if isinstance(e, (int, float, np.floating)) and math.isfinite(float(e)) and e > 0:
        return f"{fmt(v, digits)} ± {fmt(e, 2)}"
    return fmt(v, digits)


def pct(x: Any) -> str:
    """A fraction as a percentage with two decimals (a dash when missing)."""
    return "—" if x is None or not np.isfinite(x) else f"{100 * float(x):.2f} %"


def md_escape(s: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(s).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; non-string cells are formatted with :func:`fmt`."""
    def cell(c: Any) -> str:
        return md_escape(c if isinstance(c, str) else fmt(c))

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def value_range(values: Any, digits: int = 4) -> str:
    """``lo … hi (n distinct)`` of the finite values, the value itself when there is one, a
    dash when there is none."""
    v = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "—"
    u = np.unique(v)
    return fmt(u[0], digits) if u.size == 1 else f"{fmt(u.min(), digits)} … {fmt(u.max(), digits)} ({u.size})"


def unique_values(values: pd.Series | None, limit: int = 5) -> str:
    """The first ``limit`` distinct values, comma-separated (… when there are more)."""
    if values is None:
        return "—"
    u = pd.unique(values.dropna())
    if len(u) == 0:
        return "—"
    return ", ".join(num(x) for x in u[:limit]) + (" …" if len(u) > limit else "")
