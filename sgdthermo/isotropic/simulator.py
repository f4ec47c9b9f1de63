r"""Noisy gradient descent on scale-invariant test functions, over whole grids at once.

The isotropic-noise model of docs/theory.md: a scale-invariant loss :math:`L(w) = L(w/|w|)`
(by default the von Mises–Fisher test function :math:`L(w) = 1 + \langle\mu, w/|w|\rangle`),
minibatch gradient :math:`g_B(w) = \nabla L(w) + \xi` with :math:`\xi = P_u(\sigma z)/\rho`,
:math:`z \sim N(0, I_d)`, and one of the three protocols:

- ``fixed-lr``:     :math:`w \leftarrow w - \eta (g_B + \lambda w)`
- ``fixed-elr``:    :math:`w \leftarrow w - \tilde\eta \rho_t^2 (g_B + \lambda w)`
- ``fixed-sphere``: :math:`w' = w - \tilde\eta\rho^2 g_B,\; w \leftarrow \rho\,w'/|w'|`

A grid is the product of an ``lr`` axis (η for fixed-lr, η̃ otherwise) and a ``wd`` axis
(λ) or, for fixed-sphere, a ``radius`` axis (ρ). Every grid point is simulated in one
fused, parallel kernel (numba) with its own random stream, so results do not depend on
the grid, the thread count or the chunking. A user-supplied loss runs on a vectorised
PyTorch path instead (same update, autograd gradient).

Per grid point the run keeps block averages of :math:`\rho^2`, :math:`L(u)`,
:math:`\|\nabla L(u)\|^2` and (fixed sphere) :math:`|w'|`, and an entropy queue of
``queue_size`` weights taken every ``queue_every`` steps at the end of the run. The
stationary window is the part after ``burn_in`` (a fraction of the run); averages over it
carry standard errors from the integrated autocorrelation time
(:func:`sgdthermo.stats.stationarity`). A point is ``stationary`` when its window shows no
drift between halves and holds at least ten independent samples (``n_eff``); ``tau_steps``
is its slowest correlation time.

Example
-------
>>> from sgdthermo.isotropic import simulate_isotropic
>>> res = simulate_isotropic("fixed-lr", dim=3, lr=[0.01, 0.03], wd=[0.01, 0.03],
...                          iters=20_000, queue_size=100, queue_every=50)
>>> sorted(res.table.columns)[:3]
['R', 'S', 'S_err']
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import stats, theory
from ..budget import check_isotropic_budget
from ..entropy import EntropyEstimate, check_method_option, sphere_entropy_batch
from ..entropy.correlation import entropy_ok, queue_advice
from ..errors import ConfigError
from ..protocols import validate_hyperparameters
from ..specs import parse_spec
from . import kernels as K

__all__ = [
    "auto_queue_every",
    "SimulationResult",
    "simulate_isotropic",
    "validate_settings",
    "vmf_loss",
]

_log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


def validate_settings(
    protocol: str,
    *,
    dim: int,
    lr: np.ndarray,
    wd: np.ndarray | None,
    radius: np.ndarray | None,
    sigma: float,
    iters: int,
    queue_size: int,
    queue_every: int,
    burn_in: float,
    entropy_method: str | None = None,
    n_blocks: int = 1000,
) -> None:
    """Check every setting; raise :class:`ConfigError` (a ``ValueError``) naming the bad value
    and what is allowed.

    The run must also fit: its memory estimate against the CPU's and its work against the
    grid-size bound (:func:`sgdthermo.budget.check_isotropic_budget`; ``n_blocks`` as passed to
    :func:`simulate_isotropic`).
    """
    check_method_option(entropy_method)
    validate_hyperparameters(protocol, lr=lr, wd=wd, radius=radius)
    if not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ConfigError(f"--dim {dim}: must be an integer >= 2")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"--sigma {sigma:g}: must be a positive finite number")
    if not isinstance(iters, (int, np.integer)) or iters < 100:
        raise ConfigError(f"--iters {iters}: must be an integer >= 100")
    if not isinstance(queue_size, (int, np.integer)) or queue_size < 2:
        raise ConfigError(f"--queue-size {queue_size}: must be an integer >= 2")
    if not isinstance(queue_every, (int, np.integer)) or queue_every < 1:
        raise ConfigError(f"--queue-every {queue_every!r}: must be an integer >= 1 or 'auto'")
    if not (0.0 <= burn_in < 1.0):
        raise ConfigError(f"--burn-in {burn_in:g}: must be in [0, 1)")
    _check_budget(protocol, dim=int(dim), lr=lr, second=radius if protocol == "fixed-sphere" else wd,
                  iters=int(iters), queue_size=int(queue_size), n_blocks=int(n_blocks))
    window = iters - int(burn_in * iters)
    span = (queue_size - 1) * queue_every + 1
    if span > window:
        raise ConfigError(
            f"--queue-size {queue_size} x --queue-every {queue_every} spans {span} steps, "
            f"more than the stationary window ({window} of --iters {iters}); "
            "use more iterations or a smaller queue"
        )


def _check_budget(protocol: str, *, dim: int, lr: Any, second: Any, iters: int, queue_size: int,
                  n_blocks: int) -> None:
    """Memory and work of the grid ``lr × second`` (:mod:`sgdthermo.budget`)."""
    n_lr, n_second = int(np.size(lr)), int(np.size(second))
    name = "radius" if protocol == "fixed-sphere" else "wd"
    grid = f"--lr x --{name} ({n_lr} x {n_second} = {n_lr * n_second} grid points)"
    check_isotropic_budget(n_lr * n_second, dim, iters, queue_size, n_blocks=n_blocks, grid=grid)


#: ``queue_every="auto"``: the stride in units of the slowest point's direction correlation time.
AUTO_STRIDE_FACTOR: float = 2.0


def auto_queue_every(
    protocol: str, *, lr: np.ndarray, wd: np.ndarray | None, dim: int, sigma: float,
    iters: int, queue_size: int, burn_in: float,
) -> tuple[int, str]:
    """The queue stride for ``queue_every="auto"`` and a note (empty when all is well).

    The stride is ``⌈2 τ_u⌉`` steps for the grid's slowest point, ``τ_u = 1/η̃``
    (:func:`sgdthermo.theory.direction_correlation_steps`; fixed LR: the stationary
    η̃ = η/ρ*², :func:`sgdthermo.theory.stationary_elr`).  When ``queue_size`` snapshots that far
    apart do not fit the stationary window, the stride is the largest that fits and the note says
    so plainly, with the ``--iters`` or ``--queue-size`` that would fit; the entropies of the
    points it leaves correlated are then flagged by their measured correlation (``entropy_ok``).
    """
    lr = np.asarray(lr, dtype=float)
    if protocol == "fixed-lr":
        elr = np.asarray(theory.stationary_elr(lr=lr[:, None], wd=np.asarray(wd, float)[None, :],
                                               sigma=sigma, d=dim))
    else:
        elr = lr
    every = int(math.ceil(AUTO_STRIDE_FACTOR * float(np.max(theory.direction_correlation_steps(elr)))))
    window = iters - int(burn_in * iters)
    span = (queue_size - 1) * every + 1
    if span <= window:
        return every, ""
    fits = max(1, (window - 1) // (queue_size - 1))
    need = int(math.ceil(span / (1.0 - burn_in)))
    return fits, (
        f"--queue-every auto: the slowest point (η̃ = {float(np.min(elr)):.3g}) needs snapshots "
        f"{every} steps apart, and {queue_size} of them do not fit the stationary window "
        f"({window} of --iters {iters} steps); using {fits}, so entropies whose snapshots stay "
        f"correlated are flagged; for independent snapshots use --iters {need} or more or "
        f"--queue-size {max(2, (window - 1) // every + 1)} or less")


def vmf_loss(mu: np.ndarray) -> Callable:
    """The VMF test function as a torch callable on unit directions: L(u) = 1 + ⟨μ, u⟩."""
    import torch

    mu_t = torch.as_tensor(np.asarray(mu, dtype=np.float64))

    def loss(u):
        return 1.0 + u @ mu_t.to(u)

    return loss


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate_isotropic`.

    ``table``: one row per grid point (columns documented in the README: settings, T, p,
    measured stationary averages with ``_err`` columns, stationarity, theory columns).
    ``trace``: tidy time series (point, step, rho, U, grad_sq[, norm_excess = |w'| − ρ]) at ~100 times.
    ``queue``: the entropy queue, array (G, N, d). ``settings``: the run's settings.
    """

    table: pd.DataFrame
    trace: pd.DataFrame
    queue: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    runtime: float = 0.0


