r"""Verification of the ideal-gas predictions V1–V4 on a results table.

Every function here is pure: it reads the results table produced by the simulator (one
row per grid point, several protocols may be concatenated; columns listed in
:func:`synthetic_results`) and returns :class:`Verdict` records. Notation follows
docs/theory.md: :math:`d` the dimension, :math:`R = (d-1)/2` the gas constant, :math:`T` the
temperature, :math:`p` the pressure (weight decay λ), :math:`V = \rho^2/2` the volume,
:math:`U` the mean loss and :math:`S = S_u + (d-1)\log\rho` the entropy.

The four checks (docs/theory.md, "Predictions to verify"):

- **V1 radius** (:func:`check_radius`): measured ρ against the SDE radius and the
  discrete-time (Appendix G) radius; fixed sphere: measured effective pressure p.
- **V2 potentials** (:func:`check_potentials`): the observed state of each configuration
  minimises its own Gibbs energy :math:`U_j - T_i S_j + p_i V_j` (fixed sphere: Helmholtz
  :math:`U_j - T_i S_j` on the same sphere) among all observed states j.
- **V3 Maxwell relations** (:func:`check_maxwell`): a quadratic fit
  :math:`S = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2` (:func:`quadratic_fit`),
  :math:`x = \log\eta` (or :math:`\log\tilde\eta`), :math:`y = \log\lambda` (fixed sphere:
  :math:`\log\rho`), and the protocol's normalised coefficient combinations.
- **V4 adiabats** (:func:`check_adiabats`): S is constant along the adiabats
  (fixed LR: η = const, fixed ELR: η̃²/λ = const, fixed sphere: η̃ρ² = const).

Non-stationary rows (``stationary == False``) and rows with missing values are excluded
from every check and listed in ``Verdict.excluded``; they are never averaged in.

Example
-------
>>> from sgdthermo.analysis import synthetic_results, verify
>>> df = synthetic_results("fixed-lr", n_lr=5, n_wd=5, seed=0)
>>> [v.passed for v in verify(df)]
[True, True, True, True]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PROTOCOLS",
    "CHECKS",
    "Verdict",
    "QuadraticFit",
    "quadratic_fit",
    "linear_fit",
    "PotentialMatrix",
    "potential_matrix",
    "check_radius",
    "check_potentials",
    "check_maxwell",
    "check_adiabats",
    "verify",
    "verdicts_frame",
    "synthetic_results",
    "stationary_mask",
]

#: The three training protocols, in the order the report shows them.
PROTOCOLS: tuple[str, ...] = ("fixed-lr", "fixed-elr", "fixed-sphere")
#: Names of the four checks.
CHECKS: tuple[str, ...] = ("V1 radius", "V2 potentials", "V3 Maxwell", "V4 adiabats")

_ID_COLUMNS = ("protocol", "dim", "lr", "wd", "radius")


# ---------------------------------------------------------------------------------------
# Verdict record and row selection
# ---------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """Outcome of one check on one protocol.

    Attributes
    ----------
    name : str
        One of :data:`CHECKS` ("V1 radius", "V2 potentials", "V3 Maxwell", "V4 adiabats").
    protocol : str
        "fixed-lr", "fixed-elr" or "fixed-sphere".
    passed : bool
        The verdict (False also when too few usable rows remain; ``summary`` says why).
    summary : str
        One line with the key numbers.
    details : dict
        Scalar numbers behind the verdict (tolerances included).
    headline : str
        The key number in a few characters, for summary tables.
    table : DataFrame or None
        Per-row / per-grid-point / per-adiabat numbers, where relevant.
    excluded : DataFrame
        Rows left out (identification columns, ``drift_z`` and a ``reason``).
    extras : dict
        Non-scalar artefacts (the fit object, the potential matrix) for figures.
    """

    name: str
    protocol: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    table: pd.DataFrame | None = None
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def check(self) -> str:
        """Short check id, "V1" … "V4"."""
        return self.name.split()[0]

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.summary


def _second_axis(protocol: str) -> str:
    """Column of the second grid axis: ``radius`` for fixed sphere, else ``wd``."""
    return "radius" if protocol == "fixed-sphere" else "wd"


def _select_protocol(df: pd.DataFrame, protocol: str | None) -> tuple[pd.DataFrame, str]:
    """Rows of one protocol; ``protocol=None`` is allowed when only one is present."""
    if "protocol" not in df.columns:
        raise KeyError("results table has no 'protocol' column")
    present = list(pd.unique(df["protocol"]))
    if protocol is None:
        if len(present) != 1:
            raise ValueError(f"table holds protocols {present}; pass protocol=...")
        protocol = str(present[0])
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    sub = df[df["protocol"] == protocol].reset_index(drop=True)
    if len(sub) == 0:
        raise ValueError(f"no rows for protocol {protocol!r} (present: {present})")
    dims = pd.unique(sub["dim"]) if "dim" in sub.columns else []
    if len(dims) > 1:
        raise ValueError(f"protocol {protocol!r} mixes dimensions {list(dims)}; "
                         "analyse one d at a time")
    return sub, protocol


def _split_usable(sub: pd.DataFrame, required: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (usable, excluded): excluded = non-stationary or missing values.

    ``excluded`` keeps the identification columns, ``drift_z`` and a ``reason``.
    """
    missing_cols = [c for c in required if c not in sub.columns]
    if missing_cols:
        raise KeyError(f"results table lacks columns {missing_cols}")
    stat = pd.Series(stationary_mask(sub), index=sub.index)
    values = sub[list(required)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values)
    reasons = []
    for k, idx in enumerate(sub.index):
        r = []
        if not stat.loc[idx]:
            dz = sub.at[idx, "drift_z"] if "drift_z" in sub.columns else np.nan
            r.append(f"non-stationary (drift z = {dz:.2f})" if pd.notna(dz) else "non-stationary")
        bad = [c for c, ok in zip(required, finite[k]) if not ok]
        if bad:
            r.append("missing " + ", ".join(bad))
        reasons.append("; ".join(r))
    reasons_s = pd.Series(reasons, index=sub.index)
    keep = reasons_s == ""
    cols = [c for c in (*_ID_COLUMNS, "T", "drift_z") if c in sub.columns]
    excluded = sub.loc[~keep, cols].copy()
    excluded["reason"] = reasons_s[~keep]
    return sub.loc[keep].copy(), excluded.reset_index(drop=True)


def stationary_mask(df: pd.DataFrame) -> np.ndarray:
    """Boolean array of the ``stationary`` verdicts (True where the column is absent).

    Missing values count as non-stationary; strings such as ``"False"`` or ``"0"`` (a table
    read back from CSV) are understood.
    """
    if "stationary" not in df.columns:
        return np.ones(len(df), dtype=bool)

    def _one(v: Any) -> bool:
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1", "yes")
        return bool(v) if pd.notna(v) else False

    return np.array([_one(v) for v in df["stationary"]], dtype=bool)


def _gas_constant(sub: pd.DataFrame) -> float:
    """:math:`R = (d-1)/2` from the ``dim`` column (or the ``R`` column)."""
    if "dim" in sub.columns:
        return (float(sub["dim"].iloc[0]) - 1.0) / 2.0
    return float(sub["R"].iloc[0])


def _err(sub: pd.DataFrame, col: str) -> np.ndarray:
    """Standard-error column ``col`` as floats; missing column or NaN → 0."""
    if col not in sub.columns:
        return np.zeros(len(sub))
    e = pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(e), np.abs(e), 0.0)


