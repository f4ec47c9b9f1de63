"""The curves of one training run (``curves.png``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_curves"]


def plot_curves(metrics: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Loss/accuracy, radius, gradient noise, temperature and entropy against the step."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7))
    # fixed margins: the constrained layout took most of the figure's time (once per run)
    fig.subplots_adjust(left=0.055, right=0.985, bottom=0.08, top=0.9, wspace=0.22, hspace=0.32)
    axes = fig.subplots(2, 3)
    s = metrics["step"]
    ax = axes[0, 0]
    ax.plot(s, metrics["train_loss"], label="train")
    ax.plot(s, metrics["test_loss"], label="test")
    ax.set_yscale("log"); ax.set_title("loss"); ax.legend()
    ax = axes[0, 1]
    ax.plot(s, metrics["train_acc"], label="train"); ax.plot(s, metrics["test_acc"], label="test")
    ax.set_title("accuracy"); ax.legend()
    ax = axes[0, 2]
    ax.plot(s, metrics["rho_mean"]); ax.set_title("radius ρ (interval mean)")
    ax = axes[1, 0]
    ax.plot(s, metrics["trace_cov"], label="tr Σ"); ax.plot(s, metrics["grad_sq"].clip(lower=1e-12), label="‖∇L‖²")
    ax.set_yscale("log"); ax.set_title("gradient noise and mean gradient (weight space)"); ax.legend()
    ax = axes[1, 1]
    ax.plot(s, metrics["T"]); ax.set_yscale("log"); ax.set_title("temperature T")
    ax = axes[1, 2]
    if "S_sphere" in metrics and metrics["S_sphere"].notna().any():
        e = metrics.dropna(subset=["S_sphere"])
        ax.errorbar(e["step"], e["S_sphere"], yerr=e["S_sphere_err"], fmt="o")
    ax.set_title("entropy on the sphere S_u")
    for a in axes.ravel():
        a.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 3})
    return Path(path)
