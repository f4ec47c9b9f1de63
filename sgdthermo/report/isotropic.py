"""Markdown report of the V1–V4 verification of a results table.

:func:`write_report` computes the verdicts (:func:`sgdthermo.analysis.verify`) unless given,
draws every figure (:mod:`sgdthermo.figures`) into ``out_dir/figures/`` and writes

- ``out_dir/report.md`` — title, settings, a protocol × check summary table, one section
  per protocol with the numbers behind each verdict, the non-stationary configurations and
  the embedded figures (relative paths);
- ``out_dir/verdicts.csv`` — tidy, one row per (protocol, check): passed, the decisive
  number with its error, target and tolerance (:func:`sgdthermo.analysis.verdicts_frame`);
- ``out_dir/verdicts_details.csv`` — long format, every scalar detail of every verdict.

Example
-------
>>> from sgdthermo.analysis import synthetic_results
>>> from sgdthermo.report import write_report
>>> write_report(synthetic_results("fixed-lr", n_lr=5, n_wd=5), "/tmp/rep")  # doctest: +SKIP
PosixPath('/tmp/rep/report.md')
"""

from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis import checks as _an
from ..analysis.selection import stationary_mask
from ..protocols import second_axis
from .markdown import md_table, num, pct, unique_values, value_range

__all__ = ["write_report", "render_report"]

_FIGURE_CAPTIONS = {
    "overview": "Overview",
    "energy_entropy": "Mean loss U and entropy on the sphere S_u vs temperature, with the exact VMF "
                      "curves and the small-T asymptotes",
    "radius": "V1: measured radius (fixed sphere: effective pressure) vs the SDE and discrete-time "
              "predictions",
    "entropy_hyperparams": "Total entropy S vs each hyperparameter (dashed: theory)",
    "potentials": "V2: potential of every observed state under representative configurations' own T, p",
    "maxwell": "V3: fitted Maxwell relation over the grid and the quadratic fit of S",
    "adiabats": "V4: entropy against the adiabatic invariant",
}


def _pass(v: _an.Verdict) -> str:
    return f"**{v.status}**"


# ---------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------
def _settings_section(df: pd.DataFrame, protocols: Sequence[str],
                      settings: Mapping[str, Any] | None) -> str:
    rows = []
    for p in protocols:
        sub = df[df["protocol"] == p]
        second = second_axis(p)
        n_lr = sub["lr"].nunique() if "lr" in sub.columns else 0
        n_2 = sub[second].nunique() if second in sub.columns else 0
        n_bad = int((~stationary_mask(sub)).sum())
        queue = "—"
        if "queue_size" in sub.columns and "queue_every" in sub.columns:
            queue = f"{unique_values(sub['queue_size'])} every {unique_values(sub['queue_every'])}"
        rows.append([p, f"{n_lr} × {n_2}", value_range(sub["lr"], 3) if "lr" in sub.columns else "—",
                     f"{'ρ' if second == 'radius' else 'λ'}: " + (value_range(sub[second], 3) if second in sub.columns else "—"),
                     unique_values(sub.get("dim")), unique_values(sub.get("sigma")), unique_values(sub.get("iters")),
                     queue, unique_values(sub.get("seed")), str(len(sub)), str(n_bad)])
    out = ["## Settings", "",
           md_table(["protocol", "grid", "lr (η or η̃)", "wd / radius", "d", "σ", "iterations",
                      "entropy queue", "seed", "configurations", "non-stationary"], rows)]
    if settings:
        out += ["", md_table(["setting", "value"], [[str(k), num(v) if not isinstance(v, str) else v]
                                                     for k, v in settings.items()])]
    return "\n".join(out)


def _summary_section(verdicts: Sequence[_an.Verdict], protocols: Sequence[str]) -> str:
    by = {(v.protocol, v.name): v for v in verdicts}
    rows = []
    for p in protocols:
        row = [p]
        for c in _an.CHECKS:
            v = by.get((p, c))
            row.append("—" if v is None else f"{v.status}: {v.headline}")
        rows.append(row)
    n_pass = sum(v.passed for v in verdicts)
    return "\n".join(["## Summary", "", md_table(["protocol", *_an.CHECKS], rows), "",
                      f"{n_pass}/{len(verdicts)} checks passed."])


