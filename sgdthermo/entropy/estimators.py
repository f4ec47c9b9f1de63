r"""The sphere entropy estimators and Kozachenko–Leonenko in R^m (see :mod:`sgdthermo.entropy`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import special

from ..stats import autocorr_time
from .correlation import nn_lag_fraction, projection_tau
from .geometry import log_cap_volume, log_unit_ball_volume
from .neighbors import (
    DEFAULT_GRAM_LIMIT,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_SPHERE_DUPLICATE_TOL,
    Backend,
    DuplicatePolicy,
    Features,
    Source,
    as_input,
    check_duplicates,
    check_k,
    check_zero_rows,
    chord_to_arc,
    fmt_indices,
    knn_dedup,
    prepare,
    resolve_device,
)

__all__ = ["METHODS", "DEFAULT_METHOD", "check_method_option", "EntropyEstimate", "sphere_entropy", "sphere_entropy_batch", "sphere_entropy_methods", "kl_entropy"]

Method = Literal["cap", "geodesic", "chordal", "angles"]


#: Available sphere estimators.
METHODS: tuple[str, ...] = ("cap", "geodesic", "chordal", "angles")
#: The default sphere estimator: the most accurate on entropy *differences*, which every check
#: uses (docs/entropy.md, "Which default and why"; ``benchmarks/entropy_bias.py``).
DEFAULT_METHOD: str = "chordal"


# --------------------------------------------------------------------------------------------
# Result container
# --------------------------------------------------------------------------------------------


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return str(method)


def check_method_option(method: Any) -> str | None:
    """``method`` as a setting (``--entropy-method``): None for the default, or one of
    :data:`METHODS`; anything else is a one-line :class:`~sgdthermo.errors.ConfigError`."""
    from ..errors import ConfigError

    if method is not None and method not in METHODS:
        raise ConfigError(f"--entropy-method {method!r}: expected one of {', '.join(METHODS)}")
    return method


@dataclass(frozen=True)
class EntropyEstimate:
    """A nearest-neighbour entropy estimate with diagnostics.

    Attributes:
        value: the estimate (nats).
        stderr: approximate standard error (delete-one jackknife; conservative, see module doc;
            with ``ordered=True`` widened by the samples' correlation in time; NaN with fewer
            than 3 samples).
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
        tau: with ``ordered=True``, the integrated autocorrelation time (samples, ½ when
            independent) of the leave-one-out estimates, by which ``stderr`` is widened; else NaN.
        queue_tau: with ``ordered=True``, the correlation time of the directions themselves
            (:func:`sgdthermo.entropy.correlation.projection_tau`); else NaN.
        nn_lag_fraction: with ``ordered=True``, the fraction of samples whose nearest neighbour
            is adjacent in order (independent samples: 2/n); else NaN.
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
    tau: float = float("nan")
    queue_tau: float = float("nan")
    nn_lag_fraction: float = float("nan")

    @property
    def n_eff(self) -> float:
        """Effective number of independent samples, ``n / (2 queue_tau)`` (NaN unless ordered)."""
        return self.n / (2.0 * self.queue_tau)

    def __float__(self) -> float:
        return float(self.value)


def _stderrs(t: np.ndarray, t_next: np.ndarray | None, nbrs: np.ndarray,
             ordered: bool = False) -> tuple[float, float, float]:
    """(delete-one jackknife, iid) standard errors of the estimate ``mean(t) + const``, and τ.

    With ``ordered`` (the samples are a time series, e.g. an entropy queue) the jackknife error
    includes their correlation: the leave-one-out estimates ``h_i`` are correlated in time like
    the samples, so the variance of their mean is ``2τ`` times the independent one, τ the
    integrated autocorrelation time of ``h`` (:func:`sgdthermo.stats.autocorr_time`, ½ when
    independent); the jackknife error is multiplied by ``sqrt(max(1, 2τ))``. τ is NaN unless
    ``ordered``.

    ``t_next[i]`` is sample i's term at its (k+1)-th neighbour distance, ``nbrs`` (n, k) the
    indices of the k nearest neighbours.  Without a (k+1)-th neighbour (n = k + 1) the iid
    formula is returned for both; with n < 3 both are NaN (no spread can be estimated).
    """
    n = t.size
    nan = float("nan")
    if n < 3:
        return nan, nan, nan
    e = t - t.mean()
    iid = float(np.sqrt(e @ e / (n - 1) / n))
    if t_next is None:
        h = t
        jack = iid
    else:
        k = nbrs.shape[1]
        corr = np.bincount(nbrs.reshape(-1), weights=np.repeat(t - t_next, k), minlength=n)
        h = (t.sum() - t - corr) / (n - 1)
        hc = h - h.mean()
        jack = float(np.sqrt((n - 1) / n * (hc @ hc)))
    if not ordered or n < 4:
        return jack, iid, nan
    tau = float(autocorr_time(h))
    return jack * float(np.sqrt(max(1.0, 2.0 * tau))), iid, tau


