r"""Figures of a sweep's analysis, in the style of the paper's Figure 2 and Figures 5–12."""

from __future__ import annotations

__all__ = ["SWEEP_FIGURES", "CAPTIONS", "make_sweep_figures", "plot_overview", "plot_radius", "plot_noise",
           "plot_entropy", "plot_maxwell", "plot_heatmaps", "plot_curves"]

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import checks as _an
from ..analysis.network import (
    NOISE_VARIABLE,
    maxwell_analysis,
    noise_table,
    noise_variable,
    sweep_groups,
    usable,
)
from ..analysis.selection import as_bool, numeric_column
from ..protocols import SECOND_SYMBOL, lr_symbol, second_axis
from . import isotropic as F
from . import style

# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------


def _panel_noise(ax, rows: pd.DataFrame, protocol: str, q: str, fit: Mapping[str, Any] | None) -> None:
    """σ² (or T) against h = ηλ or η̃, coloured by the second hyperparameter, with the power law."""
    from matplotlib import colormaps

    sec = second_axis(protocol)
    h, val, err, z = noise_variable(rows, protocol), numeric_column(rows, q), numeric_column(rows, q + "_err"), numeric_column(rows, sec)
    ok = np.isfinite(h) & np.isfinite(val) & (h > 0) & (val > 0)
    label = "σ²" if q == "sigma2" else "T"
    if not ok.any():
        style.empty_panel(ax, f"{protocol}: no usable run with {label}")
        return
    norm = style.lognorm(z[ok])
    cmap = colormaps["viridis"]
    ax.errorbar(h[ok], val[ok], yerr=np.where(np.isfinite(err[ok]), err[ok], 0.0), fmt="none",
                ecolor="0.6", lw=0.8, zorder=1)
    ax.scatter(h[ok], val[ok], c=z[ok], cmap=cmap, norm=norm, s=22, zorder=2)
    title = f"{label} vs {NOISE_VARIABLE[protocol]}"
    if fit is not None and np.isfinite(fit.get("slope", np.nan)):
        hs = np.geomspace(h[ok].min(), h[ok].max(), 50)
        ax.plot(hs, np.exp(fit["intercept"]) * hs ** fit["slope"], "k--", lw=1,
                label=f"∝ h^{fit['slope']:.2f}±{fit['slope_err']:.2f}")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"h = {NOISE_VARIABLE[protocol]}")
    ax.set_ylabel(label)
    ax.set_title(f"{protocol}: {title}", fontsize=9)
    style.colorbar(ax, norm, SECOND_SYMBOL[sec])


