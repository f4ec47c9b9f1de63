"""Atomic file output: a reader never sees a half-written table or JSON file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["atomic_write_text", "write_csv", "write_json", "read_json", "jsonable"]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV (no index), atomically."""
    return atomic_write_text(path, df.to_csv(index=False))


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, NumPy values plain), so
    that saved and current settings compare equal."""
    return json.loads(json.dumps(obj, default=_default))


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically (NumPy values converted)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
