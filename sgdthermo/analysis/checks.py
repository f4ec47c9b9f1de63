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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import theory
from ..protocols import REPORT_ORDER, second_axis
from .fits import QuadraticFit, linear_fit, quadratic_fit
from .selection import ID_COLUMNS as _ID_COLUMNS
from .selection import error_column as _err
from .selection import select_protocol, split_usable, stationary_mask
from .verdict import CHECKS, Verdict, too_few, verdicts_frame

__all__ = ["PROTOCOLS", "CHECKS", "Verdict", "PotentialMatrix", "potential_matrix", "check_radius",
           "check_potentials", "check_maxwell", "check_adiabats", "verify", "verdicts_frame", "stationary_mask",
           "QuadraticFit", "quadratic_fit", "linear_fit"]

#: The three training protocols, in the order the report shows them.
PROTOCOLS: tuple[str, ...] = REPORT_ORDER


def _fmt_pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


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
    sub, protocol = select_protocol(df, protocol)
    if protocol == "fixed-sphere":
        meas_col, err_col, sde_col, disc_col, label = "p", "p_err", "p_theory", "p_theory_discrete", "p"
    else:
        meas_col, err_col, sde_col, disc_col, label = "rho", "rho_err", "rho_theory", "rho_theory_discrete", "ρ"
    used, excluded = split_usable(sub, [meas_col, sde_col, disc_col])
    n = len(used)
    if n < min_rows:
        return too_few(name, protocol, n, min_rows, excluded)
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
    sub, protocol = select_protocol(df, protocol)
    used, _ = split_usable(sub, _potential_columns(protocol))
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
    sub, protocol = select_protocol(df, protocol)
    used, excluded = split_usable(sub, _potential_columns(protocol))
    n = len(used)
    if n < min_rows:
        return too_few(name, protocol, n, min_rows, excluded)
    pm = _potential_matrix(used, protocol)
    gap, z = pm.gap, pm.z
    n_comp = np.sum(np.isfinite(pm.phi), axis=1) - 1
    if protocol == "fixed-sphere" and np.all(n_comp < 1):
        return too_few(name, protocol, n, min_rows, excluded,
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


def _entropy_grid(df: pd.DataFrame, protocol: str | None) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """The protocol's usable rows with positive ``lr`` and second axis and a finite S.

    Returns ``(protocol, second-axis column, used rows, excluded rows)``.
    """
    sub, protocol = select_protocol(df, protocol)
    ycol = second_axis(protocol)
    used, excluded = split_usable(sub, ["lr", ycol, "S"])
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
        return too_few(name, protocol, n, min_rows, excluded)
    x = np.log(used["lr"].to_numpy(float))
    y = np.log(used[ycol].to_numpy(float))
    if len(np.unique(np.round(x, 12))) < 3 or len(np.unique(np.round(y, 12))) < 3:
        return too_few(name, protocol, n, min_rows, excluded,
                        extra=" spanning ≥ 3 values on each axis")
    S = used["S"].to_numpy(float)
    S_err = _err(used, "S_err")
    fit = quadratic_fit(x, y, S, S_err if np.all(S_err > 0) else None)
    d = float(used["dim"].iloc[0])
    targets = theory.maxwell_coefficient_targets(protocol, d)
    text = theory.maxwell_prediction(protocol, d)["normalised"]

    def relation_of(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return np.asarray(theory.maxwell_ratio(protocol, gx, gy, d), float)

    combos = []
    for tgt in targets:
        label, target = tgt.label, tgt.target
        val, err = fit.combination(np.asarray(tgt.weights, float) / tgt.scale)
        combos.append({"combination": label, "value": val, "stderr": err, "target": target,
                       "deviation": val - target,
                       "z": (val - target) / err if err > 0 else float("nan")})
    ctab = pd.DataFrame(combos)
    main = combos[0]
    tol = max(z_thr * main["stderr"], main_tol) if np.isfinite(main["stderr"]) else main_tol
    ok_main = abs(main["deviation"]) <= tol
    # the relation at the centroid of the grid: linear in the coefficients
    xc, yc = float(x.mean()), float(y.mean())
    w_centre = relation_of(np.array([0, 1, 0, 2 * xc, yc, 0.0]), np.array([0, 0, 1, 0, xc, 2 * yc]))
    centre, centre_err = fit.combination(w_centre)
    tol_c = max(z_thr * centre_err, main_tol) if np.isfinite(centre_err) else main_tol
    ok_centre = abs(centre - 1.0) <= tol_c
    ok_r2 = fit.r2 >= min_r2
    passed = bool(ok_main and ok_centre and ok_r2)
    gx, gy = fit.gradient(x, y)
    relation = relation_of(gx, gy)
    rel_err = np.abs(relation - 1.0)
    table = used[[c for c in (*_ID_COLUMNS, "T") if c in used.columns]].copy()
    table["x"], table["y"] = x, y
    table["S"] = S
    table["S_fit"] = fit.predict(x, y)
    table["dS_dx"], table["dS_dy"] = gx, gy
    table["relation"] = relation
    table["rel_err"] = rel_err
    details: dict[str, Any] = {"n_used": n, "n_excluded": len(excluded), "relation": text,
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
               + f"; R² = {fit.r2:.4f}; pointwise {text}: max rel. err "
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
        return too_few(name, protocol, n, min_rows, excluded)
    a, b, a_label, b_label = theory.adiabat_coordinates(
        protocol, np.log(used["lr"].to_numpy(float)), np.log(used[ycol].to_numpy(float)))
    if len(np.unique(np.round(b, 12))) < 2 or len(np.unique(np.round(a, 12))) < 3:
        return too_few(name, protocol, n, min_rows, excluded, extra=" spanning the grid")
    R = float(theory.gas_constant(used['dim'].iloc[0]))
    S = used["S"].to_numpy(float)
    S_err = _err(used, "S_err")
    A, B = a - a.mean(), b - b.mean()
    X = np.column_stack([np.ones(n), A, A**2, B, A * B])
    fit = linear_fit(X, S, S_err)  # weighted by S_err when every row has one; Birge-scaled
    coef, cov, chi2_red, r2 = fit["coef"], fit["cov"], fit["chi2_red"], fit["r2"]
    if not np.isfinite(r2) or float(((S - S.mean()) ** 2).sum()) == 0:
        r2 = float("nan")

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

