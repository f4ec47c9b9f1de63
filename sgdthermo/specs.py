"""The one SPEC grammar for hyperparameter values, used by every command.

A SPEC is a number, ``LO:HI:N`` (N log-spaced values from LO to HI, inclusive), or a comma
list of those (``0.01,0.03`` or ``1e-3:1e-2:3,0.1``). Sequences and NumPy arrays of numbers
pass through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["parse_spec", "spec_parts", "is_spec_list", "parse_stride"]

_FORMS = "a number, LO:HI:N (N log-spaced values, N a positive integer) or a comma list"


#: The most values one ``LO:HI:N`` range may give (a grid of them is bounded where it is run).
MAX_VALUES = 100_000


def _one(part: str, spec: str, name: str) -> np.ndarray:
    malformed = ConfigError(f"--{name} {spec!r}: malformed; expected {_FORMS}")
    pieces = part.split(":")
    if len(pieces) not in (1, 3):
        raise malformed
    try:
        nums = [float(p) for p in pieces[:2]]
    except ValueError:
        raise malformed from None
    if len(pieces) == 1:
        return np.array(nums)
    lo, hi = nums
    n_text = pieces[2].strip()
    if not n_text.isdigit() or int(n_text) < 1:
        raise malformed
    n = int(n_text)
    if n > MAX_VALUES:
        raise ConfigError(f"--{name} {spec!r}: N = {n} values; at most {MAX_VALUES} in one range")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo > 0 and hi > 0):
        raise ConfigError(f"--{name} {spec!r}: LO and HI must be positive finite numbers")
    if n == 1 and lo != hi:
        raise ConfigError(f"--{name} {spec!r}: N = 1 needs LO == HI")
    return np.geomspace(lo, hi, n)


def spec_parts(spec: str, name: str = "value") -> list[tuple[np.ndarray, bool]]:
    """The comma-separated parts of a SPEC string: ``(values, is_range)`` for each, where
    ``is_range`` says the values came from ``LO:HI:N``."""
    text = spec.strip()
    if not text:
        raise ConfigError(f"--{name}: empty value; expected {_FORMS}")
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise ConfigError(f"--{name} {spec!r}: malformed; expected {_FORMS}")
    return [(_one(p, spec, name), ":" in p) for p in parts]


def parse_spec(spec: str | float | Sequence[float], name: str = "value") -> np.ndarray:
    """The values of a SPEC as a float64 array (see the module docstring).

    ``name`` is the flag the value came from, for the one-line :class:`ConfigError`.
    """
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        return np.array([float(spec)])
    if isinstance(spec, str):
        return np.concatenate([vals for vals, _ in spec_parts(spec, name)])
    vals = np.asarray(spec, dtype=np.float64).ravel()
    if vals.size == 0:
        raise ConfigError(f"--{name}: empty list of values")
    return vals


def is_spec_list(value: object) -> bool:
    """True for a string that names several values (``LO:HI:N`` or a comma list)."""
    return isinstance(value, str) and (":" in value or "," in value)


def parse_stride(flag: str, v: Any) -> int | str:
    """A stride setting: ``"auto"`` or a positive integer (from a number or its text)."""
    if isinstance(v, str) and v.strip() == "auto":
        return "auto"
    try:
        if isinstance(v, bool):
            raise ValueError
        f = float(v)
        if not math.isfinite(f) or f != int(f) or f < 1:
            raise ValueError
        return int(f)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {v!r}: expected a positive integer or 'auto'") from None