def _vmf_section(df: pd.DataFrame, protocol: str) -> list[str]:
    """Stationary distribution vs the VMF model (Fig. 1a in numbers), stationary rows only."""
    sub = df[df["protocol"] == protocol]
    need = ("U", "U_theory", "S_sphere", "S_sphere_theory")
    if not all(c in sub.columns for c in need):
        return []
    sub = sub[stationary_mask(sub)]
    rel_u = (sub["U"] / sub["U_theory"] - 1).to_numpy(float)
    d_s = (sub["S_sphere"] - sub["S_sphere_theory"]).to_numpy(float)
    rel_u, d_s = rel_u[np.isfinite(rel_u)], d_s[np.isfinite(d_s)]
    if rel_u.size == 0 or d_s.size == 0:
        return []
    return ["### Stationary distribution vs VMF", "",
            md_table(["quantity", "median", "min", "max"], [
                ["U / U_VMF − 1", pct(np.median(rel_u)), pct(rel_u.min()), pct(rel_u.max())],
                ["S_u − S_u,VMF (nats)", num(np.median(d_s), 3), num(d_s.min(), 3), num(d_s.max(), 3)],
            ]), "",
            "A constant entropy offset is harmless for V2–V4 (it cancels in differences); one that "
            "varies with T moves V4 (and V2), but not V3 where T is held fixed.", ""]


def _v1_section(v: _an.Verdict) -> list[str]:
    d = v.details
    out = [f"### {v.name} — {_pass(v)}", "", v.summary, ""]
    if "discrete_median_abs_rel" not in d:
        return out
    q = d.get("quantity", "ρ")
    rows = []
    for key, label in (("median_abs_rel", f"median |Δ{q}|/{q}"), ("mean_abs_rel", f"mean |Δ{q}|/{q}"),
                       ("max_abs_rel", f"max |Δ{q}|/{q}"), ("mean_rel", "bias (mean Δ/pred.)"),
                       ("mean_rel_se", "standard error of the bias"),
                       ("median_rel_se", "median relative error bar")):
        rows.append([label, pct(d[f"discrete_{key}"]), pct(d[f"sde_{key}"])])
    rows.append(["fraction with |z| > " + num(d["z_thr"]), pct(d["discrete_frac_significant"]),
                 pct(d["sde_frac_significant"])])
    rows.append([f"fraction discrepant (|z| > {num(d['z_thr'])} and > {pct(d['rel_floor'])})",
                 pct(d["discrete_frac_discrepant"]), pct(d["sde_frac_discrepant"])])
    rows.append(["max |z|", num(d["discrete_max_abs_z"], 3), num(d["sde_max_abs_z"], 3)])
    rows.append(["would pass", "yes" if v.passed else "no", "yes" if d["sde_would_pass"] else "no"])
    out += [md_table(["", "discrete (Appendix G)", "SDE"], rows), "",
            f"Pass criterion (discrete): |bias| ≤ max({pct(d['bias_tol'])}, 3·SE), median |Δ| ≤ "
            f"max({pct(d['median_tol'])}, 2·median error bar), discrepant fraction ≤ {pct(d['max_frac'])}.", ""]
    return out


def _v2_section(v: _an.Verdict) -> list[str]:
    d = v.details
    out = [f"### {v.name} — {_pass(v)}", "", v.summary, ""]
    if "fraction_confirmed" not in d:
        return out
    out += [md_table(["quantity", "value"], [
        ["potential", d["potential"]],
        [f"configurations minimising their own potential within {num(d['z_thr'])}σ",
         pct(d["fraction_confirmed"])],
        ["plain argmin (no noise tolerance)", pct(d["fraction_argmin"])],
        ["violating pairs (gap < −z σ)", d["n_violating_pairs"]],
        ["smallest gap z = (Φ_i(j) − Φ_i(i))/σ", num(d["min_gap_z"], 3)],
        ["smallest gap / T_i", num(d["min_gap_over_T"], 3)],
        ["required fraction", pct(d["min_fraction"])],
    ]), ""]
    tab = v.table
    if tab is not None and "confirmed" in tab.columns and (~tab["confirmed"]).any():
        bad = tab[~tab["confirmed"]].head(20)
        second = "radius" if v.protocol == "fixed-sphere" else "wd"
        out += ["Configurations with a significant violation:", "",
                md_table(["lr", second, "T", "violations", "min gap z"],
                          [[r["lr"], r[second], r["T"], int(r["n_violations"]), r["min_gap_z"]]
                           for _, r in bad.iterrows()]), ""]
    return out


