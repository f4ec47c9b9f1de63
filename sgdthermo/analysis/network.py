r"""Analysis of a sweep of network runs: the tidy table, V1, gradient noise, V3, V2.

A *sweep folder* holds one sub-folder per run, as written by :func:`sgdthermo.nn.training.train`
(``config.json``, ``summary.json``, ``metrics.csv``; a failed run may hold only ``error.txt``,
an unfinished one no ``summary.json``). Notation follows docs/theory.md: d the number of
scale-invariant parameters, :math:`R = (d-1)/2`, :math:`V = \rho^2/2`, η the LR (fixed LR) or
η̃ the ELR (fixed ELR, fixed sphere), λ the weight decay, ρ the radius.

Functions (all but :func:`load_runs` are pure and return DataFrames):

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

The figures are drawn by :mod:`sgdthermo.figures.network`; :func:`sgdthermo.report.network.analyze`
writes all of the above into a folder with ``report.md``.

Runs are grouped by protocol and *setup* (model, width, dataset, d, and any of loss, head
norm, batch size, subset size, entropy queue settings that vary in the sweep): each group is one
grid of hyperparameters and is fitted on its own.

Example
-------
>>> from sgdthermo import analyze_sweep as analyze
>>> tables = analyze("sweeps/digits-lr", "sweeps/digits-lr-report")  # doctest: +SKIP
>>> tables["maxwell"][["group", "combo1_name", "combo1", "combo1_err", "verdict"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import theory
from ..io import RUN_MARKERS, find_run_folders  # noqa: F401 - part of this module's API
from ..protocols import REPORT_ORDER, SECOND_SYMBOL, second_axis
from . import checks as _an
from .selection import exclusion_reasons, numeric_column, usable_mask

__all__ = [
    "VALUE_COLUMNS", "load_runs", "find_run_folders", "usable", "excluded_runs", "radius_table", "radius_verdicts",
    "noise_table", "maxwell_test", "potentials_check", "sweep_groups", "radius_analysis",
    "maxwell_analysis", "potentials_analysis", "verdict_table", "noise_variable", "NOISE_VARIABLE",
    "RADIUS_TOLERANCES", "MAXWELL_DEFAULTS", "ENTROPY_REQUIRED",
]

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
    "trend_train_loss", "trend_trace_cov", "trend_rho", "queue_tau", "queue_n_eff", "queue_nn_lag",
)
#: Configuration fields that define a setup (runs of one setup form one grid).
SETUP_KEYS: tuple[str, ...] = ("model", "width", "dataset", "d", "loss", "head_norm", "batch_size",
                               "samples_per_label", "queue_size", "queue_every", "entropy_method")
#: Statuses of runs that have no stationary values.
_NO_RESULT = ("failed", "unfinished", "diverged")

#: A sweep's runs enter the fits only with an entropy estimate.
ENTROPY_REQUIRED: tuple[str, ...] = ("S",)
NOISE_VARIABLE = {"fixed-lr": "η·λ", "fixed-elr": "η̃", "fixed-sphere": "η̃"}


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


def _num(v: Any) -> float:
    """A float, NaN for None, strings, booleans and other non-numbers."""
    if isinstance(v, bool) or v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")






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
    for folder in find_run_folders(root):
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
            # None (not measured: runs written before the queue diagnostics) is not a verdict
            row["entropy_ok"] = summ.get("entropy_ok")
            row["entropy_note"] = str(summ.get("entropy_note") or "")
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
            row["entropy_ok"], row["entropy_note"] = None, ""
        if summ_err or cfg_err:
            row["status"] = "failed" if summ is None else row["status"]
            row["reason"] = "; ".join(x for x in (row.get("reason", ""), summ_err, cfg_err) if x)
        rows.append(row)
    base_cols = ["run_id", "path", *CONFIG_COLUMNS, "d", "status", "stationary", "interpolating",
                 "reason", "message"]
    val_cols = [c for k in VALUE_COLUMNS for c in (k, k + "_err")]
    df = pd.DataFrame(rows, columns=base_cols + val_cols + list(SCALAR_COLUMNS) + ["entropy_ok", "entropy_note"])
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
    order = {p: k for k, p in enumerate(REPORT_ORDER)}
    df["_o"] = [order.get(p, 9) if isinstance(p, str) else 10 for p in df["protocol"]]
    df = df.sort_values(["_o", "group", "lr", "wd", "radius", "seed", "run_id"],
                        na_position="last", kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def usable(df: pd.DataFrame, *, entropy_verdict: bool = True) -> pd.Series:
    """Boolean mask (aligned with ``df``) of the runs that enter fits: the rule of
    :mod:`sgdthermo.analysis.selection` with the entropy required (completed, not
    interpolating, stationary, finite ``S``, and with ``entropy_verdict`` an entropy not flagged
    as from correlated snapshots: V2, V3). Works on a table read back from ``runs.csv``."""
    return pd.Series(usable_mask(df, ENTROPY_REQUIRED, entropy_verdict=entropy_verdict), index=df.index,
                     name="usable", dtype=bool)


def _exclusion_reason(row: Mapping[str, Any]) -> str:
    """The first reason a run is left out of the fits ("" when it is usable)."""
    return (exclusion_reasons(row, ENTROPY_REQUIRED) or [""])[0]


def excluded_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs left out of the fits, with the reason (non-stationary, interpolating,
    diverged, failed, unfinished, no entropy estimate: left out of every fit; an entropy from
    correlated snapshots: left out of V2 and V3, kept in V1 and the noise fits)."""
    cols = ["run_id", "group", "protocol", "lr", "wd", "radius", "seed", "status", "stationary",
            "interpolating", "exclusion_reason"]
    if len(df) == 0:
        return pd.DataFrame(columns=cols)
    ex = df[~usable(df)].copy()
    if "exclusion_reason" not in ex:
        ex["exclusion_reason"] = [_exclusion_reason(r) for r in ex.to_dict("records")]
    return ex[[c for c in cols if c in ex.columns]].reset_index(drop=True)