def _terms(
    method: str, dist: np.ndarray, d: int, log_jac: np.ndarray | None
) -> np.ndarray:
    """Per-sample terms t_i with estimate = mean(t) + ψ(N) − ψ(k)."""
    m = d - 1
    with np.errstate(divide="ignore"):
        if method == "cap":
            return log_cap_volume(chord_to_arc(dist), d)
        if method == "geodesic":
            return m * np.log(chord_to_arc(dist)) + log_unit_ball_volume(m)
        if method == "chordal":
            return m * np.log(dist) + log_unit_ball_volume(m)
        assert log_jac is not None
        return m * np.log(dist) + log_unit_ball_volume(m) + log_jac
    raise AssertionError(method)  # pragma: no cover


def _sphere_core(
    arr: np.ndarray | torch.Tensor,
    method: str,
    k: int,
    **opts: Any,
) -> EntropyEstimate:
    return _sphere_estimates(arr, (method,), k, **opts)[method]


def _sphere_estimates(
    arr: np.ndarray | torch.Tensor,
    methods: tuple[str, ...],
    k: int,
    *,
    device: torch.device,
    chunk_size: int | None,
    duplicates: str,
    duplicate_tol: float,
    backend: str,
    memory_limit: int,
    gram_limit: int,
    ordered: bool = False,
) -> dict[str, EntropyEstimate]:
    """Every method in ``methods`` from one neighbour search per feature space (the intrinsic
    methods share the chordal neighbours; ``"angles"`` has its own chart)."""
    n, d = arr.shape
    if d < 2:
        raise ValueError(f"sphere entropy needs dimension d >= 2; got d = {d}")
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    src = Source(arr, None, device)
    out: dict[str, EntropyEstimate] = {}
    extra: dict[str, float] = {}
    if ordered:
        x = arr.detach() if isinstance(arr, torch.Tensor) else arr
        extra["queue_tau"] = projection_tau(x)
    for kind in ("sphere", "angles"):
        todo = [m for m in methods if (m == "angles") == (kind == "angles")]
        if not todo:
            continue
        prep = prepare(src, kind, memory_limit)
        check_zero_rows(prep, src)
        if kind == "angles":
            assert prep.log_jac is not None
            if not bool(torch.isfinite(prep.log_jac).all()):
                bad = torch.nonzero(~torch.isfinite(prep.log_jac)).flatten().cpu().tolist()
                raise ValueError(
                    "the hyperspherical-angle chart is singular (‖x_{i:}‖ = 0 for some i < d, i.e. the "
                    f"last coordinates vanish) in row(s) {fmt_indices(bad, None)}; use method='cap'"
                )
        feats = Features(src, kind, prep)
        feats, dist, idx, n_dup, used = knn_dedup(
            feats, k, duplicates=duplicates, duplicate_tol=duplicate_tol, backend=backend,
            chunk_size=chunk_size, memory_limit=memory_limit, gram_limit=gram_limit,
        )
        n_eff = feats.n
        log_jac = None if feats.prep.log_jac is None else feats.prep.log_jac.cpu().numpy()
        const = float(special.digamma(n_eff) - special.digamma(k))
        if ordered:
            extra["nn_lag_fraction"] = nn_lag_fraction(idx[:, 0])
        for method in todo:
            t = _terms(method, dist[:, k - 1], d, log_jac)
            t_next = _terms(method, dist[:, k], d, log_jac) if dist.shape[1] > k else None
            se, se_iid, tau = _stderrs(t, t_next, idx[:, :k], ordered)
            if ordered:
                extra["tau"] = tau
            out[method] = EntropyEstimate(
                value=float(np.mean(t)) + const, stderr=se, method=method, n=n_eff, dim=d, k=k,
                n_duplicates=n_dup, n_input=n, intrinsic_dim=d - 1, stderr_iid=se_iid,
                mean_log_jacobian=None if log_jac is None else float(np.mean(log_jac)),
                backend=used, device=str(device) if used == "torch" else "cpu", **extra,
            )
    return {m: out[m] for m in methods}


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
    ordered: bool = False,
) -> float | EntropyEstimate:
    """Entropy S_u (nats) of the directions ``x_i/|x_i|`` of the rows of ``x`` on ``S^{d-1}``.

    Args:
        x: (N, d) samples (numpy or torch, any real dtype), N ≥ k+1, d ≥ 2, no zero rows.
        method: ``"chordal"`` (default: the most accurate on entropy differences), ``"cap"``
            (exact geodesic-ball volume; least biased absolute values), ``"geodesic"`` or
            ``"angles"`` (the paper's); see the module docstring.
        k: neighbour order of the KL estimator.
        device: torch device for the search (default CUDA when available, else CPU).
        chunk_size: rows per block of the torch search.
        return_details: return an :class:`EntropyEstimate` instead of a float.
        duplicates: ``"drop"`` (keep one row per group of coinciding directions, warn, and
            record ``n_duplicates``) or ``"raise"``.
        duplicate_tol: features closer than this count as coinciding (chordal distance on the
            unit sphere, or radians in angle space for ``"angles"``).
        backend, memory_limit, gram_limit: see :func:`nearest_neighbor_distances`.
        ordered: the rows are a time series (an entropy queue, oldest first): widen the error
            by their correlation and measure it (``tau``, ``queue_tau``, ``nn_lag_fraction``;
            :mod:`sgdthermo.entropy.correlation`).

    Returns:
        the estimate (float), or an :class:`EntropyEstimate` with a standard error.
    """
    method = _check_method(method)
    est = sphere_entropy_methods(
        x, (method,), k, device=device, chunk_size=chunk_size, duplicates=duplicates,
        duplicate_tol=duplicate_tol, backend=backend, memory_limit=memory_limit,
        gram_limit=gram_limit, ordered=ordered,
    )[method]
    return est if return_details else est.value


