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

__all__ = ["atomic_write_text", "write_csv", "write_json", "read_json", "jsonable", "check_output_folder",
           "check_writable", "RUN_MARKERS", "find_run_folders",
           "LockHeld", "lock_file"]


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
                        force: bool = False, flag: str = "--out", parents: bool = False) -> Path:
    """The folder ``out`` as a Path, after checking that it can receive output; writes nothing.

    Its parent must exist (``parents``: the first folder above that exists is checked
    instead), ``out`` must not be a file, and the folder (or, when it does not
    exist yet, its parent) must accept new files (:func:`check_writable`). With ``marker`` (a
    file name), a folder already holding that file is refused unless ``force``: "already
    holds ``what``". Raises :class:`~sgdthermo.errors.ConfigError` (one line naming the folder).
    """
    path = Path(out).expanduser()
    if parents:  # missing folders above are fine (created later): check the first that exists
        top = path
        while not top.exists() and top.parent != top:
            top = top.parent
        if top != path:
            if not top.is_dir():
                raise ConfigError(f"{flag} {out}: {str(top)!r} exists and is not a folder")
            check_writable(top, flag=f"{flag} {out}")
            return path
    if not path.parent.exists():
        raise ConfigError(f"{flag} {out}: parent folder {str(path.parent)!r} does not exist")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {out}: exists and is not a folder")
    if marker is not None and (path / marker).exists() and not force:
        raise ConfigError(f"{flag} {out}: already holds {what} ({marker}); pass --force to overwrite")
    check_writable(path if path.exists() else path.parent, flag=f"{flag} {out}")
    return path


def check_writable(folder: str | os.PathLike, *, flag: str = "--out") -> None:
    """Raise a one-line ConfigError unless a file can be created in ``folder``.

    The test creates and removes an empty temporary file, so it also sees read-only mounts,
    ACLs and the super-user (for whom permission bits say nothing); it leaves nothing behind.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sgdthermo-write-test.", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write in {str(folder)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


#: Files whose presence makes a folder a run folder (the layout of
#: :func:`sgdthermo.nn.training.train`).
RUN_MARKERS: tuple[str, ...] = ("config.json", "summary.json", "error.txt", "metrics.csv", "checkpoint.pt")


def find_run_folders(root: str | os.PathLike, max_depth: int = 3) -> list[Path]:
    """Folders under ``root`` (depth ≤ max_depth) holding any of :data:`RUN_MARKERS`.

    A run folder is not searched further; hidden folders are skipped.
    """
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            if any((child / m).exists() for m in RUN_MARKERS):
                found.append(child)
            elif depth < max_depth:
                walk(child, depth + 1)

    walk(Path(root), 1)
    return found


class LockHeld(Exception):
    """The lock file is held by another process; ``owner`` is the pid it wrote."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


def lock_file(path: str | os.PathLike):
    """Open ``path`` (creating it) and take an exclusive, non-blocking ``flock`` on it, writing
    this process's pid into it; returns the open file (closing it releases the lock), or raises
    :class:`LockHeld` with the holder's pid. The kernel releases the lock when its holder dies,
    so the lock of a killed process is taken over by the next. Where there are no locks (not
    POSIX, or a file system without them) the file is returned unlocked."""
    fh = open(path, "a+", encoding="utf-8")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "unknown"
        fh.close()
        raise LockHeld(owner) from None
    except OSError:  # pragma: no cover - no locks on this file system
        return fh
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh
