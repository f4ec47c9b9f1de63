r"""The report of a sweep's analysis: ``analyze`` writes the tables, the figures and ``report.md``."""

from __future__ import annotations

__all__ = ["render_sweep_report", "analyze"]

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..analysis import checks as _an
from ..analysis.network import (
    MAXWELL_DEFAULTS,
    RADIUS_TOLERANCES,
    excluded_runs,
    load_runs,
    maxwell_analysis,
    noise_table,
    potentials_analysis,
    radius_analysis,
    sweep_groups,
    usable,
    verdict_table,
)
from ..analysis.selection import UNTRUSTED_ENTROPY, as_bool, numeric_column
from ..figures.network import CAPTIONS as _CAPTIONS
from ..figures.network import make_sweep_figures
from ..protocols import SECOND_SYMBOL, second_axis
from .markdown import fmt as _fmt
from .markdown import md_table as _md_table
from .markdown import pct as _pct
from .markdown import pm as _pm
from .markdown import value_range

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------










def _settings_section(df: pd.DataFrame, sweep_dir: str) -> list[str]:
    rows = []
    for g, protocol, all_rows in sweep_groups(df, only_usable=False):
        sec = second_axis(protocol)
        r0 = all_rows.iloc[0]
        q = f"{_fmt(r0.get('queue_size'))} every {_fmt(r0.get('queue_every'))}"
        rows.append([g, protocol, _fmt(r0.get("model")), _fmt(r0.get("width")), _fmt(r0.get("dataset")),
                     _fmt(r0.get("d")), f"{all_rows['lr'].nunique()} × {all_rows[sec].nunique()}",
                     value_range(numeric_column(all_rows, "lr")), f"{SECOND_SYMBOL[sec]}: {value_range(numeric_column(all_rows, sec))}",
                     value_range(numeric_column(all_rows, "seed")), value_range(numeric_column(all_rows, "iters")),
                     _fmt(r0.get("batch_size")), q, len(all_rows), int(usable(all_rows).sum())])
    out = ["## Settings", "", f"Sweep folder: `{sweep_dir}`; {len(df)} run folder(s).", ""]
    if rows:
        out += [_md_table(["group", "protocol", "model", "width", "dataset", "d", "grid", "lr (η or η̃)",
                           "wd / radius", "seeds", "iterations", "batch", "entropy queue", "runs", "usable"],
                          rows), ""]
    return out


def _status_section(df: pd.DataFrame) -> list[str]:
    ok = usable(df)
    st = df["status"].astype(str)
    comp = st == "completed"
    interp = as_bool(df["interpolating"])
    stat = as_bool(df["stationary"])
    S = numeric_column(df, "S")
    rows = [[k, int(v)] for k, v in st.value_counts().items()]
    detail = [["completed, usable (stationary, not interpolating, entropy)", int(ok.sum())],
              ["completed, interpolating", int((comp & interp).sum())],
              ["completed, non-stationary", int((comp & ~interp & ~stat).sum())],
              ["completed, stationary but no entropy estimate", int((comp & ~interp & stat & ~np.isfinite(S)).sum())]]
    flagged = int((usable(df, entropy_verdict=False) & ~ok).sum())
    detail.append(["completed, stationary, entropy from correlated snapshots (V1 and noise fits only)", flagged])
    return ["## Runs by status", "", _md_table(["status", "runs"], rows), "",
            _md_table(["completed runs", "runs"], detail), "",
            "Only usable runs enter the tables and fits below; the others are listed under "
            "*Excluded runs* and drawn as grey crosses or faint lines. An entropy is trusted only "
            "when its queue held enough independent snapshots (`entropy_ok` in runs.csv, with "
            "`queue_tau`, `queue_n_eff`, `queue_nn_lag`); the V1 and noise fits do not use the "
            "entropy and keep those runs.", ""]


