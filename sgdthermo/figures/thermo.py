"""A Thermometer's curves (``thermo.png``): measured against predicted, per group."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_thermometer"]


def plot_thermometer(frame: pd.DataFrame, path: str | Path, *, title: str = "", max_groups: int = 8) -> Path:
    """Radius and angular update per step against the step, measured (lines) and predicted
    (dashed), one colour per group (the ``"all"`` row in black); the largest ``max_groups``
    groups are drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.6), constrained_layout=True)
    ax_r, ax_a = fig.subplots(1, 2)
    sizes = frame.drop_duplicates("group").set_index("group")["d"]
    groups = [g for g in sizes.drop("all", errors="ignore").sort_values(ascending=False).index[:max_groups]]
    if "all" in sizes.index:
        groups.append("all")
    colours = {g: ("black" if g == "all" else f"C{i % 10}") for i, g in enumerate(groups)}
    for g in groups:
        f = frame[frame["group"] == g].sort_values("step")
        c = colours[g]
        ax_r.plot(f["step"], f["rho"], color=c, label=f"{g} (d={int(sizes[g])})")
        ax_r.plot(f["step"], f["rho_pred"], color=c, ls="--", lw=1)
        ax_a.plot(f["step"], f["angular_update"], color=c)
        ax_a.plot(f["step"], f["angular_update_pred"], color=c, ls="--", lw=1)
    ax_r.set_title("radius ρ (dashed: predicted equilibrium)")
    ax_a.set_title("angular update per step, rad (dashed: predicted)")
    for ax in (ax_r, ax_a):
        ax.set_xlabel("step")
        ax.set_yscale("log")
    ax_r.legend(fontsize=7)
    last = frame[frame["step"] == frame["step"].max()]
    verdicts = ", ".join(f"{v}: {n}" for v, n in last[last["group"] != "all"]["verdict"].value_counts().items())
    fig.suptitle((title + "  " if title else "") + f"step {int(frame['step'].max())}: {verdicts}")
    fig.savefig(path, dpi=110)
    return Path(path)