def _too_few(name: str, protocol: str, n: int, need: int, excluded: pd.DataFrame,
             extra: str = "") -> Verdict:
    """A failed verdict that says there were not enough usable rows."""
    msg = (f"{protocol} {name}: FAIL — only {n} usable rows (need ≥ {need})"
           f"{extra}; {len(excluded)} excluded")
    return Verdict(name=name, protocol=protocol, passed=False, summary=msg,
                   details={"n_used": n, "n_excluded": len(excluded), "reason": "too few rows"},
                   headline="too few rows", excluded=excluded)


def _fmt_pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


# ---------------------------------------------------------------------------------------
# Quadratic least squares
# ---------------------------------------------------------------------------------------
#: Names of the coefficients of :func:`quadratic_fit`.
QUAD_TERMS: tuple[str, ...] = ("a0", "a1", "a2", "a3", "a4", "a5")


@dataclass(frozen=True)
class QuadraticFit:
    r"""Result of :func:`quadratic_fit`, :math:`z = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`.

    Attributes
    ----------
    coef : array (6,)
        :math:`(a_0, \dots, a_5)`.
    cov : array (6, 6)
        Covariance of ``coef`` (see :func:`quadratic_fit` for the scaling).
    r2 : float
        Coefficient of determination :math:`1 - \sum r^2 / \sum (z - \bar z)^2`
        (ordinary, unweighted residuals, as in the paper).
    resid_std : float
        :math:`\sqrt{\sum r^2 / (n - 6)}` (NaN when n = 6).
    chi2_red : float
        :math:`\sum (r/\sigma_z)^2 / (n-6)` for a weighted fit, NaN otherwise.
    n : int
        Number of points.
    weighted : bool
        Whether the errors were used as weights.
    """

    coef: np.ndarray
    cov: np.ndarray
    r2: float
    resid_std: float
    chi2_red: float
    n: int
    weighted: bool

    @property
    def stderr(self) -> np.ndarray:
        """Standard errors of the coefficients, :math:`\\sqrt{\\mathrm{diag}\\,C}`."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def predict(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fitted surface at (x, y) (broadcasting)."""
        a = self.coef
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        return a[0] + a[1] * x + a[2] * y + a[3] * x**2 + a[4] * x * y + a[5] * y**2

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`(\partial z/\partial x, \partial z/\partial y) = (a_1 + 2a_3x + a_4y,\ a_2 + a_4x + 2a_5y)`."""
        a = self.coef
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        return a[1] + 2 * a[3] * x + a[4] * y, a[2] + a[4] * x + 2 * a[5] * y

    def combination(self, weights: Sequence[float]) -> tuple[float, float]:
        r"""Linear combination :math:`c = v\cdot a` and its standard error :math:`\sqrt{v^T C v}`."""
        v = np.asarray(weights, float)
        val = float(v @ self.coef)
        var = float(v @ self.cov @ v)
        return val, float(np.sqrt(max(var, 0.0)))


def quadratic_fit(x: np.ndarray, y: np.ndarray, z: np.ndarray,
                  z_err: np.ndarray | None = None) -> QuadraticFit:
    r"""Least-squares fit of :math:`z = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2`.

    Parameters
    ----------
    x, y, z : arrays (n,)
        Points, n ≥ 6.
    z_err : array (n,), optional
        Standard errors of z. When all are finite and positive the fit is weighted with
        :math:`w_k = 1/\sigma_k^2`; otherwise it is ordinary least squares.

    Returns
    -------
    QuadraticFit
        With coefficient covariance

        - weighted: :math:`C = (X^T W X)^{-1}\cdot\max(1, \chi^2_{\rm red})` — the quoted
          errors are trusted, but inflated (Birge ratio) when the scatter about the fit
          exceeds them (underestimated errors or a model that is not exactly quadratic);
          never deflated;
        - unweighted: :math:`C = s^2 (X^T X)^{-1}`, :math:`s^2 = \sum r^2/(n-6)`.

        Noise-free quadratic data are reproduced exactly (zero residual, zero covariance
        in the unweighted case).
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    z = np.asarray(z, float).ravel()
    if not (x.shape == y.shape == z.shape):
        raise ValueError("x, y, z must have the same length")
    n = x.size
    if n < 6:
        raise ValueError(f"quadratic fit needs at least 6 points, got {n}")
    X = np.column_stack([np.ones(n), x, y, x**2, x * y, y**2])
    if z_err is not None and np.asarray(z_err).ravel().shape != z.shape:
        raise ValueError("z_err must have the same length as z")
    fit = linear_fit(X, z, None if z_err is None else np.asarray(z_err, float).ravel())
    return QuadraticFit(coef=fit["coef"], cov=fit["cov"], r2=fit["r2"], resid_std=fit["resid_std"],
                        chi2_red=fit["chi2_red"], n=n, weighted=fit["weighted"])


