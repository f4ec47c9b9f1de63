"""File output: atomic writes (a reader never sees a half-written table or JSON file) and
the one check of an output folder before anything is written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["atomic_write_text", "write_csv", "write_json", "read_json", "jsonable", "check_output_folder"]


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


def check_output_folder(out: str | os.PathLike, *, marker: str | None = None, what: str = "results",
                        force: bool = False, flag: str = "--out") -> Path:
    """The folder ``out`` as a Path, after checking that it can receive output; writes nothing.

    Its parent must exist and ``out`` must not be a file. With ``marker`` (a file name), a
    folder already holding that file is refused unless ``force``: "already holds ``what``".
    Raises :class:`~sgdthermo.errors.ConfigError` (one line naming the folder).
    """
    path = Path(out).expanduser()
    if not path.parent.exists():
        raise ConfigError(f"{flag} {out}: parent folder {str(path.parent)!r} does not exist")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {out}: exists and is not a folder")
    if marker is not None and (path / marker).exists() and not force:
        raise ConfigError(f"{flag} {out}: already holds {what} ({marker}); pass --force to overwrite")
    return path
