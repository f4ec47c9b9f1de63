r"""Analysis of a sweep of network runs: the tidy table, V1, gradient noise, V3, V2, report.

A *sweep folder* holds one sub-folder per run, as written by :func:`sgdthermo.training.train`
(``config.json``, ``summary.json``, ``metrics.csv``; a failed run may hold only ``error.txt``,
an unfinished one no ``summary.json``). Notation follows docs/theory.md: d the number of
scale-invariant parameters, :math:`R = (d-1)/2`, :math:`V = \rho^2/2`, η the LR (fixed LR) or
η̃ the ELR (fixed ELR, fixed sphere), λ the weight decay, ρ the radius.

Functions (all but :func:`load_runs` and :func:`analyze` are pure and return DataFrames):

- :func:`load_runs` — one row per run: configuration, status and verdicts, every stationary
  value with its ``_err``, the theory predictions, :math:`U` = the mean training loss (for a
  network the potential energy is an implicit potential; the training loss is its proxy),
  :math:`V = \overline{\rho^2}/2`, S, and ``exclusion_reason``. :func:`usable` selects the runs
  that enter fits: completed, stationary, not interpolating, with a finite entropy.
- :func:`radius_table` / :func:`radius_verdicts` — **V1**: measured ρ against the SDE radius
  with the measured σ² (fixed LR :math:`\rho^4 = \eta\sigma^2(d-1)/(2\lambda)`, fixed ELR
  :math:`\rho^2 = \tilde\eta\sigma^2(d-1)/(2\lambda)`) and the discrete-time identity
  (:math:`\rho^4 = \eta E\|g_B(u)\|^2/(2\lambda)`, :math:`\rho^2 = \tilde\eta E\|g_B(u)\|^2/(2\lambda)`);
  fixed sphere: the measured effective pressure :math:`p = (E|w'|-\rho)/(\tilde\eta\rho^3)`
  against :math:`(d-1)T/\rho^2` and :math:`\tilde\eta E\|g_B(u)\|^2/(2\rho^2)`. The verdict is
  :func:`sgdthermo.analysis.check_radius` with network tolerances (5 %).
- :func:`noise_table` — σ² and T against the hyperparameter they depend on (the paper,
  Figs. 2a–b, 5–10: ηλ for fixed LR, η̃ otherwise): log–log power laws
  :math:`\log q = c + s\log h` with slope ± error, and the partial slope on the second
  hyperparameter at fixed h (0 when q depends on h only).
- :func:`maxwell_test` — **V3**: the quadratic fit
  :math:`S = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`, x = log lr, y = log λ (fixed sphere:
  log ρ) (:func:`sgdthermo.analysis.check_maxwell`, :func:`sgdthermo.analysis.quadratic_fit`),
  and the normalised combinations of :func:`sgdthermo.theory.maxwell_coefficient_targets`
  (fixed LR :math:`(a_1-a_2)/R\to1`, :math:`(2a_3-a_4)/R\to0`, :math:`(a_4-2a_5)/R\to0`;
  fixed ELR :math:`a_2/(-R)\to1`, :math:`a_4/R\to0`, :math:`a_5/R\to0`; fixed sphere
  :math:`a_2/(d-1)\to1`, :math:`a_4/(d-1)\to0`, :math:`a_5/(d-1)\to0`).
- :func:`potentials_check` — **V2** with U = training loss (a proxy only: for networks the
  energy is an unknown implicit potential, so the paper verifies V1 and V3 directly).
- :func:`excluded_runs` — every run left out of the fits, with the reason.
- :func:`make_sweep_figures` — PNGs in the style of the paper's Figure 2 and Figures 5–12.
- :func:`analyze` — all of the above into a folder with ``report.md``.

Runs are grouped by protocol and *setup* (model, width, dataset, d, and any of loss, head
norm, batch size, subset size, entropy queue settings that vary in the sweep): each group is one
grid of hyperparameters and is fitted on its own.

Example
-------
>>> from sgdthermo.sweep_analysis import analyze
>>> tables = analyze("sweeps/digits-lr", "sweeps/digits-lr-report")  # doctest: +SKIP
>>> tables["maxwell"][["group", "combo1_name", "combo1", "combo1_err", "verdict"]]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import analysis as _an
from . import io, theory
from .report import _num as _report_num

__all__ = [
    "VALUE_COLUMNS",
    "load_runs",
    "usable",
    "excluded_runs",
    "radius_table",
    "radius_verdicts",
    "noise_table",
    "maxwell_test",
    "potentials_check",
    "sweep_groups",
    "plot_overview",
    "plot_radius",
    "plot_noise",
    "plot_entropy",
    "plot_maxwell",
    "plot_heatmaps",
    "plot_curves",
    "SWEEP_FIGURES",
    "make_sweep_figures",
    "render_sweep_report",
    "analyze",
    "analyze_argument_parser",
    "cmd_analyze",
]

#: Files whose presence makes a folder a run folder.
RUN_MARKERS: tuple[str, ...] = ("config.json", "summary.json", "error.txt", "metrics.csv", "checkpoint.pt")
#: Configuration fields copied into the table (from config.json, else summary.json).
CONFIG_COLUMNS: tuple[str, ...] = (
    "protocol", "model", "width", "dataset", "lr", "wd", "radius", "seed", "iters", "batch_size",
    "head_norm", "loss", "init_norm", "samples_per_label", "noise_batches", "queue_size",
    "queue_every", "entropy_method", "tail_fraction",
)
#: Stationary values of summary.json copied with their ``_err``.
VALUE_COLUMNS: tuple[str, ...] = (
    "rho", "rho2", "sigma2", "trace_cov", "grad_sq", "grad_sq_unit", "train_loss", "test_loss",
    "train_acc", "test_acc", "T", "S_sphere", "S", "p", "elr", "snr", "norm_excess",
)
#: Other scalars of summary.json copied as they are.
SCALAR_COLUMNS: tuple[str, ...] = (
    "R", "rho_theory", "rho_theory_discrete", "p_theory", "p_theory_discrete", "steps",
    "runtime_s", "n_logs", "tail_logs", "rho_drift_z", "train_loss_drift_z", "sigma2_drift_z",
    "trend_train_loss", "trend_trace_cov", "trend_rho",
)
#: Configuration fields that define a setup (runs of one setup form one grid).
SETUP_KEYS: tuple[str, ...] = ("model", "width", "dataset", "d", "loss", "head_norm", "batch_size",
                               "samples_per_label", "queue_size", "queue_every", "entropy_method")
#: Statuses of runs that have no stationary values.
_NO_RESULT = ("failed", "unfinished", "diverged")

_SECOND = {"fixed-lr": "wd", "fixed-elr": "wd", "fixed-sphere": "radius"}
_SECOND_SYM = {"wd": "λ", "radius": "ρ"}
_LR_SYM = {"fixed-lr": "η", "fixed-elr": "η̃", "fixed-sphere": "η̃"}
_NOISE_VAR = {"fixed-lr": "η·λ", "fixed-elr": "η̃", "fixed-sphere": "η̃"}


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------
def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(content, "") or (None, why) for a missing or unreadable JSON file."""
    if not path.exists():
        return None, ""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not isinstance(obj, dict):
        return None, f"unreadable {path.name}: not a JSON object"
    return obj, ""


def _last_line(path: Path, limit: int = 240) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:limit] if lines else ""


def _last_step(path: Path) -> float:
    """Last logged step of ``metrics.csv`` (NaN when absent or unreadable)."""
    try:
        m = pd.read_csv(path, usecols=["step"])
        return float(m["step"].max()) if len(m) else float("nan")
    except Exception:  # noqa: BLE001 - a half-written file is just "no step"
        return float("nan")


