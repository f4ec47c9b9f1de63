r"""How independent the snapshots of an entropy queue are, and whether its entropy can be trusted.

A queue holds N weights of one run taken every k steps, in time order. The nearest-neighbour
estimators assume independent samples. When the stride k is shorter than the time the
direction u takes to decorrelate, a snapshot's nearest neighbour is its own neighbour in time
and the estimator measures the trajectory, not the distribution: in high dimension the typical
distance between independent samples is barely larger than their nearest-neighbour distance, so
even a weak correlation makes the temporal neighbour the nearest, and S_u comes out far too low
with an error bar that does not know it.

Two diagnostics, both in snapshots:

* ``queue_tau`` — the integrated autocorrelation time τ (:func:`sgdthermo.stats.autocorr_time`,
  τ = ½ for independent snapshots) of the projections of the directions ``u_i`` onto their
  mean direction and onto ``n_proj`` fixed random directions orthogonal to it; the largest of
  them. ``queue_n_eff = N / (2τ)`` is the effective number of independent snapshots.
* ``nn_lag_fraction`` — the fraction of snapshots whose nearest neighbour is adjacent in time
  (lag 1). For independent snapshots it is :math:`2/N` (:func:`iid_lag_fraction`).

The verdict (:func:`entropy_ok`): the nearest-neighbour structure must look independent,
:math:`f_{\rm lag} \le p_0 + 3\sqrt{p_0(1-p_0)/N} + 0.02` with :math:`p_0 = 2/N`, and enough snapshots must be
independent, ``queue_n_eff ≥ min_n_eff``. The 0.02 margin is measured (docs/entropy.md, "Correlated
snapshots"): on the isotropic model at d = 100, N = 400, a lag fraction of 0.015 leaves S_u
unchanged within its error (0.2 nats) while 0.25 already lowers it by 0.85 nats, about 3
standard errors.
"""

from __future__ import annotations

import numpy as np
import torch

from ..stats import autocorr_time

__all__ = ["iid_lag_fraction", "projection_tau", "nn_lag_fraction", "entropy_ok", "queue_advice", "MIN_N_EFF",
           "LAG_MARGIN"]

#: Fewest independent snapshots for a trusted entropy.
MIN_N_EFF: float = 50.0
#: Allowed excess of the lag-1 nearest-neighbour fraction over independent snapshots.
LAG_MARGIN: float = 0.02


def iid_lag_fraction(n: int) -> float:
    """Expected fraction of n independent samples whose nearest neighbour is adjacent in order.

    Each of the n − 1 others is equally likely to be the nearest; two are adjacent for the
    n − 2 interior samples and one for the two ends: ``(2(n−2) + 2)/(n(n−1)) = 2/n``.
    """
    n = int(n)
    return 2.0 / n if n > 2 else 1.0


def projection_tau(x: np.ndarray | torch.Tensor, n_proj: int = 8, seed: int = 0,
                   rows: int = 256) -> float:
    """Largest integrated autocorrelation time (in snapshots, ½ = independent) of the projections
    of the time-ordered directions ``u_i = x_i/|x_i|`` (``x``: (N, d), numpy or torch, left
    where it is) onto their mean direction and onto ``n_proj`` random directions orthogonal to it
    (a fixed stream: ``seed``). The directions are formed in float64 ``rows`` at a time, so the
    extra memory is O(rows·d), not a copy of the queue; only the (n_proj + 1, N) projections
    leave the device."""
    x = torch.as_tensor(x)
    n, d = x.shape
    if n < 4:
        return float("nan")

    def units():
        for i in range(0, n, rows):
            u = x[i:i + rows].double()
            yield u / torch.linalg.vector_norm(u, dim=1, keepdim=True)

    m = sum(u.sum(dim=0) for u in units()) / n
    norm = float(torch.linalg.vector_norm(m))
    m = m / norm if norm > 0 else torch.eye(d, 1, dtype=m.dtype, device=m.device)[:, 0]
    p = torch.as_tensor(np.random.default_rng(seed).standard_normal((n_proj, d)), device=m.device)
    p = p - (p @ m)[:, None] * m
    p = p / torch.linalg.vector_norm(p, dim=1, keepdim=True).clamp_min(1e-300)
    q = torch.cat([m[None], p])
    series = torch.cat([u @ q.T for u in units()]).T.cpu().numpy()
    return float(np.max(autocorr_time(series)))


def nn_lag_fraction(nn_index: np.ndarray) -> float:
    """Fraction of samples i whose nearest neighbour ``nn_index[i]`` is i − 1 or i + 1."""
    nn_index = np.asarray(nn_index).ravel()
    if nn_index.size == 0:
        return float("nan")
    return float(np.mean(np.abs(nn_index - np.arange(nn_index.size)) == 1))


def queue_advice(queue_every: int | str) -> str:
    """What to change when a queue's snapshots are correlated: with an explicit stride,
    raise it; with ``auto`` (which already spaces them as far as the window allows), give the
    run more steps or the queue fewer snapshots."""
    if queue_every == "auto":
        return "the run is too short to space them further: more --iters or a smaller --queue-size"
    return "raise --queue-every"


def entropy_ok(lag_fraction: float, n: int, queue_tau: float, *, min_n_eff: float = MIN_N_EFF,
               margin: float = LAG_MARGIN, advice: str = "raise --queue-every") -> tuple[bool, str]:
    """Whether an entropy from ``n`` time-ordered snapshots can be trusted, and why not.

    Returns ``(ok, reason)``; ``reason`` is empty when ok and ends with ``advice`` otherwise.
    See the module docstring for the rule.
    """
    if not (np.isfinite(lag_fraction) and np.isfinite(queue_tau)):
        return False, "queue too short to measure its correlation"
    p0 = iid_lag_fraction(n)
    limit = p0 + 3.0 * np.sqrt(p0 * (1.0 - p0) / n) + margin
    n_eff = n / (2.0 * queue_tau)
    if lag_fraction > limit:
        return False, (f"correlated snapshots: {100 * lag_fraction:.0f} % have their nearest neighbour "
                       f"adjacent in time (independent: {100 * p0:.1f} %); {advice}")
    if n_eff < min_n_eff:
        return False, (f"correlated snapshots: only {n_eff:.0f} independent of {n} "
                       f"(τ = {queue_tau:.1f} snapshots); {advice}")
    return True, ""