def linear_fit(X: np.ndarray, y: np.ndarray, yerr: np.ndarray | None = None) -> dict[str, Any]:
    r"""Least squares :math:`y = X\beta`, weighted by :math:`1/\sigma^2` when every error
    in ``yerr`` is finite and positive; the covariance as in :func:`quadratic_fit`.

    Returns a dict: ``coef``, ``cov``, ``r2``, ``resid_std``, ``chi2_red`` (NaN unweighted),
    ``dof``, ``weighted``.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float).ravel()
    n, k = X.shape
    weighted = yerr is not None and bool(np.all(np.isfinite(yerr)) and np.all(np.asarray(yerr) > 0))
    sw = 1.0 / np.asarray(yerr, float).ravel() if weighted else np.ones(n)
    Xw = X * sw[:, None]
    coef, *_ = np.linalg.lstsq(Xw, y * sw, rcond=None)
    resid = y - X @ coef
    dof = n - k
    rss = float(resid @ resid)
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else (1.0 if rss == 0 else float("nan"))
    resid_std = float(np.sqrt(rss / dof)) if dof > 0 else float("nan")
    cov0 = np.linalg.pinv(Xw.T @ Xw)
    if weighted:
        chi2_red = float(((resid * sw) ** 2).sum() / dof) if dof > 0 else float("nan")
        scale = max(1.0, chi2_red) if dof > 0 else 1.0
    else:
        chi2_red = float("nan")
        scale = rss / dof if dof > 0 else float("nan")
    return {"coef": coef, "cov": cov0 * scale, "r2": float(r2), "resid_std": resid_std,
            "chi2_red": chi2_red, "dof": dof, "weighted": weighted}


# ---------------------------------------------------------------------------------------
# V1: stationary radius (fixed sphere: effective pressure)
# ---------------------------------------------------------------------------------------
def _compare(measured: np.ndarray, err: np.ndarray, predicted: np.ndarray,
             z_thr: float, rel_floor: float) -> dict[str, np.ndarray]:
    r"""Per-row :math:`r = m/\hat m - 1`, :math:`s = \sigma_m/\hat m`, :math:`z = r/s`.

    A row is *discrepant* when it is both statistically (|z| > z_thr) and practically
    (|r| > rel_floor) significant. Rows without an error bar count as statistically
    significant (only the practical floor protects them).
    """
    rel = measured / predicted - 1.0
    s = err / np.abs(predicted)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, rel / s, np.where(rel == 0, 0.0, np.inf * np.sign(rel)))
    disc = (np.abs(z) > z_thr) & (np.abs(rel) > rel_floor)
    return {"rel": rel, "s": s, "z": z, "discrepant": disc}


def _compare_stats(c: dict[str, np.ndarray], z_thr: float) -> dict[str, float]:
    rel, s, z = c["rel"], c["s"], c["z"]
    n = rel.size
    s_ok = s[s > 0]
    # standard error of the mean relative error: from the error bars when available,
    # else from the scatter
    se_mean = (float(np.sqrt(np.mean(s_ok**2) / n)) if s_ok.size == n
               else float(np.std(rel, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"))
    return {
        "median_abs_rel": float(np.median(np.abs(rel))),
        "mean_abs_rel": float(np.mean(np.abs(rel))),
        "max_abs_rel": float(np.max(np.abs(rel))),
        "mean_rel": float(np.mean(rel)),
        "mean_rel_se": se_mean,
        "median_rel_se": float(np.median(s)) if n else float("nan"),
        "frac_significant": float(np.mean(np.abs(z) > z_thr)),
        "frac_discrepant": float(np.mean(c["discrepant"])),
        "max_abs_z": float(np.max(np.abs(z))),
    }


def check_radius(df: pd.DataFrame, protocol: str | None = None, *,
                 median_tol: float = 0.03, bias_tol: float = 0.02, rel_floor: float = 0.02,
                 z_thr: float = 3.0, max_frac: float = 0.1, min_rows: int = 3) -> Verdict:
    r"""V1: measured stationary radius (fixed sphere: effective pressure) vs theory.

    Predictions (docs/theory.md), with :math:`g = E\|\nabla L(u)\|^2` measured:

    - fixed LR: :math:`\rho^4 = \eta\sigma^2(d-1)/(2\lambda)` (SDE),
      :math:`\rho^4 = \eta(\sigma^2(d-1) + g)/(2\lambda)` (discrete, Appendix G);
    - fixed ELR: :math:`\rho^2 = \tilde\eta\sigma^2(d-1)/(2\lambda)`,
      :math:`\rho^2 = \tilde\eta(\sigma^2(d-1)+g)/(2\lambda)`;
    - fixed sphere (compares ``p``): :math:`p = (d-1)T/\rho^2`,
      :math:`p = \tilde\eta(\sigma^2(d-1)+g)/(2\rho^2)`.

    Per row: :math:`r = m/\hat m - 1`, :math:`z = (m - \hat m)/\sigma_m` (the prediction's
    own error, through g, is neglected). The verdict is on the discrete-corrected
    prediction; the SDE comparison is reported alongside (at large η it is expected to be
    off — that is the point of Appendix G).

    Pass criterion (all three):

    1. :math:`|\bar r| \le \max(\text{bias\_tol}, 3\,\mathrm{SE}(\bar r))` — a uniform
       systematic offset (a wrong prefactor) of 5 % fails once the per-row errors are a
       few %, while pure noise passes (99.7 %);
    2. :math:`\mathrm{median}|r| \le \max(\text{median\_tol}, 2\,\mathrm{median}(s))` —
       robust to single outliers; under pure noise median|r| ≈ 0.67 median(s) so the
       2·median(s) allowance cannot be exceeded by sampling noise;
    3. the fraction of *discrepant* rows (|z| > z_thr **and** |r| > rel_floor) is at most
       ``max_frac`` — catches a failure confined to part of the grid; a row needs to be
       significant and off by more than 2 % so that tiny error bars from long runs do not
       turn sub-percent model corrections (the ηλ/2 term, radius fluctuations) into failures.
    """
    name = CHECKS[0]
    sub, protocol = _select_protocol(df, protocol)
    if protocol == "fixed-sphere":
        meas_col, err_col, sde_col, disc_col, label = "p", "p_err", "p_theory", "p_theory_discrete", "p"
    else:
        meas_col, err_col, sde_col, disc_col, label = "rho", "rho_err", "rho_theory", "rho_theory_discrete", "ρ"
    used, excluded = _split_usable(sub, [meas_col, sde_col, disc_col])
    n = len(used)
    if n < min_rows:
        return _too_few(name, protocol, n, min_rows, excluded)
    m = used[meas_col].to_numpy(float)
    e = _err(used, err_col)
    c_sde = _compare(m, e, used[sde_col].to_numpy(float), z_thr, rel_floor)
    c_dis = _compare(m, e, used[disc_col].to_numpy(float), z_thr, rel_floor)
    st_sde = _compare_stats(c_sde, z_thr)
    st_dis = _compare_stats(c_dis, z_thr)

    def _ok(st: dict[str, float]) -> tuple[bool, bool, bool]:
        b = abs(st["mean_rel"]) <= max(bias_tol, 3.0 * st["mean_rel_se"])
        med = st["median_abs_rel"] <= max(median_tol, 2.0 * st["median_rel_se"])
        frac = st["frac_discrepant"] <= max_frac
        return b, med, frac

    ok_b, ok_m, ok_f = _ok(st_dis)
    passed = ok_b and ok_m and ok_f
    sde_ok = all(_ok(st_sde))
    details: dict[str, Any] = {"n_used": n, "n_excluded": len(excluded), "quantity": label}
    details.update({f"discrete_{k}": v for k, v in st_dis.items()})
    details.update({f"sde_{k}": v for k, v in st_sde.items()})
    details.update({"sde_would_pass": sde_ok, "bias_ok": ok_b, "median_ok": ok_m,
                    "fraction_ok": ok_f, "median_tol": median_tol, "bias_tol": bias_tol,
                    "rel_floor": rel_floor, "z_thr": z_thr, "max_frac": max_frac})
    table = used[[c for c in (*_ID_COLUMNS, "T") if c in used.columns]].copy()
    table["measured"] = m
    table["measured_err"] = e
    table["sde"] = used[sde_col].to_numpy(float)
    table["discrete"] = used[disc_col].to_numpy(float)
    table["rel_sde"], table["z_sde"] = c_sde["rel"], c_sde["z"]
    table["rel_discrete"], table["z_discrete"] = c_dis["rel"], c_dis["z"]
    table["discrepant"] = c_dis["discrepant"]
    table = table.reset_index(drop=True)
    why = []
    if not ok_b:
        why.append(f"bias {_fmt_pct(st_dis['mean_rel'])} > tolerance")
    if not ok_m:
        why.append("median error above tolerance")
    if not ok_f:
        why.append(f"{_fmt_pct(st_dis['frac_discrepant'])} rows discrepant")
    summary = (f"{protocol} {name}: {'PASS' if passed else 'FAIL'} — discrete: median "
               f"|Δ{label}/{label}| = {_fmt_pct(st_dis['median_abs_rel'])}, max "
               f"{_fmt_pct(st_dis['max_abs_rel'])}, bias {_fmt_pct(st_dis['mean_rel'])} ± "
               f"{_fmt_pct(st_dis['mean_rel_se'])}, {int(round(st_dis['frac_discrepant'] * n))}/{n} "
               f"discrepant; SDE: median {_fmt_pct(st_sde['median_abs_rel'])}, max "
               f"{_fmt_pct(st_sde['max_abs_rel'])}"
               + (f" ({'; '.join(why)})" if why else "")
               + (f"; {len(excluded)} excluded" if len(excluded) else ""))
    headline = f"median |Δ{label}|/{label} {_fmt_pct(st_dis['median_abs_rel'])} (SDE {_fmt_pct(st_sde['median_abs_rel'])})"
    return Verdict(name=name, protocol=protocol, passed=passed, summary=summary,
                   details=details, headline=headline, table=table, excluded=excluded)


# ---------------------------------------------------------------------------------------
# V2: thermodynamic potentials
# ---------------------------------------------------------------------------------------
@dataclass
class PotentialMatrix:
    r"""Potentials of every observed state j under every configuration i's own (T, p).

    ``phi[i, j]`` = :math:`U_j - T_i S_j + p_i V_j` (Gibbs; fixed LR / fixed ELR) or
    :math:`U_j - T_i S_j` for states j on the same sphere as i (Helmholtz; fixed sphere;
    NaN elsewhere). ``sigma[i, j]`` is the standard error of
    :math:`\Phi_i(j) - \Phi_i(i)`:

    .. math::
        \sigma_{ij}^2 = \delta U_i^2 + \delta U_j^2 + T_i^2(\delta S_i^2 + \delta S_j^2)
                        + p_i^2(\delta V_i^2 + \delta V_j^2)\quad (j\ne i),

    the rows being independent runs (a constant bias of the entropy estimator cancels in
    the difference). ``states`` holds the usable rows in matrix order.
    """

    protocol: str
    kind: str
    states: pd.DataFrame
    phi: np.ndarray
    sigma: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """:math:`\\Phi_i(j) - \\Phi_i(i)` (≥ 0 if i's state minimises its potential)."""
        return self.phi - np.diag(self.phi)[:, None]

    @property
    def z(self) -> np.ndarray:
        """gap / sigma (0 on the diagonal, NaN where not comparable)."""
        g = self.gap
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.sigma > 0, g / self.sigma, np.where(g == 0, 0.0, np.inf * np.sign(g)))
        return np.where(np.isfinite(self.phi), z, np.nan)

    def argmin(self) -> np.ndarray:
        """Index j of the lowest potential in each row i (NaNs ignored)."""
        return np.nanargmin(self.phi, axis=1)


