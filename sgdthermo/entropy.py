r"""Nearest-neighbour (Kozachenko–Leonenko) entropy estimators on R^m and on the unit sphere.

Notation follows ``docs/theory.md`` ("Entropy estimation").  Samples are the rows ``x_1..x_N`` of an
``(N, d)`` array; on the sphere only the directions ``u_i = x_i / |x_i|`` on ``S^{d-1}`` matter and
the result is the differential entropy ``S_u`` (nats, w.r.t. the surface measure; the uniform
distribution has ``S_u = log |S^{d-1}| = log(2 π^{d/2} / Γ(d/2))``).  Add ``(d-1) log ρ`` for ``S``.

Kozachenko–Leonenko (KL) in R^m, with ``ε_i`` the distance from ``x_i`` to its k-th nearest
neighbour among the other ``N - 1`` samples::

    H ≈ m · mean_i(log ε_i) + log V_m + ψ(N) − ψ(k),      V_m = π^{m/2} / Γ(m/2 + 1)

(``log V_m`` is evaluated with ``gammaln`` so any m, e.g. 10⁶, works).  The general form is
``H ≈ mean_i log Vol(B(x_i, ε_i)) + ψ(N) − ψ(k)``: the probability mass of the k-NN ball is
``Beta(k, N−k)``-distributed, so ``E log P_i = ψ(k) − ψ(N)``, and ``P_i ≈ f(x_i) Vol(B_i)``.
The sphere estimators below only differ in the distance and the ball volume they use
(intrinsic dimension ``m = d − 1``):

``"cap"`` (default)
    geodesic distances ``θ_i = 2 arcsin(c_i / 2)`` (``c_i`` the chordal distance) and the *exact*
    surface measure of the geodesic ball (spherical cap) of radius θ on ``S^{d-1}``::

        Cap_d(θ) = |S^{d-2}| ∫_0^θ sin^{d-2} t dt = ½ |S^{d-1}| I_{sin²θ}((d−1)/2, ½)   (θ ≤ π/2)
        Cap_d(θ) = |S^{d-1}| (1 − ½ I_{sin²θ}((d−1)/2, ½))                            (θ > π/2)

        S_u ≈ mean_i log Cap_d(θ_i) + ψ(N) − ψ(k)

    ``I`` is the regularized incomplete beta function; its logarithm is computed stably for
    large d (a Lentz continued fraction in log space where ``betainc`` underflows), see
    :func:`log_cap_volume`.  For the uniform distribution ``Cap_d(θ_i) / |S^{d-1}|`` *is* the
    ball mass, so this estimator is exactly unbiased there for every N and d.
``"geodesic"``
    ``S_u ≈ m · mean_i log θ_i + log V_m + ψ(N) − ψ(k)`` (Euclidean ball volume on arc lengths).
``"chordal"``
    ``S_u ≈ m · mean_i log c_i + log V_m + ψ(N) − ψ(k)`` (Euclidean ball volume on chords).
``"angles"`` (the paper's estimator)
    hyperspherical angles ``φ_i = atan2(‖x_{i+1:}‖, x_i)`` for ``i < d−1`` and
    ``φ_{d−1} = atan2(x_d, x_{d−1})``; KL in the (d−1)-dim angle space plus the sample mean of the
    log-Jacobian::

        S_u ≈ KL_{d−1}(φ) + mean_n Σ_{i=1}^{d−2} (d−1−i) log sin φ_{n,i}

    (evaluated as ``Σ_{i=2}^{d−1} log T_i − (d−2) log T_1`` with ``T_i = ‖x_{i:}‖``, a telescoped
    form of the same sum).  The last angle is not treated as periodic (as in the paper).

How the default was chosen: ``benchmarks/entropy_bias.py`` measures the bias (mean over seeds of
estimate − exact) of every method on von Mises–Fisher samples (exact entropy from
``scipy.stats.vonmises_fisher``) for d ∈ {3, 5, 10, 30, 100, 300}, κ/d ∈ {0 (uniform), 0.5, …,
200} and N ∈ {250, 1000, 4000} (``docs/entropy.md``).  ``"cap"`` had the smallest mean |bias|
over the grid (9.8 nats vs 15.6 chordal, 17.4 geodesic, 29.9 angles), was the least biased in
90 of 144 cells and within the noise of the best in nearly all others (at d ≤ 5 all four agree
to ~0.01 nats); it is the only one exactly unbiased for the uniform distribution and it is
rotation invariant (``"angles"`` is not: its bias grows when the mass sits at a pole of the chart).
For entropy *differences* the bias largely cancels (at d = 3 to ≤ 0.005 nats for every method);
in high d between diffuse configurations (κ ≲ 2d, d ≥ 30) ``"chordal"`` cancels better than
``"cap"``, whose bias rises from 0 (uniform) to the full KL bias (concentrated).

Nearest neighbours (:func:`nearest_neighbor_distances`): for a feature dimension ≤ 20 on CPU a
``scipy.spatial.cKDTree`` (exact float64 distances); otherwise torch on the chosen device (a GPU
when present): the Gram matrix of the per-column-chunk *centred* features is accumulated in float64
over column chunks (upper block triangle only, about half the flops of a full product);
the ``k + 4`` smallest of ``|a|² + |b|² − 2 a·b`` (self excluded by index) are candidates.
Centring makes that formula lose precision only when a distance is small against the spread of
the cloud; every candidate with ``D² < 0.01 (|a_c|² + |b_c|²)`` is therefore recomputed exactly
in float64 from the differences ``‖a − b‖``, so tiny distances between unit vectors (e.g. 1e-9)
keep full relative precision.  Memory is bounded by
``memory_limit`` (column chunks, default 256 MiB) plus the N×N Gram matrix (a banded variant is
used when that exceeds ``gram_limit``); no N×N×d tensor is ever built.

Duplicates (zero nearest-neighbour distances, e.g. identical snapshots) are never silently kept:
``duplicates="drop"`` (default) keeps one row of each group of rows whose features lie within
``duplicate_tol`` of each other, warns with the count and records it in
:class:`EntropyEstimate`; ``duplicates="raise"`` raises ``ValueError``.

Standard errors: the per-sample terms ``t_i`` (the estimate is ``mean t_i`` + const) are not
independent (a mutual nearest-neighbour pair shares the same ε; in high d "hub" points are the
neighbour of many others).  ``stderr`` is the delete-one jackknife, which is exact and cheap here:
deleting sample j removes ``t_j`` and replaces ``t_i`` by its value at the (k+1)-th neighbour
distance for every i that had j among its k nearest neighbours::

    Ĥ_(−j) = (Σ_i t_i − t_j − Σ_{i: j ∈ NN_k(i)} (t_i − t_i^{(k+1)})) / (N − 1) + const,
    stderr² = (N−1)/N Σ_j (Ĥ_(−j) − mean Ĥ_(−)) ²

Measured against the spread over seeds (``docs/entropy.md``) it is honest to conservative: the
ratio sd/stderr was 0.6–1.07 over the cases tried (≈ 0.65 at d = 3, ≈ 1 for concentrated
high-dimensional samples).  ``stderr_iid = std(t)/sqrt(N)`` is the naive formula: calibrated at
d ≤ 5 but up to ~2× too small in high d.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from scipy import special
from scipy.spatial import cKDTree

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "EntropyEstimate",
    "kl_entropy",
    "sphere_entropy",
    "sphere_entropy_batch",
    "nearest_neighbor_distances",
    "log_unit_ball_volume",
    "log_sphere_area",
    "log_cap_volume",
    "log_betainc",
    "uniform_sphere_entropy",
]

Method = Literal["cap", "geodesic", "chordal", "angles"]
Metric = Literal["euclidean", "chordal", "geodesic"]
Backend = Literal["auto", "kdtree", "torch"]
DuplicatePolicy = Literal["drop", "raise"]

#: Available sphere estimators.
METHODS: tuple[str, ...] = ("cap", "geodesic", "chordal", "angles")
#: The default sphere estimator: the one with the lowest measured bias (docs/entropy.md).
DEFAULT_METHOD: str = "cap"

#: Feature dimensions up to this use the exact cKDTree search on CPU (``backend="auto"``).
KDTREE_MAX_DIM = 20
#: Default bound (bytes) on the column-chunk buffers of the torch search.
DEFAULT_MEMORY_LIMIT = 256 * 2**20
#: Default bound (bytes) on the full N×N Gram matrix; beyond it a banded search is used.
DEFAULT_GRAM_LIMIT = 2**30
#: Default rows per block of the torch search.
DEFAULT_CHUNK_SIZE = 256
#: Extra Gram-matrix candidates beyond the k (+1) needed.
_EXTRA_CANDIDATES = 3
#: Candidates with Gram distance² below this fraction of |a_c|² + |b_c|² (centred features) are
#: recomputed exactly from the differences.
_REFINE_RATIO = 1e-2
#: Default duplicate tolerance for sphere estimators (chordal distance / radians on the unit
#: sphere): rows that are positive multiples of each other differ by rounding only (~1e-16).
DEFAULT_SPHERE_DUPLICATE_TOL = 1e-12


# --------------------------------------------------------------------------------------------
# Geometry: volumes, areas, caps
# --------------------------------------------------------------------------------------------


def log_unit_ball_volume(m: int | float) -> float:
    """``log V_m = (m/2) log π − log Γ(m/2 + 1)``, the log volume of the unit ball in R^m."""
    if m < 0:
        raise ValueError(f"dimension m must be >= 0; got {m}")
    return 0.5 * m * math.log(math.pi) - float(special.gammaln(0.5 * m + 1.0))


def log_sphere_area(d: int | float) -> float:
    """``log |S^{d-1}| = log(2 π^{d/2} / Γ(d/2))``, the log area of the unit sphere in R^d."""
    if d < 1:
        raise ValueError(f"ambient dimension d must be >= 1; got {d}")
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - float(special.gammaln(0.5 * d))


def uniform_sphere_entropy(d: int) -> float:
    """Entropy (nats) of the uniform distribution on ``S^{d-1}``: ``log |S^{d-1}|``."""
    return log_sphere_area(d)


_FPMIN = 1e-300
_CF_EPS = 1e-15
_CF_MAXIT = 100_000


def _log_betainc_cf(a: float, b: float, x: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """``log I_x(a, b)`` from the continued fraction (Numerical Recipes ``betacf``, Lentz).

    Intended for ``x < (a+1)/(a+b+2)``, where it converges fast; everything is in log space
    except the continued fraction itself, which is O(1).
    """
    x = np.asarray(x, dtype=np.float64)
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    dd = 1.0 - qab * x / qap
    dd = np.where(np.abs(dd) < _FPMIN, _FPMIN, dd)
    dd = 1.0 / dd
    h = dd.copy()
    active = np.ones(x.shape, dtype=bool)
    for m in range(1, _CF_MAXIT + 1):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        xs, cs, ds, hs = x[idx], c[idx], dd[idx], h[idx]
        m2 = 2 * m
        aa = m * (b - m) * xs / ((qam + m2) * (a + m2))
        ds = 1.0 + aa * ds
        ds = np.where(np.abs(ds) < _FPMIN, _FPMIN, ds)
        cs = 1.0 + aa / cs
        cs = np.where(np.abs(cs) < _FPMIN, _FPMIN, cs)
        ds = 1.0 / ds
        hs = hs * ds * cs
        aa = -(a + m) * (qab + m) * xs / ((a + m2) * (qap + m2))
        ds = 1.0 + aa * ds
        ds = np.where(np.abs(ds) < _FPMIN, _FPMIN, ds)
        cs = 1.0 + aa / cs
        cs = np.where(np.abs(cs) < _FPMIN, _FPMIN, cs)
        ds = 1.0 / ds
        delta = ds * cs
        hs = hs * delta
        c[idx], dd[idx], h[idx] = cs, ds, hs
        active[idx] = np.abs(delta - 1.0) >= _CF_EPS
    else:  # pragma: no cover - only for absurd parameters
        warnings.warn("log_betainc: continued fraction did not converge", RuntimeWarning)
    log1mx = np.log1p(-x)
    return a * logx + b * log1mx - float(special.betaln(a, b)) - math.log(a) + np.log(h)


def log_betainc(a: float, b: float, x: np.ndarray | float, logx: np.ndarray | None = None) -> np.ndarray:
    """Stable ``log I_x(a, b)`` (regularized incomplete beta), also where ``I`` underflows.

    Uses ``log(scipy.special.betainc)`` where that is ≥ 1e-280 (relative accuracy ~1e-14) and
    the continued fraction in log space deep in the lower tail (large a, small x).  ``logx``
    may be passed to keep precision when ``x`` itself underflows (e.g. ``x = sin²θ``, θ < 1e-155).
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if logx is None:
        with np.errstate(divide="ignore"):
            logx = np.log(x)
    logx = np.broadcast_to(np.asarray(logx, dtype=np.float64), x.shape)
    v = special.betainc(a, b, x)
    out = np.empty_like(x)
    ok = v >= 1e-280
    with np.errstate(divide="ignore"):
        out[ok] = np.log(v[ok])
    tail = ~ok
    if np.any(tail):
        zero = tail & np.isneginf(logx)
        out[zero] = -np.inf
        rest = tail & ~zero
        if np.any(rest):
            out[rest] = _log_betainc_cf(a, b, x[rest], logx[rest])
    return out