def _panel_lines(ax, rows: pd.DataFrame, protocol: str, q: str, along: str, *,
                 fit: Any = None, excluded: pd.DataFrame | None = None, logy: bool = False,
                 ylabel: str | None = None) -> None:
    """q against ``along`` (lr or the second axis), one line per value of the other axis.

    With ``fit`` (a QuadraticFit of S over log lr, log y) the lines are the fitted surface
    and the data are points; otherwise the points are joined. Excluded runs: grey crosses.
    """
    from matplotlib import colormaps

    sec = second_axis(protocol)
    other = sec if along == "lr" else "lr"
    xv, ov, val, err = numeric_column(rows, along), numeric_column(rows, other), numeric_column(rows, q), numeric_column(rows, q + "_err")
    ok = np.isfinite(xv) & np.isfinite(ov) & np.isfinite(val) & (xv > 0) & (ov > 0)
    sym = lr_symbol(protocol) if along == "lr" else SECOND_SYMBOL[sec]
    osym = SECOND_SYMBOL[sec] if along == "lr" else lr_symbol(protocol)
    if not ok.any():
        style.empty_panel(ax, f"{protocol}: no usable run with {q}")
        return
    xv, ov, val, err = xv[ok], ov[ok], val[ok], err[ok]
    grid = F.style.grid_axes(ov)
    norm = style.lognorm(grid)
    cmap = colormaps["viridis"]
    idx = F.style.index_on(grid, ov)
    for k, gv in enumerate(grid):
        sel = idx == k
        o = np.argsort(xv[sel])
        xs, ys, es = xv[sel][o], val[sel][o], err[sel][o]
        colour = cmap(norm(gv))
        es = np.where(np.isfinite(es), es, 0.0)
        if fit is not None:
            ax.errorbar(xs, ys, yerr=es, fmt="o", ms=3, color=colour, capsize=1.5)
            xx = np.geomspace(xs.min(), xs.max(), 40) if xs.max() > xs.min() else xs
            lx, ly = (np.log(xx), np.full(xx.shape, np.log(gv))) if along == "lr" else \
                     (np.full(xx.shape, np.log(gv)), np.log(xx))
            ax.plot(xx, fit.predict(lx, ly), "-", lw=1, color=colour)
        else:
            ax.errorbar(xs, ys, yerr=es, fmt="o-", ms=3, lw=1, color=colour, capsize=1.5)
    if excluded is not None and len(excluded):
        ex, ey = numeric_column(excluded, along), numeric_column(excluded, q)
        m = np.isfinite(ex) & np.isfinite(ey) & (ex > 0)
        if m.any():
            # excluded runs never set the scale: those far outside the usable range are counted
            lo, hi = float(val.min()), float(val.max())
            pad = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
            near = m & (ey >= lo - pad) & (ey <= hi + pad)
            off = int(m.sum() - near.sum())
            label = "excluded" + (f" ({off} off scale)" if off else "")
            ax.plot(ex[near], ey[near], marker="x", color="0.55", ls="none", ms=6, label=label)
            ax.legend(fontsize=8)
    ax.set_xscale("log")
    if logy and np.all(val > 0):
        ax.set_yscale("log")
    ax.set_xlabel(sym)
    ax.set_ylabel(ylabel or q)
    ax.set_title(f"{protocol}: {ylabel or q} vs {sym} (colour: {osym}"
                 + ("; lines: quadratic fit)" if fit is not None else ")"), fontsize=9)
    if grid.size > 1:
        style.colorbar(ax, norm, osym)


def _panel_relation(ax, verdict: _an.Verdict | None, protocol: str, tol: float) -> None:
    """The fitted relation at each run against lr, one line per second-axis value, with ±tol."""
    from matplotlib import colormaps

    if verdict is None or verdict.table is None or "relation" not in verdict.table:
        style.empty_panel(ax, verdict.summary if verdict is not None else f"{protocol}: V3 not tested (too few usable runs)")
        return
    t = verdict.table
    sec = second_axis(protocol)
    lr, sv, rel = numeric_column(t, "lr"), numeric_column(t, sec), numeric_column(t, "relation")
    grid = F.style.grid_axes(sv)
    norm = style.lognorm(grid)
    cmap = colormaps["viridis"]
    idx = F.style.index_on(grid, sv)
    for k, gv in enumerate(grid):
        sel = idx == k
        o = np.argsort(lr[sel])
        ax.plot(lr[sel][o], rel[sel][o], "o-", ms=3, lw=1, color=cmap(norm(gv)))
    ax.axhspan(1 - tol, 1 + tol, color="0.9", zorder=0, label=f"1 ± {tol:g}")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(lr_symbol(protocol))
    ax.set_ylabel("fitted relation (target 1)")
    ax.set_title(f"V3 {verdict.details.get('relation', '')}", fontsize=9)
    ax.legend(fontsize=8)
    if grid.size > 1:
        style.colorbar(ax, norm, SECOND_SYMBOL[sec])


def _radius_frame(all_rows: pd.DataFrame) -> pd.DataFrame:
    """Completed runs of a group in the layout of :func:`sgdthermo.figures.plot_radius`;
    ``stationary`` = usable (the others are drawn as grey crosses)."""
    rows = all_rows[all_rows["status"].astype(str) == "completed"].copy()
    rows["stationary"] = usable(rows).to_numpy()
    rows["dim"] = rows["d"]
    return rows.reset_index(drop=True)


