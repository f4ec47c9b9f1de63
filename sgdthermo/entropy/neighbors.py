r"""k-nearest-neighbour search for the entropy estimators, exact in float64, bounded in memory.

For a feature dimension ≤ :data:`KDTREE_MAX_DIM` on CPU a ``scipy.spatial.cKDTree``; otherwise a
chunked torch search on the chosen device (see :mod:`sgdthermo.entropy` for the method, its
exact refinement of small distances and the duplicate policy).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

__all__ = ["nearest_neighbor_distances", "KDTREE_MAX_DIM", "DEFAULT_MEMORY_LIMIT", "DEFAULT_GRAM_LIMIT",
           "DEFAULT_CHUNK_SIZE"]

Metric = Literal["euclidean", "chordal", "geodesic"]
Backend = Literal["auto", "kdtree", "torch"]
DuplicatePolicy = Literal["drop", "raise"]

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
# Input handling and validation
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return int(k)


def check_duplicates(duplicates: Any) -> str:
    if duplicates not in ("drop", "raise"):
        raise ValueError(f"duplicates must be 'drop' or 'raise'; got {duplicates!r}")
    return str(duplicates)


def as_input(x: Any, name: str = "x", ndim: int = 2) -> np.ndarray | torch.Tensor:
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


class Source:
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

    def subset(self, keep: np.ndarray) -> "Source":
        rows = keep if self.rows is None else self.rows[keep]
        return Source(self.x, rows, self.device)


@dataclass
class Prepared:
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


def prepare(src: Source, kind: str, memory_limit: int) -> Prepared:
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
        idx = fmt_indices(bad_finite, src.rows)
        raise ValueError(f"x contains non-finite values (NaN or inf) in row(s) {idx}")
    if bad_large:
        idx = fmt_indices(bad_large, src.rows)
        raise ValueError(f"the squared norm overflows float64 (values too large) in row(s) {idx}")
    return Prepared(norms=norms, col_edges=edges, suffix=suffix, log_jac=log_jac)


def fmt_indices(idx: Sequence[int], rows: np.ndarray | None) -> str:
    orig = [int(rows[i]) if rows is not None else int(i) for i in idx]
    s = ", ".join(str(i) for i in orig[:10])
    return f"[{s}{', ...' if len(orig) > 10 else ''}] ({len(orig)} in total)"


class Features:
    """Column chunks of the (N, D) feature matrix the k-NN search runs on.

    kinds: ``"raw"`` (rows as given, Euclidean), ``"sphere"`` (unit vectors u = x/|x|),
    ``"angles"`` (hyperspherical angles, D = d − 1).
    """

    def __init__(self, src: Source, kind: str, prep: Prepared):
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

    def subset(self, keep: np.ndarray) -> "Features":
        keep_t = torch.as_tensor(keep, device=self.prep.norms.device)
        prep = Prepared(
            norms=self.prep.norms[keep_t],
            col_edges=self.prep.col_edges,  # fewer rows: the same chunks use less memory
            suffix=None if self.prep.suffix is None else self.prep.suffix[keep_t],
            log_jac=None if self.prep.log_jac is None else self.prep.log_jac[keep_t],
        )
        return Features(self.src.subset(keep), self.kind, prep)


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
    feats: Features, kk: int, chunk_size: int, memory_limit: int, gram_limit: int
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
        # each pair once: i's neighbour j and j's neighbour i (mutual neighbours, the common
        # case in a time-ordered queue) share one distance, |a − b|² = |b − a|² to the bit
        lo, hi = torch.minimum(pi, pj), torch.maximum(pi, pj)
        pairs, which = torch.unique(lo * n + hi, return_inverse=True)
        ua, ub = pairs // n, pairs % n
        acc = torch.zeros(pairs.numel(), dtype=f64, device=dev)
        for fc in feats.blocks(centered=False):
            w = fc.shape[1]
            per = int(max(1, memory_limit // (4 * 8 * w)))
            for p0 in range(0, pairs.numel(), per):
                p1 = min(pairs.numel(), p0 + per)
                diff = fc[ua[p0:p1]] - fc[ub[p0:p1]]
                acc[p0:p1] += torch.einsum("pw,pw->p", diff, diff)
        cand_d2[pi, pk] = acc[which]
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
    feats: Features,
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


def knn_dedup(
    feats: Features,
    k: int,
    *,
    duplicates: str,
    duplicate_tol: float,
    backend: str,
    chunk_size: int | None,
    memory_limit: int,
    gram_limit: int,
) -> tuple[Features, np.ndarray, np.ndarray, int, str]:
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
    k = check_k(k)
    if metric not in ("euclidean", "chordal", "geodesic"):
        raise ValueError(f"metric must be 'euclidean', 'chordal' or 'geodesic'; got {metric!r}")
    arr = as_input(x)
    n, d = arr.shape
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    if d < 1:
        raise ValueError(f"x must have at least one column; got d = {d}")
    dev = resolve_device(device)
    src = Source(arr, None, dev)
    kind = "raw" if metric == "euclidean" else "sphere"
    prep = prepare(src, kind, memory_limit)
    if kind == "sphere":
        check_zero_rows(prep, src)
    feats = Features(src, kind, prep)
    dist, idx, _ = _knn(
        feats, k, backend=backend, chunk_size=chunk_size, memory_limit=memory_limit,
        gram_limit=gram_limit,
    )
    out = dist[:, k - 1].copy()
    if metric == "geodesic":
        out = chord_to_arc(out)
    if return_indices:
        return out, idx[:, k - 1].copy()
    return out


def chord_to_arc(c: np.ndarray) -> np.ndarray:
    return 2.0 * np.arcsin(np.minimum(0.5 * c, 1.0))


def check_zero_rows(prep: Prepared, src: Source) -> None:
    zero = prep.norms == 0
    if bool(zero.any()):
        bad = torch.nonzero(zero).flatten().cpu().tolist()
        raise ValueError(f"x has zero row(s) (no direction defined) at index {fmt_indices(bad, src.rows)}")