def log_cap_volume(theta: np.ndarray | float, d: int) -> np.ndarray:
    r"""Log surface measure of the geodesic ball (cap) of radius θ on ``S^{d-1}`` ⊂ R^d.

    ``Cap_d(θ) = |S^{d-2}| ∫_0^θ sin^{d-2} t dt``, i.e. ``½ |S^{d-1}| I_{sin²θ}((d−1)/2, ½)`` for
    ``θ ≤ π/2`` and ``|S^{d-1}| (1 − ½ I_{sin²θ}((d−1)/2, ½))`` for ``π/2 < θ < π``;
    ``|S^{d-1}|`` for θ ≥ π; ``-inf`` at θ = 0.  Stable for d up to 10⁶ and more.
    """
    if d < 2:
        raise ValueError(f"log_cap_volume needs d >= 2; got {d}")
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if np.any(th < 0) or np.any(np.isnan(th)):
        raise ValueError("log_cap_volume: theta must be >= 0")
    a, b = 0.5 * (d - 1), 0.5
    log_area = log_sphere_area(d)
    out = np.full_like(th, log_area)
    inner = th < math.pi
    if np.any(inner):
        t = th[inner]
        s = np.sin(t)
        with np.errstate(divide="ignore"):
            logx = 2.0 * np.log(s)
        x = s * s
        li = log_betainc(a, b, x, logx)
        half = t <= 0.5 * math.pi
        res = np.empty_like(t)
        res[half] = log_area + math.log(0.5) + li[half]
        res[~half] = log_area + np.log1p(-0.5 * np.exp(li[~half]))
        out[inner] = res
    return out


