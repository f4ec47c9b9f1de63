r"""PNG figures of a results table, in the style of the paper's Figure 1 (and Figs. 3–4).

Every ``plot_*`` function takes the results table (several protocols may be concatenated;
pass ``protocol=`` then), an output path, writes a PNG (``dpi`` 120 by default) and returns
the path. Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: nothing is registered globally, no backend is switched and the figure is
released when the function returns (closed explicitly).

Panels (see docs/theory.md for the notation):

- :func:`plot_energy_entropy` — U and :math:`S_u` vs T with the exact VMF curves and the
  small-T asymptotes :math:`U \approx (d-1)T/2`, :math:`S_u \approx \frac{d-1}2\log(2\pi eT)`;
- :func:`plot_radius` — measured ρ vs the SDE and discrete (Appendix G) radius, log–log with
  y = x, and the relative errors (fixed sphere: the effective pressure p);
- :func:`plot_entropy_hyperparams` — S vs log lr (one line per wd / radius) and S vs log wd
  (one line per lr), with the theory lines ``S_theory``;
- :func:`plot_potentials` — heat maps of :math:`\Phi_i(j) - \Phi_i(i)` over the grid for a
  few representative configurations i (fixed sphere: the Helmholtz matrix on a few spheres);
- :func:`plot_maxwell` — the fitted Maxwell relation over the grid (V3);
- :func:`plot_adiabats` — S against the adiabatic invariant (V4);
- :func:`plot_overview` — one page per protocol combining the panels.

Non-stationary rows are drawn as grey crosses and left out of lines, fits and heat maps.

Example
-------
>>> from sgdthermo.analysis import synthetic_results
>>> from sgdthermo.figures import make_figures
>>> paths = make_figures(synthetic_results("fixed-elr", n_lr=5, n_wd=5), "/tmp/figs")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize, SymLogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .. import theory
from ..analysis import checks as _an
from ..analysis.selection import numeric_column, select_protocol, stationary_mask
from ..protocols import SECOND_SYMBOL, lr_symbol, second_axis
from . import style

__all__ = [
    "FIGURES",
    "plot_energy_entropy",
    "plot_radius",
    "plot_entropy_hyperparams",
    "plot_potentials",
    "plot_maxwell",
    "plot_adiabats",
    "plot_overview",
    "make_figures",
]

DPI = style.DPI


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------




def _rows(df: pd.DataFrame, protocol: str | None) -> tuple[pd.DataFrame, str, np.ndarray]:
    """Rows of one protocol and a boolean mask of the stationary ones."""
    sub, protocol = select_protocol(df, protocol)
    return sub, protocol, stationary_mask(sub)




def _vmf_curves(T: np.ndarray, d: int) -> dict[str, np.ndarray]:
    """Exact VMF U(T), S_u(T) and the small-T asymptotes (:mod:`sgdthermo.theory`)."""
    return {"U": np.asarray(theory.vmf_energy(T, d), float),
            "S": np.asarray(theory.vmf_entropy(T, d), float),
            "U0": np.asarray(theory.vmf_energy_small_T(T, d), float),
            "S0": np.asarray(theory.vmf_entropy_small_T(T, d), float)}


def _panel_energy(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str) -> None:
    d = int(sub["dim"].iloc[0])
    T, U, Ue = numeric_column(sub, "T"), numeric_column(sub, "U"), numeric_column(sub, "U_err")
    Tc = np.geomspace(np.nanmin(T) / 1.5, np.nanmax(T) * 1.5, 200)
    cur = _vmf_curves(Tc, d)
    ax.plot(Tc, cur["U"], "k-", lw=1.5, label="VMF exact")
    ax.plot(Tc, cur["U0"], "k--", lw=1, label="(d−1)T/2")
    style.errorbar(ax, T[ok], U[ok], Ue[ok], fmt="o", ms=4, color="C0", alpha=0.8, label="measured")
    if (~ok).any():
        ax.plot(T[~ok], U[~ok], **style.NONSTATIONARY)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("mean loss U")
    ax.set_title(f"{protocol}: energy (d = {d})")
    ax.legend(fontsize=8)


def _panel_sphere_entropy(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str) -> None:
    d = int(sub["dim"].iloc[0])
    T, S, Se = numeric_column(sub, "T"), numeric_column(sub, "S_sphere"), numeric_column(sub, "S_sphere_err")
    Tc = np.geomspace(np.nanmin(T) / 1.5, np.nanmax(T) * 1.5, 200)
    cur = _vmf_curves(Tc, d)
    ax.plot(Tc, cur["S"], "k-", lw=1.5, label="VMF exact")
    ax.plot(Tc, cur["S0"], "k--", lw=1, label="(d−1)/2·log(2πeT)")
    style.errorbar(ax, T[ok], S[ok], Se[ok], fmt="o", ms=4, color="C1", alpha=0.8, label="measured")
    if (~ok).any():
        ax.plot(T[~ok], S[~ok], **style.NONSTATIONARY)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("entropy on the sphere $S_u$")
    ax.set_title(f"{protocol}: entropy on $S^{{d-1}}$")
    ax.legend(fontsize=8)


def _radius_columns(protocol: str) -> tuple[str, str, str, str, str]:
    if protocol == "fixed-sphere":
        return "p", "p_err", "p_theory", "p_theory_discrete", "effective pressure p"
    return "rho", "rho_err", "rho_theory", "rho_theory_discrete", "radius ρ"


def panel_radius(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str) -> None:
    m_col, e_col, sde_col, dis_col, label = _radius_columns(protocol)
    m, e = numeric_column(sub, m_col), numeric_column(sub, e_col)
    sde, dis = numeric_column(sub, sde_col), numeric_column(sub, dis_col)
    ax.errorbar(sde[ok], m[ok], yerr=e[ok], fmt="s", ms=4, mfc="none", color="C3",
                capsize=2, alpha=0.8, label="vs SDE")
    ax.errorbar(dis[ok], m[ok], yerr=e[ok], fmt="o", ms=4, color="C0", capsize=2,
                alpha=0.8, label="vs discrete (App. G)")
    if (~ok).any():
        ax.plot(dis[~ok], m[~ok], **style.NONSTATIONARY)
    allv = np.concatenate([m, sde, dis])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    lo, hi = allv.min() / 1.3, allv.max() * 1.3
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"predicted {label}")
    ax.set_ylabel(f"measured {label}")
    ax.set_title(f"{protocol}: V1 {label.split()[-1]}")
    ax.legend(fontsize=8)


def panel_radius_error(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str) -> None:
    m_col, e_col, sde_col, dis_col, label = _radius_columns(protocol)
    m, e = numeric_column(sub, m_col), numeric_column(sub, e_col)
    lr = numeric_column(sub, "lr")
    for col, fmt, colour, name in ((sde_col, "s", "C3", "SDE"), (dis_col, "o", "C0", "discrete")):
        pred = numeric_column(sub, col)
        rel = m / pred - 1
        ax.errorbar(lr[ok], 100 * rel[ok], yerr=100 * (e / pred)[ok], fmt=fmt, ms=4, color=colour,
                    mfc="none" if name == "SDE" else colour, capsize=2, alpha=0.8,
                    label=f"measured/{name} − 1")
        if name == "discrete" and (~ok).any():
            ax.plot(lr[~ok], 100 * rel[~ok], **style.NONSTATIONARY)
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"learning rate {lr_symbol(protocol)}")
    ax.set_ylabel("relative error (%)")
    ax.set_title(f"{protocol}: {label} relative error")
    ax.legend(fontsize=8)


def _panel_entropy_vs(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str, along: str) -> None:
    """S vs log(along) with one line per value of the other hyperparameter (colour-coded)."""
    second = second_axis(protocol)
    other = second if along == "lr" else "lr"
    xv, ov = numeric_column(sub, along), numeric_column(sub, other)
    S, Se, Sth = numeric_column(sub, "S"), numeric_column(sub, "S_err"), numeric_column(sub, "S_theory")
    grid = style.grid_axes(ov)
    cmap = colormaps["viridis"]
    norm = LogNorm(vmin=grid.min(), vmax=grid.max()) if grid.size > 1 else Normalize(0, 2 * grid.max())
    idx = style.index_on(grid, ov)
    for k, g in enumerate(grid):
        sel = idx == k
        colour = cmap(norm(g))
        o = np.argsort(xv[sel])
        xs, ss, es, ts, oks = xv[sel][o], S[sel][o], Se[sel][o], Sth[sel][o], ok[sel][o]
        if oks.any():
            ax.errorbar(xs[oks], ss[oks], yerr=es[oks], fmt="o-", ms=3, lw=1, color=colour, capsize=1.5)
        if np.isfinite(ts).any():
            ax.plot(xs, ts, "--", lw=0.8, color=colour)
        if (~oks).any():
            ax.plot(xs[~oks], ss[~oks], **{**style.NONSTATIONARY, "label": None})
    ax.set_xscale("log")
    sym = lr_symbol(protocol) if along == "lr" else SECOND_SYMBOL[second]
    osym = SECOND_SYMBOL[second] if along == "lr" else lr_symbol(protocol)
    ax.set_xlabel(f"{sym}")
    ax.set_ylabel("total entropy S")
    ax.set_title(f"{protocol}: S vs {sym} (lines: {osym}; dashed: theory)")
    fig = ax.get_figure()
    if grid.size > 1 and fig is not None:
        sm = ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=osym, pad=0.01)


def _representatives(states: pd.DataFrame, protocol: str) -> list[int]:
    """Indices (rows of ``states``) of the grid corners and centre, nearest available."""
    second = second_axis(protocol)
    lr, sv = numeric_column(states, "lr"), numeric_column(states, second)
    gx, gy = style.grid_axes(lr), style.grid_axes(sv)
    ix, iy = style.index_on(gx, lr), style.index_on(gy, sv)
    nx, ny = len(gx) - 1, len(gy) - 1
    targets = [(0, 0), (nx, 0), (nx // 2, ny // 2), (0, ny), (nx, ny)]
    out: list[int] = []
    for tx, ty in targets:
        k = int(np.argmin((ix - tx) ** 2 + (iy - ty) ** 2))
        if k not in out:
            out.append(k)
    return out


def _symlog_norm(values: np.ndarray, noise: float) -> SymLogNorm:
    """Diverging symmetric-log scale, linear within the noise level ``noise``."""
    finite = np.abs(values[np.isfinite(values)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    lin = min(max(noise, 1e-6 * vmax, 1e-12), 0.5 * vmax)
    return SymLogNorm(linthresh=lin, vmin=-vmax, vmax=vmax, base=10)


def _symlog_ticks(norm: SymLogNorm, max_per_side: int = 4) -> list[float]:
    """0 and ±10^k on whole decades above the linear range (no crowding around 0)."""
    lo = int(np.floor(np.log10(norm.linthresh))) + 1
    hi = int(np.floor(np.log10(norm.vmax)))
    if hi < lo:
        return [-norm.vmax, 0.0, norm.vmax]
    ks = list(range(lo, hi + 1))
    step = max(1, int(np.ceil(len(ks) / max_per_side)))
    ks = ks[::-1][::step][::-1]
    pos = [10.0**k for k in ks]
    return [-v for v in pos[::-1]] + [0.0] + pos


def _symlog_colorbar(fig: Figure, im: Any, ax: Any, label: str) -> None:
    cb = fig.colorbar(im, ax=ax, label=label, pad=0.01)
    norm = im.norm
    if isinstance(norm, SymLogNorm):
        ticks = _symlog_ticks(norm)
        cb.set_ticks(ticks, labels=[("0" if t == 0 else f"{'−' if t < 0 else ''}1e{int(round(np.log10(abs(t))))}")
                                    for t in ticks])


def _panel_gibbs_map(ax: Axes, pm: _an.PotentialMatrix, i: int, protocol: str,
                     norm: SymLogNorm | None = None) -> Any:
    """Heat map of (Φ_i(j) − Φ_i(i))/T_i over the (lr, second) grid for configuration i."""
    second = second_axis(protocol)
    st = pm.states
    lr, sv, T = numeric_column(st, "lr"), numeric_column(st, second), numeric_column(st, "T")
    gx, gy = style.grid_axes(lr), style.grid_axes(sv)
    ix, iy = style.index_on(gx, lr), style.index_on(gy, sv)
    img = np.full((len(gy), len(gx)), np.nan)
    vals = pm.gap[i] / T[i]
    img[iy, ix] = vals
    if norm is None:
        norm = _symlog_norm(vals, float(np.nanmedian(pm.sigma[i][pm.sigma[i] > 0]) / T[i])
                            if np.any(pm.sigma[i] > 0) else 0.0)
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
    im = ax.imshow(img, origin="lower", cmap=cmap, norm=norm, aspect="auto")
    j = int(np.nanargmin(pm.phi[i]))
    ax.plot(ix[i], iy[i], marker="*", ms=15, color="gold", mec="k", ls="none", label="own state i")
    ax.plot(ix[j], iy[j], marker="o", ms=12, mfc="none", mec="lime", mew=2, ls="none", label="argmin_j")
    style.tick_labels(ax, gx, "x")
    style.tick_labels(ax, gy, "y")
    sym, ssym = lr_symbol(protocol), SECOND_SYMBOL[second]
    ax.set_xlabel(f"state j: {sym}")
    ax.set_ylabel(f"state j: {ssym}")
    ax.set_title(f"i: {sym}={lr[i]:.2g}, {ssym}={sv[i]:.2g}", fontsize=9)
    return im


def _panel_helmholtz_matrix(ax: Axes, pm: _an.PotentialMatrix, radius: float) -> Any:
    """Matrix (F_i(j) − F_i(i))/T_i for the states on the sphere of the given radius."""
    st = pm.states
    rad, lr, T = numeric_column(st, "radius"), numeric_column(st, "lr"), numeric_column(st, "T")
    sel = np.flatnonzero(np.isclose(rad, radius, rtol=1e-9))
    sel = sel[np.argsort(lr[sel])]
    mat = pm.gap[np.ix_(sel, sel)] / T[sel][:, None]
    sig = pm.sigma[np.ix_(sel, sel)] / T[sel][:, None]
    noise = float(np.median(sig[sig > 0])) if np.any(sig > 0) else 0.0
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
    im = ax.imshow(mat, origin="lower", cmap=cmap, norm=_symlog_norm(mat, noise), aspect="auto")
    k = np.arange(len(sel))
    ax.plot(k, k, marker="*", ms=9, color="gold", mec="k", ls="none", label="own state j = i")
    am = np.nanargmin(mat, axis=1)
    ax.plot(am, k, marker="o", ms=10, mfc="none", mec="lime", mew=2, ls="none", label="row argmin")
    grid = lr[sel]
    style.tick_labels(ax, grid, "x")
    style.tick_labels(ax, grid, "y")
    ax.set_xlabel("state j: η̃")
    ax.set_ylabel("configuration i: η̃")
    ax.set_title(f"Helmholtz on ρ = {radius:.3g}", fontsize=9)
    return im


def panel_maxwell(ax: Axes, verdict: _an.Verdict, protocol: str) -> None:
    """Heat map of the fitted, normalised Maxwell relation (target 1) over the grid."""
    tab = verdict.table
    if tab is None or "relation" not in tab.columns:
        ax.text(0.5, 0.5, verdict.summary, ha="center", va="center", wrap=True, fontsize=8)
        ax.set_axis_off()
        return
    second = second_axis(protocol)
    lr, sv = numeric_column(tab, "lr"), numeric_column(tab, second)
    gx, gy = style.grid_axes(lr), style.grid_axes(sv)
    img = np.full((len(gy), len(gx)), np.nan)
    img[style.index_on(gy, sv), style.index_on(gx, lr)] = tab["relation"].to_numpy(float)
    dev = float(np.nanmax(np.abs(img - 1.0))) if np.isfinite(img).any() else 0.0
    half = max(dev, 0.02)
    cmap = colormaps["PuOr_r"].with_extremes(bad="0.85")
    im = ax.imshow(img, origin="lower", cmap=cmap, aspect="auto",
                   norm=TwoSlopeNorm(vcenter=1.0, vmin=1.0 - half, vmax=1.0 + half))
    style.tick_labels(ax, gx, "x")
    style.tick_labels(ax, gy, "y")
    ax.set_xlabel(lr_symbol(protocol))
    ax.set_ylabel(SECOND_SYMBOL[second])
    d = verdict.details
    ax.set_title(f"V3 {d.get('relation', '')}\nR² = {d.get('r2', np.nan):.4f}, "
                 f"max err {100 * d.get('max_rel_err', np.nan):.2f} %", fontsize=9)
    fig = ax.get_figure()
    if fig is not None:
        fig.colorbar(im, ax=ax, pad=0.01, label="fitted relation (target 1)")


def _panel_adiabats(ax: Axes, sub: pd.DataFrame, ok: np.ndarray, protocol: str) -> None:
    """S against log(invariant), coloured by the second hyperparameter (V4)."""
    second = second_axis(protocol)
    good = ok & np.isfinite(numeric_column(sub, "S")) & (numeric_column(sub, "lr") > 0) & (numeric_column(sub, second) > 0)
    used = sub[good]
    if len(used) == 0:
        ax.set_axis_off()
        return
    a, b, a_label, b_label = theory.adiabat_coordinates(
        protocol, np.log(used["lr"].to_numpy(float)), np.log(used[second].to_numpy(float)))
    S, Se = numeric_column(used, "S"), numeric_column(used, "S_err")
    bv = np.exp(b)
    norm = LogNorm(vmin=bv.min(), vmax=bv.max()) if np.ptp(bv) > 0 else Normalize(0, 2 * bv.max())
    cmap = colormaps["viridis"]
    ax.errorbar(np.exp(a), S, yerr=Se, fmt="none", ecolor="0.6", lw=0.8, zorder=1)
    ax.scatter(np.exp(a), S, c=bv, cmap=cmap, norm=norm, s=18, zorder=2)
    R = float(theory.gas_constant(used['dim'].iloc[0]))
    ac = np.linspace(a.min(), a.max(), 50)
    S0 = np.average(S - R * a)
    ax.plot(np.exp(ac), S0 + R * ac, "k--", lw=1, label="slope R = (d−1)/2")
    ax.set_xscale("log")
    inv = {"fixed-lr": "η", "fixed-elr": "η̃²/λ", "fixed-sphere": "η̃ρ²"}[protocol]
    ax.set_xlabel(f"adiabatic invariant {inv}")
    ax.set_ylabel("total entropy S")
    ax.set_title(f"{protocol}: V4 adiabats (colour: {SECOND_SYMBOL[second]})", fontsize=9)
    ax.legend(fontsize=8)
    fig = ax.get_figure()
    if fig is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, label=SECOND_SYMBOL[second])


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
def plot_energy_entropy(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                        dpi: int = DPI) -> Path:
    r"""Measured U and :math:`S_u` vs T with exact VMF curves and small-T asymptotes (Fig. 1a)."""
    sub, protocol, ok = _rows(df, protocol)
    fig = style.new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    _panel_energy(ax1, sub, ok, protocol)
    _panel_sphere_entropy(ax2, sub, ok, protocol)
    return style.save(fig, path, dpi)


def plot_radius(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                dpi: int = DPI) -> Path:
    """V1: measured ρ (fixed sphere: p) vs SDE and discrete predictions, and relative errors."""
    sub, protocol, ok = _rows(df, protocol)
    fig = style.new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    panel_radius(ax1, sub, ok, protocol)
    panel_radius_error(ax2, sub, ok, protocol)
    return style.save(fig, path, dpi)


def plot_entropy_hyperparams(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                             dpi: int = DPI) -> Path:
    """S vs log lr (one line per wd / radius) and S vs log wd / radius (one line per lr)."""
    sub, protocol, ok = _rows(df, protocol)
    fig = style.new_figure(12, 4.5)
    ax1, ax2 = fig.subplots(1, 2)
    _panel_entropy_vs(ax1, sub, ok, protocol, "lr")
    _panel_entropy_vs(ax2, sub, ok, protocol, second_axis(protocol))
    return style.save(fig, path, dpi)


def plot_potentials(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                    configs: Sequence[int] | None = None, dpi: int = DPI) -> Path:
    r"""V2 heat maps of :math:`(\Phi_i(j) - \Phi_i(i))/T_i` for representative configurations.

    Fixed LR / ELR: one map over the (lr, wd) grid per configuration i (default: the four
    corners and the centre; ``configs`` = row indices into the stationary states), i marked
    by a star and the argmin over j by a circle. Colours: red = higher potential than i's own
    state, blue = lower (a violation when beyond the noise; the colour scale is linear within
    the median noise level). Fixed sphere: the Helmholtz matrix (rows i, columns j) on three
    spheres (smallest, middle, largest radius).
    """
    sub, protocol, _ = _rows(df, protocol)
    pm = _an.potential_matrix(sub, protocol)
    if len(pm.states) == 0:
        raise ValueError(f"{protocol}: no stationary states to plot")
    if protocol == "fixed-sphere":
        radii = style.grid_axes(numeric_column(pm.states, "radius"))
        pick = sorted({0, len(radii) // 2, len(radii) - 1})
        fig = style.new_figure(4.6 * len(pick) + 0.8, 4.3)
        axes = np.atleast_1d(fig.subplots(1, len(pick)))
        im = None
        for ax, k in zip(axes, pick):
            im = _panel_helmholtz_matrix(ax, pm, float(radii[k]))
        axes[0].legend(fontsize=7, loc="upper left")
        if im is not None:
            _symlog_colorbar(fig, im, list(axes), "(F_i(j) − F_i(i)) / T_i")
        fig.suptitle(f"{protocol}: V2 Helmholtz energy U_j − T_i S_j on each sphere")
    else:
        idx = list(configs) if configs is not None else _representatives(pm.states, protocol)
        fig = style.new_figure(4.0 * len(idx) + 0.8, 4.0)
        axes = np.atleast_1d(fig.subplots(1, len(idx)))
        T = numeric_column(pm.states, "T")
        vals = pm.gap[idx] / T[idx][:, None]
        sig = pm.sigma[idx] / T[idx][:, None]
        norm = _symlog_norm(vals, float(np.median(sig[sig > 0])) if np.any(sig > 0) else 0.0)
        im = None
        for ax, i in zip(axes, idx):
            im = _panel_gibbs_map(ax, pm, int(i), protocol, norm=norm)
        axes[0].legend(fontsize=7, loc="upper left")
        if im is not None:
            _symlog_colorbar(fig, im, list(axes), "(Φ_i(j) − Φ_i(i)) / T_i")
        fig.suptitle(f"{protocol}: V2 Gibbs energy U_j − T_i S_j + p_i V_j")
    return style.save(fig, path, dpi)


def plot_maxwell(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                 dpi: int = DPI) -> Path:
    """V3: the fitted Maxwell relation over the grid, and S with its quadratic fit vs lr."""
    sub, protocol, ok = _rows(df, protocol)
    v = _an.check_maxwell(sub, protocol)
    fig = style.new_figure(11, 4.3)
    ax1, ax2 = fig.subplots(1, 2)
    panel_maxwell(ax1, v, protocol)
    fit = v.extras.get("fit")
    second = second_axis(protocol)
    if fit is not None and v.table is not None:
        tab = v.table
        grid = style.grid_axes(numeric_column(tab, second))
        cmap = colormaps["viridis"]
        norm = LogNorm(vmin=grid.min(), vmax=grid.max()) if grid.size > 1 else Normalize(0, 2 * grid.max())
        xs = np.linspace(tab["x"].min(), tab["x"].max(), 60)
        for g in grid:
            sel = np.isclose(numeric_column(tab, second), g, rtol=1e-9)
            colour = cmap(norm(g))
            ax2.plot(np.exp(tab["x"][sel]), tab["S"][sel], "o", ms=3, color=colour)
            ax2.plot(np.exp(xs), fit.predict(xs, np.log(g)), "-", lw=1, color=colour)
        ax2.set_xscale("log")
        ax2.set_xlabel(lr_symbol(protocol))
        ax2.set_ylabel("total entropy S")
        ax2.set_title(f"quadratic fit of S (lines), R² = {fit.r2:.4f}", fontsize=9)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax2, pad=0.01, label=SECOND_SYMBOL[second])
    else:
        ax2.set_axis_off()
    return style.save(fig, path, dpi)


def plot_adiabats(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                  dpi: int = DPI) -> Path:
    """V4: S against the adiabatic invariant; a single curve means S is constant on adiabats."""
    sub, protocol, ok = _rows(df, protocol)
    fig = style.new_figure(6, 4.3)
    _panel_adiabats(fig.subplots(), sub, ok, protocol)
    return style.save(fig, path, dpi)


def plot_overview(df: pd.DataFrame, path: str | Path, *, protocol: str | None = None,
                  dpi: int = DPI) -> Path:
    """One page per protocol: energy, entropy, V1, S vs both hyperparameters, V2, V3, V4."""
    sub, protocol, ok = _rows(df, protocol)
    fig = style.new_figure(24, 10)
    axes = fig.subplots(2, 4)
    _panel_energy(axes[0, 0], sub, ok, protocol)
    _panel_sphere_entropy(axes[0, 1], sub, ok, protocol)
    panel_radius(axes[0, 2], sub, ok, protocol)
    _panel_entropy_vs(axes[0, 3], sub, ok, protocol, "lr")
    _panel_entropy_vs(axes[1, 0], sub, ok, protocol, second_axis(protocol))
    pm = _an.potential_matrix(sub, protocol)
    if len(pm.states):
        if protocol == "fixed-sphere":
            radii = style.grid_axes(numeric_column(pm.states, "radius"))
            im = _panel_helmholtz_matrix(axes[1, 1], pm, float(radii[len(radii) // 2]))
        else:
            reps = _representatives(pm.states, protocol)
            im = _panel_gibbs_map(axes[1, 1], pm, reps[len(reps) // 2], protocol)
        _symlog_colorbar(fig, im, axes[1, 1], "ΔΦ / T_i")
        axes[1, 1].legend(fontsize=7, loc="upper left")
    else:
        axes[1, 1].set_axis_off()
    panel_maxwell(axes[1, 2], _an.check_maxwell(sub, protocol), protocol)
    _panel_adiabats(axes[1, 3], sub, ok, protocol)
    n_bad = int((~ok).sum())
    fig.suptitle(f"{protocol}: d = {int(sub['dim'].iloc[0])}, {len(sub)} configurations"
                 + (f" ({n_bad} non-stationary)" if n_bad else ""), fontsize=14)
    return style.save(fig, path, dpi)


#: Figure names and their functions, in report order.
FIGURES: dict[str, Callable[..., Path]] = {
    "energy_entropy": plot_energy_entropy,
    "radius": plot_radius,
    "entropy_hyperparams": plot_entropy_hyperparams,
    "potentials": plot_potentials,
    "maxwell": plot_maxwell,
    "adiabats": plot_adiabats,
    "overview": plot_overview,
}


def make_figures(df: pd.DataFrame, out_dir: str | Path, *, protocols: Sequence[str] | None = None,
                 names: Sequence[str] | None = None, dpi: int = DPI,
                 strict: bool = True, workers: int | None = None) -> dict[str, dict[str, Path]]:
    """Write every figure (:data:`FIGURES`) for every protocol into ``out_dir``.

    Files are named ``<protocol>_<name>.png``. With ``strict=False`` a figure that cannot be
    drawn (e.g. no stationary state left) is skipped with a :class:`RuntimeWarning` instead
    of raising, and is absent from the result. ``workers``: processes drawing side by side
    (:func:`sgdthermo.figures.style.draw_all`; default the usable cores, 1: one after another
    here); the files are the same either way.

    Returns ``{protocol: {name: path}}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    present = [p for p in _an.PROTOCOLS if (df["protocol"] == p).any()]
    protocols = list(protocols) if protocols is not None else present
    names = list(names) if names is not None else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figures {unknown}; available: {list(FIGURES)}")
    which = [(p, name) for p in protocols for name in names]
    drawn = style.draw_all([(FIGURES[name], (df, out / f"{p}_{name}.png"), {"protocol": p, "dpi": dpi})
                            for p, name in which], workers=workers)
    result: dict[str, dict[str, Path]] = {p: {} for p in protocols}
    for (p, name), d in zip(which, drawn):
        for message, category in d.warnings:
            warnings.warn(message, category, stacklevel=2)
        if d.error is not None:
            if strict:
                raise d.error
            warnings.warn(f"figure {p}_{name} skipped: {d.error}", RuntimeWarning, stacklevel=2)
        else:
            result[p][name] = d.path
    return result