def _v1_section(table: pd.DataFrame, verdicts: Sequence[tuple[str, _an.Verdict]], max_rows: int = 40) -> list[str]:
    t = RADIUS_TOLERANCES
    out = ["## V1 — stationary radius", "",
           "Measured ρ against the SDE radius with the measured σ² (fixed LR ρ⁴ = ησ²(d−1)/(2λ), fixed "
           "ELR ρ² = η̃σ²(d−1)/(2λ)) and the discrete-time identity (ρ⁴ = η E‖g_B(u)‖²/(2λ), "
           "ρ² = η̃ E‖g_B(u)‖²/(2λ)); fixed sphere: the measured effective pressure p = (E|w'| − ρ)/(η̃ρ³) "
           "against (d−1)T/ρ² and η̃ E‖g_B(u)‖²/(2ρ²). "
           f"Pass (discrete prediction): |bias| ≤ max({_pct(t['bias_tol'])}, 3 SE), median |Δ| ≤ "
           f"max({_pct(t['median_tol'])}, 2 × median error bar), at most {_pct(t['max_frac'])} of the runs "
           f"discrepant (|z| > {_fmt(t['z_thr'])} and |Δ| > {_pct(t['rel_floor'])}); at least 3 usable runs.", ""]
    for g, v in verdicts:
        tag = "NOT TESTED" if v.details.get("reason") == "too few rows" else ("PASS" if v.passed else "FAIL")
        out += [f"### {g}: **{tag}**", "", v.summary.replace(f"{v.protocol} {v.name}: ", ""), ""]
        sub = table[table["group"] == g]
        if len(sub):
            q = "p" if sub["quantity"].iloc[0] == "p" else "ρ"
            sec = "radius" if v.protocol == "fixed-sphere" else "wd"
            rows = [[r["run_id"], r["lr"], r[sec], _pm(r["measured"], r["measured_err"]), r["sde"],
                     _pct(r["rel_sde"]), r["discrete"], _pct(r["rel_discrete"]), _fmt(r["z_discrete"], 3)]
                    for _, r in sub.head(max_rows).iterrows()]
            out += [_md_table(["run", "lr", sec, f"measured {q}", "SDE", "Δ SDE", "discrete", "Δ discrete",
                               "z discrete"], rows), ""]
            if len(sub) > max_rows:
                out += [f"({len(sub) - max_rows} more rows in radius.csv.)", ""]
    return out


def _noise_section(nt: pd.DataFrame) -> list[str]:
    out = ["## Gradient noise and temperature", "",
           "σ² = ρ² tr Σ/(d−1) from the measured gradient noise; T = η̃σ²/2 (fixed ELR, fixed sphere) or "
           "T = sqrt(ηλσ²/(2(d−1))) (fixed LR). Power law log q = c + s log h with h = ηλ (fixed LR) or η̃; "
           "'slope on the other' is the partial slope on λ (fixed sphere ρ) at fixed h, 0 when q depends "
           "on h alone (the paper: σ² depends on ηλ for fixed LR and on η̃ otherwise).", ""]
    if len(nt) == 0:
        return out + ["No group.", ""]
    rows = [[r["group"], r["quantity"], r["variable"], r["n"], _pm(r["slope"], r["slope_err"], 3),
             _fmt(r["r2"], 4), f"{r['other']}: {_pm(r['other_slope'], r['other_slope_err'], 3)}",
             r["note"] or ""] for _, r in nt.iterrows()]
    return out + [_md_table(["group", "quantity", "against h", "runs", "slope s", "R²",
                             "slope on the other", "note"], rows), ""]