def _potential_columns(protocol: str) -> list[str]:
    """Columns a potential needs: Helmholtz (T, U, S, radius) or Gibbs (T, U, S, V, p)."""
    return ["T", "U", "S", "radius"] if protocol == "fixed-sphere" else ["T", "U", "S", "V", "p"]


def potential_matrix(df: pd.DataFrame, protocol: str | None = None) -> PotentialMatrix:
    """Build the :class:`PotentialMatrix` over the usable (stationary) rows of a protocol."""
    sub, protocol = _select_protocol(df, protocol)
    used, _ = _split_usable(sub, _potential_columns(protocol))
    return _potential_matrix(used, protocol)


def _potential_matrix(used: pd.DataFrame, protocol: str) -> PotentialMatrix:
    used = used.reset_index(drop=True)
    T = used["T"].to_numpy(float)
    U = used["U"].to_numpy(float)
    S = used["S"].to_numpy(float)
    V = used["V"].to_numpy(float)
    dU, dS, dV = _err(used, "U_err"), _err(used, "S_err"), _err(used, "V_err")
    phi = U[None, :] - T[:, None] * S[None, :]
    var = (dU[None, :] ** 2 + dU[:, None] ** 2) + T[:, None] ** 2 * (dS[None, :] ** 2 + dS[:, None] ** 2)
    if protocol == "fixed-sphere":
        kind = "Helmholtz"
        rad = used["radius"].to_numpy(float)
        same = np.isclose(rad[:, None], rad[None, :], rtol=1e-9, atol=0.0)
        phi = np.where(same, phi, np.nan)
    else:
        kind = "Gibbs"
        p = used["p"].to_numpy(float)
        phi = phi + p[:, None] * V[None, :]
        var = var + p[:, None] ** 2 * (dV[None, :] ** 2 + dV[:, None] ** 2)
    sigma = np.sqrt(var)
    np.fill_diagonal(sigma, 0.0)
    return PotentialMatrix(protocol=protocol, kind=kind, states=used, phi=phi, sigma=sigma)


def check_potentials(df: pd.DataFrame, protocol: str | None = None, *,
                     z_thr: float = 3.0, min_fraction: float = 0.9, min_rows: int = 4) -> Verdict:
    r"""V2: each configuration's observed state minimises its own potential.

    For configuration i (temperature :math:`T_i`, pressure :math:`p_i`) and every observed
    state j: Gibbs :math:`\Phi_i(j) = U_j - T_iS_j + p_iV_j` (fixed LR, fixed ELR), Helmholtz
    :math:`\Phi_i(j) = U_j - T_iS_j` over the states j with i's radius (fixed sphere). The
    prediction is :math:`\Phi_i(j) \ge \Phi_i(i)` for all j.

    Noise tolerance: a pair (i, j) is a *violation* only when
    :math:`\Phi_i(j) - \Phi_i(i) < -z_{thr}\,\sigma_{ij}` (see :class:`PotentialMatrix`).
    Neighbouring grid states have gaps comparable to the noise, so a plain argmin would fail
    by chance; a 3σ violation of the correct theory happens with probability ≈ 0.1 % per
    pair. Configuration i is *confirmed* when it has no violation. Pass: the fraction of
    confirmed configurations is at least ``min_fraction`` (0.9: a few chance violations on
    a 17×17 grid are tolerated; a wrong energy or entropy scale moves the minimum by a whole
    factor in T and fails almost every configuration). The plain argmin fraction and the
    smallest gap (the worst violation when negative), in σ and in units of :math:`T_i`,
    are reported.
    """
    name = CHECKS[1]
    sub, protocol = _select_protocol(df, protocol)
    used, excluded = _split_usable(sub, _potential_columns(protocol))
    n = len(used)
    if n < min_rows:
        return _too_few(name, protocol, n, min_rows, excluded)
    pm = _potential_matrix(used, protocol)
    gap, z = pm.gap, pm.z
    n_comp = np.sum(np.isfinite(pm.phi), axis=1) - 1
    if protocol == "fixed-sphere" and np.all(n_comp < 1):
        return _too_few(name, protocol, n, min_rows, excluded,
                        extra=" with at least two states on the same sphere")
    zz = np.where(np.isfinite(z), z, np.inf)
    np.fill_diagonal(zz, np.inf)  # a state is not compared with itself
    viol = zz < -z_thr
    n_viol = viol.sum(axis=1)
    confirmed = n_viol == 0
    own_min = pm.argmin() == np.arange(n)
    T = pm.states["T"].to_numpy(float)
    # closest call: the smallest z over all pairs (a violation when < -z_thr; positive when
    # every state's own potential is the lowest of its row)
    i_w, j_w = np.unravel_index(np.argmin(zz), zz.shape)
    worst_z = float(zz[i_w, j_w])
    worst_gap_T = float(gap[i_w, j_w] / T[i_w])
    frac = float(np.mean(confirmed))
    passed = frac >= min_fraction
    table = pm.states[[c for c in (*_ID_COLUMNS, "T", "p") if c in pm.states.columns]].copy()
    table["argmin"] = pm.argmin()
    table["own_is_min"] = own_min
    table["n_compared"] = n_comp
    table["n_violations"] = n_viol
    table["min_gap_z"] = np.where(np.isfinite(zz.min(axis=1)), zz.min(axis=1), np.nan)
    table["confirmed"] = confirmed
    details = {"n_used": n, "n_excluded": len(excluded), "potential": pm.kind,
               "fraction_confirmed": frac, "fraction_argmin": float(np.mean(own_min)),
               "n_violating_pairs": int(viol.sum()), "min_gap_z": worst_z, "min_gap_over_T": worst_gap_T,
               "worst_i": int(i_w), "worst_j": int(j_w),
               "z_thr": z_thr, "min_fraction": min_fraction}
    summary = (f"{protocol} {name}: {'PASS' if passed else 'FAIL'} — {pm.kind} energy: "
               f"{int(confirmed.sum())}/{n} configurations minimise their own potential within "
               f"{z_thr:g}σ ({_fmt_pct(frac)}; plain argmin {_fmt_pct(float(np.mean(own_min)))}); "
               f"smallest gap z = {worst_z:.2f} (ΔΦ/T = {worst_gap_T:.3g})"
               + (f"; {len(excluded)} excluded" if len(excluded) else ""))
    headline = f"{int(confirmed.sum())}/{n} minimise ({_fmt_pct(frac)})"
    return Verdict(name=name, protocol=protocol, passed=passed, summary=summary, details=details,
                   headline=headline, table=table.reset_index(drop=True), excluded=excluded,
                   extras={"matrix": pm})