def sweep_groups(df: pd.DataFrame, *, only_usable: bool = True,
                 entropy_verdict: bool = True) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """``(group, protocol, rows)`` for each grid of the sweep, in protocol order.

    ``only_usable``: the rows are the usable runs of the group (groups with none are still
    yielded, with an empty frame); ``entropy_verdict``: see :func:`usable` (False for V1 and
    the noise fits, which do not use the entropy's value).
    """
    if len(df) == 0 or "group" not in df:
        return
    ok = usable(df, entropy_verdict=entropy_verdict)
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


def _finite(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    vals = df[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return np.all(np.isfinite(vals), axis=1)


def _analysis_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in the column layout of :mod:`sgdthermo.analysis` (usable rows: stationary)."""
    out = rows.copy()
    out["dim"] = out["d"]
    out["stationary"] = True
    return out.reset_index(drop=True)




# ---------------------------------------------------------------------------------------
# V1: radius (fixed sphere: effective pressure)
# ---------------------------------------------------------------------------------------
#: Network tolerances of V1 (passed to :func:`sgdthermo.analysis.check_radius`).
RADIUS_TOLERANCES: dict[str, float] = {"median_tol": 0.05, "bias_tol": 0.05, "rel_floor": 0.05,
                                       "z_thr": 3.0, "max_frac": 0.1}


def radius_analysis(df: pd.DataFrame, **tol: float) -> tuple[pd.DataFrame, list[tuple[str, _an.Verdict]]]:
    kw = {**RADIUS_TOLERANCES, **tol}
    tables, verdicts = [], []
    for g, protocol, rows in sweep_groups(df, entropy_verdict=False):
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
    return radius_analysis(df, **tolerances)[0]


def radius_verdicts(df: pd.DataFrame, **tolerances: float) -> pd.DataFrame:
    """V1 verdict per group (:func:`sgdthermo.analysis.verdicts_frame` columns plus ``group``).

    Pass (discrete prediction, :func:`sgdthermo.analysis.check_radius` with
    :data:`RADIUS_TOLERANCES`): |mean r| ≤ max(5 %, 3 SE), median |r| ≤ max(5 %, 2 × median
    error bar), at most 10 % of the runs discrepant; at least 3 usable runs.
    """
    vs = radius_analysis(df, **tolerances)[1]
    return verdict_table(vs)


def _not_tested(v: _an.Verdict, what: str) -> _an.Verdict:
    """Reword a "too few rows" verdict of :mod:`sgdthermo.analysis` as NOT TESTED."""
    if v.status != "NOT TESTED":
        return v
    n, need = v.details.get("n_used", 0), v.details.get("need")
    v.summary = f"{v.protocol} {v.name}: NOT TESTED — {n} usable run(s) with {what} (need ≥ {need})"
    v.headline = f"{n} usable run(s), need ≥ {need}"
    v.excluded = pd.DataFrame()
    return v


def verdict_table(vs: Sequence[tuple[str, _an.Verdict]]) -> pd.DataFrame:
    if not vs:
        return pd.DataFrame(columns=["group", "protocol", "check", "name", "verdict", "passed", "n_used",
                                     "metric", "value", "stderr", "target", "tolerance", "headline", "summary"])
    frame = _an.verdicts_frame([v for _, v in vs])
    frame.insert(0, "group", [g for g, _ in vs])
    frame.insert(4, "verdict", [v.status for _, v in vs])
    return frame.drop(columns=["n_excluded"])


# ---------------------------------------------------------------------------------------
# Gradient noise and temperature
# ---------------------------------------------------------------------------------------
def noise_variable(rows: pd.DataFrame, protocol: str) -> np.ndarray:
    """h = η·λ (fixed LR) or η̃ (fixed ELR, fixed sphere)."""
    lr = numeric_column(rows, "lr")
    return lr * numeric_column(rows, "wd") if protocol == "fixed-lr" else lr


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
    for g, protocol, rows in sweep_groups(df, entropy_verdict=False):
        sec = second_axis(protocol)
        for q in ("sigma2", "T"):
            rec: dict[str, Any] = {"group": g, "protocol": protocol, "setup": rows["setup"].iloc[0] if len(rows) else "",
                                   "quantity": q, "variable": NOISE_VARIABLE[protocol], "other": SECOND_SYMBOL[sec]}
            sel = _finite(rows, [q, "lr"]) if len(rows) else np.zeros(0, bool)
            r = rows[sel]
            h = noise_variable(r, protocol)
            val = numeric_column(r, q)
            good = (h > 0) & (val > 0)
            h, val, r = h[good], val[good], r[good]
            err = numeric_column(r, q + "_err") / val
            n = int(len(val))
            nh = int(len(np.unique(np.round(np.log(h), 9)))) if n else 0
            rec.update({"n": n, "n_distinct": nh})
            nan = float("nan")
            rec.update({k: nan for k in ("slope", "slope_err", "intercept", "intercept_err", "r2",
                                         "chi2_red", "other_slope", "other_slope_err")})
            rec["weighted"] = False
            if nh < 3:
                rec["note"] = f"underdetermined: {nh} distinct value(s) of {NOISE_VARIABLE[protocol]} (need ≥ 3)"
                rows_out.append(rec)
                continue
            lh, lq = np.log(h), np.log(val)
            fit = _an.linear_fit(np.column_stack([np.ones(n), lh]), lq, err)
            se = np.sqrt(np.clip(np.diag(fit["cov"]), 0, None))
            rec.update({"slope": float(fit["coef"][1]), "slope_err": float(se[1]),
                        "intercept": float(fit["coef"][0]), "intercept_err": float(se[0]),
                        "r2": fit["r2"], "chi2_red": fit["chi2_red"], "weighted": fit["weighted"],
                        "note": ""})
            z = numeric_column(r, sec)
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


def maxwell_analysis(df: pd.DataFrame, *, tol: float = 0.10, z_thr: float = 3.0, min_r2: float = 0.9,
             min_runs: int = 6) -> tuple[pd.DataFrame, dict[str, _an.Verdict], list[str]]:
    """(table, {group: check_maxwell verdict}, notes on groups not fitted)."""
    out: list[dict[str, Any]] = []
    verdicts: dict[str, _an.Verdict] = {}
    notes: list[str] = []
    for g, protocol, rows in sweep_groups(df):
        sec = second_axis(protocol)
        if len(rows):
            rows = rows[_finite(rows, ["lr", sec, "S"])]
            rows = rows[(numeric_column(rows, "lr") > 0) & (numeric_column(rows, sec) > 0)]
        n = len(rows)
        if n < min_runs:
            notes.append(f"{g}: V3 not tested — {n} usable run(s) with an entropy estimate (need ≥ {min_runs})")
            continue
        frame = _analysis_frame(rows)
        v = _an.check_maxwell(frame, protocol, main_tol=tol, z_thr=z_thr, min_r2=min_r2, min_rows=min_runs)
        verdicts[g] = v
        d = float(frame["dim"].iloc[0])
        R = (d - 1.0) / 2.0
        x, y = np.log(numeric_column(rows, "lr")), np.log(numeric_column(rows, sec))
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
        Su = numeric_column(rows, "S_sphere")
        if np.all(np.isfinite(Su)):
            err = numeric_column(rows, "S_err") if fit.weighted else None
            w = np.asarray(targets[0].weights, float) / targets[0].scale
            f_sph = _an.quadratic_fit(x, y, Su, err)
            f_rad = _an.quadratic_fit(x, y, numeric_column(rows, "S") - Su, err)
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
    return maxwell_analysis(df, tol=tol, z_thr=z_thr, min_r2=min_r2, min_runs=min_runs)[0]


# ---------------------------------------------------------------------------------------
# V2: potentials (proxy)
# ---------------------------------------------------------------------------------------
def potentials_analysis(df: pd.DataFrame, *, min_runs: int = 4) -> list[tuple[str, _an.Verdict]]:
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
    return verdict_table(potentials_analysis(df, min_runs=min_runs))