def _v3_section(mt: pd.DataFrame, notes: Sequence[str]) -> list[str]:
    d = MAXWELL_DEFAULTS
    out = ["## V3 — Maxwell relations", "",
           "Fit S = a0 + a1·x + a2·y + a3·x² + a4·xy + a5·y², x = log lr (η or η̃), y = log λ (fixed sphere: "
           "log ρ), weighted by S_err when every run has one (errors Birge-scaled). Targets (docs/theory.md): "
           "fixed LR (a1−a2)/R → 1, (2a3−a4)/R → 0, (a4−2a5)/R → 0; fixed ELR a2/(−R) → 1, a4/R → 0, "
           "a5/R → 0; fixed sphere a2/(d−1) → 1, a4/(d−1) → 0, a5/(d−1) → 0; R = (d−1)/2. "
           f"PASS: every combination within max({_fmt(d['z_thr'])}σ, {_fmt(d['tol'])}) of its target, the "
           f"relation at the grid centroid within the same, and R² ≥ {_fmt(d['min_r2'])}; at least "
           f"{int(d['min_runs'])} usable runs spanning ≥ 3 values per axis.", "",
           "For networks S is dominated by the radius term (d−1)·log ρ with d ~ 10⁴, and the nearest-"
           "neighbour estimate of the sphere entropy S_u is biased in high dimension (docs/entropy.md); the "
           "test relies on that bias being roughly constant across the grid. The split of the main "
           "combination into the radius term and S_u is reported so that what carries the result is visible.", ""]
    if len(mt) == 0:
        out += ["No group has enough usable runs: V3 not tested.", ""]
    for _, r in mt.iterrows():
        out += [f"### {r['group']}: **{r['verdict']}**", ""]
        if not r["fitted"]:
            out += [f"{r['n']} usable runs ({r['n_lr']} × {r['n_y']} distinct values): {r['note']}.", ""]
            continue
        out += [f"Relation: {r['relation']}; {r['n']} runs on {r['n_lr']} × {r['n_y']} values; d = {_fmt(r['d'])}.", "",
                _md_table(["combination", "value", "std. error", "target", "(value − target)/σ", "tolerance", "pass"],
                          [[r[f"combo{k}_name"], _fmt(r[f"combo{k}"]), _fmt(r[f"combo{k}_err"], 2),
                            _fmt(r[f"combo{k}_target"]), _fmt(r[f"combo{k}_z"], 3),
                            _fmt(r[f"combo{k}_tolerance"], 3), "yes" if r[f"combo{k}_pass"] else "**no**"]
                           for k in range(1, 4)]), "",
                _md_table(["coefficient", *[f"a{k}" for k in range(6)]],
                          [["value", *[r[f"a{k}"] for k in range(6)]],
                           ["std. error", *[r[f"a{k}_err"] for k in range(6)]]]), "",
                _md_table(["quantity", "value"], [
                    ["R² of the fit", _fmt(r["r2"], 6)],
                    ["reduced χ² (weighted fit)", _fmt(r["chi2_red"], 3)],
                    ["residual std of S", _fmt(r["resid_std"], 3)],
                    ["relation at the grid centroid", f"{_pm(r['centre'], r['centre_err'])} (tolerance {_fmt(r['centre_tolerance'], 3)})"],
                    ["max relative error of the relation over the runs", _pct(r["max_rel_err"])],
                    ["mean relative error of the relation over the runs", _pct(r["mean_rel_err"])],
                    ["main combination from the radius term (d−1)·log ρ", _fmt(r["main_radius_part"])],
                    ["main combination from the sphere entropy S_u", _fmt(r["main_sphere_part"])],
                ]), ""]
        if r["note"]:
            out += [f"Note: {r['note']}.", ""]
    out += [f"- {n}" for n in notes]
    return out + ([""] if notes else [])


def _v2_section(pt: pd.DataFrame) -> list[str]:
    out = ["## V2 — potentials (proxy)", "",
           "With U = the stationary training loss: each run's state should minimise its own Gibbs energy "
           "U_j − T_i S_j + λ_i V_j (fixed sphere: Helmholtz U_j − T_i S_j on its sphere) within 3σ. For "
           "networks the energy of the stationary Gibbs distribution is an implicit potential, not the "
           "training loss (the paper, Section 6.1), so this is a proxy reported for information; V1 and V3 "
           "are the direct tests.", ""]
    if len(pt) == 0:
        return out + ["No group.", ""]
    rows = [[r["group"], r["verdict"], r["n_used"], r["headline"]] for _, r in pt.iterrows()]
    return out + [_md_table(["group", "verdict", "runs", "result"], rows), ""]


def _excluded_section(ex: pd.DataFrame) -> list[str]:
    out = ["## Excluded runs", ""]
    if len(ex) == 0:
        return out + ["None: every run is completed, stationary, not interpolating and has an entropy estimate.", ""]
    rows = [[r["run_id"], r["group"] or "—", r["lr"], r["wd"], r["radius"], r["seed"], r["status"],
             r["exclusion_reason"]] for _, r in ex.iterrows()]
    flagged = ex["exclusion_reason"].astype(str).str.startswith(UNTRUSTED_ENTROPY).sum()
    note = (f" ({flagged} with an entropy from correlated snapshots: those are left out of V2 and V3 "
            "only, and kept in V1 and the noise fits)" if flagged else "")
    return out + [f"{len(ex)} run(s) left out of the fits (never averaged in){note}:", "",
                  _md_table(["run", "group", "lr", "wd", "radius", "seed", "status", "reason"], rows), ""]