# ---------------------------------------------------------------------------------------
# V3: Maxwell relations
# ---------------------------------------------------------------------------------------
def _maxwell_spec(protocol: str, d: float) -> dict[str, Any]:
    r"""Coefficient combinations (weights on a0..a5), targets and the pointwise relation."""
    R = (d - 1.0) / 2.0
    if protocol == "fixed-lr":
        # ∂S/∂x − ∂S/∂y = (a1 − a2) + (2a3 − a4)x + (a4 − 2a5)y = R
        combos = [("(a1 − a2)/R", np.array([0, 1, -1, 0, 0, 0]) / R, 1.0),
                  ("(2a3 − a4)/R", np.array([0, 0, 0, 2, -1, 0]) / R, 0.0),
                  ("(a4 − 2a5)/R", np.array([0, 0, 0, 0, 1, -2]) / R, 0.0)]
        rel = lambda gx, gy: (gx - gy) / R  # noqa: E731
        text = "(∂S/∂log η − ∂S/∂log λ)/R = 1"
    elif protocol == "fixed-elr":
        # ∂S/∂y = a2 + a4x + 2a5y = −R
        combos = [("a2/(−R)", np.array([0, 0, 1, 0, 0, 0]) / (-R), 1.0),
                  ("a4/R", np.array([0, 0, 0, 0, 1, 0]) / R, 0.0),
                  ("a5/R", np.array([0, 0, 0, 0, 0, 1]) / R, 0.0)]
        rel = lambda gx, gy: gy / (-R)  # noqa: E731
        text = "(∂S/∂log λ)/(−R) = 1"
    elif protocol == "fixed-sphere":
        # ∂S/∂log ρ = a2 + a4x + 2a5y = d − 1 at fixed η̃
        combos = [("a2/(d−1)", np.array([0, 0, 1, 0, 0, 0]) / (d - 1), 1.0),
                  ("a4/(d−1)", np.array([0, 0, 0, 0, 1, 0]) / (d - 1), 0.0),
                  ("a5/(d−1)", np.array([0, 0, 0, 0, 0, 1]) / (d - 1), 0.0)]
        rel = lambda gx, gy: gy / (d - 1)  # noqa: E731
        text = "(∂S/∂log ρ)/(d−1) = 1"
    else:  # pragma: no cover - guarded by _select_protocol
        raise ValueError(protocol)
    return {"combos": combos, "relation": rel, "text": text}


def _entropy_grid(df: pd.DataFrame, protocol: str | None) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """The protocol's usable rows with positive ``lr`` and second axis and a finite S.

    Returns ``(protocol, second-axis column, used rows, excluded rows)``.
    """
    sub, protocol = _select_protocol(df, protocol)
    ycol = _second_axis(protocol)
    used, excluded = _split_usable(sub, ["lr", ycol, "S"])
    return protocol, ycol, used[(used["lr"] > 0) & (used[ycol] > 0)], excluded