def _run_folders(root: Path, max_depth: int = 3) -> list[Path]:
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

    walk(root, 1)
    return found


def _num(v: Any) -> float:
    """A float, NaN for None, strings, booleans and other non-numbers."""
    if isinstance(v, bool) or v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _as_bool(values: pd.Series | Sequence[Any]) -> np.ndarray:
    """Booleans from a column that may hold bools, NaN or strings read back from CSV."""
    def one(v: Any) -> bool:
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1", "yes")
        try:
            return bool(v) if pd.notna(v) else False
        except (TypeError, ValueError):
            return False

    return np.array([one(v) for v in values], dtype=bool)


def _exclusion_reason(row: Mapping[str, Any]) -> str:
    """Why a run is left out of the fits ("" when it is usable)."""
    status = str(row.get("status", ""))
    reason = str(row.get("reason") or "").strip()
    if status == "failed":
        return "failed" + (f": {reason}" if reason else "")
    if status == "unfinished":
        return "unfinished" + (f": {reason}" if reason else "")
    if status == "diverged":
        return "diverged" + (f": {reason}" if reason else "")
    if status != "completed":
        return f"status {status!r}" + (f": {reason}" if reason else "")
    if _as_bool([row.get("interpolating")])[0]:
        return "interpolating" + (f": {reason}" if reason else "")
    if not _as_bool([row.get("stationary")])[0]:
        return "non-stationary" + (f" ({reason})" if reason else "")
    if not math.isfinite(_num(row.get("S"))):
        return "no entropy estimate (the queue was never refilled in the stationary tail)"
    return ""