def _grid(protocol: str, lr: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.meshgrid(lr, second, indexing="ij")
    return a.ravel(), b.ravel()


def _run_torch(
    loss: Callable, W: np.ndarray, proto: int, lr: np.ndarray, wd: np.ndarray,
    radius: np.ndarray, sigma: np.ndarray, seed: int, iters: int, block_len: int,
    blocks: np.ndarray, queue: np.ndarray, queue_every: int, queue_start: int,
    progress: ProgressFn | None,
) -> int:
    """Vectorised PyTorch path for a user loss; same update and statistics as the kernel.

    Returns the number of snapshots pushed into the queue.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    w = torch.as_tensor(W.copy())
    lr_t, wd_t, rad_t, sig_t = (torch.as_tensor(v)[:, None] for v in (lr, wd, radius, sigma))
    nq = queue.shape[1]
    qc = 0
    every = max(1, iters // 100)
    for t in range(iters):
        r2 = (w * w).sum(dim=1, keepdim=True)
        r = r2.sqrt()
        u = (w / r).detach().requires_grad_(True)
        L = loss(u)
        (grad_u,) = torch.autograd.grad(L.sum(), u)
        with torch.no_grad():
            uu = u.detach()
            grad_u = grad_u - (grad_u * uu).sum(1, keepdim=True) * uu  # gradient on the sphere
            z = torch.randn(w.shape, generator=gen, dtype=w.dtype)
            xi = sig_t * (z - (z * uu).sum(1, keepdim=True) * uu)
            g = (grad_u + xi) / r  # weight-space gradient: ∇L(w) = ∇L(u)/ρ
            npre = torch.zeros_like(r)
            if proto == K.PROTO_LR:
                w = w - lr_t * (g + wd_t * w)
            elif proto == K.PROTO_ELR:
                w = w - lr_t * r2 * (g + wd_t * w)
            else:
                wp = w - lr_t * r2 * g
                npre = wp.norm(dim=1, keepdim=True)
                w = rad_t * wp / npre
            b = t // block_len
            blocks[:, b, K.ST_RHO2] += r2[:, 0].numpy()
            blocks[:, b, K.ST_LOSS] += L.detach().numpy()
            blocks[:, b, K.ST_GRADSQ] += (grad_u * grad_u).sum(1).numpy()
            if proto == K.PROTO_SPHERE:
                blocks[:, b, K.ST_NORM_PRE] += (npre - rad_t)[:, 0].numpy()
            t1 = t + 1
            if t1 >= queue_start and (t1 - queue_start) % queue_every == 0:
                queue[:, qc % nq] = w.numpy()
                qc += 1
        if progress is not None and (t + 1) % every == 0:
            progress(t + 1, iters)
    W[:] = w.numpy()
    return qc


def simulate_isotropic(
    protocol: str,
    *,
    lr: float | Sequence[float] | np.ndarray,
    wd: float | Sequence[float] | np.ndarray | None = None,
    radius: float | Sequence[float] | np.ndarray | None = None,
    dim: int = 3,
    sigma: float = 1.0,
    iters: int = 200_000,
    queue_size: int = 1000,
    queue_every: int | str = "auto",
    burn_in: float = 0.5,
    n_blocks: int = 1000,
    seed: int = 0,
    init_radius: float = 1.0,
    loss: Callable | None = None,
    mu: np.ndarray | None = None,
    entropy_method: str | None = None,
    streams: np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> SimulationResult:
    r"""Simulate the isotropic-noise model for every point of a hyperparameter grid.

    Parameters
    ----------
    protocol : {"fixed-lr", "fixed-elr", "fixed-sphere"}
    lr : float or 1-D array
        η (fixed-lr) or the effective learning rate η̃ (fixed-elr, fixed-sphere).
    wd, radius : float or 1-D array
        Weight decay λ (fixed-lr/elr) or the sphere radius ρ (fixed-sphere). The grid is
        the product ``lr × wd`` (or ``lr × radius``), flattened with ``lr`` slowest.
    dim : int
        Dimension d ≥ 2 of the weights (the sphere is S^{d−1}).
    sigma : float
        Noise scale σ: :math:`\Sigma(u) = \sigma^2 (I - u u^\top)`.
    iters, burn_in, n_blocks
        Steps; the fraction discarded before the stationary window; time resolution of
        the kept statistics (block averages).
    queue_size, queue_every
        Entropy queue: N weights, one every k steps, ending at the last step. ``"auto"``
        (default): twice the slowest point's direction correlation time, or the most that fits
        the window (:func:`auto_queue_every`; its note is logged and kept in ``settings``).
    seed, streams
        Master seed; the random stream of each grid point (default: its flat index), so
        ``streams=[i]`` reproduces point ``i`` of a larger grid exactly.
    init_radius : float
        Initial |w| for fixed-lr/elr (the paper starts at 1); fixed-sphere starts on ρ.
        The initial direction is uniform on the sphere.
    loss : callable, optional
        A scale-invariant loss as a function of unit directions, torch (G, d) → (G,),
        differentiable. Default: the VMF function with ``mu`` (default e₁), which runs on
        the fused numba kernel.
    entropy_method : str, optional
        Method for :func:`sgdthermo.entropy.sphere_entropy_batch` (default: its default).
    progress : callable(done, total), optional
        Called as the run advances.
    """
    lr_ax = parse_spec(lr, "lr")
    wd_ax = None if wd is None else parse_spec(wd, "wd")
    rad_ax = None if radius is None else parse_spec(radius, "radius")
    auto = isinstance(queue_every, str) and queue_every == "auto"
    validate_settings(
        protocol, dim=dim, lr=lr_ax, wd=wd_ax, radius=rad_ax, sigma=float(sigma), iters=iters,
        queue_size=queue_size, queue_every=1 if auto else queue_every, burn_in=burn_in,
        entropy_method=entropy_method, n_blocks=n_blocks,
    )
    note = ""
    if auto:
        queue_every, note = auto_queue_every(
            protocol, lr=lr_ax, wd=wd_ax, dim=int(dim), sigma=float(sigma), iters=int(iters),
            queue_size=int(queue_size), burn_in=float(burn_in))
        if note:
            _log.warning(note)
    t_start = time.perf_counter()
    d = int(dim)
    if protocol == "fixed-sphere":
        lr_g, rad_g = _grid(protocol, lr_ax, rad_ax)
        wd_g = np.full_like(lr_g, np.nan)
    else:
        lr_g, wd_g = _grid(protocol, lr_ax, wd_ax)
        rad_g = np.full_like(lr_g, np.nan)
    G = lr_g.size
    sig_g = np.full(G, float(sigma))
    if mu is None:
        mu = np.zeros(d)
        mu[0] = 1.0
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape != (d,) or not np.isclose(np.linalg.norm(mu), 1.0):
        raise ValueError(f"mu must be a unit vector of length {d}")
    proto = K.PROTOCOL_CODES[protocol]
    if streams is None:
        streams = np.arange(G, dtype=np.int64)
    streams = np.asarray(streams, dtype=np.int64)
    if streams.shape != (G,):
        raise ValueError(f"streams must have one entry per grid point ({G})")

    # initial state: a uniform direction per point from its own stream
    state = K.seed_streams(int(seed), streams)
    W = np.empty((G, d))
    for g in range(G):
        K.fill_normals(state[g], W[g], K.ZIG_KI, K.ZIG_WI, K.ZIG_FI)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    start_r = np.where(np.isnan(rad_g), float(init_radius), rad_g)
    W *= start_r[:, None]
    k_rad = np.where(np.isnan(rad_g), 1.0, rad_g)
    k_wd = np.where(np.isnan(wd_g), 0.0, wd_g)

    n_blocks = int(min(n_blocks, iters))
    block_len = -(-iters // n_blocks)
    n_blocks = -(-iters // block_len)
    counts = np.full(n_blocks, float(block_len))
    counts[-1] = iters - block_len * (n_blocks - 1)
    blocks = np.zeros((G, n_blocks, K.N_STATS))
    queue = np.zeros((G, queue_size, d))
    queue_count = np.zeros(G, dtype=np.int64)
    queue_start = iters - (queue_size - 1) * queue_every

    if loss is None:
        Z = np.empty_like(W)
        n_chunks = int(min(50, max(1, iters // 1000)))
        edges = np.linspace(0, iters, n_chunks + 1).astype(np.int64)
        for c in range(n_chunks):
            K.run_vmf(
                W, Z, mu, proto, lr_g, k_wd, k_rad, sig_g, state, int(edges[c]),
                int(edges[c + 1] - edges[c]), block_len, blocks, queue, queue_count,
                queue_every, queue_start, K.ZIG_KI, K.ZIG_WI, K.ZIG_FI,
            )
            if progress is not None:
                progress(int(edges[c + 1]), iters)
    else:
        queue_count[:] = _run_torch(loss, W, proto, lr_g, k_wd, k_rad, sig_g, seed, iters, block_len, blocks,
                   queue, queue_every, queue_start, progress)

    if not np.all(np.isfinite(W)):
        bad = np.flatnonzero(~np.all(np.isfinite(W), axis=1))
        raise FloatingPointError(f"the iterate diverged at {bad.size} grid point(s), e.g. lr={lr_g[bad[0]]:g}")

    means = blocks / counts[None, :, None]  # block averages
    b0 = int(burn_in * n_blocks)
    win = np.moveaxis(means[:, b0:, :], 1, 2)  # (G, N_STATS, n_window_blocks)
    st = stats.stationarity(win)
    m, se = st["mean"], st["stderr"]
    watched = [K.ST_LOSS, K.ST_NORM_PRE] if protocol == "fixed-sphere" else [K.ST_RHO2, K.ST_LOSS]
    zw = st["z"][:, watched]
    worst = np.take_along_axis(zw, np.abs(zw).argmax(axis=1)[:, None], axis=1)[:, 0]
    stationary = np.all(st["stationary"][:, watched], axis=1)
    n_eff = st["n_eff"][:, watched].min(axis=1)
    tau_steps = st["tau"][:, watched].max(axis=1) * block_len

    # entropy of the directions in the queue
    filled = int(min(queue_size, queue_count.min()))
    ent_kwargs = {} if entropy_method is None else {"method": entropy_method}
    ests = sphere_entropy_batch(queue[:, :filled], ordered=True, return_details=True, **ent_kwargs)
    S_u = np.array([e.value for e in ests])
    S_u_err = np.array([e.stderr for e in ests])

    table = _results_table(
        protocol, d, lr_g, wd_g, rad_g, float(sigma), m, se, tau_steps, n_eff, worst, stationary,
        S_u, S_u_err, vmf=loss is None,
    )
    table = _with_queue_diagnostics(table, ests, queue_advice("auto" if auto else queue_every))
    settings = dict(
        protocol=protocol, dim=d, sigma=float(sigma), iters=int(iters), queue_size=int(queue_size),
        queue_every=int(queue_every), queue_every_auto=auto, queue_every_note=note,
        burn_in=float(burn_in), seed=int(seed),
        n_blocks=int(n_blocks), block_len=int(block_len), init_radius=float(init_radius),
        lr=lr_ax.tolist(), wd=None if wd_ax is None else wd_ax.tolist(),
        radius=None if rad_ax is None else rad_ax.tolist(), loss="vmf" if loss is None else "custom",
    )
    for key in ("iters", "seed", "queue_size", "queue_every"):
        table[key] = settings[key]
    trace = _trace(protocol, means, block_len, counts)
    return SimulationResult(table=table, trace=trace, queue=queue[:, :filled], settings=settings,
                            runtime=time.perf_counter() - t_start)


def _results_table(
    protocol: str, d: int, lr: np.ndarray, wd: np.ndarray, radius: np.ndarray, sigma: float,
    m: np.ndarray, se: np.ndarray, tau_steps: np.ndarray, n_eff: np.ndarray, drift: np.ndarray,
    stationary: np.ndarray, S_u: np.ndarray, S_u_err: np.ndarray, *, vmf: bool,
) -> pd.DataFrame:
    """Assemble the tidy per-point table: measured values, errors, and theory columns."""
    R = theory.gas_constant(d)
    sphere = protocol == "fixed-sphere"
    T = theory.temperature(protocol, lr=lr, sigma=sigma, d=d, wd=None if sphere else wd)
    rho2 = m[:, K.ST_RHO2]
    V = 0.5 * rho2
    V_err = 0.5 * se[:, K.ST_RHO2]
    rho = np.sqrt(rho2)
    rho_err = V_err / rho  # dV = ρ dρ
    if sphere:
        rho = radius.copy()
        rho_err = np.zeros_like(rho)
        V = 0.5 * rho**2
        V_err = np.zeros_like(rho)
        # the kernel accumulates the excess |w'| − ρ
        p = theory.effective_pressure(norm_excess=m[:, K.ST_NORM_PRE], lr=lr, radius=radius)
        p_err = theory.effective_pressure(norm_excess=se[:, K.ST_NORM_PRE], lr=lr, radius=radius)
    else:
        p = wd.copy()
        p_err = np.zeros_like(p)
    U, U_err = m[:, K.ST_LOSS], se[:, K.ST_LOSS]
    gsq, gsq_err = m[:, K.ST_GRADSQ], se[:, K.ST_GRADSQ]
    S = theory.total_entropy(S_u, rho, d)
    S_err = np.sqrt(S_u_err**2 + ((d - 1) * rho_err / rho) ** 2)
    trace_u = sigma**2 * (d - 1)
    if sphere:
        rho_th = radius.copy()
        rho_th_disc = radius.copy()
        p_th = theory.pressure_sphere(lr=lr, radius=radius, sigma=sigma, d=d)
        p_th_disc = theory.pressure_sphere_discrete(lr=lr, radius=radius, trace_u=trace_u, grad_sq_u=gsq)
    else:
        rho_th = theory.radius_sde(protocol, lr=lr, wd=wd, sigma=sigma, d=d)
        rho_th_disc = theory.radius_discrete(protocol, lr=lr, wd=wd, trace_u=trace_u, grad_sq_u=gsq)
        p_th = wd.copy()
        p_th_disc = wd.copy()
    if vmf:
        U_th = theory.vmf_energy(T, d)
        S_u_th = theory.vmf_entropy(T, d)
        gsq_th = theory.vmf_grad_sq(T, d)
    else:
        U_th = S_u_th = gsq_th = np.full_like(T, np.nan)
    cols: dict[str, Any] = {
        "protocol": protocol, "dim": d, "lr": lr, "wd": wd, "radius": radius, "sigma": sigma,
        "R": R, "T": T, "p": p, "p_err": p_err,
        "rho": rho, "rho_err": rho_err, "V": V, "V_err": V_err,
        "U": U, "U_err": U_err, "grad_sq": gsq, "grad_sq_err": gsq_err,
        "S_sphere": S_u, "S_sphere_err": S_u_err, "S": S, "S_err": S_err,
        "stationary": stationary, "drift_z": drift, "tau_steps": tau_steps, "n_eff": n_eff,
        "U_theory": U_th, "S_sphere_theory": S_u_th,
        "rho_theory": rho_th, "rho_theory_discrete": rho_th_disc,
        "V_theory": theory.volume(rho_th), "S_theory": theory.total_entropy(S_u_th, rho_th, d),
        "p_theory": p_th, "p_theory_discrete": p_th_disc, "grad_sq_theory": gsq_th,
    }
    return pd.DataFrame(cols)


def _with_queue_diagnostics(table: pd.DataFrame, ests: Sequence[EntropyEstimate],
                            advice: str) -> pd.DataFrame:
    """Insert after ``S_err`` the queue's correlation (:mod:`sgdthermo.entropy.correlation`):
    ``queue_tau`` (snapshots, ½ when independent), ``queue_n_eff``, ``queue_nn_lag`` (fraction of
    snapshots whose nearest neighbour is adjacent in time) and the verdict ``entropy_ok`` with
    ``entropy_note`` (why not, ending with ``advice``)."""
    verdicts = [entropy_ok(e.nn_lag_fraction, e.n, e.queue_tau, advice=advice) for e in ests]
    cols = {
        "queue_tau": [e.queue_tau for e in ests], "queue_n_eff": [e.n_eff for e in ests],
        "queue_nn_lag": [e.nn_lag_fraction for e in ests],
        "entropy_ok": [ok for ok, _ in verdicts], "entropy_note": [why for _, why in verdicts],
    }
    at = table.columns.get_loc("S_err") + 1
    for i, (name, values) in enumerate(cols.items()):
        table.insert(at + i, name, values)
    return table


def _trace(protocol: str, means: np.ndarray, block_len: int, counts: np.ndarray,
           n_points: int = 100) -> pd.DataFrame:
    """Coarsen block averages to about ``n_points`` times per grid point (tidy)."""
    G, nb, _ = means.shape
    group = max(1, nb // n_points)
    ng = nb // group
    sl = slice(nb - ng * group, nb)
    w = counts[sl].reshape(ng, group)
    coarse = (means[:, sl, :].reshape(G, ng, group, -1) * w[None, :, :, None]).sum(2) / w.sum(1)[None, :, None]
    ends = np.cumsum(counts)[sl][group - 1::group]
    df = pd.DataFrame({
        "point": np.repeat(np.arange(G), ng),
        "step": np.tile(ends.astype(np.int64), G),
        "rho": np.sqrt(coarse[:, :, K.ST_RHO2]).ravel(),
        "U": coarse[:, :, K.ST_LOSS].ravel(),
        "grad_sq": coarse[:, :, K.ST_GRADSQ].ravel(),
    })
    if protocol == "fixed-sphere":
        df["norm_excess"] = coarse[:, :, K.ST_NORM_PRE].ravel()
    return df