def check_maxwell(df: pd.DataFrame, protocol: str | None = None, *,
                  main_tol: float = 0.05, z_thr: float = 3.0, min_r2: float = 0.9,
                  min_rows: int = 8) -> Verdict:
    r"""V3: Maxwell relations from a quadratic fit of the entropy.

    Fit :math:`S = a_0 + a_1x + a_2y + a_3x^2 + a_4xy + a_5y^2` (weighted by ``S_err``,
    :func:`quadratic_fit`) with :math:`x = \log` ``lr`` (η or η̃) and :math:`y = \log` ``wd``
    (fixed sphere: :math:`y = \log` ``radius``). Relations (docs/theory.md, V3):

    - fixed LR: :math:`\partial S/\partial x - \partial S/\partial y = R`, i.e.
      :math:`(a_1-a_2)/R \to 1`, :math:`(2a_3-a_4)/R \to 0`, :math:`(a_4-2a_5)/R \to 0`;
    - fixed ELR: :math:`\partial S/\partial y = -R`, i.e. :math:`a_2/(-R)\to 1`,
      :math:`a_4/R\to 0`, :math:`a_5/R \to 0`;
    - fixed sphere: :math:`\partial S/\partial\log\rho = d-1` at fixed η̃ (equivalent to
      :math:`p = (d-1)T/\rho^2`), i.e. :math:`a_2/(d-1)\to 1`, :math:`a_4/(d-1)\to 0`,
      :math:`a_5/(d-1)\to 0`.

    Each combination comes with its standard error :math:`\sqrt{v^TCv}`. The pointwise
    relation (normalised so that its target is 1) is evaluated from the fitted derivatives
    at every grid point; its max and mean relative error are reported.

    The raw combinations are derivatives at x = y = 0 (η = λ = 1), outside the grid, so
    their errors include an extrapolation; the same relation evaluated at the centroid of
    the grid (:math:`\bar x, \bar y`, where the data are) is reported as ``centre`` with
    its own, much smaller, error.

    Pass (all three): the main combination and the centre relation are each within
    :math:`\max(z_{thr}\sigma, \text{main\_tol})` of their target (σ covers the sampling
    noise, so 3σ fails by chance ~0.3 % of the time; the 5 % floor tolerates small
    entropy-estimator biases that vary across the grid), and :math:`R^2 \ge` ``min_r2``. The
    centre condition keeps a poorly constrained extrapolation (large σ) from passing data
    that violate the relation where they were measured. A wrong radius term or a spurious
    λ-dependence of S of ≳ 10 % of R fails.
    """
    name = CHECKS[2]
    protocol, ycol, used, excluded = _entropy_grid(df, protocol)
    n = len(used)
    if n < min_rows:
        return _too_few(name, protocol, n, min_rows, excluded)
    x = np.log(used["lr"].to_numpy(float))
    y = np.log(used[ycol].to_numpy(float))
    if len(np.unique(np.round(x, 12))) < 3 or len(np.unique(np.round(y, 12))) < 3:
        return _too_few(name, protocol, n, min_rows, excluded,
                        extra=" spanning ≥ 3 values on each axis")
    S = used["S"].to_numpy(float)
    S_err = _err(used, "S_err")
    fit = quadratic_fit(x, y, S, S_err if np.all(S_err > 0) else None)
    d = 2.0 * _gas_constant(used) + 1.0
    spec = _maxwell_spec(protocol, d)
    combos = []
    for label, v, target in spec["combos"]:
        val, err = fit.combination(v)
        combos.append({"combination": label, "value": val, "stderr": err, "target": target,
                       "deviation": val - target,
                       "z": (val - target) / err if err > 0 else float("nan")})
    ctab = pd.DataFrame(combos)
    main = combos[0]
    tol = max(z_thr * main["stderr"], main_tol) if np.isfinite(main["stderr"]) else main_tol
    ok_main = abs(main["deviation"]) <= tol
    # the relation at the centroid of the grid: linear in the coefficients
    xc, yc = float(x.mean()), float(y.mean())
    w_centre = spec["relation"](np.array([0, 1, 0, 2 * xc, yc, 0.0]), np.array([0, 0, 1, 0, xc, 2 * yc]))
    centre, centre_err = fit.combination(w_centre)
    tol_c = max(z_thr * centre_err, main_tol) if np.isfinite(centre_err) else main_tol
    ok_centre = abs(centre - 1.0) <= tol_c
    ok_r2 = fit.r2 >= min_r2
    passed = bool(ok_main and ok_centre and ok_r2)
    gx, gy = fit.gradient(x, y)
    relation = spec["relation"](gx, gy)
    rel_err = np.abs(relation - 1.0)
    table = used[[c for c in (*_ID_COLUMNS, "T") if c in used.columns]].copy()
    table["x"], table["y"] = x, y
    table["S"] = S
    table["S_fit"] = fit.predict(x, y)
    table["dS_dx"], table["dS_dy"] = gx, gy
    table["relation"] = relation
    table["rel_err"] = rel_err
    details: dict[str, Any] = {"n_used": n, "n_excluded": len(excluded), "relation": spec["text"],
                               "r2": fit.r2, "resid_std": fit.resid_std, "chi2_red": fit.chi2_red,
                               "main": main["combination"], "main_value": main["value"],
                               "main_stderr": main["stderr"], "main_target": main["target"],
                               "main_tolerance": tol, "centre_value": centre,
                               "centre_stderr": centre_err, "centre_tolerance": tol_c,
                               "centre_x": xc, "centre_y": yc, "max_rel_err": float(rel_err.max()),
                               "mean_rel_err": float(rel_err.mean()), "main_tol": main_tol,
                               "z_thr": z_thr, "min_r2": min_r2}
    for c in combos[1:]:
        details[c["combination"]] = c["value"]
        details[c["combination"] + " stderr"] = c["stderr"]
    for k, (a, s) in enumerate(zip(fit.coef, fit.stderr)):
        details[f"a{k}"] = float(a)
        details[f"a{k}_stderr"] = float(s)
    why = []
    if not ok_main:
        why.append(f"main combination off by {main['deviation']:+.3f} > {tol:.3f}")
    if not ok_centre:
        why.append(f"relation at the grid centre off by {centre - 1:+.3f} > {tol_c:.3f}")
    if not ok_r2:
        why.append(f"R² = {fit.r2:.3f} < {min_r2}")
    summary = (f"{protocol} {name}: {'PASS' if passed else 'FAIL'} — {main['combination']} = "
               f"{main['value']:.3f} ± {main['stderr']:.3f} (target {main['target']:g}), "
               + ", ".join(f"{c['combination']} = {c['value']:+.3f} ± {c['stderr']:.3f}" for c in combos[1:])
               + f"; at the grid centre {centre:.3f} ± {centre_err:.3f}"
               + f"; R² = {fit.r2:.4f}; pointwise {spec['text']}: max rel. err "
               f"{_fmt_pct(float(rel_err.max()))}, mean {_fmt_pct(float(rel_err.mean()))}"
               + (f" ({'; '.join(why)})" if why else "")
               + (f"; {len(excluded)} excluded" if len(excluded) else ""))
    headline = f"{main['combination']} = {main['value']:.3f} ± {main['stderr']:.3f}"
    return Verdict(name=name, protocol=protocol, passed=passed, summary=summary, details=details,
                   headline=headline, table=table.reset_index(drop=True), excluded=excluded,
                   extras={"fit": fit, "combinations": ctab})


