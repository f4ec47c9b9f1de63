r"""A results table built from closed forms plus noise of known size (tests and demos)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .. import theory
from ..protocols import REPORT_ORDER

__all__ = ["synthetic_results"]


def _small_T_grad_sq(T: np.ndarray, d: int) -> np.ndarray:
    r"""Small-T :math:`E\|\nabla L(u)\|^2 \approx (d-1)T = 2U` (equipartition; the small-T limit of
    :func:`sgdthermo.theory.vmf_grad_sq`)."""
    return 2.0 * np.asarray(theory.vmf_energy_small_T(T, d), float)


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
    if protocol not in REPORT_ORDER:
        raise ValueError(f"unknown protocol {protocol!r}")
    energy = energy or theory.vmf_energy_small_T
    sphere_entropy = sphere_entropy or theory.vmf_entropy_small_T
    grad_sq = grad_sq or _small_T_grad_sq
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
    else:
        wd, radius = (np.full(n, np.nan), Y) if protocol == "fixed-sphere" else (Y, np.full(n, np.nan))
    T = np.asarray(theory.temperature(protocol, lr=LR, sigma=sigma, d=d, wd=None if protocol == "fixed-sphere" else wd))
    U_true = np.asarray(energy(T, d), float)
    Su_true = np.asarray(sphere_entropy(T, d), float)
    g_true = np.asarray(grad_sq(T, d), float)

    def noisy(v: np.ndarray, rel: float) -> tuple[np.ndarray, np.ndarray]:
        return v * (1 + rel * rng.standard_normal(v.shape)), np.abs(v) * rel

    U, U_err = noisy(U_true, rel_noise)
    g, g_err = noisy(g_true, rel_noise)
    S_u = Su_true + entropy_noise * rng.standard_normal(n)
    S_u_err = np.full(n, entropy_noise)
    if protocol == "fixed-sphere":
        rho_sde = rho_true = rho_disc = radius
        rho, rho_err = radius.copy(), np.zeros(n)
        p_true = theory.pressure_sphere_discrete(lr=LR, radius=radius, trace_u=tr, grad_sq_u=g_true)
        p, p_err = noisy(p_true, rel_noise)
        p_th = theory.pressure_sphere(lr=LR, radius=radius, sigma=sigma, d=d)
        p_th_disc = theory.pressure_sphere_discrete(lr=LR, radius=radius, trace_u=tr, grad_sq_u=g)
    else:
        rho_sde = theory.radius_sde(protocol, lr=LR, wd=wd, sigma=sigma, d=d)
        rho_true = theory.radius_discrete(protocol, lr=LR, wd=wd, trace_u=tr, grad_sq_u=g_true)
        rho_disc = theory.radius_discrete(protocol, lr=LR, wd=wd, trace_u=tr, grad_sq_u=g)
        rho, rho_err = noisy(rho_true, rel_noise)
        p, p_err = wd.copy(), np.zeros(n)
        p_th = p_th_disc = wd.copy()
    S = theory.total_entropy(S_u, rho, d)
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
