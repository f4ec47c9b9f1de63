"""Which rows of a results table enter the checks: the one rule, and reading the table.

A row (a grid point of the simulator, or a run of a sweep) is *usable* for a check when

1. its run finished (``status`` is ``completed`` where the table has a status: sweeps);
2. it is not in the interpolation regime (``interpolating``, sweeps);
3. it is certified ``stationary``;
4. every value the check needs is finite (the entropy ``S`` for V2–V4 and the Maxwell fit);
5. for checks that need ``S``: its entropy is not flagged (``entropy_ok`` False: the entropy
   queue held too few independent snapshots, :mod:`sgdthermo.entropy.correlation`; a missing
   verdict, as in tables written before it existed, is not a flag).

Every other row is excluded, never averaged in, and :func:`exclusion_reasons` says why, in
that order. Booleans read back from CSV (``"True"``, ``"0"``) are understood.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..protocols import REPORT_ORDER, check_protocol

__all__ = ["numeric_column", "as_bool", "stationary_mask", "exclusion_reasons", "usable_mask", "split_usable",
           "select_protocol", "error_column", "ID_COLUMNS", "NO_ENTROPY", "UNTRUSTED_ENTROPY"]

#: Columns that identify a grid point in the tables of excluded rows.
ID_COLUMNS: tuple[str, ...] = ("protocol", "dim", "lr", "wd", "radius")
#: Why a row without an entropy estimate is excluded.
NO_ENTROPY = "no entropy estimate: the queue was never refilled in the stationary tail"
#: How the reason for an entropy from correlated snapshots (``entropy_ok`` False) begins.
UNTRUSTED_ENTROPY = "entropy not trusted"


def numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as floats: NaN where a value is missing or not a number, and all NaN
    when the table has no such column."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def _one_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) if pd.notna(v) else False
    except (TypeError, ValueError):
        return False


def as_bool(values: pd.Series | Sequence[Any]) -> np.ndarray:
    """Booleans from a column that may hold bools, NaN or strings read back from CSV
    (missing values are False)."""
    return np.array([_one_bool(v) for v in values], dtype=bool)


def stationary_mask(df: pd.DataFrame) -> np.ndarray:
    """The ``stationary`` verdicts as booleans (all True where the column is absent)."""
    if "stationary" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return as_bool(df["stationary"])


def _is_false(v: Any) -> bool:
    """An explicit False verdict (False, 0, "False", "0"); a missing one (None, NaN, "") is not."""
    if isinstance(v, str):
        return v.strip().lower() in ("false", "0", "no")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    try:
        return not bool(v)
    except (TypeError, ValueError):
        return False


def _finite(v: Any) -> bool:
    if isinstance(v, bool) or v is None:
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def exclusion_reasons(row: Mapping[str, Any], required: Sequence[str] = (), *,
                      entropy_verdict: bool = True) -> list[str]:
    """Why a row is left out of a check that needs the columns ``required`` (empty: usable).

    In the order of the rule (module docstring): the run's status, interpolation,
    non-stationarity (with the run's ``reason`` or the drift z-score), no entropy estimate
    (``S`` missing), other missing values (one reason naming them all), an entropy from
    correlated snapshots (``entropy_ok`` False, with its ``entropy_note``) when ``S`` is
    required and ``entropy_verdict`` (False for a check that only needs ``S`` to exist).
    """
    reason = str(row.get("reason") or "").strip() if isinstance(row.get("reason"), str) else ""
    if "status" in row:
        status = str(row.get("status", ""))
        if status in ("failed", "unfinished", "diverged"):
            return [status + (f": {reason}" if reason else "")]
        if status != "completed":
            return [f"status {status!r}" + (f": {reason}" if reason else "")]
    out = []
    if "interpolating" in row and _one_bool(row.get("interpolating")):
        out.append("interpolating" + (f": {reason}" if reason else ""))
    elif "stationary" in row and not _one_bool(row.get("stationary")):
        dz = row.get("drift_z")
        if reason:
            out.append(f"non-stationary ({reason})")
        elif _finite(dz):
            out.append(f"non-stationary (drift z = {float(dz):.2f})")
        else:
            out.append("non-stationary")
    missing = [c for c in required if not _finite(row.get(c))]
    if missing:
        out.append("missing " + ", ".join(missing) + (f" ({NO_ENTROPY})" if "S" in missing else ""))
    elif entropy_verdict and "S" in required and _is_false(row.get("entropy_ok")):
        note = row.get("entropy_note")
        note = note.strip() if isinstance(note, str) else ""
        out.append(UNTRUSTED_ENTROPY + (f" ({note})" if note else ""))
    return out


def usable_mask(df: pd.DataFrame, required: Sequence[str] = (), *, entropy_verdict: bool = True) -> np.ndarray:
    """Boolean array: the rows that pass :func:`exclusion_reasons` (see the module docstring)."""
    if len(df) == 0:
        return np.zeros(0, dtype=bool)
    return np.array([not exclusion_reasons(r, required, entropy_verdict=entropy_verdict)
                     for r in df.to_dict("records")], dtype=bool)


def split_usable(sub: pd.DataFrame, required: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable rows, excluded rows) for a check needing the columns ``required``.

    ``excluded`` keeps the identification columns, ``T``, ``drift_z`` and a ``reason`` (every
    reason, joined with "; "). Raises KeyError when a required column is absent.
    """
    missing_cols = [c for c in required if c not in sub.columns]
    if missing_cols:
        raise KeyError(f"results table lacks columns {missing_cols}")
    reasons = pd.Series(["; ".join(exclusion_reasons(r, required)) for r in sub.to_dict("records")],
                        index=sub.index, dtype=object)
    keep = reasons == ""
    cols = [c for c in (*ID_COLUMNS, "T", "drift_z") if c in sub.columns]
    excluded = sub.loc[~keep, cols].copy()
    excluded["reason"] = reasons[~keep]
    return sub.loc[keep].copy(), excluded.reset_index(drop=True)


def select_protocol(df: pd.DataFrame, protocol: str | None) -> tuple[pd.DataFrame, str]:
    """Rows of one protocol and its name; ``protocol=None`` is allowed when only one is present.

    Raises KeyError without a ``protocol`` column, ValueError for an unknown or absent protocol
    or one that mixes dimensions.
    """
    if "protocol" not in df.columns:
        raise KeyError("results table has no 'protocol' column")
    present = list(pd.unique(df["protocol"]))
    if protocol is None:
        if len(present) != 1:
            raise ValueError(f"table holds protocols {present}; pass protocol=...")
        protocol = str(present[0])
    if protocol not in REPORT_ORDER:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {REPORT_ORDER}")
    check_protocol(protocol)
    sub = df[df["protocol"] == protocol].reset_index(drop=True)
    if len(sub) == 0:
        raise ValueError(f"no rows for protocol {protocol!r} (present: {present})")
    dims = pd.unique(sub["dim"]) if "dim" in sub.columns else []
    if len(dims) > 1:
        raise ValueError(f"protocol {protocol!r} mixes dimensions {list(dims)}; analyse one d at a time")
    return sub, protocol


def error_column(sub: pd.DataFrame, col: str) -> np.ndarray:
    """Standard-error column ``col`` as non-negative floats; a missing column or NaN gives 0."""
    e = numeric_column(sub, col)
    return np.where(np.isfinite(e), np.abs(e), 0.0)