def render_sweep_report(tables: Mapping[str, pd.DataFrame], *, sweep_dir: str = "",
                        v1_verdicts: Sequence[tuple[str, _an.Verdict]] = (),
                        maxwell_notes: Sequence[str] = (),
                        figure_paths: Mapping[str, Mapping[str, str]] | None = None,
                        notes: Sequence[str] = ()) -> str:
    """Markdown of the sweep report from the tables of :func:`analyze`."""
    df = tables["runs"]
    mt = tables["maxwell"]
    head = ["# Sweep analysis" + (f": {Path(sweep_dir).name}" if sweep_dir else ""), "",
            f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `sgdthermo.report.network`. "
            "Ideal-gas predictions for scale-invariant networks (docs/theory.md): V1 stationary radius, "
            "gradient noise and temperature, V3 Maxwell relations, and V2 with the training loss as a "
            "proxy energy.", ""]
    summary = ["## Summary", ""]
    rows = []
    for g, protocol, all_rows in sweep_groups(df, only_usable=False):
        v1 = tables["radius_verdicts"]
        v1r = v1[v1["group"] == g]
        m = mt[mt["group"] == g]
        v2 = tables["potentials"]
        v2r = v2[v2["group"] == g]
        rows.append([g, len(all_rows), int(usable(all_rows).sum()),
                     f"{v1r['verdict'].iloc[0]}: {v1r['headline'].iloc[0]}" if len(v1r) else "—",
                     (f"{m['verdict'].iloc[0]}" + (f": {m['combo1_name'].iloc[0]} = {_pm(m['combo1'].iloc[0], m['combo1_err'].iloc[0], 3)}"
                                                   f", at the grid centre {_pm(m['centre'].iloc[0], m['centre_err'].iloc[0], 3)}"
                                                   if bool(m["fitted"].iloc[0]) else "")) if len(m) else "NOT TESTED",
                     f"{v2r['verdict'].iloc[0]} (proxy)" if len(v2r) else "—"])
    summary += [_md_table(["group", "runs", "usable (trusted entropy)", "V1 radius", "V3 Maxwell", "V2 potentials"], rows)
                if rows else "No run with a known protocol.", ""]
    parts = head + _settings_section(df, sweep_dir) + summary + _status_section(df)
    parts += _v1_section(tables["radius"], v1_verdicts)
    parts += _noise_section(tables["noise"])
    parts += _v3_section(mt, maxwell_notes)
    parts += _v2_section(tables["potentials"])
    parts += _excluded_section(tables["excluded"])
    if figure_paths:
        parts += ["## Figures", ""]
        for g, figs in figure_paths.items():
            if not figs:
                continue
            parts += [f"### {g}", ""]
            for name, rel in figs.items():
                parts += [f"![{g} {name}]({rel})", "", f"*{_CAPTIONS.get(name, name)}.*", ""]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts).rstrip() + "\n"


def analyze(sweep_dir: str | Path, out_dir: str | Path, *, figures: bool = True,
            dpi: int | None = None) -> dict[str, pd.DataFrame]:
    """Analyse a sweep folder and write the report.

    Writes into ``out_dir`` (created): ``runs.csv`` (:func:`load_runs`), ``radius.csv``
    (:func:`radius_table`), ``radius_verdicts.csv``, ``noise.csv`` (:func:`noise_table`),
    ``maxwell.csv`` (:func:`maxwell_test`), ``potentials.csv`` (:func:`potentials_check`),
    ``excluded.csv`` (:func:`excluded_runs`), ``figures/<group>_<name>.png``
    (:func:`make_sweep_figures`, unless ``figures=False``) and ``report.md``.

    Returns the tables by name (``runs``, ``radius``, ``radius_verdicts``, ``noise``,
    ``maxwell``, ``potentials``, ``excluded``). Fits that are underdetermined (too few usable
    runs) are reported as such, never raised. Raises ``ValueError`` when ``sweep_dir`` holds
    no run folder.
    """
    sweep_dir = Path(sweep_dir)
    df = load_runs(sweep_dir)
    if len(df) == 0:
        raise ValueError(f"{sweep_dir}: no run folders (sub-folders with config.json, summary.json or error.txt)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rtab, rverd = radius_analysis(df)
    mt, mverd, mnotes = maxwell_analysis(df)
    tables: dict[str, pd.DataFrame] = {
        "runs": df, "radius": rtab, "radius_verdicts": verdict_table(rverd), "noise": noise_table(df),
        "maxwell": mt, "potentials": verdict_table(potentials_analysis(df)), "excluded": excluded_runs(df),
    }
    for name, fname in (("runs", "runs.csv"), ("radius", "radius.csv"), ("radius_verdicts", "radius_verdicts.csv"),
                        ("noise", "noise.csv"), ("maxwell", "maxwell.csv"), ("potentials", "potentials.csv"),
                        ("excluded", "excluded.csv")):
        io.write_csv(tables[name], out / fname)
    rel: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    if figures:
        made, notes = make_sweep_figures(df, out / "figures", dpi=dpi, verdicts=mverd)
        rel = {g: {n: p.relative_to(out).as_posix() for n, p in named.items()} for g, named in made.items()}
    text = render_sweep_report(tables, sweep_dir=str(sweep_dir), v1_verdicts=rverd,
                               maxwell_notes=mnotes, figure_paths=rel, notes=notes)
    io.atomic_write_text(out / "report.md", text)
    return tables