def _v3_section(v: _an.Verdict) -> list[str]:
    d = v.details
    out = [f"### {v.name} — {_pass(v)}", "", v.summary, ""]
    ctab = v.extras.get("combinations")
    if ctab is None:
        return out
    out += [f"Relation: {d['relation']}. Fit S = a0 + a1·x + a2·y + a3·x² + a4·xy + a5·y², "
            f"x = log lr, y = log {'radius' if v.protocol == 'fixed-sphere' else 'wd'} "
            f"(weighted by S_err; errors Birge-scaled).", "",
            md_table(["combination", "value", "std. error", "target", "(value − target)/σ"],
                      [[r["combination"], num(r["value"]), num(r["stderr"], 2), num(r["target"]),
                        num(r["z"], 3)] for _, r in ctab.iterrows()]), "",
            md_table(["coefficient", *[f"a{k}" for k in range(6)]],
                      [["value", *[d[f"a{k}"] for k in range(6)]],
                       ["std. error", *[d[f"a{k}_stderr"] for k in range(6)]]]), "",
            md_table(["quantity", "value"], [
                ["R²", num(d["r2"], 6)], ["residual std", num(d["resid_std"], 3)],
                ["reduced χ²", num(d["chi2_red"], 3)],
                ["max relative error of the relation over the grid", pct(d["max_rel_err"])],
                ["mean relative error of the relation over the grid", pct(d["mean_rel_err"])],
                ["tolerance on the main combination", num(d["main_tolerance"], 3)],
                [f"relation at the grid centre (x = {num(d['centre_x'], 3)}, y = {num(d['centre_y'], 3)})",
                 f"{num(d['centre_value'])} ± {num(d['centre_stderr'], 2)} (tolerance {num(d['centre_tolerance'], 3)})"],
                ["required R²", num(d["min_r2"])],
            ]), ""]
    return out


def _v4_section(v: _an.Verdict) -> list[str]:
    d = v.details
    out = [f"### {v.name} — {_pass(v)}", "", v.summary, ""]
    if "dS_db_over_R_centre" not in d:
        return out
    rows = []
    for key, label in (("centre", "grid centre"), ("low_a", "lowest invariant"), ("high_a", "highest invariant")):
        rows.append([label, num(d[f"dS_db_over_R_{key}"], 3), num(d[f"dS_db_over_R_{key}_stderr"], 2),
                     num(d[f"dS_db_over_R_{key}_tolerance"], 3)])
    out += [f"Adiabats: {d['invariant']} = const; slope of S along them per unit {d['b']}, "
            f"normalised by R (prediction 0):", "",
            md_table(["where", f"(∂S/∂{d['b']})/R", "std. error", "tolerance"], rows), "",
            f"(∂S/∂{d['invariant']})/R = {num(d['dS_da_over_R'], 4)} ± {num(d['dS_da_over_R_stderr'], 2)} "
            f"(small-T ideal gas: 1); fit R² = {num(d['r2'], 6)}, reduced χ² = {num(d['chi2_red'], 3)}.", ""]
    tab = v.table
    if tab is not None and len(tab):
        out += [f"Spread of S along the {len(tab)} adiabats with ≥ 2 grid points:", "",
                md_table(["invariant", "points", "mean S", "std S", "range S", "rms S error", "χ²_red"],
                          [[r["invariant"], int(r["n"]), r["S_mean"], r["S_std"], r["S_range"],
                            r["S_err_rms"], r["chi2_red"]] for _, r in tab.iterrows()]), ""]
    return out


def _excluded_section(verdicts: Sequence[_an.Verdict]) -> list[str]:
    frames = [v.excluded for v in verdicts if v.excluded is not None and len(v.excluded)]
    out = ["### Excluded configurations", ""]
    if not frames:
        return out + ["None: every configuration is stationary and complete.", ""]
    ex = pd.concat(frames, ignore_index=True)
    key = [c for c in ("lr", "wd", "radius", "reason") if c in ex.columns]
    ex = ex.drop_duplicates(subset=key)
    cols = [c for c in ("lr", "wd", "radius", "T", "drift_z", "reason") if c in ex.columns]
    ex = ex[[c for c in cols if not ex[c].isna().all() or c == "reason"]]
    out += [f"{len(ex)} configuration(s) left out of every check (never averaged in):", "",
            md_table(list(ex.columns), [list(r) for r in ex.itertuples(index=False)]), ""]
    return out