def _setup_label(row: Mapping[str, Any], varying: Sequence[str]) -> str:
    def f(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    base = f"{f(row.get('model'))} w{f(row.get('width'))} {f(row.get('dataset'))} d={f(row.get('d'))}"
    extra = [f"{k}={f(row.get(k))}" for k in varying if k not in ("model", "width", "dataset", "d")]
    return base + ("" if not extra else " " + " ".join(extra))


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    r"""The tidy table of a sweep: one row per run folder, sorted by protocol, lr, wd/radius, seed.

    Columns: ``run_id`` (the folder relative to ``sweep_dir``), ``path``, the configuration
    (:data:`CONFIG_COLUMNS`, ``d`` and ``dim`` = d), ``status`` (from summary.json; without
    it ``"failed"`` when ``error.txt`` exists, its last line as the reason, else
    ``"unfinished"``), ``stationary``, ``interpolating``, ``reason``, ``message``, every value
    of :data:`VALUE_COLUMNS` with its ``_err``, :data:`SCALAR_COLUMNS`, and derived:

    - :math:`U` = ``train_loss`` (the stationary mean batch loss), ``U_err``;
    - :math:`V = \overline{\rho^2}/2` from ``rho2`` when present (else :math:`\rho^2/2`),
      ``V_err`` = ``rho2_err``/2 (else :math:`\rho\,\delta\rho`);
    - ``p`` = λ with ``p_err`` = 0 for fixed LR/ELR when the summary lacks it;
    - :math:`R = (d-1)/2`;
    - ``setup`` (the grid a run belongs to, :data:`SETUP_KEYS`), ``group`` (protocol, plus the
      setup when a protocol has several), ``exclusion_reason`` ("" for usable runs) and
      ``usable`` (:func:`usable`).

    Missing values are NaN. Raises ``NotADirectoryError`` when ``sweep_dir`` is not a folder;
    a folder without runs gives an empty table (with the columns).
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{sweep_dir}: not a folder")
    rows: list[dict[str, Any]] = []
    for folder in _run_folders(root):
        cfg, cfg_err = _read_json(folder / "config.json")
        summ, summ_err = _read_json(folder / "summary.json")
        row: dict[str, Any] = {"run_id": folder.relative_to(root).as_posix(), "path": str(folder)}
        src = {**(summ or {}), **(cfg or {})}
        for k in CONFIG_COLUMNS:
            v = src.get(k)
            row[k] = v if isinstance(v, str) else _num(v)
        row["d"] = _num((cfg or {}).get("d", (summ or {}).get("d")))
        if summ is not None:
            row["status"] = str(summ.get("status", "completed"))
            row["message"] = str(summ.get("message") or "")
            row["reason"] = str(summ.get("reason") or "")
            if row["status"] == "diverged" and row["message"]:
                row["reason"] = row["message"]
            row["stationary"] = bool(summ.get("stationary", False)) and row["status"] == "completed"
            row["interpolating"] = bool(summ.get("interpolating", False))
            for k in VALUE_COLUMNS:
                row[k] = _num(summ.get(k))
                row[k + "_err"] = _num(summ.get(k + "_err"))
            for k in SCALAR_COLUMNS:
                row[k] = _num(summ.get(k))
        else:
            row["message"] = ""
            row["stationary"] = False
            row["interpolating"] = False
            if (folder / "error.txt").exists():
                row["status"] = "failed"
                row["reason"] = _last_line(folder / "error.txt") or "error.txt"
            else:
                row["status"] = "unfinished"
                last = _last_step(folder / "metrics.csv")
                it = row.get("iters")
                row["reason"] = ("no summary.json; " + (f"last logged step {int(last)}" if math.isfinite(last)
                                                        else "nothing logged")
                                 + (f" of {int(it)}" if isinstance(it, float) and math.isfinite(it) else ""))
            for k in VALUE_COLUMNS:
                row[k] = row[k + "_err"] = float("nan")
            for k in SCALAR_COLUMNS:
                row[k] = float("nan")
        if summ_err or cfg_err:
            row["status"] = "failed" if summ is None else row["status"]
            row["reason"] = "; ".join(x for x in (row.get("reason", ""), summ_err, cfg_err) if x)
        rows.append(row)
    base_cols = ["run_id", "path", *CONFIG_COLUMNS, "d", "status", "stationary", "interpolating",
                 "reason", "message"]
    val_cols = [c for k in VALUE_COLUMNS for c in (k, k + "_err")]
    df = pd.DataFrame(rows, columns=base_cols + val_cols + list(SCALAR_COLUMNS))
    return _derive(df)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    """Derived columns of :func:`load_runs` (U, V, p, R, dim, setup, group, usable)."""
    df = df.copy()
    for c in ("lr", "wd", "radius", "d", "rho", "rho_err", "rho2", "rho2_err", "p", "p_err", "R"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["dim"] = df["d"]
    df["R"] = df["R"].where(df["R"].notna(), (df["d"] - 1.0) / 2.0)
    df["U"] = df["train_loss"]
    df["U_err"] = df["train_loss_err"]
    has2 = df["rho2"].notna()
    df["V"] = np.where(has2, df["rho2"] / 2.0, df["rho"] ** 2 / 2.0)
    df["V_err"] = np.where(has2, df["rho2_err"] / 2.0, df["rho"] * df["rho_err"])
    sph = df["protocol"] == "fixed-sphere"
    fill_p = (~sph) & df["p"].isna() & df["status"].eq("completed")
    df.loc[fill_p, "p"] = df.loc[fill_p, "wd"]
    df.loc[fill_p, "p_err"] = 0.0
    known = df[[isinstance(p, str) for p in df["protocol"]]]
    varying = [k for k in SETUP_KEYS if k in known.columns and known[k].astype(str).nunique(dropna=False) > 1]
    df["setup"] = [_setup_label(r, varying) if isinstance(r.get("protocol"), str) else ""
                   for r in df.to_dict("records")]
    # group: protocol, plus the setup when the protocol has several
    groups = []
    n_setups = df.groupby("protocol")["setup"].nunique().to_dict() if len(df) else {}
    for p, s in zip(df["protocol"], df["setup"]):
        if not isinstance(p, str):
            groups.append("")
        elif n_setups.get(p, 1) > 1:
            slug = "-".join("".join(ch if ch.isalnum() or ch == "." else " " for ch in s).split())
            groups.append(f"{p}_{slug}")
        else:
            groups.append(p)
    df["group"] = groups
    df["exclusion_reason"] = [_exclusion_reason(r) for r in df.to_dict("records")]
    df["usable"] = usable(df).to_numpy()
    order = {p: k for k, p in enumerate(_an.PROTOCOLS)}
    df["_o"] = [order.get(p, 9) if isinstance(p, str) else 10 for p in df["protocol"]]
    df = df.sort_values(["_o", "group", "lr", "wd", "radius", "seed", "run_id"],
                        na_position="last", kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def usable(df: pd.DataFrame) -> pd.Series:
    """Boolean mask (aligned with ``df``) of the runs that enter fits.

    Usable: ``status == "completed"``, ``stationary`` true, ``interpolating`` false and a
    finite entropy ``S``. Works on a table read back from ``runs.csv`` (string booleans).
    """
    if len(df) == 0:
        return pd.Series([], dtype=bool, index=df.index)
    status = df["status"].astype(str).to_numpy() if "status" in df else np.full(len(df), "completed")
    stat = _as_bool(df["stationary"]) if "stationary" in df else np.zeros(len(df), bool)
    interp = _as_bool(df["interpolating"]) if "interpolating" in df else np.zeros(len(df), bool)
    S = pd.to_numeric(df["S"], errors="coerce").to_numpy(float) if "S" in df else np.full(len(df), np.nan)
    ok = (status == "completed") & stat & ~interp & np.isfinite(S)
    return pd.Series(ok, index=df.index, name="usable")


def excluded_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs left out of every fit, with the reason (non-stationary, interpolating,
    diverged, failed, unfinished, no entropy estimate)."""
    cols = ["run_id", "group", "protocol", "lr", "wd", "radius", "seed", "status", "stationary",
            "interpolating", "exclusion_reason"]
    if len(df) == 0:
        return pd.DataFrame(columns=cols)
    ex = df[~usable(df)].copy()
    if "exclusion_reason" not in ex:
        ex["exclusion_reason"] = [_exclusion_reason(r) for r in ex.to_dict("records")]
    return ex[[c for c in cols if c in ex.columns]].reset_index(drop=True)


def sweep_groups(df: pd.DataFrame, *, only_usable: bool = True) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """``(group, protocol, rows)`` for each grid of the sweep, in protocol order.

    ``only_usable``: the rows are the usable runs of the group (groups with none are still
    yielded, with an empty frame).
    """
    if len(df) == 0 or "group" not in df:
        return
    ok = usable(df)
    for g in pd.unique(df["group"]):
        if not g:
            continue
        sel = df["group"] == g
        protocol = str(df.loc[sel, "protocol"].iloc[0])
        rows = df[sel & ok] if only_usable else df[sel]
        yield str(g), protocol, rows.reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# Fitting helpers
# ---------------------------------------------------------------------------------------
def _second(protocol: str) -> str:
    return _SECOND[protocol]


def _finite(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    vals = df[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return np.all(np.isfinite(vals), axis=1)


def _analysis_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in the column layout of :mod:`sgdthermo.analysis` (usable rows: stationary)."""
    out = rows.copy()
    out["dim"] = out["d"]
    out["stationary"] = True
    return out.reset_index(drop=True)


def _col(df: pd.DataFrame, c: str) -> np.ndarray:
    if c not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[c], errors="coerce").to_numpy(float)


# ---------------------------------------------------------------------------------------
# V1: radius (fixed sphere: effective pressure)
# ---------------------------------------------------------------------------------------
#: Network tolerances of V1 (passed to :func:`sgdthermo.analysis.check_radius`).
RADIUS_TOLERANCES: dict[str, float] = {"median_tol": 0.05, "bias_tol": 0.05, "rel_floor": 0.05,
                                       "z_thr": 3.0, "max_frac": 0.1}


def _radius(df: pd.DataFrame, **tol: float) -> tuple[pd.DataFrame, list[tuple[str, _an.Verdict]]]:
    kw = {**RADIUS_TOLERANCES, **tol}
    tables, verdicts = [], []
    for g, protocol, rows in sweep_groups(df):
        sph = protocol == "fixed-sphere"
        m, e, sde, dis = (("p", "p_err", "p_theory", "p_theory_discrete") if sph
                          else ("rho", "rho_err", "rho_theory", "rho_theory_discrete"))
        rows = rows[_finite(rows, [m, sde, dis])] if len(rows) else rows
        frame = _analysis_frame(rows)
        if len(frame) == 0:
            frame = pd.DataFrame({"protocol": [protocol], "dim": [np.nan], "stationary": [False],
                                  m: [np.nan], sde: [np.nan], dis: [np.nan]})
        v = _not_tested(_an.check_radius(frame, protocol, **kw), f"{m} and its predictions")
        verdicts.append((g, v))
        if v.table is not None and len(v.table) == len(rows):
            t = v.table.copy()
            t.insert(0, "run_id", rows["run_id"].to_numpy())
            t.insert(1, "group", g)
            t.insert(2, "quantity", "p" if sph else "rho")
            t["seed"] = rows["seed"].to_numpy()
            tables.append(t)
    cols = ["run_id", "group", "quantity", "protocol", "dim", "lr", "wd", "radius", "seed", "T",
            "measured", "measured_err", "sde", "discrete", "rel_sde", "z_sde", "rel_discrete",
            "z_discrete", "discrepant"]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=cols)
    return table[[c for c in cols if c in table.columns]], verdicts


def radius_table(df: pd.DataFrame, **tolerances: float) -> pd.DataFrame:
    r"""V1 per run: measured ρ (fixed sphere: p) against the SDE and discrete-time predictions.

    One row per usable run with finite predictions: ``measured`` ± ``measured_err``, ``sde``,
    ``discrete``, the relative errors :math:`r = m/\hat m - 1` (``rel_sde``, ``rel_discrete``)
    and z-scores :math:`z = (m-\hat m)/\delta m` (``z_sde``, ``z_discrete``), ``discrepant``
    (:math:`|z| > 3` and :math:`|r|` > 5 % against the discrete prediction). Built with
    :func:`sgdthermo.analysis.check_radius`; ``quantity`` is "rho" or "p".
    """
    return _radius(df, **tolerances)[0]


def radius_verdicts(df: pd.DataFrame, **tolerances: float) -> pd.DataFrame:
    """V1 verdict per group (:func:`sgdthermo.analysis.verdicts_frame` columns plus ``group``).

    Pass (discrete prediction, :func:`sgdthermo.analysis.check_radius` with
    :data:`RADIUS_TOLERANCES`): |mean r| ≤ max(5 %, 3 SE), median |r| ≤ max(5 %, 2 × median
    error bar), at most 10 % of the runs discrepant; at least 3 usable runs.
    """
    vs = _radius(df, **tolerances)[1]
    return _verdict_rows(vs)


def _not_tested(v: _an.Verdict, what: str) -> _an.Verdict:
    """Reword a "too few rows" verdict of :mod:`sgdthermo.analysis` as NOT TESTED."""
    if v.details.get("reason") != "too few rows":
        return v
    n, need = v.details.get("n_used", 0), v.summary.split("need ≥ ")[-1].split(")")[0]
    v.summary = f"{v.protocol} {v.name}: NOT TESTED — {n} usable run(s) with {what} (need ≥ {need})"
    v.headline = f"{n} usable run(s), need ≥ {need}"
    v.excluded = pd.DataFrame()
    return v


def _verdict_rows(vs: Sequence[tuple[str, _an.Verdict]]) -> pd.DataFrame:
    if not vs:
        return pd.DataFrame(columns=["group", "protocol", "check", "name", "verdict", "passed", "n_used",
                                     "metric", "value", "stderr", "target", "tolerance", "headline", "summary"])
    frame = _an.verdicts_frame([v for _, v in vs])
    frame.insert(0, "group", [g for g, _ in vs])
    frame.insert(4, "verdict", ["NOT TESTED" if v.details.get("reason") == "too few rows"
                                else ("PASS" if v.passed else "FAIL") for _, v in vs])
    return frame.drop(columns=["n_excluded"])


# ---------------------------------------------------------------------------------------
# Gradient noise and temperature
# ---------------------------------------------------------------------------------------
def _noise_variable(rows: pd.DataFrame, protocol: str) -> np.ndarray:
    """h = η·λ (fixed LR) or η̃ (fixed ELR, fixed sphere)."""
    lr = _col(rows, "lr")
    return lr * _col(rows, "wd") if protocol == "fixed-lr" else lr


def noise_table(df: pd.DataFrame) -> pd.DataFrame:
    r"""Power laws of σ² and T against the hyperparameter they depend on, per group.

    For q ∈ {σ², T} and h = ηλ (fixed LR) or η̃ (fixed ELR, fixed sphere), over the usable
    runs: :math:`\log q = c + s\log h` (``slope`` s ± ``slope_err``, ``intercept`` c, ``r2``),
    weighted by the relative errors :math:`\delta q/q` when all are finite (errors Birge-scaled).
    When the second hyperparameter z (λ; fixed sphere ρ) takes ≥ 2 values, also
    :math:`\log q = c + s'\log h + t\log z` (``other_slope`` t ± ``other_slope_err``): t = 0 when
    q depends on h only (the paper: σ² depends on ηλ for fixed LR and on η̃ otherwise).
    With the theory's T (fixed ELR/sphere :math:`T = \tilde\eta\sigma^2/2`, fixed LR
    :math:`T = \sqrt{\eta\lambda\sigma^2/(2(d-1))}`) the slopes of T are 1 + s and (1 + s)/2.
    Fewer than 3 distinct h: a row with NaN slopes and a ``note``.
    """
    rows_out: list[dict[str, Any]] = []
    for g, protocol, rows in sweep_groups(df):
        sec = _second(protocol)
        for q in ("sigma2", "T"):
            rec: dict[str, Any] = {"group": g, "protocol": protocol, "setup": rows["setup"].iloc[0] if len(rows) else "",
                                   "quantity": q, "variable": _NOISE_VAR[protocol], "other": _SECOND_SYM[sec]}
            sel = _finite(rows, [q, "lr"]) if len(rows) else np.zeros(0, bool)
            r = rows[sel]
            h = _noise_variable(r, protocol)
            val = _col(r, q)
            good = (h > 0) & (val > 0)
            h, val, r = h[good], val[good], r[good]
            err = _col(r, q + "_err") / val
            n = int(len(val))
            nh = int(len(np.unique(np.round(np.log(h), 9)))) if n else 0
            rec.update({"n": n, "n_distinct": nh})
            nan = float("nan")
            rec.update({k: nan for k in ("slope", "slope_err", "intercept", "intercept_err", "r2",
                                         "chi2_red", "other_slope", "other_slope_err")})
            rec["weighted"] = False
            if nh < 3:
                rec["note"] = f"underdetermined: {nh} distinct value(s) of {_NOISE_VAR[protocol]} (need ≥ 3)"
                rows_out.append(rec)
                continue
            lh, lq = np.log(h), np.log(val)
            fit = _an.linear_fit(np.column_stack([np.ones(n), lh]), lq, err)
            se = np.sqrt(np.clip(np.diag(fit["cov"]), 0, None))
            rec.update({"slope": float(fit["coef"][1]), "slope_err": float(se[1]),
                        "intercept": float(fit["coef"][0]), "intercept_err": float(se[0]),
                        "r2": fit["r2"], "chi2_red": fit["chi2_red"], "weighted": fit["weighted"],
                        "note": ""})
            z = _col(r, sec)
            if np.all(z > 0) and len(np.unique(np.round(np.log(z), 9))) >= 2 and n >= 4:
                X = np.column_stack([np.ones(n), lh, np.log(z)])
                if np.linalg.matrix_rank(X) == 3:
                    f2 = _an.linear_fit(X, lq, err)
                    rec["other_slope"] = float(f2["coef"][2])
                    rec["other_slope_err"] = float(np.sqrt(max(f2["cov"][2, 2], 0.0)))
            rows_out.append(rec)
    cols = ["group", "protocol", "setup", "quantity", "variable", "n", "n_distinct", "slope", "slope_err",
            "intercept", "intercept_err", "r2", "chi2_red", "weighted", "other", "other_slope",
            "other_slope_err", "note"]
    return pd.DataFrame(rows_out, columns=cols)


# ---------------------------------------------------------------------------------------
# V3: Maxwell relations
# ---------------------------------------------------------------------------------------
#: Defaults of :func:`maxwell_test`.
MAXWELL_DEFAULTS: dict[str, float] = {"tol": 0.10, "z_thr": 3.0, "min_r2": 0.9, "min_runs": 6}


def _maxwell(df: pd.DataFrame, *, tol: float = 0.10, z_thr: float = 3.0, min_r2: float = 0.9,
             min_runs: int = 6) -> tuple[pd.DataFrame, dict[str, _an.Verdict], list[str]]:
    """(table, {group: check_maxwell verdict}, notes on groups not fitted)."""
    out: list[dict[str, Any]] = []
    verdicts: dict[str, _an.Verdict] = {}
    notes: list[str] = []
    for g, protocol, rows in sweep_groups(df):
        sec = _second(protocol)
        if len(rows):
            rows = rows[_finite(rows, ["lr", sec, "S"])]
            rows = rows[(_col(rows, "lr") > 0) & (_col(rows, sec) > 0)]
        n = len(rows)
        if n < min_runs:
            notes.append(f"{g}: V3 not tested — {n} usable run(s) with an entropy estimate (need ≥ {min_runs})")
            continue
        frame = _analysis_frame(rows)
        v = _an.check_maxwell(frame, protocol, main_tol=tol, z_thr=z_thr, min_r2=min_r2, min_rows=min_runs)
        verdicts[g] = v
        d = float(frame["dim"].iloc[0])
        R = (d - 1.0) / 2.0
        x, y = np.log(_col(rows, "lr")), np.log(_col(rows, sec))
        rec: dict[str, Any] = {"group": g, "protocol": protocol, "setup": rows["setup"].iloc[0],
                               "d": d, "R": R, "n": n, "n_lr": int(len(np.unique(np.round(x, 9)))),
                               "n_y": int(len(np.unique(np.round(y, 9)))), "y": f"log {sec}",
                               "relation": "", "tolerance": tol, "z_thr": z_thr, "min_r2": min_r2}
        targets = theory.maxwell_coefficient_targets(protocol, d)
        fit = v.extras.get("fit")
        if fit is None:
            rec.update({"fitted": False, "verdict": "UNDERDETERMINED", "passed": False,
                        "note": f"underdetermined: {rec['n_lr']} × {rec['n_y']} distinct values of "
                                f"(lr, {sec}); the quadratic fit needs ≥ 3 on each axis"})
            for k, t in enumerate(targets, 1):
                rec[f"combo{k}_name"], rec[f"combo{k}_target"] = t.name, t.target
            out.append(rec)
            continue
        det = v.details
        rec.update({"fitted": True, "weighted": fit.weighted, "relation": det["relation"]})
        for k, (a, s) in enumerate(zip(fit.coef, fit.stderr)):
            rec[f"a{k}"], rec[f"a{k}_err"] = float(a), float(s)
        rec.update({"r2": fit.r2, "chi2_red": fit.chi2_red, "resid_std": fit.resid_std})
        all_ok = True
        for k, t in enumerate(targets, 1):
            val, err = fit.combination(np.asarray(t.weights, float) / t.scale)
            tk = max(z_thr * err, tol) if np.isfinite(err) else tol
            ok = bool(abs(val - t.target) <= tk)
            all_ok &= ok
            rec.update({f"combo{k}_name": t.name, f"combo{k}": val, f"combo{k}_err": err,
                        f"combo{k}_target": t.target,
                        f"combo{k}_z": (val - t.target) / err if err > 0 else float("nan"),
                        f"combo{k}_tolerance": tk, f"combo{k}_pass": ok})
        rec.update({"centre": det["centre_value"], "centre_err": det["centre_stderr"],
                    "centre_tolerance": det["centre_tolerance"],
                    "centre_pass": bool(abs(det["centre_value"] - 1.0) <= det["centre_tolerance"]),
                    "r2_pass": bool(fit.r2 >= min_r2),
                    "max_rel_err": det["max_rel_err"], "mean_rel_err": det["mean_rel_err"]})
        # split of the main combination: radius term (d−1)·log ρ vs the sphere entropy S_u
        Su = _col(rows, "S_sphere")
        if np.all(np.isfinite(Su)):
            err = _col(rows, "S_err") if fit.weighted else None
            w = np.asarray(targets[0].weights, float) / targets[0].scale
            f_sph = _an.quadratic_fit(x, y, Su, err)
            f_rad = _an.quadratic_fit(x, y, _col(rows, "S") - Su, err)
            rec["main_sphere_part"] = f_sph.combination(w)[0]
            rec["main_radius_part"] = f_rad.combination(w)[0]
        passed = bool(v.passed and all_ok)
        rec.update({"passed": passed, "verdict": "PASS" if passed else "FAIL"})
        why = []
        for k in range(1, 4):
            if not rec[f"combo{k}_pass"]:
                why.append(f"{rec[f'combo{k}_name']} = {rec[f'combo{k}']:.3f} off target "
                           f"{rec[f'combo{k}_target']:g} by more than {rec[f'combo{k}_tolerance']:.3f}")
        if not rec["centre_pass"]:
            why.append(f"relation at the grid centre {rec['centre']:.3f} off 1 by more than {rec['centre_tolerance']:.3f}")
        if not rec["r2_pass"]:
            why.append(f"R² = {fit.r2:.3f} < {min_r2}")
        notes_g = []
        if fit.n == 6:
            notes_g.append("exactly determined (6 runs): no residual degrees of freedom"
                           + ("; errors from S_err alone" if fit.weighted else "; no error estimate"))
        rec["note"] = "; ".join(why + notes_g)
        out.append(rec)
    cols = ["group", "protocol", "setup", "d", "R", "n", "n_lr", "n_y", "y", "fitted", "weighted", "relation"]
    cols += [c for k in range(6) for c in (f"a{k}", f"a{k}_err")]
    cols += ["r2", "chi2_red", "resid_std"]
    cols += [c for k in range(1, 4) for c in (f"combo{k}_name", f"combo{k}", f"combo{k}_err", f"combo{k}_target",
                                             f"combo{k}_z", f"combo{k}_tolerance", f"combo{k}_pass")]
    cols += ["centre", "centre_err", "centre_tolerance", "centre_pass", "r2_pass", "max_rel_err",
             "mean_rel_err", "main_radius_part", "main_sphere_part", "tolerance", "z_thr", "min_r2",
             "passed", "verdict", "note"]
    return pd.DataFrame(out, columns=cols), verdicts, notes


def maxwell_test(df: pd.DataFrame, *, tol: float = 0.10, z_thr: float = 3.0, min_r2: float = 0.9,
                 min_runs: int = 6) -> pd.DataFrame:
    r"""V3: the Maxwell relation from a quadratic fit of the entropy, one row per group.

    Over the usable runs of a group (≥ ``min_runs``), with x = log lr (η or η̃) and
    y = log λ (fixed sphere: log ρ), fit
    :math:`S = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`
    (:func:`sgdthermo.analysis.quadratic_fit` via :func:`sgdthermo.analysis.check_maxwell`,
    weighted by ``S_err`` when all are finite, Birge-scaled errors) and compare the normalised
    combinations of :func:`sgdthermo.theory.maxwell_coefficient_targets` with their targets,
    R = (d−1)/2 with the runs' d:

    - fixed LR (:math:`\partial S/\partial\log\eta - \partial S/\partial\log\lambda = R`):
      ``combo1`` = (a1−a2)/R → 1, ``combo2`` = (2a3−a4)/R → 0, ``combo3`` = (a4−2a5)/R → 0;
    - fixed ELR (:math:`\partial S/\partial\log\lambda = -R`): a2/(−R) → 1, a4/R → 0, a5/R → 0;
    - fixed sphere (:math:`\partial S/\partial\log\rho = d-1`): a2/(d−1) → 1, a4/(d−1) → 0,
      a5/(d−1) → 0.

    Each combination c with standard error σ passes when :math:`|c - \text{target}| \le
    \max(z_{thr}\sigma, \text{tol})` (3σ, 10 %). The pointwise relation (target 1) from the
    fitted derivatives is evaluated at every run: ``max_rel_err`` and ``mean_rel_err``; at the
    grid centroid (``centre`` ± ``centre_err``, where the data are: combo1 alone is a
    derivative at lr = λ = 1, often far outside the grid). PASS = every combination and the
    centre within tolerance and :math:`R^2 \ge` ``min_r2``. Fewer than 3 distinct values on an
    axis: ``verdict`` UNDERDETERMINED, no coefficients.

    ``main_radius_part`` and ``main_sphere_part`` split combo1 into the contribution of the
    radius term (d−1)·log ρ and of the sphere entropy :math:`S_u`: for networks S is
    dominated by the radius term, and the estimate of :math:`S_u` is biased in high d
    (docs/entropy.md); the test assumes the bias is roughly constant across the grid.
    """
    return _maxwell(df, tol=tol, z_thr=z_thr, min_r2=min_r2, min_runs=min_runs)[0]


# ---------------------------------------------------------------------------------------
# V2: potentials (proxy)
# ---------------------------------------------------------------------------------------
def _potentials(df: pd.DataFrame, *, min_runs: int = 4) -> list[tuple[str, _an.Verdict]]:
    vs = []
    for g, protocol, rows in sweep_groups(df):
        need = ["T", "U", "S", "radius", "V"] if protocol == "fixed-sphere" else ["T", "U", "S", "V", "p"]
        rows = rows[_finite(rows, need)] if len(rows) else rows
        frame = _analysis_frame(rows)
        if len(frame) == 0:
            frame = pd.DataFrame({"protocol": [protocol], "dim": [np.nan], "stationary": [False],
                                  **{c: [np.nan] for c in need}})
        vs.append((g, _not_tested(_an.check_potentials(frame, protocol, min_rows=min_runs), ", ".join(need))))
    return vs


def potentials_check(df: pd.DataFrame, *, min_runs: int = 4) -> pd.DataFrame:
    r"""V2 per group with U = training loss (:func:`sgdthermo.analysis.check_potentials`).

    Gibbs :math:`\Phi_i(j) = U_j - T_iS_j + p_iV_j` with p = λ (fixed LR/ELR), Helmholtz
    :math:`U_j - T_iS_j` on the same sphere (fixed sphere); pass when ≥ 90 % of the runs
    minimise their own potential within 3σ. For networks the energy of the Gibbs distribution
    is an implicit potential, not the training loss (the paper, Section 6.1), so this is a
    proxy, reported for information. Columns of :func:`sgdthermo.analysis.verdicts_frame`
    plus ``group`` and ``verdict`` (PASS, FAIL, NOT TESTED with < ``min_runs`` runs).
    """
    return _verdict_rows(_potentials(df, min_runs=min_runs))


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------
def _fig_helpers():
    from . import figures as F  # lazy: matplotlib only when figures are drawn

    return F


def _lognorm(values: np.ndarray):
    from matplotlib.colors import LogNorm, Normalize

    v = values[np.isfinite(values) & (values > 0)]
    if v.size and v.max() > v.min():
        return LogNorm(vmin=v.min(), vmax=v.max())
    top = float(v.max()) if v.size else 1.0
    return Normalize(0.0, 2.0 * top)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _colorbar(ax, norm, label: str, cmap: Any = "viridis") -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    from matplotlib.ticker import NullFormatter

    fig = ax.get_figure()
    if fig is not None:
        cm = colormaps[cmap] if isinstance(cmap, str) else cmap
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cm), ax=ax, pad=0.01, label=label)
        vmin, vmax = getattr(norm, "vmin", None), getattr(norm, "vmax", None)
        if vmin and vmax and vmin > 0 and vmax / vmin >= 10:  # minor labels only within a decade
            cb.ax.yaxis.set_minor_formatter(NullFormatter())


def _panel_noise(ax, rows: pd.DataFrame, protocol: str, q: str, fit: Mapping[str, Any] | None) -> None:
    """σ² (or T) against h = ηλ or η̃, coloured by the second hyperparameter, with the power law."""
    from matplotlib import colormaps

    sec = _second(protocol)
    h, val, err, z = _noise_variable(rows, protocol), _col(rows, q), _col(rows, q + "_err"), _col(rows, sec)
    ok = np.isfinite(h) & np.isfinite(val) & (h > 0) & (val > 0)
    label = "σ²" if q == "sigma2" else "T"
    if not ok.any():
        _empty(ax, f"{protocol}: no usable run with {label}")
        return
    norm = _lognorm(z[ok])
    cmap = colormaps["viridis"]
    ax.errorbar(h[ok], val[ok], yerr=np.where(np.isfinite(err[ok]), err[ok], 0.0), fmt="none",
                ecolor="0.6", lw=0.8, zorder=1)
    ax.scatter(h[ok], val[ok], c=z[ok], cmap=cmap, norm=norm, s=22, zorder=2)
    title = f"{label} vs {_NOISE_VAR[protocol]}"
    if fit is not None and np.isfinite(fit.get("slope", np.nan)):
        hs = np.geomspace(h[ok].min(), h[ok].max(), 50)
        ax.plot(hs, np.exp(fit["intercept"]) * hs ** fit["slope"], "k--", lw=1,
                label=f"∝ h^{fit['slope']:.2f}±{fit['slope_err']:.2f}")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"h = {_NOISE_VAR[protocol]}")
    ax.set_ylabel(label)
    ax.set_title(f"{protocol}: {title}", fontsize=9)
    _colorbar(ax, norm, _SECOND_SYM[sec])


def _panel_lines(ax, rows: pd.DataFrame, protocol: str, q: str, along: str, *,
                 fit: Any = None, excluded: pd.DataFrame | None = None, logy: bool = False,
                 ylabel: str | None = None) -> None:
    """q against ``along`` (lr or the second axis), one line per value of the other axis.

    With ``fit`` (a QuadraticFit of S over log lr, log y) the lines are the fitted surface
    and the data are points; otherwise the points are joined. Excluded runs: grey crosses.
    """
    from matplotlib import colormaps

    F = _fig_helpers()
    sec = _second(protocol)
    other = sec if along == "lr" else "lr"
    xv, ov, val, err = _col(rows, along), _col(rows, other), _col(rows, q), _col(rows, q + "_err")
    ok = np.isfinite(xv) & np.isfinite(ov) & np.isfinite(val) & (xv > 0) & (ov > 0)
    sym = _LR_SYM[protocol] if along == "lr" else _SECOND_SYM[sec]
    osym = _SECOND_SYM[sec] if along == "lr" else _LR_SYM[protocol]
    if not ok.any():
        _empty(ax, f"{protocol}: no usable run with {q}")
        return
    xv, ov, val, err = xv[ok], ov[ok], val[ok], err[ok]
    grid = F._grid_axes(ov)
    norm = _lognorm(grid)
    cmap = colormaps["viridis"]
    idx = F._index_on(grid, ov)
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
        ex, ey = _col(excluded, along), _col(excluded, q)
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
        _colorbar(ax, norm, osym)


def _panel_relation(ax, verdict: _an.Verdict | None, protocol: str, tol: float) -> None:
    """The fitted relation at each run against lr, one line per second-axis value, with ±tol."""
    from matplotlib import colormaps

    F = _fig_helpers()
    if verdict is None or verdict.table is None or "relation" not in verdict.table:
        _empty(ax, verdict.summary if verdict is not None else f"{protocol}: V3 not tested (too few usable runs)")
        return
    t = verdict.table
    sec = _second(protocol)
    lr, sv, rel = _col(t, "lr"), _col(t, sec), _col(t, "relation")
    grid = F._grid_axes(sv)
    norm = _lognorm(grid)
    cmap = colormaps["viridis"]
    idx = F._index_on(grid, sv)
    for k, gv in enumerate(grid):
        sel = idx == k
        o = np.argsort(lr[sel])
        ax.plot(lr[sel][o], rel[sel][o], "o-", ms=3, lw=1, color=cmap(norm(gv)))
    ax.axhspan(1 - tol, 1 + tol, color="0.9", zorder=0, label=f"1 ± {tol:g}")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(_LR_SYM[protocol])
    ax.set_ylabel("fitted relation (target 1)")
    ax.set_title(f"V3 {verdict.details.get('relation', '')}", fontsize=9)
    ax.legend(fontsize=8)
    if grid.size > 1:
        _colorbar(ax, norm, _SECOND_SYM[sec])


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
    v = np.concatenate([_col(rows, c) for c in cols]) if len(rows) else np.zeros(0)
    return bool(np.any(np.isfinite(v) & (v > 0)))


def plot_radius(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """V1 (the paper's Figs. 2c, 5–10c and 12): measured ρ (fixed sphere: p) against the SDE and
    discrete-time predictions on log–log axes with y = x, and the relative errors against lr.
    Excluded runs are grey crosses."""
    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    rows = _radius_frame(all_rows)
    fig = F._new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    if len(rows) and _has_radius_data(rows, protocol):
        ok = rows["stationary"].to_numpy(bool)
        F._panel_radius(ax1, rows, ok, protocol)
        F._panel_radius_error(ax2, rows, ok, protocol)
    else:
        _empty(ax1, f"{group}: no completed run with a radius")
        ax2.set_axis_off()
    fig.suptitle(f"{group}: V1", fontsize=11)
    return F._save(fig, path, dpi or F.DPI)


def plot_noise(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """Gradient noise and temperature (the paper's Figs. 2a–b, 5–10a–b): σ² and T against
    h = ηλ (fixed LR) or η̃ with the power-law fits, and T against lr per second-axis value."""
    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    rows = all_rows[usable(all_rows).to_numpy()]
    nt = noise_table(df)
    fits = {r["quantity"]: r for r in nt[nt["group"] == group].to_dict("records")}
    fig = F._new_figure(16, 4.2)
    a1, a2, a3 = fig.subplots(1, 3)
    _panel_noise(a1, rows, protocol, "sigma2", fits.get("sigma2"))
    _panel_noise(a2, rows, protocol, "T", fits.get("T"))
    _panel_lines(a3, rows, protocol, "T", "lr", logy=True, ylabel="temperature T")
    fig.suptitle(f"{group}: gradient noise σ² = ρ² tr Σ/(d−1) and temperature", fontsize=11)
    return F._save(fig, path, dpi or F.DPI)


def plot_entropy(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                 verdict: _an.Verdict | None = None) -> Path:
    """S against each hyperparameter with the fitted quadratic surface (the paper's Figs. 2e–f):
    S vs lr (one line per λ or ρ) and S vs λ or ρ (one line per lr). Excluded runs: crosses."""
    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    ok = usable(all_rows).to_numpy()
    rows, ex = all_rows[ok], all_rows[~ok]
    if verdict is None:
        verdict = _maxwell(df)[1].get(group)
    fit = verdict.extras.get("fit") if verdict is not None else None
    fig = F._new_figure(13, 4.5)
    a1, a2 = fig.subplots(1, 2)
    _panel_lines(a1, rows, protocol, "S", "lr", fit=fit, excluded=ex, ylabel="entropy S")
    _panel_lines(a2, rows, protocol, "S", _second(protocol), fit=fit, excluded=ex, ylabel="entropy S")
    r2 = f", quadratic fit R² = {fit.r2:.4f}" if fit is not None else ", no quadratic fit"
    fig.suptitle(f"{group}: total entropy S = S_u + (d−1) log ρ{r2}", fontsize=11)
    return F._save(fig, path, dpi or F.DPI)


def plot_maxwell(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                 verdict: _an.Verdict | None = None, tol: float = 0.10) -> Path:
    """V3 over the grid: the fitted, normalised Maxwell relation (target 1) as a heat map
    (:func:`sgdthermo.figures`'s panel) and against lr with the ±tol band."""
    F = _fig_helpers()
    _, protocol = _group_rows(df, group)
    if verdict is None:
        verdict = _maxwell(df)[1].get(group)
    fig = F._new_figure(11, 4.3)
    a1, a2 = fig.subplots(1, 2)
    if verdict is not None:
        F._panel_maxwell(a1, verdict, protocol)
    else:
        _empty(a1, f"{group}: V3 not tested (fewer than 6 usable runs)")
    _panel_relation(a2, verdict, protocol, tol)
    return F._save(fig, path, dpi or F.DPI)


_STATUS_CODE = {"failed": "fail", "unfinished": "unf", "diverged": "div"}


def _status_code(row: Mapping[str, Any]) -> str:
    st = str(row.get("status"))
    if st in _STATUS_CODE:
        return _STATUS_CODE[st]
    if _as_bool([row.get("interpolating")])[0]:
        return "int"
    if not _as_bool([row.get("stationary")])[0]:
        return "ns"
    return "noS"


def plot_heatmaps(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None) -> Path:
    """Heat maps over the grid of the stationary train/test loss, train/test accuracy and ρ
    (fixed sphere: the effective pressure p), usable runs averaged over seeds. Cells without a
    usable run are grey and labelled: ns (non-stationary), int (interpolating), div, fail,
    unf (unfinished), noS (no entropy)."""
    from matplotlib import colormaps

    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    sec = _second(protocol)
    lr, sv = _col(all_rows, "lr"), _col(all_rows, sec)
    fig = F._new_figure(22, 4.2)
    panels = [("train_loss", "train loss U", "viridis"), ("test_loss", "test loss", "viridis"),
              ("train_acc", "train accuracy", "magma"), ("test_acc", "test accuracy", "magma"),
              ("p", "effective pressure p", "cividis") if protocol == "fixed-sphere"
              else ("rho", "radius ρ", "cividis")]
    axes = fig.subplots(1, len(panels))
    have = np.isfinite(lr) & np.isfinite(sv) & (lr > 0) & (sv > 0)
    if not have.any():
        for ax in axes:
            _empty(ax, f"{group}: no grid")
        return F._save(fig, path, dpi or F.DPI)
    gx, gy = F._grid_axes(lr[have]), F._grid_axes(sv[have])
    ix = np.full(len(all_rows), -1)
    iy = np.full(len(all_rows), -1)
    ix[have], iy[have] = F._index_on(gx, lr[have]), F._index_on(gy, sv[have])
    ok = usable(all_rows).to_numpy() & have
    records = all_rows.to_dict("records")
    for ax, (q, title, cm) in zip(axes, panels):
        img = np.full((len(gy), len(gx)), np.nan)
        vals = _col(all_rows, q)
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
        F._tick_labels(ax, gx, "x")
        F._tick_labels(ax, gy, "y")
        ax.set_xlabel(_LR_SYM[protocol])
        ax.set_ylabel(_SECOND_SYM[sec])
        ax.set_title(title, fontsize=9)
        if np.isfinite(img).any():
            fig.colorbar(im, ax=ax, pad=0.01)
    fig.suptitle(f"{group}: stationary values over the grid (grey: no usable run)", fontsize=11)
    return F._save(fig, path, dpi or F.DPI)


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

    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    sec = _second(protocol)
    fig = F._new_figure(18, 4.2)
    axes = fig.subplots(1, 4)
    panels = [("train_loss", "train loss", True), ("rho_mean", "radius ρ", False),
              ("sigma2", "σ²", True), ("test_acc", "test accuracy", False)]
    lr, sv = _col(all_rows, "lr"), _col(all_rows, sec)
    norm = _lognorm(lr)
    cmap = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)))  # no pale yellow
    styles = ["-", "--", ":", "-."]
    ygrid = F._grid_axes(sv[np.isfinite(sv) & (sv > 0)]) if np.any(np.isfinite(sv) & (sv > 0)) else np.zeros(0)
    ok = usable(all_rows).to_numpy()
    drawn = 0
    for k, rec in enumerate(all_rows.to_dict("records")[:max_runs]):
        m = _read_metrics(rec.get("path"))
        if m is None:
            continue
        colour = cmap(norm(lr[k])) if np.isfinite(lr[k]) and lr[k] > 0 else "0.5"
        ls = styles[int(F._index_on(ygrid, np.array([sv[k]]))[0]) % len(styles)] \
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
        _empty(axes[0], f"{group}: no metrics.csv")
    else:
        _colorbar(axes[-1], norm, _LR_SYM[protocol], cmap=cmap)
        if ygrid.size > 1:
            handles = [Line2D([], [], ls=styles[i % len(styles)], color="k", label=f"{_SECOND_SYM[sec]} = {v:.3g}")
                       for i, v in enumerate(ygrid[:len(styles)])]
            axes[0].legend(handles=handles, fontsize=7)
    fig.suptitle(f"{group}: training curves of {drawn} run(s) (faint: excluded)", fontsize=11)
    return F._save(fig, path, dpi or F.DPI)


def plot_overview(df: pd.DataFrame, group: str, path: str | Path, *, dpi: int | None = None,
                  verdict: _an.Verdict | None = None) -> Path:
    """One page per group in the layout of the paper's Figure 2: σ² vs h, T vs lr, V1 radius,
    S vs lr and vs the second hyperparameter with the fit, and the Maxwell relation."""
    F = _fig_helpers()
    all_rows, protocol = _group_rows(df, group)
    okm = usable(all_rows).to_numpy()
    rows, ex = all_rows[okm], all_rows[~okm]
    if verdict is None:
        verdict = _maxwell(df)[1].get(group)
    fit = verdict.extras.get("fit") if verdict is not None else None
    nt = noise_table(df)
    fits = {r["quantity"]: r for r in nt[nt["group"] == group].to_dict("records")}
    fig = F._new_figure(20, 9)
    fig.get_layout_engine().set(wspace=0.06)
    axes = fig.subplots(2, 3)
    _panel_noise(axes[0, 0], rows, protocol, "sigma2", fits.get("sigma2"))
    _panel_lines(axes[0, 1], rows, protocol, "T", "lr", logy=True, ylabel="temperature T")
    rr = _radius_frame(all_rows)
    if len(rr) and _has_radius_data(rr, protocol):
        F._panel_radius(axes[0, 2], rr, rr["stationary"].to_numpy(bool), protocol)
    else:
        _empty(axes[0, 2], "no completed run with a radius")
    _panel_lines(axes[1, 0], rows, protocol, "S", "lr", fit=fit, excluded=ex, ylabel="entropy S")
    _panel_lines(axes[1, 1], rows, protocol, "S", _second(protocol), fit=fit, excluded=ex, ylabel="entropy S")
    if verdict is not None:
        F._panel_maxwell(axes[1, 2], verdict, protocol)
    else:
        _empty(axes[1, 2], "V3 not tested (fewer than 6 usable runs)")
    fig.suptitle(f"{group}: {len(all_rows)} run(s), {int(okm.sum())} usable", fontsize=13)
    return F._save(fig, path, dpi or F.DPI)


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

_CAPTIONS = {
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
                       verdicts: Mapping[str, _an.Verdict] | None = None) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """Write every figure of :data:`SWEEP_FIGURES` for every group as ``<group>_<name>.png``.

    Returns ``({group: {name: path}}, notes)``; with ``strict=False`` a figure that cannot be
    drawn is skipped and named in ``notes``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else list(SWEEP_FIGURES)
    if verdicts is None:
        verdicts = _maxwell(df)[1]
    result: dict[str, dict[str, Path]] = {}
    notes: list[str] = []
    for g, _, _ in sweep_groups(df, only_usable=False):
        result[g] = {}
        for name in names:
            fn = SWEEP_FIGURES[name]
            kw: dict[str, Any] = {"dpi": dpi}
            if name in ("overview", "entropy", "maxwell"):
                kw["verdict"] = verdicts.get(g)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result[g][name] = fn(df, g, out / f"{g}_{name}.png", **kw)
            except Exception as exc:  # noqa: BLE001 - one bad figure must not stop the report
                if strict:
                    raise
                notes.append(f"figure {g}_{name} skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return result, notes


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
def _fmt(x: Any, digits: int = 4) -> str:
    """:func:`sgdthermo.report._num`, with missing values (NaN, None) as a dash."""
    s = _report_num(x, digits)
    return "—" if s in ("nan", "None") else s


def _pm(v: Any, e: Any, digits: int = 4) -> str:
    if not isinstance(v, (int, float, np.floating)) or not math.isfinite(float(v)):
        return "—"
    if isinstance(e, (int, float, np.floating)) and math.isfinite(float(e)) and e > 0:
        return f"{_fmt(v, digits)} ± {_fmt(e, 2)}"
    return _fmt(v, digits)


def _pct(x: Any) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * float(x):.2f} %"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(c: Any) -> str:
        return str(c if isinstance(c, str) else _fmt(c)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _range(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "—"
    u = np.unique(v)
    return _fmt(u[0]) if u.size == 1 else f"{_fmt(u.min())} … {_fmt(u.max())} ({u.size})"


def _settings_section(df: pd.DataFrame, sweep_dir: str) -> list[str]:
    rows = []
    for g, protocol, all_rows in sweep_groups(df, only_usable=False):
        sec = _second(protocol)
        r0 = all_rows.iloc[0]
        q = f"{_fmt(r0.get('queue_size'))} every {_fmt(r0.get('queue_every'))}"
        rows.append([g, protocol, _fmt(r0.get("model")), _fmt(r0.get("width")), _fmt(r0.get("dataset")),
                     _fmt(r0.get("d")), f"{all_rows['lr'].nunique()} × {all_rows[sec].nunique()}",
                     _range(_col(all_rows, "lr")), f"{_SECOND_SYM[sec]}: {_range(_col(all_rows, sec))}",
                     _range(_col(all_rows, "seed")), _range(_col(all_rows, "iters")),
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
    interp = _as_bool(df["interpolating"])
    stat = _as_bool(df["stationary"])
    S = _col(df, "S")
    rows = [[k, int(v)] for k, v in st.value_counts().items()]
    detail = [["completed, usable (stationary, not interpolating, entropy)", int(ok.sum())],
              ["completed, interpolating", int((comp & interp).sum())],
              ["completed, non-stationary", int((comp & ~interp & ~stat).sum())],
              ["completed, stationary but no entropy estimate", int((comp & ~interp & stat & ~np.isfinite(S)).sum())]]
    return ["## Runs by status", "", _md_table(["status", "runs"], rows), "",
            _md_table(["completed runs", "runs"], detail), "",
            "Only usable runs enter the tables and fits below; the others are listed under "
            "*Excluded runs* and drawn as grey crosses or faint lines.", ""]


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
    return out + [f"{len(ex)} run(s) left out of every fit (never averaged in):", "",
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
            f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `sgdthermo.sweep_analysis`. "
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
    summary += [_md_table(["group", "runs", "usable", "V1 radius", "V3 Maxwell", "V2 potentials"], rows)
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
    rtab, rverd = _radius(df)
    mt, mverd, mnotes = _maxwell(df)
    tables: dict[str, pd.DataFrame] = {
        "runs": df, "radius": rtab, "radius_verdicts": _verdict_rows(rverd), "noise": noise_table(df),
        "maxwell": mt, "potentials": _verdict_rows(_potentials(df)), "excluded": excluded_runs(df),
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


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def analyze_argument_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``analyze`` subcommand to an ``add_subparsers()`` object:
    ``sgdthermo analyze DIR --out REPORT [--force]``."""
    p = sub.add_parser("analyze", help="analyse a sweep folder of network runs (V1, noise, V3, V2) into a report")
    p.add_argument("dir", metavar="DIR", help="sweep folder: one sub-folder per run")
    p.add_argument("--out", required=True, metavar="REPORT", help="report folder (its parent must exist)")
    p.add_argument("--force", action="store_true", help="overwrite an existing REPORT/report.md")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(func=cmd_analyze)
    return p


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run ``sgdthermo analyze``; bad input raises :class:`sgdthermo.cli.UsageError` (one line,
    exit 2 in :func:`sgdthermo.cli.main`) before anything is written."""
    from .cli import UsageError

    src = Path(args.dir)
    if not src.exists():
        raise UsageError(f"{args.dir}: no such folder")
    if not src.is_dir():
        raise UsageError(f"{args.dir}: not a folder")
    out = Path(args.out)
    if not out.parent.exists():
        raise UsageError(f"--out {args.out}: parent folder {str(out.parent)!r} does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    if (out / "report.md").exists() and not getattr(args, "force", False):
        raise UsageError(f"--out {args.out}: already holds a report (report.md); pass --force to overwrite")
    if not _run_folders(src):
        raise UsageError(f"{args.dir}: holds no runs (no sub-folder with config.json, summary.json or error.txt)")
    tables = analyze(src, out, figures=not getattr(args, "no_figures", False))
    df = tables["runs"]
    n_ok = int(usable(df).sum())
    print(f"{len(df)} run(s), {n_ok} usable, {len(df) - n_ok} excluded")
    for _, r in tables["radius_verdicts"].iterrows():
        print(f"{r['group']:>14}  V1  {r['verdict']:<10} {r['headline']}")
    for _, r in tables["maxwell"].iterrows():
        extra = f"{r['combo1_name']} = {_pm(r['combo1'], r['combo1_err'], 3)}, R² = {_fmt(r['r2'], 4)}" if r["fitted"] else r["note"]
        print(f"{r['group']:>14}  V3  {r['verdict']:<10} {extra}")
    print(f"report: {out / 'report.md'}")
    return 0