def _has_radius_data(rows: pd.DataFrame, protocol: str) -> bool:
    cols = ("p", "p_theory", "p_theory_discrete") if protocol == "fixed-sphere" else \
        ("rho", "rho_theory", "rho_theory_discrete")
    v = np.concatenate([numeric_column(rows, c) for c in cols]) if len(rows) else np.zeros(0)
    return bool(np.any(np.isfinite(v) & (v > 0)))


def plot_radius(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """V1 (the paper's Figs. 2c, 5–10c and 12): measured ρ (fixed sphere: p) against the SDE and
    discrete-time predictions on log–log axes with y = x, and the relative errors against lr.
    Excluded runs are grey crosses."""
    all_rows, protocol = _group_rows(df, group)
    rows = _radius_frame(all_rows)
    fig = F.style.new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    if len(rows) and _has_radius_data(rows, protocol):
        ok = rows["stationary"].to_numpy(bool)
        F.panel_radius(ax1, rows, ok, protocol)
        F.panel_radius_error(ax2, rows, ok, protocol)
    else:
        style.empty_panel(ax1, f"{group}: no completed run with a radius")
        ax2.set_axis_off()
    fig.suptitle(f"{group}: V1", fontsize=11)
    return F.style.save(fig, path, dpi or style.DPI)


def plot_noise(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """Gradient noise and temperature (the paper's Figs. 2a–b, 5–10a–b): σ² and T against
    h = ηλ (fixed LR) or η̃ with the power-law fits, and T against lr per second-axis value."""
    all_rows, protocol = _group_rows(df, group)
    rows = all_rows[usable(all_rows).to_numpy()]
    nt = noise_table(df)
    fits = {r["quantity"]: r for r in nt[nt["group"] == group].to_dict("records")}
    fig = F.style.new_figure(16, 4.2)
    a1, a2, a3 = fig.subplots(1, 3)
    _panel_noise(a1, rows, protocol, "sigma2", fits.get("sigma2"))
    _panel_noise(a2, rows, protocol, "T", fits.get("T"))
    _panel_lines(a3, rows, protocol, "T", "lr", logy=True, ylabel="temperature T")
    fig.suptitle(f"{group}: gradient noise σ² = ρ² tr Σ/(d−1) and temperature", fontsize=11)
    return F.style.save(fig, path, dpi or style.DPI)


def plot_entropy(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                 verdict: _an.Verdict | None = None) -> Path:
    """S against each hyperparameter with the fitted quadratic surface (the paper's Figs. 2e–f):
    S vs lr (one line per λ or ρ) and S vs λ or ρ (one line per lr). Excluded runs: crosses."""
    all_rows, protocol = _group_rows(df, group)
    ok = usable(all_rows).to_numpy()
    rows, ex = all_rows[ok], all_rows[~ok]
    if verdict is None:
        verdict = maxwell_analysis(df)[1].get(group)
    fit = verdict.extras.get("fit") if verdict is not None else None
    fig = F.style.new_figure(13, 4.5)
    a1, a2 = fig.subplots(1, 2)
    _panel_lines(a1, rows, protocol, "S", "lr", fit=fit, excluded=ex, ylabel="entropy S")
    _panel_lines(a2, rows, protocol, "S", second_axis(protocol), fit=fit, excluded=ex, ylabel="entropy S")
    r2 = f", quadratic fit R² = {fit.r2:.4f}" if fit is not None else ", no quadratic fit"
    fig.suptitle(f"{group}: total entropy S = S_u + (d−1) log ρ{r2}", fontsize=11)
    return F.style.save(fig, path, dpi or style.DPI)


def plot_maxwell(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                 verdict: _an.Verdict | None = None, tol: float = 0.10) -> Path:
    """V3 over the grid: the fitted, normalised Maxwell relation (target 1) as a heat map
    (:func:`sgdthermo.figures`'s panel) and against lr with the ±tol band."""
    _, protocol = _group_rows(df, group)
    if verdict is None:
        verdict = maxwell_analysis(df)[1].get(group)
    fig = F.style.new_figure(11, 4.3)
    a1, a2 = fig.subplots(1, 2)
    if verdict is not None:
        F.panel_maxwell(a1, verdict, protocol)
    else:
        style.empty_panel(a1, f"{group}: V3 not tested (fewer than 6 usable runs)")
    _panel_relation(a2, verdict, protocol, tol)
    return F.style.save(fig, path, dpi or style.DPI)


_STATUS_CODE = {"failed": "fail", "unfinished": "unf", "diverged": "div"}


def _status_code(row: Mapping[str, Any]) -> str:
    st = str(row.get("status"))
    if st in _STATUS_CODE:
        return _STATUS_CODE[st]
    if as_bool([row.get("interpolating")])[0]:
        return "int"
    if not as_bool([row.get("stationary")])[0]:
        return "ns"
    return "noS"


def plot_heatmaps(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """Heat maps over the grid of the stationary train/test loss, train/test accuracy and ρ
    (fixed sphere: the effective pressure p), usable runs averaged over seeds. Cells without a
    usable run are grey and labelled: ns (non-stationary), int (interpolating), div, fail,
    unf (unfinished), noS (no entropy)."""
    from matplotlib import colormaps

    all_rows, protocol = _group_rows(df, group)
    sec = second_axis(protocol)
    lr, sv = numeric_column(all_rows, "lr"), numeric_column(all_rows, sec)
    fig = F.style.new_figure(22, 4.2)
    panels = [("train_loss", "train loss U", "viridis"), ("test_loss", "test loss", "viridis"),
              ("train_acc", "train accuracy", "magma"), ("test_acc", "test accuracy", "magma"),
              ("p", "effective pressure p", "cividis") if protocol == "fixed-sphere"
              else ("rho", "radius ρ", "cividis")]
    axes = fig.subplots(1, len(panels))
    have = np.isfinite(lr) & np.isfinite(sv) & (lr > 0) & (sv > 0)
    if not have.any():
        for ax in axes:
            style.empty_panel(ax, f"{group}: no grid")
        return F.style.save(fig, path, dpi or style.DPI)
    gx, gy = F.style.grid_axes(lr[have]), F.style.grid_axes(sv[have])
    ix = np.full(len(all_rows), -1)
    iy = np.full(len(all_rows), -1)
    ix[have], iy[have] = F.style.index_on(gx, lr[have]), F.style.index_on(gy, sv[have])
    ok = usable(all_rows).to_numpy() & have
    records = all_rows.to_dict("records")
    for ax, (q, title, cm) in zip(axes, panels):
        img = np.full((len(gy), len(gx)), np.nan)
        vals = numeric_column(all_rows, q)
        for j in range(len(gy)):
            for i in range(len(gx)):
                sel = ok & (ix == i) & (iy == j) & np.isfinite(vals)
                if sel.any():
                    img[j, i] = float(vals[sel].mean())
        cmap = colormaps[cm].with_extremes(bad="0.85")
        im = ax.imshow(img, origin="lower", aspect="auto", cmap=cmap)
        small = len(gx) * len(gy) <= 100
        for j in range(len(gy)):
            for i in range(len(gx)):
                if np.isfinite(img[j, i]):
                    if small:
                        ax.text(i, j, f"{img[j, i]:.3g}", ha="center", va="center", fontsize=6, color="w")
                else:
                    codes = sorted({_status_code(records[k]) for k in np.flatnonzero((ix == i) & (iy == j))})
                    if codes:
                        ax.text(i, j, "/".join(codes), ha="center", va="center", fontsize=7, color="0.2")
        F.style.tick_labels(ax, gx, "x")
        F.style.tick_labels(ax, gy, "y")
        ax.set_xlabel(lr_symbol(protocol))
        ax.set_ylabel(SECOND_SYMBOL[sec])
        ax.set_title(title, fontsize=9)
        if np.isfinite(img).any():
            fig.colorbar(im, ax=ax, pad=0.01)
    fig.suptitle(f"{group}: stationary values over the grid (grey: no usable run)", fontsize=11)
    return F.style.save(fig, path, dpi or style.DPI)


def _read_metrics(path: Any) -> pd.DataFrame | None:
    try:
        m = pd.read_csv(Path(str(path)) / "metrics.csv")
    except Exception:  # noqa: BLE001 - missing or half-written: no curve
        return None
    return m if len(m) and "step" in m else None


def plot_curves(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                max_runs: int = 200) -> Path:
    """Training curves of every run of a group overlaid (metrics.csv): train loss, radius ρ
    (interval mean), σ² and test accuracy against the step. Colour: lr; line style: the second
    hyperparameter; excluded runs faint."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    all_rows, protocol = _group_rows(df, group)
    sec = second_axis(protocol)
    fig = F.style.new_figure(18, 4.2)
    axes = fig.subplots(1, 4)
    panels = [("train_loss", "train loss", True), ("rho_mean", "radius ρ", False),
              ("sigma2", "σ²", True), ("test_acc", "test accuracy", False)]
    lr, sv = numeric_column(all_rows, "lr"), numeric_column(all_rows, sec)
    norm = style.lognorm(lr)
    cmap = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)))  # no pale yellow
    styles = ["-", "--", ":", "-."]
    ygrid = F.style.grid_axes(sv[np.isfinite(sv) & (sv > 0)]) if np.any(np.isfinite(sv) & (sv > 0)) else np.zeros(0)
    ok = usable(all_rows).to_numpy()
    drawn = 0
    for k, rec in enumerate(all_rows.to_dict("records")[:max_runs]):
        m = _read_metrics(rec.get("path"))
        if m is None:
            continue
        colour = cmap(norm(lr[k])) if np.isfinite(lr[k]) and lr[k] > 0 else "0.5"
        ls = styles[int(F.style.index_on(ygrid, np.array([sv[k]]))[0]) % len(styles)] \
            if ygrid.size and np.isfinite(sv[k]) and sv[k] > 0 else "-"
        for ax, (q, _, _) in zip(axes, panels):
            if q in m:
                ax.plot(m["step"], pd.to_numeric(m[q], errors="coerce"), ls=ls, color=colour,
                        lw=1.2 if ok[k] else 0.9, alpha=0.9 if ok[k] else 0.45)
        drawn += 1
    for ax, (q, title, logy) in zip(axes, panels):
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=9)
    if drawn == 0:
        style.empty_panel(axes[0], f"{group}: no metrics.csv")
    else:
        style.colorbar(axes[-1], norm, lr_symbol(protocol), cmap=cmap)
        if ygrid.size > 1:
            handles = [Line2D([], [], ls=styles[i % len(styles)], color="k", label=f"{SECOND_SYMBOL[sec]} = {v:.3g}")
                       for i, v in enumerate(ygrid[:len(styles)])]
            axes[0].legend(handles=handles, fontsize=7)
    fig.suptitle(f"{group}: training curves of {drawn} run(s) (faint: excluded)", fontsize=11)
    return F.style.save(fig, path, dpi or style.DPI)


def plot_overview(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                  verdict: _an.Verdict | None = None) -> Path:
    """One page per group in the layout of the paper's Figure 2: σ² vs h, T vs lr, V1 radius,
    S vs lr and vs the second hyperparameter with the fit, and the Maxwell relation."""
    all_rows, protocol = _group_rows(df, group)
    okm = usable(all_rows).to_numpy()
    rows, ex = all_rows[okm], all_rows[~okm]
    if verdict is None:
        verdict = maxwell_analysis(df)[1].get(group)
    fit = verdict.extras.get("fit") if verdict is not None else None
    nt = noise_table(df)
    fits = {r["quantity"]: r for r in nt[nt["group"] == group].to_dict("records")}
    fig = F.style.new_figure(20, 9)
    fig.get_layout_engine().set(wspace=0.06)
    axes = fig.subplots(2, 3)
    _panel_noise(axes[0, 0], rows, protocol, "sigma2", fits.get("sigma2"))
    _panel_lines(axes[0, 1], rows, protocol, "T", "lr", logy=True, ylabel="temperature T")
    rr = _radius_frame(all_rows)
    if len(rr) and _has_radius_data(rr, protocol):
        F.panel_radius(axes[0, 2], rr, rr["stationary"].to_numpy(bool), protocol)
    else:
        style.empty_panel(axes[0, 2], "no completed run with a radius")
    _panel_lines(axes[1, 0], rows, protocol, "S", "lr", fit=fit, excluded=ex, ylabel="entropy S")
    _panel_lines(axes[1, 1], rows, protocol, "S", second_axis(protocol), fit=fit, excluded=ex, ylabel="entropy S")
    if verdict is not None:
        F.panel_maxwell(axes[1, 2], verdict, protocol)
    else:
        style.empty_panel(axes[1, 2], "V3 not tested (fewer than 6 usable runs)")
    fig.suptitle(f"{group}: {len(all_rows)} run(s), {int(okm.sum())} usable", fontsize=13)
    return F.style.save(fig, path, dpi or style.DPI)


def _group_rows(df: pd.DataFrame, group: str) -> tuple[pd.DataFrame, str]:
    rows = df[df["group"] == group].reset_index(drop=True)
    if len(rows) == 0:
        raise ValueError(f"no runs in group {group!r}")
    return rows, str(rows["protocol"].iloc[0])


#: Figure names in report order and their functions ``f(df, group, path, dpi=...)``.
SWEEP_FIGURES = {
    "overview": plot_overview,
    "radius": plot_radius,
    "noise": plot_noise,
    "entropy": plot_entropy,
    "maxwell": plot_maxwell,
    "heatmaps": plot_heatmaps,
    "curves": plot_curves,
}

CAPTIONS = {
    "overview": "Overview in the layout of the paper's Figure 2",
    "radius": "V1: measured radius (fixed sphere: effective pressure) vs the SDE and discrete-time predictions",
    "noise": "Gradient noise σ² and temperature T against the hyperparameters, with power-law fits",
    "entropy": "Total entropy against each hyperparameter with the fitted quadratic surface",
    "maxwell": "V3: the fitted Maxwell relation over the grid (target 1)",
    "heatmaps": "Stationary loss, accuracy and radius over the grid",
    "curves": "Training curves of every run (colour: lr, line style: second hyperparameter)",
}


def make_sweep_figures(df: pd.DataFrame, out_dir: str | Path, *, dpi: int | None = None,
                       names: Sequence[str] | None = None, strict: bool = False,
                       verdicts: Mapping[str, _an.Verdict] | None = None,
                       workers: int | None = None) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """Write every figure of :data:`SWEEP_FIGURES` for every group as ``<group>_<name>.png``.

    Returns ``({group: {name: path}}, notes)``; with ``strict=False`` a figure that cannot be
    drawn is skipped and named in ``notes``. ``workers``: processes drawing side by side
    (:func:`sgdthermo.figures.style.draw_all`; 1: one after another here).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else list(SWEEP_FIGURES)
    if verdicts is None:
        verdicts = maxwell_analysis(df)[1]
    groups = [g for g, _, _ in sweep_groups(df, only_usable=False)]
    which = [(g, name) for g in groups for name in names]
    jobs = []
    for g, name in which:
        kw: dict[str, Any] = {"dpi": dpi}
        if name in ("overview", "entropy", "maxwell"):
            kw["verdict"] = verdicts.get(g)
        jobs.append((SWEEP_FIGURES[name], (df, g, out / f"{g}_{name}.png"), kw))
    result: dict[str, dict[str, Path]] = {g: {} for g in groups}
    notes: list[str] = []
    for (g, name), d in zip(which, style.draw_all(jobs, workers=workers)):  # their warnings are not the report's
        if d.error is None:
            result[g][name] = d.path
        elif strict:
            raise d.error
        else:
            exc = d.error
            notes.append(f"figure {g}_{name} skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return result, notes