def render_report(df: pd.DataFrame, verdicts: Sequence[_an.Verdict], *, title: str,
                  settings: Mapping[str, Any] | None = None,
                  figure_paths: Mapping[str, Mapping[str, str]] | None = None,
                  notes: Sequence[str] = ()) -> str:
    """Markdown text of the report.

    ``figure_paths``: {protocol: {name: path relative to the report}}; ``notes``: lines
    appended at the end (e.g. figures that could not be drawn).
    """
    protocols = [p for p in _an.PROTOCOLS if any(v.protocol == p for v in verdicts)
                 or (df["protocol"] == p).any()]
    parts = [f"# {title}", "",
             f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `sgdthermo.report`. "
             "Checks V1–V4 of the ideal-gas theory (docs/theory.md, 'Predictions to verify'): "
             "V1 radius, V2 potentials, V3 Maxwell relations, V4 adiabats.", "",
             _settings_section(df, protocols, settings), "",
             _summary_section(verdicts, protocols), ""]
    for p in protocols:
        vs = [v for v in verdicts if v.protocol == p]
        parts += [f"## {p}", ""]
        parts += _vmf_section(df, p)
        for v in vs:
            parts += {"V1": _v1_section, "V2": _v2_section, "V3": _v3_section,
                      "V4": _v4_section}[v.check](v)
        parts += _excluded_section(vs)
        figs = (figure_paths or {}).get(p, {})
        if figs:
            parts += ["### Figures", ""]
            order = sorted(figs, key=lambda n: (n != "overview", list(_FIGURE_CAPTIONS).index(n)
                                                if n in _FIGURE_CAPTIONS else len(_FIGURE_CAPTIONS)))
            for name in order:
                rel = figs[name]
                parts += [f"![{p} {name}]({rel})", "", f"*{_FIGURE_CAPTIONS.get(name, name)}.*", ""]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts).rstrip() + "\n"


def _details_long(verdicts: Sequence[_an.Verdict]) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        for k, val in v.details.items():
            if isinstance(val, (bool, np.bool_, int, np.integer, float, np.floating, str)):
                rows.append({"protocol": v.protocol, "check": v.check, "quantity": k, "value": val})
    return pd.DataFrame(rows, columns=["protocol", "check", "quantity", "value"])


def write_report(df: pd.DataFrame, out_dir: str | Path, *,
                 title: str = "SGD thermodynamics: verification of the ideal-gas predictions V1–V4",
                 settings: Mapping[str, Any] | None = None,
                 verdicts: Sequence[_an.Verdict] | None = None,
                 figures: bool = True, dpi: int | None = None) -> Path:
    """Write ``report.md``, ``verdicts.csv``, ``verdicts_details.csv`` and ``figures/``.

    Parameters
    ----------
    df : DataFrame
        Results table (one or several protocols).
    out_dir : path
        Output directory (created).
    title : str
        Report title.
    settings : mapping, optional
        Extra settings shown in a second settings table (e.g. ``{"runtime_s": 123.4}``).
    verdicts : sequence of Verdict, optional
        Precomputed verdicts; computed with :func:`sgdthermo.analysis.verify` otherwise.
    figures : bool
        Draw and embed the figures (:func:`sgdthermo.figures.make_figures`). A figure that
        cannot be drawn is skipped with a warning.
    dpi : int, optional
        Figure resolution (default :data:`sgdthermo.figures.DPI`).

    Returns
    -------
    Path of ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    verdicts = list(verdicts) if verdicts is not None else _an.verify(df)
    rel_paths: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    if figures:
        from .. import figures as _fig  # lazy: matplotlib only when figures are wanted

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            made = _fig.make_figures(df, out / "figures", dpi=dpi or _fig.style.DPI, strict=False)
        for w in caught:  # re-emit, and list the skipped figures in the report
            if issubclass(w.category, RuntimeWarning) and "skipped" in str(w.message):
                skipped.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for p, named in made.items():
            rel_paths[p] = {n: path.relative_to(out).as_posix() for n, path in named.items()}
    text = render_report(df, verdicts, title=title, settings=settings, figure_paths=rel_paths,
                         notes=skipped)
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    _an.verdicts_frame(verdicts).to_csv(out / "verdicts.csv", index=False)
    _details_long(verdicts).to_csv(out / "verdicts_details.csv", index=False)
    return path