def sphere_entropy_methods(
    x: Any,
    methods: tuple[str, ...] | list[str] = METHODS,
    k: int = 1,
    *,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    duplicates: DuplicatePolicy = "drop",
    duplicate_tol: float = DEFAULT_SPHERE_DUPLICATE_TOL,
    backend: Backend = "auto",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    gram_limit: int = DEFAULT_GRAM_LIMIT,
    ordered: bool = False,
) -> dict[str, EntropyEstimate]:
    """:func:`sphere_entropy` by several estimators at once: ``{method: EntropyEstimate}``.

    ``"cap"``, ``"geodesic"`` and ``"chordal"`` share one nearest-neighbour search (their
    neighbours are the same); ``"angles"`` needs a second one in its chart.  Each estimate is the
    one :func:`sphere_entropy` returns with that method and the same options.
    """
    methods = tuple(_check_method(m) for m in methods)
    if not methods:
        raise ValueError(f"methods is empty; choose from {METHODS}")
    k = check_k(k)
    duplicates = check_duplicates(duplicates)
    return _sphere_estimates(
        as_input(x), methods, k, device=resolve_device(device), chunk_size=chunk_size,
        duplicates=duplicates, duplicate_tol=float(duplicate_tol), backend=backend,
        memory_limit=memory_limit, gram_limit=gram_limit, ordered=bool(ordered),
    )


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
    ordered: bool = False,
) -> tuple[np.ndarray, np.ndarray] | list[EntropyEstimate]:
    """:func:`sphere_entropy` for each of G sample sets: ``x`` has shape (G, N, d).

    Returns ``(values, stderrs)``, two float64 arrays of shape (G,), or the list of
    :class:`EntropyEstimate` with ``return_details=True``.  Each group is estimated exactly as
    :func:`sphere_entropy` would (duplicates are dropped per group, with one warning summarising
    all groups).
    """
    method = _check_method(method)
    k = check_k(k)
    duplicates = check_duplicates(duplicates)
    arr = as_input(x, ndim=3)
    dev = resolve_device(device)
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
                        memory_limit=memory_limit, gram_limit=gram_limit, ordered=bool(ordered),
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
    k = check_k(k)
    duplicates = check_duplicates(opts.get("duplicates", "drop"))
    tol = float(opts.get("duplicate_tol", 0.0))
    memory_limit = int(opts.get("memory_limit", DEFAULT_MEMORY_LIMIT))
    gram_limit = int(opts.get("gram_limit", DEFAULT_GRAM_LIMIT))
    arr = as_input(x)
    n, m = arr.shape
    if m < 1:
        raise ValueError(f"x must have at least one column; got m = {m}")
    if n < k + 1:
        raise ValueError(f"need at least k+1 = {k + 1} rows (samples); got N = {n}")
    dev = resolve_device(opts.get("device"))
    src = Source(arr, None, dev)
    prep = prepare(src, "raw", memory_limit)
    feats = Features(src, "raw", prep)
    feats, dist, idx, n_dup, used = knn_dedup(
        feats, k, duplicates=duplicates, duplicate_tol=tol, backend=opts.get("backend", "auto"),
        chunk_size=opts.get("chunk_size"), memory_limit=memory_limit, gram_limit=gram_limit,
    )
    n_eff = feats.n
    t = m * np.log(dist[:, k - 1]) + log_unit_ball_volume(m)
    value = float(np.mean(t) + special.digamma(n_eff) - special.digamma(k))
    if not opts.get("return_details", False):
        return value
    t_next = m * np.log(dist[:, k]) + log_unit_ball_volume(m) if dist.shape[1] > k else None
    se, se_iid, _ = _stderrs(t, t_next, idx[:, :k])
    return EntropyEstimate(
        value=value, stderr=se, method="kl", n=n_eff, dim=m, k=k, n_duplicates=n_dup,
        n_input=n, intrinsic_dim=m, stderr_iid=se_iid, backend=used,
        device=str(dev) if used == "torch" else "cpu",
    )