# --------------------------------------------------------------------------------------------
# Result container
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntropyEstimate:
    """A nearest-neighbour entropy estimate with diagnostics.

    Attributes:
        value: the estimate (nats).
        stderr: approximate standard error (delete-one jackknife; conservative, see module doc;
            NaN with fewer than 3 samples).
        method: estimator name (``"cap"``, ..., or ``"kl"`` for :func:`kl_entropy`).
        n: number of samples used (after dropping duplicates).
        dim: ambient dimension (d for sphere estimators, m for KL in R^m).
        k: neighbour order.
        n_duplicates: number of rows dropped as duplicates.
        n_input: number of input rows.
        intrinsic_dim: dimension of the KL volume term (d − 1 on the sphere, m in R^m).
        stderr_iid: the naive ``std(t_i) / sqrt(n)``.
        mean_log_jacobian: the log-Jacobian term (``"angles"`` only, else ``None``).
        backend: ``"kdtree"`` or ``"torch"``.
        device: torch device used (``"cpu"`` for the kd-tree).
    """

    value: float
    stderr: float
    method: str
    n: int
    dim: int
    k: int
    n_duplicates: int
    n_input: int
    intrinsic_dim: int
    stderr_iid: float
    mean_log_jacobian: float | None = None
    backend: str = ""
    device: str = ""

    def __float__(self) -> float:
        return float(self.value)


# --------------------------------------------------------------------------------------------
# Input handling and validation
# --------------------------------------------------------------------------------------------


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return int(k)


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return str(method)


def _check_duplicates(duplicates: Any) -> str:
    if duplicates not in ("drop", "raise"):
        raise ValueError(f"duplicates must be 'drop' or 'raise'; got {duplicates!r}")
    return str(duplicates)


