"""The look shared by every figure: canvas, saving, grid axes, colour scales, error bars.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: nothing is registered globally, no backend is switched, and a figure is released
once saved. A report's many figures are drawn side by side in worker processes
(:func:`draw_all`): drawing is pure Python and single-threaded, so one process draws on one
core.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = ["DPI", "NONSTATIONARY", "MAX_WORKERS", "Drawn", "draw_all", "new_figure", "save", "errorbar",
           "grid_axes", "index_on", "tick_labels", "lognorm", "empty_panel", "colorbar"]

#: Resolution of every PNG (dots per inch).
DPI = 120
#: How excluded (non-stationary) rows are drawn: grey crosses.
NONSTATIONARY = dict(marker="x", color="0.55", linestyle="none", ms=6, label="non-stationary (excluded)")


def new_figure(w: float, h: float) -> Figure:
    """A ``w`` × ``h`` inch figure with constrained layout on the Agg canvas."""
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig

def save(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    fig.clf()
    return path

#: The most worker processes :func:`draw_all` starts by default (each costs ~1 s of imports).
MAX_WORKERS = 4


@dataclass
class Drawn:
    """What drawing one figure gave: its path, or the exception that stopped it, and the
    warnings it raised (``(message, category)``), in the order raised."""

    path: Path | None = None
    error: BaseException | None = None
    warnings: list[tuple[str, type[Warning]]] = field(default_factory=list)


def _draw_one(fn: Callable[..., Path], args: tuple, kwargs: dict[str, Any]) -> Drawn:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            path, error = Path(fn(*args, **kwargs)), None
        except Exception as exc:  # noqa: BLE001 - the caller decides (strict or skipped)
            path, error = None, exc
    return Drawn(path, error, [(str(w.message), w.category) for w in caught])


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def draw_all(jobs: Sequence[tuple[Callable[..., Path], tuple, dict[str, Any]]], *,
             workers: int | None = None) -> list[Drawn]:
    """Draw the figures ``jobs`` and return a :class:`Drawn` for each, in job order.

    A job is ``(function, args, kwargs)``: a module-level function that writes one PNG and
    returns its path. ``workers``: processes that draw at once (joblib's loky processes,
    reused between calls; a script needs no ``__main__`` guard); default the usable cores, at
    most :data:`MAX_WORKERS` and one per job; 1 draws them here, one after another. The
    files are the same bytes either way (Agg draws deterministically). Where the processes
    cannot be had (none can start, one died), the jobs are drawn here instead.
    """
    jobs = list(jobs)
    if workers is None:
        workers = min(_usable_cores(), MAX_WORKERS)
    workers = max(1, min(int(workers), len(jobs)))
    if workers > 1:
        try:
            from joblib import Parallel, delayed

            return list(Parallel(n_jobs=workers, backend="loky")(delayed(_draw_one)(*job) for job in jobs))
        except Exception:  # noqa: BLE001 - a job's own error is in its Drawn; this one is the pool's
            workers = 1  # drawn here instead
    return [_draw_one(*job) for job in jobs]


def errorbar(ax: Axes, x: np.ndarray, y: np.ndarray, yerr: np.ndarray | None, fmt: str = "o",
              **kw: Any) -> None:
    """Points with error bars where there are any, plain markers otherwise."""
    if yerr is not None and np.any(np.isfinite(yerr) & (yerr > 0)):
        ax.errorbar(x, y, yerr=np.where(np.isfinite(yerr), yerr, 0.0), fmt=fmt, capsize=2, **kw)
    else:
        ax.plot(x, y, fmt, **kw)

def grid_axes(values: np.ndarray) -> np.ndarray:
    """Sorted distinct grid values (rounded to 12 significant digits)."""
    v = values[np.isfinite(values)]
    return np.unique(np.round(v, 12 - int(np.floor(np.log10(np.abs(v).max() or 1.0)))) if v.size else v)

def index_on(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in ``grid`` (nearest in log)."""
    return np.abs(np.log(values)[:, None] - np.log(grid)[None, :]).argmin(axis=1)

def tick_labels(ax: Axes, grid: np.ndarray, axis: str, max_ticks: int = 6) -> None:
    """At most ``max_ticks`` labelled ticks of a heat map's grid axis (``"x"`` or ``"y"``)."""
    step = max(1, int(np.ceil(len(grid) / max_ticks)))
    ticks = np.arange(0, len(grid), step)
    labels = [f"{v:.2g}" for v in grid[ticks]]
    if axis == "x":
        ax.set_xticks(ticks, labels)
    else:
        ax.set_yticks(ticks, labels)

def lognorm(values: np.ndarray):
    """A log colour scale over the positive finite values (linear when they are all equal)."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size and v.max() > v.min():
        return LogNorm(vmin=v.min(), vmax=v.max())
    top = float(v.max()) if v.size else 1.0
    return Normalize(0.0, 2.0 * top)

def empty_panel(ax, text: str) -> None:
    """A panel with nothing to draw: the reason, centred, and no ticks."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])

def colorbar(ax, norm, label: str, cmap: Any = "viridis") -> None:
    """A colour bar for ``norm`` beside ``ax`` (minor labels hidden over a decade or more)."""
    fig = ax.get_figure()
    if fig is not None:
        cm = colormaps[cmap] if isinstance(cmap, str) else cmap
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cm), ax=ax, pad=0.01, label=label)
        vmin, vmax = getattr(norm, "vmin", None), getattr(norm, "vmax", None)
        if vmin and vmax and vmin > 0 and vmax / vmin >= 10:  # minor labels only within a decade
            cb.ax.yaxis.set_minor_formatter(NullFormatter())