# ---------------------------------------------------------------------------------------
# V4: adiabats
# ---------------------------------------------------------------------------------------
def _adiabat_coords(used: pd.DataFrame, protocol: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    r"""(a, b): a = log of the adiabatic invariant, b = log of the second hyperparameter.

    fixed LR: a = log η; fixed ELR: a = log(η̃²/λ) = 2x − y; fixed sphere:
    a = log(η̃ρ²) = x + 2y; b = log λ (fixed sphere: log ρ).
    """
    x = np.log(used["lr"].to_numpy(float))
    ycol = _second_axis(protocol)
    y = np.log(used[ycol].to_numpy(float))
    if protocol == "fixed-lr":
        return x, y, "log η", "log λ"
    if protocol == "fixed-elr":
        return 2 * x - y, y, "log(η̃²/λ)", "log λ"
    return x + 2 * y, y, "log(η̃ρ²)", "log ρ"


def _group_equal(a: np.ndarray) -> np.ndarray:
    """Labels grouping equal values of a (up to rounding error), ordered by a."""
    order = np.argsort(a, kind="stable")
    span = float(np.ptp(a)) if a.size else 0.0
    tol = 1e-7 * max(1.0, span)
    labels = np.empty(a.size, dtype=int)
    cur = 0
    for k, idx in enumerate(order):
        if k > 0 and a[idx] - a[order[k - 1]] > tol:
            cur += 1
        labels[idx] = cur
    return labels


def check_adiabats(df: pd.DataFrame, protocol: str | None = None, *,
                   slope_tol: float = 0.05, z_thr: float = 3.0, min_rows: int = 7) -> Verdict:
    r"""V4: the entropy is constant along adiabats.

    Adiabatic invariant (docs/theory.md, :math:`pV^\gamma` = const with γ = 2):
    fixed LR η; fixed ELR :math:`\tilde\eta^2/\lambda`; fixed sphere :math:`\tilde\eta\rho^2`.
    With :math:`a = \log(\text{invariant})` and :math:`b = \log\lambda` (fixed sphere:
    :math:`\log\rho`) — b is independent of a though not geometrically orthogonal, chosen so
    that :math:`\partial S/\partial b|_a` reads as "entropy change per e-fold of the weight
    decay (radius) along the adiabat", directly comparable to the Maxwell slopes of size R —
    fit (weighted by ``S_err``, centred :math:`A = a - \bar a`, :math:`B = b - \bar b`)

    .. math::  S = c_0 + c_1A + c_2A^2 + c_3B + c_4AB,

    so that :math:`\partial S/\partial b|_a = c_3 + c_4 A` (predicted 0) and
    :math:`\partial S/\partial a|_b = c_1 + 2c_2A + c_4B` (small-T ideal gas: R = (d−1)/2,
    reported as information). Covariance as in :func:`quadratic_fit` (Birge-scaled).

    Pass: :math:`|\partial S/\partial b|/R \le \max(z_{thr}\sigma, \text{slope\_tol})` at the
    centre of the grid and at both ends of the range of a (the slope must vanish over the
    whole grid, not only on average). With σ from the fit, sampling noise fails this ~1 % of
    the time; the 5 % floor tolerates the O(T) departure of the VMF entropy from the ideal
    gas at the largest T. An entropy-vs-temperature slope off by 30 % gives
    :math:`|\partial S/\partial b|/R \approx 0.15`–0.6 and fails.

    The spread of S along each adiabat with ≥ 2 grid points (std, range, and
    :math:`\chi^2_{\rm red}` of constancy with the S errors) is tabulated.
    """
    name = CHECKS[3]
    protocol, ycol, used, excluded = _entropy_grid(df, protocol)
    n = len(used)
    if n < min_rows:
        return _too_few(name, protocol, n, min_rows, excluded)
    a, b, a_label, b_label = _adiabat_coords(used, protocol)
    if len(np.unique(np.round(b, 12))) < 2 or len(np.unique(np.round(a, 12))) < 3:
        return _too_few(name, protocol, n, min_rows, excluded, extra=" spanning the grid")
    R = _gas_constant(used)
    S = used["S"].to_numpy(float)
    S_err = _err(used, "S_err")
    A, B = a - a.mean(), b - b.mean()
    X = np.column_stack([np.ones(n), A, A**2, B, A * B])
    weighted = bool(np.all(S_err > 0))
    sw = 1.0 / S_err if weighted else np.ones(n)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], S * sw, rcond=None)
    resid = S - X @ coef
    dof = n - X.shape[1]
    cov0 = np.linalg.pinv((X * sw[:, None]).T @ (X * sw[:, None]))
    if weighted:
        chi2_red = float(((resid * sw) ** 2).sum() / dof)
        cov = cov0 * max(1.0, chi2_red)
    else:
        chi2_red = float("nan")
        cov = cov0 * float(resid @ resid) / dof
    tss = float(((S - S.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else float("nan")

    def _lin(v: np.ndarray) -> tuple[float, float]:
        return float(v @ coef), float(np.sqrt(max(float(v @ cov @ v), 0.0)))

    probes = {"centre": 0.0, "low a": float(A.min()), "high a": float(A.max())}
    slopes = {}
    ok = True
    for label, A0 in probes.items():
        val, err = _lin(np.array([0, 0, 0, 1.0, A0]))
        val, err = val / R, err / R
        tol = max(z_thr * err, slope_tol)
        slopes[label] = (val, err, tol)
        ok &= abs(val) <= tol
    dSda, dSda_err = _lin(np.array([0, 1.0, 0, 0, 0]))
    passed = bool(ok)

    # spread of S along each adiabat
    labels = _group_equal(a)
    rows = []
    for g in np.unique(labels):
        m = labels == g
        if m.sum() < 2:
            continue
        Sg, eg = S[m], S_err[m]
        if np.all(eg > 0):
            w = 1.0 / eg**2
            Sw = float((w * Sg).sum() / w.sum())
            chi2 = float((((Sg - Sw) / eg) ** 2).sum() / (m.sum() - 1))
        else:
            chi2 = float("nan")
        rows.append({"invariant": float(np.exp(a[m].mean())), "log_invariant": float(a[m].mean()),
                     "n": int(m.sum()), "S_mean": float(Sg.mean()), "S_std": float(Sg.std(ddof=1)),
                     "S_range": float(np.ptp(Sg)), "S_err_rms": float(np.sqrt(np.mean(eg**2))),
                     "chi2_red": chi2,
                     "b_range": float(np.ptp(b[m]))})
    atab = pd.DataFrame(rows, columns=["invariant", "log_invariant", "n", "S_mean", "S_std",
                                       "S_range", "S_err_rms", "chi2_red", "b_range"])
    details: dict[str, Any] = {"n_used": n, "n_excluded": len(excluded), "invariant": a_label,
                               "b": b_label, "r2": r2, "chi2_red": chi2_red,
                               "slope_tol": slope_tol, "z_thr": z_thr,
                               "dS_da_over_R": dSda / R, "dS_da_over_R_stderr": dSda_err / R,
                               "n_adiabats": len(atab)}
    for label, (val, err, tol) in slopes.items():
        key = label.replace(" ", "_")
        details[f"dS_db_over_R_{key}"] = val
        details[f"dS_db_over_R_{key}_stderr"] = err
        details[f"dS_db_over_R_{key}_tolerance"] = tol
    if len(atab):
        details["max_adiabat_std"] = float(atab["S_std"].max())
        details["median_adiabat_std"] = float(atab["S_std"].median())
        details["mean_adiabat_chi2_red"] = float(np.nanmean(atab["chi2_red"])) if atab["chi2_red"].notna().any() else float("nan")
    c = slopes["centre"]
    summary = (f"{protocol} {name}: {'PASS' if passed else 'FAIL'} — (∂S/∂{b_label})/R at fixed "
               f"{a_label}: {c[0]:+.3f} ± {c[1]:.3f} (centre), "
               f"{slopes['low a'][0]:+.3f} ± {slopes['low a'][1]:.3f} / {slopes['high a'][0]:+.3f} ± "
               f"{slopes['high a'][1]:.3f} (ends); "
               + (f"{len(atab)} adiabats with ≥ 2 points, max std of S {details['max_adiabat_std']:.3g}; "
                  if len(atab) else "no adiabat with ≥ 2 grid points; ")
               + f"(∂S/∂{a_label})/R = {dSda / R:.3f} (ideal gas 1)"
               + (f"; {len(excluded)} excluded" if len(excluded) else ""))
    headline = f"(∂S/∂{b_label})/R = {c[0]:+.3f} ± {c[1]:.3f}"
    return Verdict(name=name, protocol=protocol, passed=passed, summary=summary, details=details,
                   headline=headline, table=atab, excluded=excluded,
                   extras={"coef": coef, "cov": cov, "a": a, "b": b, "a_label": a_label,
                           "b_label": b_label})


# ---------------------------------------------------------------------------------------
# All checks
# ---------------------------------------------------------------------------------------
def verify(df: pd.DataFrame) -> list[Verdict]:
    """Run V1–V4 for every protocol present (in :data:`PROTOCOLS` order)."""
    present = [p for p in PROTOCOLS if (df["protocol"] == p).any()]
    unknown = set(pd.unique(df["protocol"])) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}")
    out: list[Verdict] = []
    for p in present:
        for check in (check_radius, check_potentials, check_maxwell, check_adiabats):
            out.append(check(df, p))
    return out


def verdicts_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """Tidy table of verdicts: one row per (protocol, check) with the key numbers."""
    rows = []
    for v in verdicts:
        d = v.details
        key, val, err, target, tol = _key_numbers(v)
        rows.append({"protocol": v.protocol, "check": v.check, "name": v.name,
                     "passed": v.passed, "n_used": d.get("n_used"), "n_excluded": d.get("n_excluded"),
                     "metric": key, "value": val, "stderr": err, "target": target,
                     "tolerance": tol, "headline": v.headline, "summary": v.summary})
    return pd.DataFrame(rows)


def _key_numbers(v: Verdict) -> tuple[str, float, float, float, float]:
    """(metric name, value, stderr, target, tolerance) of the decisive number of a verdict."""
    d = v.details
    nan = float("nan")
    if d.get("reason") == "too few rows":
        return "n_used", float(d.get("n_used", nan)), nan, nan, nan
    if v.check == "V1":
        return ("discrete median |rel. err|", d["discrete_median_abs_rel"], nan,
                0.0, max(d["median_tol"], 2 * d["discrete_median_rel_se"]))
    if v.check == "V2":
        return "fraction confirmed", d["fraction_confirmed"], nan, 1.0, d["min_fraction"]
    if v.check == "V3":
        return d["main"], d["main_value"], d["main_stderr"], d["main_target"], d["main_tolerance"]
    return ("(dS/db)/R at centre", d["dS_db_over_R_centre"], d["dS_db_over_R_centre_stderr"], 0.0,
            d["dS_db_over_R_centre_tolerance"])


# ---------------------------------------------------------------------------------------
# Synthetic results table (tests, demos)
# ---------------------------------------------------------------------------------------
def _ideal_gas_energy(T: np.ndarray, d: int) -> np.ndarray:
    r"""Small-T (ideal-gas) mean loss of the VMF model, :math:`U = (d-1)T/2`."""
    return (d - 1) * np.asarray(T, float) / 2.0


def _ideal_gas_sphere_entropy(T: np.ndarray, d: int) -> np.ndarray:
    r"""Small-T entropy on the sphere, :math:`S_u = \frac{d-1}{2}\log(2\pi e T)`."""
    return (d - 1) / 2.0 * np.log(2 * np.pi * np.e * np.asarray(T, float))


def _ideal_gas_grad_sq(T: np.ndarray, d: int) -> np.ndarray:
    r"""Small-T :math:`E\|\nabla L(u)\|^2 = E\sin^2\theta \approx (d-1)T` (equipartition)."""
    return (d - 1) * np.asarray(T, float)


ThermoFn = Callable[[np.ndarray, int], np.ndarray]


def synthetic_results(protocol: str, *, dim: int = 3, sigma: float = 1.0, n_lr: int = 7,
                      n_wd: int = 7, lr_range: tuple[float, float] = (1e-3, 1e-1),
                      wd_range: tuple[float, float] = (1e-3, 1e-1),
                      radius_range: tuple[float, float] = (1e-1, 10.0),
                      rel_noise: float = 0.005, entropy_noise: float = 0.02, seed: int = 0,
                      energy: ThermoFn | None = None, sphere_entropy: ThermoFn | None = None,
                      grad_sq: ThermoFn | None = None, iters: int = 200_000,
                      queue_size: int = 1000, queue_every: int = 50) -> pd.DataFrame:
    r"""A results table built from closed forms plus Gaussian noise of known size.

    Not a simulation: a fixture with the simulator's columns, for tests and demos. The
    "true" stationary state of each grid point is (defaults: the small-T ideal gas, exact
    for d = 3 up to :math:`e^{-2/T}`; pass ``energy``/``sphere_entropy``/``grad_sq``
    callables ``f(T, d)`` for another model, e.g. the exact VMF):

    - :math:`T`: fixed sphere / ELR :math:`\tilde\eta\sigma^2/2`; fixed LR
      :math:`\sqrt{\eta\lambda\sigma^2/(2(d-1))}`;
    - U = ``energy(T)``, :math:`S_u` = ``sphere_entropy(T)``, g = ``grad_sq(T)``;
    - radius: the discrete-time (Appendix G) value, so that the SDE radius is slightly off
      at large η; fixed sphere: ρ = ``radius`` and the effective pressure
      :math:`p = \tilde\eta(\sigma^2(d-1)+g)/(2\rho^2)`.

    Measured columns = truth × (1 + ``rel_noise``·z) for ρ, p, U, g and truth +
    ``entropy_noise``·z for :math:`S_u` (z standard normal, independent); the ``*_err``
    columns hold exactly these noise sizes, so z-scores are standard normal. V, S and their
    errors are derived from the noisy ρ and :math:`S_u`. All rows are stationary, with
    ``drift_z`` ~ N(0, 1). ``n_wd`` is the number of radii for fixed sphere.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    energy = energy or _ideal_gas_energy
    sphere_entropy = sphere_entropy or _ideal_gas_sphere_entropy
    grad_sq = grad_sq or _ideal_gas_grad_sq
    rng = np.random.default_rng(seed)
    d = int(dim)
    lrs = np.geomspace(*lr_range, n_lr)
    seconds = np.geomspace(*(radius_range if protocol == "fixed-sphere" else wd_range), n_wd)
    LR, Y = (g.ravel() for g in np.meshgrid(lrs, seconds, indexing="ij"))
    n = LR.size
    s2 = sigma**2
    tr = s2 * (d - 1)  # tr Σ(u) on the unit sphere
    if protocol == "fixed-lr":
        wd, radius = Y, np.full(n, np.nan)
        T = np.sqrt(LR * wd * s2 / (2 * (d - 1)))
    else:
        T = LR * s2 / 2
        wd, radius = (np.full(n, np.nan), Y) if protocol == "fixed-sphere" else (Y, np.full(n, np.nan))
    U_true = np.asarray(energy(T, d), float)
    Su_true = np.asarray(sphere_entropy(T, d), float)
    g_true = np.asarray(grad_sq(T, d), float)

    def noisy(v: np.ndarray, rel: float) -> tuple[np.ndarray, np.ndarray]:
        return v * (1 + rel * rng.standard_normal(v.shape)), np.abs(v) * rel

    U, U_err = noisy(U_true, rel_noise)
    g, g_err = noisy(g_true, rel_noise)
    S_u = Su_true + entropy_noise * rng.standard_normal(n)
    S_u_err = np.full(n, entropy_noise)
    if protocol == "fixed-lr":
        rho_sde = (LR * tr / (2 * wd)) ** 0.25
        rho_true = (LR * (tr + g_true) / (2 * wd)) ** 0.25
        rho_disc = (LR * (tr + g) / (2 * wd)) ** 0.25
    elif protocol == "fixed-elr":
        rho_sde = np.sqrt(LR * tr / (2 * wd))
        rho_true = np.sqrt(LR * (tr + g_true) / (2 * wd))
        rho_disc = np.sqrt(LR * (tr + g) / (2 * wd))
    else:
        rho_sde = rho_true = rho_disc = radius
    if protocol == "fixed-sphere":
        rho, rho_err = radius.copy(), np.zeros(n)
        p_true = LR * (tr + g_true) / (2 * radius**2)
        p, p_err = noisy(p_true, rel_noise)
        p_th = (d - 1) * T / radius**2
        p_th_disc = LR * (tr + g) / (2 * radius**2)
    else:
        rho, rho_err = noisy(rho_true, rel_noise)
        p, p_err = wd.copy(), np.zeros(n)
        p_th = p_th_disc = wd.copy()
    S = S_u + (d - 1) * np.log(rho)
    S_err = np.sqrt(S_u_err**2 + ((d - 1) * rho_err / rho) ** 2)
    return pd.DataFrame({
        "protocol": protocol, "dim": d, "lr": LR, "wd": wd, "radius": radius, "sigma": sigma,
        "iters": iters, "seed": seed, "queue_size": queue_size, "queue_every": queue_every,
        "R": (d - 1) / 2, "T": T, "p": p, "p_err": p_err,
        "rho": rho, "rho_err": rho_err, "V": rho**2 / 2, "V_err": rho * rho_err,
        "U": U, "U_err": U_err, "grad_sq": g, "grad_sq_err": g_err,
        "S_sphere": S_u, "S_sphere_err": S_u_err, "S": S, "S_err": S_err,
        "stationary": True, "drift_z": rng.standard_normal(n),
        "U_theory": U_true, "S_sphere_theory": Su_true, "rho_theory": rho_sde,
        "rho_theory_discrete": rho_disc, "V_theory": rho_sde**2 / 2,
        "S_theory": Su_true + (d - 1) * np.log(rho_sde), "p_theory": p_th,
        "p_theory_discrete": p_th_disc, "grad_sq_theory": g_true,
    })