def _as_input(x: Any, name: str = "x", ndim: int = 2) -> np.ndarray | torch.Tensor:
    """Return x as a numpy array or torch tensor of real dtype with ``ndim`` dims (no copy)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} must be a real floating/integer array; got dtype {x.dtype}")
        arr: np.ndarray | torch.Tensor = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise ValueError(f"{name} must be a real floating/integer array; got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = "(N, d)" if ndim == 2 else "(G, N, d)"
        raise ValueError(f"{name} must be a {ndim}-D array of shape {shape}; got shape {tuple(arr.shape)}")
    return arr


class _Source:
    """Lazy access to (row subset, column chunk) blocks of the input as float64 torch tensors."""

    def __init__(self, x: np.ndarray | torch.Tensor, rows: np.ndarray | None, device: torch.device):
        self.x = x
        self.rows = rows
        self.device = device
        self.n = int(x.shape[0]) if rows is None else int(rows.size)
        self.d = int(x.shape[1])

    def get(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Rows ``r0:r1`` (of the subset) and columns ``c0:c1``: a *fresh* float64 tensor on the
        device (callers modify it in place; the input is never written to)."""
        if isinstance(self.x, torch.Tensor):
            if self.rows is None:
                blk = self.x[r0:r1, c0:c1]
            else:
                ridx = torch.as_tensor(self.rows[r0:r1], device=self.x.device)
                blk = self.x[ridx, c0:c1]
            return blk.to(device=self.device, dtype=torch.float64, copy=True)
        if self.rows is None:
            blk_np = self.x[r0:r1, c0:c1]
        else:
            blk_np = self.x[self.rows[r0:r1], c0:c1]
        if self.device.type != "cpu" and blk_np.dtype in (np.float32, np.float64):
            # transfer in the input precision, convert on the device
            moved = torch.from_numpy(np.ascontiguousarray(blk_np)).to(self.device)  # a fresh copy
            return moved if moved.dtype == torch.float64 else moved.to(torch.float64)
        return torch.from_numpy(np.array(blk_np, dtype=np.float64, order="C", copy=True)).to(self.device)

    def subset(self, keep: np.ndarray) -> "_Source":
        rows = keep if self.rows is None else self.rows[keep]
        return _Source(self.x, rows, self.device)


@dataclass
class _Prepared:
    """Per-row statistics from the first pass over the rows."""

    norms: torch.Tensor  # (N,) Euclidean row norms
    col_edges: list[int]  # column-chunk boundaries of the feature matrix
    suffix: torch.Tensor | None  # (N, n_chunks) Σ_{j ≥ c1+1} x_j² for each chunk end (angles)
    log_jac: torch.Tensor | None  # (N,) log-Jacobian of the angle chart (angles)


def _col_edges(n_cols: int, n_rows: int, memory_limit: int, buffers: int = 3) -> list[int]:
    """Column-chunk boundaries so that ``buffers`` float64 (n_rows × width) blocks fit the limit."""
    w = int(max(1, min(n_cols, memory_limit // (8 * max(n_rows, 1) * buffers))))
    edges = list(range(0, n_cols, w)) + [n_cols]
    return edges


def _prepare(src: _Source, kind: str, memory_limit: int) -> _Prepared:
    """Pass 1 over row chunks: finiteness, row norms, zero rows; angle-chart suffix sums."""
    n, d = src.n, src.d
    feat_dim = d - 1 if kind == "angles" else d
    # the angle chart needs ~7 temporaries per block (x, squares, cumsums, tails, atan2)
    edges = _col_edges(feat_dim, n, memory_limit, buffers=8 if kind == "angles" else 3)
    rows_per = int(max(1, memory_limit // (8 * d * (8 if kind == "angles" else 3))))
    norms = torch.empty(n, dtype=torch.float64, device=src.device)
    suffix = log_jac = None
    if kind == "angles":
        # suffix index needed for chunk [c0, c1): c1 + 1 (sum over x_j², j >= c1 + 1; 0 if c1+1 = d)
        ends = torch.tensor([e + 1 for e in edges[1:]], device=src.device)
        suffix = torch.empty(n, len(edges) - 1, dtype=torch.float64, device=src.device)
        log_jac = torch.empty(n, dtype=torch.float64, device=src.device)
    bad_finite: list[int] = []
    bad_large: list[int] = []
    for r0 in range(0, n, rows_per):
        r1 = min(n, r0 + rows_per)
        blk = src.get(r0, r1, 0, d)
        if kind == "angles":
            sq = blk * blk
            rc = torch.flip(torch.cumsum(torch.flip(sq, dims=[1]), dim=1), dims=[1])  # rc[:, j] = Σ_{i≥j}
            norm2 = rc[:, 0]
        else:
            norm2 = torch.einsum("ij,ij->i", blk, blk)
        # NaN/inf anywhere in a row makes its squared norm non-finite: check those rows only
        nonfinite = ~torch.isfinite(norm2)
        if bool(nonfinite.any()):
            rows_bad = torch.nonzero(nonfinite).flatten()
            fin = torch.isfinite(blk[rows_bad]).all(dim=1)
            bad_finite.extend((r0 + rows_bad[~fin]).cpu().tolist())
            bad_large.extend((r0 + rows_bad[fin]).cpu().tolist())
            norms[r0:r1] = 0.0
            if kind == "angles":
                suffix[r0:r1] = 0.0  # type: ignore[index]
                log_jac[r0:r1] = 0.0  # type: ignore[index]
            continue
        norms[r0:r1] = norm2.sqrt()
        if kind == "angles":
            rc_pad = torch.cat([rc, torch.zeros(r1 - r0, 1, dtype=rc.dtype, device=rc.device)], dim=1)
            suffix[r0:r1] = rc_pad[:, ends]  # type: ignore[index]
            if d > 2:
                inner = rc[:, 1 : d - 1]
                with torch.no_grad():
                    lj = 0.5 * torch.log(inner).sum(dim=1) - (d - 2) * 0.5 * torch.log(rc[:, 0])
            else:
                lj = torch.zeros(r1 - r0, dtype=torch.float64, device=src.device)
            log_jac[r0:r1] = lj  # type: ignore[index]
    if bad_finite:
        idx = _fmt_indices(bad_finite, src.rows)
        raise ValueError(f"x contains non-finite values (NaN or inf) in row(s) {idx}")
    if bad_large:
        idx = _fmt_indices(bad_large, src.rows)
        raise ValueError(f"the squared norm overflows float64 (values too large) in row(s) {idx}")
    return _Prepared(norms=norms, col_edges=edges, suffix=suffix, log_jac=log_jac)


def _fmt_indices(idx: Sequence[int], rows: np.ndarray | None) -> str:
    orig = [int(rows[i]) if rows is not None else int(i) for i in idx]
    s = ", ".join(str(i) for i in orig[:10])
    return f"[{s}{', ...' if len(orig) > 10 else ''}] ({len(orig)} in total)"


class _Features:
    """Column chunks of the (N, D) feature matrix the k-NN search runs on.

    kinds: ``"raw"`` (rows as given, Euclidean), ``"sphere"`` (unit vectors u = x/|x|),
    ``"angles"`` (hyperspherical angles, D = d − 1).
    """

    def __init__(self, src: _Source, kind: str, prep: _Prepared):
        self.src, self.kind, self.prep = src, kind, prep
        self.n = src.n
        self.dim = src.d - 1 if kind == "angles" else src.d

    def blocks(self, centered: bool) -> Iterator[torch.Tensor]:
        edges = self.prep.col_edges
        for ci in range(len(edges) - 1):
            fc = self.block(ci, edges[ci], edges[ci + 1])
            if centered:
                fc.sub_(fc.mean(dim=0, keepdim=True))
            yield fc

    def block(self, ci: int, c0: int, c1: int) -> torch.Tensor:
        src, n = self.src, self.n
        if self.kind == "raw":
            return src.get(0, n, c0, c1)
        if self.kind == "sphere":
            return src.get(0, n, c0, c1).div_(self.prep.norms[:, None])
        # angles: columns c0..c1-1 of φ (0-based angle j uses x_j and ‖x_{j+1:}‖)
        d = src.d
        xb = src.get(0, n, c0, min(c1 + 1, d))  # x_{c0} .. x_{c1}
        assert self.prep.suffix is not None
        beyond = self.prep.suffix[:, ci]  # Σ_{j ≥ c1+1} x_j²
        sq = xb[:, 1:] * xb[:, 1:]  # x_{c0+1} .. x_{c1}
        tail2 = torch.flip(torch.cumsum(torch.flip(sq, dims=[1]), dim=1), dims=[1]) + beyond[:, None]
        phi = torch.atan2(tail2.sqrt(), xb[:, :-1])
        if c1 == d - 1:  # the last angle is signed: atan2(x_d, x_{d-1})
            phi[:, -1] = torch.atan2(xb[:, -1], xb[:, -2])
        return phi

    def materialize(self) -> np.ndarray:
        parts = [b.cpu().numpy() for b in self.blocks(centered=False)]
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

    def subset(self, keep: np.ndarray) -> "_Features":
        keep_t = torch.as_tensor(keep, device=self.prep.norms.device)
        prep = _Prepared(
            norms=self.prep.norms[keep_t],
            col_edges=self.prep.col_edges,  # fewer rows: the same chunks use less memory
            suffix=None if self.prep.suffix is None else self.prep.suffix[keep_t],
            log_jac=None if self.prep.log_jac is None else self.prep.log_jac[keep_t],
        )
        return _Features(self.src.subset(keep), self.kind, prep)


# --------------------------------------------------------------------------------------------
# k-nearest-neighbour search
# --------------------------------------------------------------------------------------------


def _knn_kdtree(f: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact sorted distances/indices of the kk nearest *other* rows (cKDTree, float64)."""
    n = f.shape[0]
    tree = cKDTree(f, leafsize=16, balanced_tree=False, compact_nodes=False)
    dist, idx = tree.query(f, k=kk + 1, workers=-1 if n > 20000 else 1)
    dist = np.asarray(dist, dtype=np.float64).reshape(n, kk + 1)
    idx = np.asarray(idx).reshape(n, kk + 1)
    selfmask = idx == np.arange(n)[:, None]
    # exactly one entry per row is removed: the self entry, or (if ≥ kk+1 duplicates at 0 hid
    # it) the last one
    first_self = selfmask & (np.cumsum(selfmask, axis=1) == 1)
    none = ~first_self.any(axis=1)
    first_self[none, -1] = True
    keep = ~first_self
    return dist[keep].reshape(n, kk), idx[keep].reshape(n, kk)


def _knn_torch(
    feats: _Features, kk: int, chunk_size: int, memory_limit: int, gram_limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gram-matrix candidate search + exact float64 refinement (see module docstring)."""
    n = feats.n
    dev = feats.src.device
    f64 = torch.float64
    n_cand = min(n - 1, kk + _EXTRA_CANDIDATES)
    row_blocks = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    cand = torch.empty(n, n_cand, dtype=torch.long, device=dev)
    cand_d2 = torch.empty(n, n_cand, dtype=f64, device=dev)

    def select(a0: int, a1: int, g_rows: torch.Tensor, sq: torch.Tensor) -> None:
        d2 = sq[a0:a1, None] + sq[None, :] - 2.0 * g_rows
        ar = torch.arange(a1 - a0, device=dev)
        d2[ar, ar + a0] = math.inf
        top = torch.topk(d2, n_cand, dim=1, largest=False)
        cand[a0:a1] = top.indices
        cand_d2[a0:a1] = top.values.clamp_min(0.0)

    if n * n * 8 <= gram_limit:
        # upper block triangle only (one GEMM per row block against the rows from it on)
        gram = torch.zeros(n, n, dtype=f64, device=dev)
        for fc in feats.blocks(centered=True):
            for a0, a1 in row_blocks:
                gram[a0:a1, a0:].addmm_(fc[a0:a1], fc[a0:].T)
        for a0, a1 in row_blocks[1:]:
            gram[a0:a1, :a0] = gram[:a0, a0:a1].T
        sq = gram.diagonal().clone()
        for a0, a1 in row_blocks:
            select(a0, a1, gram[a0:a1], sq)
        del gram
    else:
        band = int(max(1, min(n, gram_limit // (8 * n))))
        sq = torch.zeros(n, dtype=f64, device=dev)
        for fc in feats.blocks(centered=True):
            sq += torch.einsum("ij,ij->i", fc, fc)
        for a0 in range(0, n, band):
            a1 = min(n, a0 + band)
            g_rows = torch.zeros(a1 - a0, n, dtype=f64, device=dev)
            for fc in feats.blocks(centered=True):
                g_rows.addmm_(fc[a0:a1], fc.T)
            select(a0, a1, g_rows, sq)
            del g_rows

    # Exact refinement from differences (no cancellation) of the candidates whose Gram distance
    # is small against the (centred) norms, where |a|²+|b|²−2ab loses relative precision.
    # Elsewhere the Gram value's relative error is ≲ 1e-13 (measured against brute force).
    need = cand_d2 < _REFINE_RATIO * (sq[:, None] + sq[cand])
    if bool(need.any()):
        pi, pk = torch.nonzero(need, as_tuple=True)
        pj = cand[pi, pk]
        acc = torch.zeros(pi.numel(), dtype=f64, device=dev)
        for fc in feats.blocks(centered=False):
            w = fc.shape[1]
            per = int(max(1, memory_limit // (4 * 8 * w)))
            for p0 in range(0, pi.numel(), per):
                p1 = min(pi.numel(), p0 + per)
                diff = fc[pi[p0:p1]] - fc[pj[p0:p1]]
                acc[p0:p1] += torch.einsum("pw,pw->p", diff, diff)
        cand_d2[pi, pk] = acc
    dist, order = torch.sort(cand_d2.sqrt(), dim=1)
    idx = torch.gather(cand, 1, order)
    return dist[:, :kk].cpu().numpy(), idx[:, :kk].cpu().numpy()


def _use_kdtree(backend: str, feat_dim: int, device: torch.device) -> bool:
    if backend not in ("auto", "kdtree", "torch"):
        raise ValueError(f"backend must be 'auto', 'kdtree' or 'torch'; got {backend!r}")
    if backend == "auto":
        return feat_dim <= KDTREE_MAX_DIM and device.type == "cpu"
    return backend == "kdtree"


def _knn(
    feats: _Features,
    kk: int,
    *,
    backend: str,
    chunk_size: int | None,
    memory_limit: int,
    gram_limit: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    if _use_kdtree(backend, feats.dim, feats.src.device):
        d, i = _knn_kdtree(feats.materialize(), kk)
        return d, i, "kdtree"
    cs = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if cs < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    d, i = _knn_torch(feats, kk, cs, memory_limit, gram_limit)
    return d, i, "torch"


def _duplicate_groups(n: int, dist: np.ndarray, idx: np.ndarray, tol: float) -> np.ndarray:
    """Indices of rows to keep: one per connected group of rows linked by distances ≤ tol."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    close_i, close_j = np.nonzero(dist <= tol)
    for i, jpos in zip(close_i.tolist(), close_j.tolist()):
        ra, rb = find(i), find(int(idx[i, jpos]))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)])
    return np.nonzero(roots == np.arange(n))[0]


def _knn_dedup(
    feats: _Features,
    k: int,
    *,
    duplicates: str,
    duplicate_tol: float,
    backend: str,
    chunk_size: int | None,
    memory_limit: int,
    gram_limit: int,
) -> tuple[_Features, np.ndarray, np.ndarray, int, str]:
    """k-NN with duplicate detection.

    Returns (features kept, dist (n, k or k+1), idx, n_dropped, backend).
    """
    n_input = feats.n
    dropped = 0
    while True:
        if feats.n < k + 1:
            raise ValueError(
                f"after dropping {dropped} duplicate row(s) only {feats.n} distinct samples remain; "
                f"need at least k+1 = {k + 1}"
            )
        # k + 1 neighbours when available: the (k+1)-th serves the jackknife standard error
        dist, idx, used = _knn(
            feats, min(k + 1, feats.n - 1), backend=backend, chunk_size=chunk_size,
            memory_limit=memory_limit, gram_limit=gram_limit,
        )
        n_close = int(np.sum(dist[:, 0] <= duplicate_tol))
        if n_close == 0:
            break
        keep = _duplicate_groups(feats.n, dist, idx, duplicate_tol)
        n_drop = feats.n - keep.size
        if duplicates == "raise":
            raise ValueError(
                f"{n_close} of {n_input} samples have a duplicate (nearest-neighbour distance "
                f"<= duplicate_tol={duplicate_tol:g}); {n_drop} row(s) would have to be dropped; "
                "pass duplicates='drop' to drop them"
            )
        dropped += n_drop
        feats = feats.subset(keep)
    if dropped:
        warnings.warn(
            f"dropped {dropped} duplicate sample(s) of {n_input} (zero nearest-neighbour distance "
            f"within duplicate_tol={duplicate_tol:g}); estimating from {feats.n} samples",
            RuntimeWarning,
            stacklevel=3,
        )
    return feats, dist, idx, dropped, used


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def nearest_neighbor_distances(
    x: Any,
    k: int = 1,
    *,
    metric: Metric = "euclidean",
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    backend: Backend = "auto",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    gram_limit: int = DEFAULT_GRAM_LIMIT,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Distance from each row of ``x`` (N, d) to its k-th nearest other row (float64 numpy).

    Args:
        x: (N, d) array (numpy or torch, any real dtype; read chunk by chunk, never copied whole).
        k: neighbour order (self excluded; duplicates count as neighbours at distance 0).
        metric: ``"euclidean"`` on the rows; ``"chordal"`` / ``"geodesic"`` (arc length) between
            the directions ``x_i / |x_i|`` on the unit sphere.
        device: torch device (default: CUDA when available, else CPU).
        chunk_size: rows per block in the torch search (default 256; any value ≥ 1).
        backend: ``"auto"`` (cKDTree for d ≤ 20 on CPU, torch otherwise), ``"kdtree"``, ``"torch"``.
        memory_limit: bytes for the column-chunk buffers of the torch search.
        gram_limit: bytes allowed for the N×N Gram matrix (banded search beyond).
        return_indices: also return the (0-based) index of the k-th neighbour.
    """
    k = _check_k(k)
    if metric not in ("euclidean", "chordal", "geodesic"):
        raise ValueError(f"metric must be 'euclidean', 'chordal' or 'geodesic'; got {metric!r}")
    arr = _as_input(x)
    n, d = arr.shape
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    if d < 1:
        raise ValueError(f"x must have at least one column; got d = {d}")
    dev = _resolve_device(device)
    src = _Source(arr, None, dev)
    kind = "raw" if metric == "euclidean" else "sphere"
    prep = _prepare(src, kind, memory_limit)
    if kind == "sphere":
        _check_zero_rows(prep, src)
    feats = _Features(src, kind, prep)
    dist, idx, _ = _knn(
        feats, k, backend=backend, chunk_size=chunk_size, memory_limit=memory_limit,
        gram_limit=gram_limit,
    )
    out = dist[:, k - 1].copy()
    if metric == "geodesic":
        out = _chord_to_arc(out)
    if return_indices:
        return out, idx[:, k - 1].copy()
    return out


def _chord_to_arc(c: np.ndarray) -> np.ndarray:
    return 2.0 * np.arcsin(np.minimum(0.5 * c, 1.0))


def _check_zero_rows(prep: _Prepared, src: _Source) -> None:
    zero = prep.norms == 0
    if bool(zero.any()):
        bad = torch.nonzero(zero).flatten().cpu().tolist()
        raise ValueError(f"x has zero row(s) (no direction defined) at index {_fmt_indices(bad, src.rows)}")


def _stderrs(t: np.ndarray, t_next: np.ndarray | None, nbrs: np.ndarray) -> tuple[float, float]:
    """(delete-one jackknife, iid) standard errors of the estimate ``mean(t) + const``.

    ``t_next[i]`` is sample i's term at its (k+1)-th neighbour distance, ``nbrs`` (n, k) the
    indices of the k nearest neighbours.  Without a (k+1)-th neighbour (n = k + 1) the iid
    formula is returned for both; with n < 3 both are NaN (no spread can be estimated).
    """
    n = t.size
    if n < 3:
        return float("nan"), float("nan")
    e = t - t.mean()
    iid = float(np.sqrt(e @ e / (n - 1) / n))
    if t_next is None:
        return iid, iid
    k = nbrs.shape[1]
    corr = np.bincount(nbrs.reshape(-1), weights=np.repeat(t - t_next, k), minlength=n)
    h = (t.sum() - t - corr) / (n - 1)
    hc = h - h.mean()
    return float(np.sqrt((n - 1) / n * (hc @ hc))), iid


def _terms(
    method: str, dist: np.ndarray, d: int, log_jac: np.ndarray | None
) -> np.ndarray:
    """Per-sample terms t_i with estimate = mean(t) + ψ(N) − ψ(k)."""
    m = d - 1
    with np.errstate(divide="ignore"):
        if method == "cap":
            return log_cap_volume(_chord_to_arc(dist), d)
        if method == "geodesic":
            return m * np.log(_chord_to_arc(dist)) + log_unit_ball_volume(m)
        if method == "chordal":
            return m * np.log(dist) + log_unit_ball_volume(m)
        assert log_jac is not None
        return m * np.log(dist) + log_unit_ball_volume(m) + log_jac
    raise AssertionError(method)  # pragma: no cover


def _sphere_core(
    arr: np.ndarray | torch.Tensor,
    method: str,
    k: int,
    *,
    device: torch.device,
    chunk_size: int | None,
    duplicates: str,
    duplicate_tol: float,
    backend: str,
    memory_limit: int,
    gram_limit: int,
) -> EntropyEstimate:
    n, d = arr.shape
    if d < 2:
        raise ValueError(f"sphere entropy needs dimension d >= 2; got d = {d}")
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    src = _Source(arr, None, device)
    kind = "angles" if method == "angles" else "sphere"
    prep = _prepare(src, kind, memory_limit)
    _check_zero_rows(prep, src)
    if kind == "angles":
        assert prep.log_jac is not None
        if not bool(torch.isfinite(prep.log_jac).all()):
            bad = torch.nonzero(~torch.isfinite(prep.log_jac)).flatten().cpu().tolist()
            raise ValueError(
                "the hyperspherical-angle chart is singular (‖x_{i:}‖ = 0 for some i < d, i.e. the "
                f"last coordinates vanish) in row(s) {_fmt_indices(bad, None)}; use method='cap'"
            )
    feats = _Features(src, kind, prep)
    feats, dist, idx, n_dup, used = _knn_dedup(
        feats, k, duplicates=duplicates, duplicate_tol=duplicate_tol, backend=backend,
        chunk_size=chunk_size, memory_limit=memory_limit, gram_limit=gram_limit,
    )
    n_eff = feats.n
    log_jac = None if feats.prep.log_jac is None else feats.prep.log_jac.cpu().numpy()
    t = _terms(method, dist[:, k - 1], d, log_jac)
    t_next = _terms(method, dist[:, k], d, log_jac) if dist.shape[1] > k else None
    const = float(special.digamma(n_eff) - special.digamma(k))
    value = float(np.mean(t)) + const
    se, se_iid = _stderrs(t, t_next, idx[:, :k])
    return EntropyEstimate(
        value=value, stderr=se, method=method, n=n_eff, dim=d, k=k, n_duplicates=n_dup,
        n_input=n, intrinsic_dim=d - 1, stderr_iid=se_iid,
        mean_log_jacobian=None if log_jac is None else float(np.mean(log_jac)),
        backend=used, device=str(device) if used == "torch" else "cpu",
    )


def sphere_entropy(
    x: Any,
    method: Method = DEFAULT_METHOD,  # type: ignore[assignment]
    k: int = 1,
    *,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    return_details: bool = False,
    duplicates: DuplicatePolicy = "drop",
    duplicate_tol: float = DEFAULT_SPHERE_DUPLICATE_TOL,
    backend: Backend = "auto",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    gram_limit: int = DEFAULT_GRAM_LIMIT,
) -> float | EntropyEstimate:
    """Entropy S_u (nats) of the directions ``x_i/|x_i|`` of the rows of ``x`` on ``S^{d-1}``.

    Args:
        x: (N, d) samples (numpy or torch, any real dtype), N ≥ k+1, d ≥ 2, no zero rows.
        method: ``"cap"`` (default: exact geodesic-ball volume; lowest measured bias),
            ``"geodesic"``, ``"chordal"`` or ``"angles"`` (the paper's); see the module docstring.
        k: neighbour order of the KL estimator.
        device: torch device for the search (default CUDA when available, else CPU).
        chunk_size: rows per block of the torch search.
        return_details: return an :class:`EntropyEstimate` instead of a float.
        duplicates: ``"drop"`` (keep one row per group of coinciding directions, warn, and
            record ``n_duplicates``) or ``"raise"``.
        duplicate_tol: features closer than this count as coinciding (chordal distance on the
            unit sphere, or radians in angle space for ``"angles"``).
        backend, memory_limit, gram_limit: see :func:`nearest_neighbor_distances`.

    Returns:
        the estimate (float), or an :class:`EntropyEstimate` with a standard error.
    """
    method = _check_method(method)
    k = _check_k(k)
    duplicates = _check_duplicates(duplicates)
    arr = _as_input(x)
    est = _sphere_core(
        arr, method, k, device=_resolve_device(device), chunk_size=chunk_size,
        duplicates=duplicates, duplicate_tol=float(duplicate_tol), backend=backend,
        memory_limit=memory_limit, gram_limit=gram_limit,
    )
    return est if return_details else est.value


def sphere_entropy_batch(
    x: Any,
    method: Method = DEFAULT_METHOD,  # type: ignore[assignment]
    k: int = 1,
    *,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    return_details: bool = False,
    duplicates: DuplicatePolicy = "drop",
    duplicate_tol: float = DEFAULT_SPHERE_DUPLICATE_TOL,
    backend: Backend = "auto",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    gram_limit: int = DEFAULT_GRAM_LIMIT,
) -> tuple[np.ndarray, np.ndarray] | list[EntropyEstimate]:
    """:func:`sphere_entropy` for each of G sample sets: ``x`` has shape (G, N, d).

    Returns ``(values, stderrs)``, two float64 arrays of shape (G,), or the list of
    :class:`EntropyEstimate` with ``return_details=True``.  Each group is estimated exactly as
    :func:`sphere_entropy` would (duplicates are dropped per group, with one warning summarising
    all groups).
    """
    method = _check_method(method)
    k = _check_k(k)
    duplicates = _check_duplicates(duplicates)
    arr = _as_input(x, ndim=3)
    dev = _resolve_device(device)
    g = arr.shape[0]
    ests: list[EntropyEstimate] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for gi in range(g):
            try:
                ests.append(
                    _sphere_core(
                        arr[gi], method, k, device=dev, chunk_size=chunk_size,
                        duplicates=duplicates, duplicate_tol=float(duplicate_tol), backend=backend,
                        memory_limit=memory_limit, gram_limit=gram_limit,
                    )
                )
            except ValueError as exc:
                raise ValueError(f"group {gi}: {exc}") from exc
    n_dup = [e.n_duplicates for e in ests]
    others = [w for w in caught if "duplicate sample" not in str(w.message)]
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if any(n_dup):
        groups = [i for i, c in enumerate(n_dup) if c]
        warnings.warn(
            f"dropped {sum(n_dup)} duplicate sample(s) in {len(groups)} of {g} groups "
            f"(first groups: {groups[:10]})",
            RuntimeWarning,
            stacklevel=2,
        )
    if return_details:
        return ests
    values = np.array([e.value for e in ests], dtype=np.float64)
    stderrs = np.array([e.stderr for e in ests], dtype=np.float64)
    return values, stderrs


def kl_entropy(x: Any, k: int = 1, **opts: Any) -> float | EntropyEstimate:
    """Kozachenko–Leonenko differential entropy (nats) of the rows of ``x`` (N, m) in R^m.

    ``H ≈ m · mean(log ε_i) + log V_m + ψ(N) − ψ(k)``, ``ε_i`` the k-th NN distance.

    Keyword options: ``device``, ``chunk_size``, ``backend``, ``memory_limit``, ``gram_limit``
    (as in :func:`nearest_neighbor_distances`), ``return_details`` (return an
    :class:`EntropyEstimate`), ``duplicates`` (``"drop"`` default / ``"raise"``) and
    ``duplicate_tol`` (default 0: only exactly coinciding rows are duplicates).
    """
    allowed = {"device", "chunk_size", "backend", "memory_limit", "gram_limit", "return_details",
               "duplicates", "duplicate_tol"}
    unknown = set(opts) - allowed
    if unknown:
        raise TypeError(f"kl_entropy got unexpected option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    k = _check_k(k)
    duplicates = _check_duplicates(opts.get("duplicates", "drop"))
    tol = float(opts.get("duplicate_tol", 0.0))
    memory_limit = int(opts.get("memory_limit", DEFAULT_MEMORY_LIMIT))
    gram_limit = int(opts.get("gram_limit", DEFAULT_GRAM_LIMIT))
    arr = _as_input(x)
    n, m = arr.shape
    if m < 1:
        raise ValueError(f"x must have at least one column; got m = {m}")
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    dev = _resolve_device(opts.get("device"))
    src = _Source(arr, None, dev)
    prep = _prepare(src, "raw", memory_limit)
    feats = _Features(src, "raw", prep)
    feats, dist, idx, n_dup, used = _knn_dedup(
        feats, k, duplicates=duplicates, duplicate_tol=tol, backend=opts.get("backend", "auto"),
        chunk_size=opts.get("chunk_size"), memory_limit=memory_limit, gram_limit=gram_limit,
    )
    n_eff = feats.n
    t = m * np.log(dist[:, k - 1]) + log_unit_ball_volume(m)
    value = float(np.mean(t) + special.digamma(n_eff) - special.digamma(k))
    if not opts.get("return_details", False):
        return value
    t_next = m * np.log(dist[:, k]) + log_unit_ball_volume(m) if dist.shape[1] > k else None
    se, se_iid = _stderrs(t, t_next, idx[:, :k])
    return EntropyEstimate(
        value=value, stderr=se, method="kl", n=n_eff, dim=m, k=k, n_duplicates=n_dup,
        n_input=n, intrinsic_dim=m, stderr_iid=se_iid, backend=used,
        device=str(dev) if used == "torch" else "cpu",
    )
