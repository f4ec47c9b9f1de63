"""Tests of sgdthermo.entropy (nearest-neighbour entropy estimators).

Statistical tolerances are derived from the spread measured over 40 seeds (numbers quoted in the
comments; the bias tables are in docs/entropy.md).  A single fixed-seed estimate is allowed
|bias| + 4.5 sd, i.e. a test fails by chance with probability ~1e-5 if the seed were random,
while any real mistake in the constants (ψ(N) vs log N, the ball volume, the Jacobian ...) or in
the neighbour search moves the estimate by far more.  Long validations are marked ``slow``.
"""

from __future__ import annotations

import math
import time
import warnings

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import vonmises_fisher

from sgdthermo.entropy import (
    DEFAULT_METHOD,
    METHODS,
    EntropyEstimate,
    kl_entropy,
    log_betainc,
    log_cap_volume,
    log_sphere_area,
    log_unit_ball_volume,
    nearest_neighbor_distances,
    sphere_entropy,
    sphere_entropy_batch,
    uniform_sphere_entropy,
)


def vmf(d: int, kappa: float, n: int, seed: int) -> tuple[np.ndarray, float]:
    """VMF samples with a generic (random, fixed per d) mean direction, and the exact entropy."""
    mu = np.random.default_rng(1000 + d).normal(size=d)
    mu /= np.linalg.norm(mu)
    dist = vonmises_fisher(mu, kappa)
    return dist.rvs(n, random_state=seed), float(dist.entropy())


def uniform(d: int, n: int, seed: int) -> tuple[np.ndarray, float]:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x, uniform_sphere_entropy(d)


# ------------------------------------------------------------------------------------------
# geometry helpers
# ------------------------------------------------------------------------------------------


def test_volumes_closed_forms() -> None:
    assert log_unit_ball_volume(1) == pytest.approx(math.log(2.0))
    assert log_unit_ball_volume(2) == pytest.approx(math.log(math.pi))
    assert log_unit_ball_volume(3) == pytest.approx(math.log(4 * math.pi / 3))
    assert log_sphere_area(2) == pytest.approx(math.log(2 * math.pi))
    assert log_sphere_area(3) == pytest.approx(math.log(4 * math.pi))
    # huge dimensions stay finite (gammaln): log V_m ~ -(m/2) log(m / (2πe))
    v = log_unit_ball_volume(10**6)
    assert np.isfinite(v) and v == pytest.approx(-0.5e6 * math.log(1e6 / (2 * math.pi * math.e)), rel=1e-4)


def test_log_cap_volume_closed_forms() -> None:
    th = np.array([1e-8, 0.01, 0.3, 1.0, math.pi / 2, 2.0, 3.0, math.pi, 4.0])
    # S^1: arc of half-width θ has length 2θ (capped at 2π)
    np.testing.assert_allclose(log_cap_volume(th, 2), np.log(np.minimum(2 * th, 2 * math.pi)), rtol=1e-13)
    # S^2: cap area 2π(1 − cos θ) = 4π sin²(θ/2)
    ref = np.log(4 * math.pi * np.sin(np.minimum(th, math.pi) / 2) ** 2)
    np.testing.assert_allclose(log_cap_volume(th, 3), ref, rtol=1e-12)
    assert log_cap_volume(0.0, 5)[0] == -np.inf


@pytest.mark.parametrize("d", [4, 30, 1000, 100_000])
def test_log_cap_volume_vs_mpmath(d: int) -> None:
    mp.mp.dps = 40
    a, b = mp.mpf(d - 1) / 2, mp.mpf(1) / 2
    log_area = mp.log(2) + mp.mpf(d) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(d) / 2)
    for th in [1e-30, 1e-3, 0.2, 1.0, 1.5, 1.57, 2.2, 3.0]:
        x = mp.sin(mp.mpf(th)) ** 2
        reg = mp.betainc(a, b, 0, x, regularized=True)
        ref = log_area + (mp.log(reg / 2) if th <= math.pi / 2 else mp.log(1 - reg / 2))
        got = log_cap_volume(th, d)[0]
        # relative 1e-13: for large d the values are ~1e5 and both branches (betainc, continued
        # fraction where betainc underflows) must agree with the 40-digit reference
        assert got == pytest.approx(float(ref), rel=1e-13, abs=1e-12), (d, th)


def test_log_betainc_underflow_branch() -> None:
    # I_x(a, 1/2) underflows double precision here: log via the continued fraction
    a, x = 5e4, 0.5
    mp.mp.dps = 30
    ref = float(mp.log(mp.betainc(mp.mpf(a), mp.mpf(0.5), 0, mp.mpf(x), regularized=True)))
    assert log_betainc(a, 0.5, x)[0] == pytest.approx(ref, rel=1e-13)


# ------------------------------------------------------------------------------------------
# nearest neighbours
# ------------------------------------------------------------------------------------------


def brute_knn(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    if metric != "euclidean":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    dm = cdist(x, x)
    np.fill_diagonal(dm, np.inf)
    out = np.sort(dm, axis=1)[:, k - 1]
    if metric == "geodesic":
        out = 2 * np.arcsin(np.minimum(out / 2, 1))
    return out


@pytest.mark.parametrize("metric", ["euclidean", "chordal", "geodesic"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunk_size", [7, 64, 1000])
def test_torch_knn_matches_bruteforce(metric: str, k: int, chunk_size: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(203, 37)) * rng.uniform(0.5, 2.0, size=(203, 1))  # 203 = 7·29: 7 divides
    ref = brute_knn(x, k, metric)
    got = nearest_neighbor_distances(x, k, metric=metric, backend="torch", chunk_size=chunk_size,
                                     device="cpu")
    assert got.dtype == np.float64 and got.shape == (203,)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "geodesic"])
def test_torch_knn_column_chunks_and_banded_gram(metric: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(150, 53)).astype(np.float32)  # float32 input is read as float64 chunks
    ref = brute_knn(x.astype(np.float64), 2, metric)
    # memory_limit small: 5-column chunks (53 = 10·5 + 3 does not divide); gram_limit small:
    # the banded path (bands of 13 rows) instead of the full N×N Gram matrix
    got = nearest_neighbor_distances(x, 2, metric=metric, backend="torch", chunk_size=11,
                                     memory_limit=8 * 150 * 3 * 5, gram_limit=8 * 150 * 13)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("memory_limit", [None, 8 * 4 * 40 * 7])
def test_torch_knn_of_a_slow_walk_matches_bruteforce(k: int, memory_limit: int | None) -> None:
    """A slow random walk (an entropy queue's shape): every neighbour is within a fraction of
    a percent of the centred norms, so each candidate distance is refined from differences,
    mutual neighbours sharing one computed distance; with a small memory limit the pairs go
    in chunks of 7. Against brute force to 1e-12 (a pair given the wrong distance is off by
    order one)."""
    rng = np.random.default_rng(5)
    x = 100.0 + np.cumsum(rng.normal(size=(300, 40)) * 1e-3, axis=0)
    ref = brute_knn(x, k, "euclidean")
    opts = {} if memory_limit is None else {"memory_limit": memory_limit}
    got = nearest_neighbor_distances(x, k, metric="euclidean", backend="torch", device="cpu", **opts)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_kdtree_knn_matches_bruteforce_and_indices() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    for k in (1, 4):
        d, i = nearest_neighbor_distances(x, k, metric="chordal", backend="kdtree", return_indices=True)
        np.testing.assert_allclose(d, brute_knn(x, k, "chordal"), rtol=1e-12)
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        np.testing.assert_allclose(np.linalg.norm(u - u[i], axis=1), d, rtol=1e-12)
        assert not np.any(i == np.arange(300))


def test_torch_tensor_input() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(120, 25))
    ref = brute_knn(x, 1, "geodesic")
    got = nearest_neighbor_distances(torch.from_numpy(x).float(), metric="geodesic", backend="torch")
    np.testing.assert_allclose(got, ref, rtol=1e-6)  # the float32 tensor rounds the data itself


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
def test_tiny_distances_full_precision_on_sphere(backend: str) -> None:
    """Unit vectors 1e-9 .. 1e-6 apart: |a|²+|b|²−2ab alone would cancel to 0 or noise."""
    rng = np.random.default_rng(7)
    d = 12
    base = rng.normal(size=(40, d))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    deltas = np.logspace(-9, -6, 40)
    v = rng.normal(size=(40, d))
    v -= np.sum(v * base, axis=1, keepdims=True) * base
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    partner = np.cos(deltas)[:, None] * base + np.sin(deltas)[:, None] * v  # geodesic distance δ
    x = np.concatenate([base, partner])
    got = nearest_neighbor_distances(x, metric="geodesic", backend=backend)
    # components are rounded at ~1e-16, so δ = 1e-9 is known to ~1e-7 relative
    np.testing.assert_allclose(got, np.concatenate([deltas, deltas]), rtol=1e-6)
    # what cancellation would give: the plain float64 Gram formula loses δ entirely at 1e-9
    g = x @ x.T
    naive = np.sqrt(np.maximum(2 - 2 * g[np.arange(40), np.arange(40) + 40], 0))
    assert np.max(np.abs(naive[:5] / deltas[:5] - 1)) > 1e-3


# ------------------------------------------------------------------------------------------
# estimators vs exact entropies
# ------------------------------------------------------------------------------------------


def test_kl_entropy_gaussian() -> None:
    # 3-D correlated Gaussian, N = 2000: measured bias −0.014, sd 0.038 over 40 seeds
    cov = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 0.5]])
    x = np.random.default_rng(0).normal(size=(2000, 3)) @ np.linalg.cholesky(cov).T
    exact = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    assert kl_entropy(x) == pytest.approx(exact, abs=0.014 + 4.5 * 0.038)
    # the torch path gives the same number
    assert kl_entropy(x, backend="torch", chunk_size=333) == pytest.approx(kl_entropy(x), abs=1e-10)
    det = kl_entropy(x, k=2, return_details=True)
    assert isinstance(det, EntropyEstimate) and det.method == "kl" and det.k == 2
    assert det.value == pytest.approx(exact, abs=0.3)


@pytest.mark.parametrize(
    "d, kappa, method, bias, sd",
    [
        # measured over 40 seeds, N = 1000 (random mean direction):
        (3, 30.0, "cap", -0.016, 0.063),
        (3, 30.0, "angles", -0.020, 0.063),
        (5, 10.0, "cap", -0.019, 0.067),
        (10, 0.0, "cap", 0.001, 0.056),  # uniform: "cap" is exactly unbiased
    ],
)
def test_sphere_entropy_vs_exact_vmf(d: int, kappa: float, method: str, bias: float, sd: float) -> None:
    x, exact = uniform(d, 1000, 1) if kappa == 0 else vmf(d, kappa, 1000, 1)
    est = sphere_entropy(x, method, return_details=True)
    assert est.value == pytest.approx(exact, abs=abs(bias) + 4.5 * sd)
    # the reported (jackknife) stderr is of the size of the measured spread: it was measured to
    # be conservative by up to ~1.6× at low d and calibrated in high d
    assert 0.7 * sd < est.stderr < 2.0 * sd
    assert est.n == 1000 and est.dim == d and est.intrinsic_dim == d - 1 and est.n_duplicates == 0


def test_default_method_and_float_return() -> None:
    assert DEFAULT_METHOD == "chordal" and DEFAULT_METHOD in METHODS
    x, _ = vmf(3, 5.0, 300, 2)
    v = sphere_entropy(x)
    assert isinstance(v, float)
    assert v == sphere_entropy(x, DEFAULT_METHOD)


@pytest.mark.parametrize("d, ratio", [(300, 2.0), (1000, 10.0)])
def test_default_gets_entropy_differences_right_in_high_dimension(d, ratio) -> None:
    """ΔS = S(2T) − S(T) (κ = ratio·d → κ/2) on exact VMF samples, N = 1000, 3 seeds each.

    Measured (benchmarks/entropy_bias.py, docs/entropy.md): the default's relative error is
    +1.4 ± 0.3 % (d = 300, κ/d 2 → 1) and −0.0 ± 0.2 % (d = 1000, κ/d 10 → 5), with a
    per-seed spread of ≈ 0.8 % and 0.6 %; so the mean of 3 seeds must be within 3 % (bias plus
    > 3 standard errors of the mean).  ``cap``, the previous default, is off by −23 % and −6 %.
    """
    kappa = ratio * d
    rel = {}
    for m in (DEFAULT_METHOD, "cap"):
        diffs = []
        for s in range(3):
            cold, s_cold = vmf(d, kappa, 1000, 40 + s)
            hot, s_hot = vmf(d, kappa / 2, 1000, 50 + s)
            diffs.append((sphere_entropy(hot, m) - sphere_entropy(cold, m)) / (s_hot - s_cold) - 1)
        rel[m] = float(np.mean(diffs))
    assert abs(rel[DEFAULT_METHOD]) < 0.03
    assert rel["cap"] < -0.04  # the test tells the estimators apart


def test_scale_invariance_and_backends_agree() -> None:
    x, _ = vmf(6, 12.0, 400, 3)
    scales = np.random.default_rng(0).uniform(0.1, 10, size=(400, 1))
    for m in METHODS:
        a = sphere_entropy(x, m)
        assert sphere_entropy(x * scales, m) == pytest.approx(a, abs=1e-9)
        assert sphere_entropy(x, m, backend="torch", chunk_size=97) == pytest.approx(a, abs=1e-9)


def test_angles_matches_manual_formula() -> None:
    """The paper's estimator written out literally (angles, brute-force KL, explicit Jacobian)."""
    from scipy.special import digamma, gammaln

    d, n = 5, 300
    x, _ = vmf(d, 6.0, n, 11)
    phi = np.empty((n, d - 1))
    for i in range(d - 2):
        phi[:, i] = np.arctan2(np.linalg.norm(x[:, i + 1 :], axis=1), x[:, i])
    phi[:, d - 2] = np.arctan2(x[:, d - 1], x[:, d - 2])
    log_jac = sum((d - 1 - (i + 1)) * np.log(np.sin(phi[:, i])) for i in range(d - 2))
    m = d - 1
    eps = brute_knn(phi, 1, "euclidean")
    log_vm = 0.5 * m * math.log(math.pi) - gammaln(0.5 * m + 1)
    manual = m * np.mean(np.log(eps)) + log_vm + digamma(n) - digamma(1) + np.mean(log_jac)
    est = sphere_entropy(x, "angles", return_details=True)
    assert est.value == pytest.approx(manual, abs=1e-10)
    assert est.mean_log_jacobian == pytest.approx(np.mean(log_jac), abs=1e-12)
    assert sphere_entropy(x, "angles", backend="torch", chunk_size=64) == pytest.approx(manual, abs=1e-10)


def test_input_not_modified() -> None:
    x, _ = vmf(25, 50.0, 200, 12)
    x_copy = x.copy()
    t = torch.from_numpy(x.copy())
    for m in METHODS:
        sphere_entropy(x, m, backend="torch")
        sphere_entropy(t, m, backend="torch")
    kl_entropy(x, backend="torch")
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(t.numpy(), x_copy)


def test_methods_agree_at_small_distances_d3() -> None:
    # concentrated d = 3: geodesic, chordal and cap differ only at O(ε²) ~ 1e-4 nats
    x, _ = vmf(3, 300.0, 1000, 4)
    vals = [sphere_entropy(x, m) for m in ("cap", "geodesic", "chordal")]
    assert max(vals) - min(vals) < 1e-3


def test_high_dimensional_smoke() -> None:
    # d = 20000, N = 300 uniform, "cap" (exactly unbiased for the uniform law): measured error
    # 0.04 ± 0.086 (10 seeds); ~1 s on 2 cores
    x, exact = uniform(20_000, 300, 0)
    est = sphere_entropy(x.astype(np.float32), "cap", return_details=True, memory_limit=16 * 2**20)
    assert est.backend == "torch"
    assert est.value == pytest.approx(exact, abs=0.05 + 4.5 * 0.086)
    assert np.isfinite(sphere_entropy(x[:, :20_000], "angles", chunk_size=128))


# ------------------------------------------------------------------------------------------
# duplicates and validation
# ------------------------------------------------------------------------------------------


def test_duplicates_dropped_and_reported() -> None:
    x, _ = vmf(4, 8.0, 200, 5)
    dup = np.concatenate([x, x[:5], x[:2], 3.0 * x[10:11]])  # 8 duplicates (one a rescaled row)
    perm = np.random.default_rng(0).permutation(dup.shape[0])
    dup = dup[perm]
    ref = sphere_entropy(x, return_details=True)
    with pytest.warns(RuntimeWarning, match="dropped 8 duplicate"):
        est = sphere_entropy(dup, return_details=True)
    assert est.n_duplicates == 8 and est.n == 200 and est.n_input == 208
    assert est.value == pytest.approx(ref.value, abs=1e-12)
    with pytest.warns(RuntimeWarning, match="dropped 8 duplicate"):
        assert sphere_entropy(dup, "angles") == pytest.approx(sphere_entropy(x, "angles"), abs=1e-12)
    with pytest.raises(ValueError, match="duplicate"):
        sphere_entropy(dup, duplicates="raise")
    with pytest.warns(RuntimeWarning, match="duplicate"):
        sphere_entropy(dup, backend="torch", chunk_size=50)


def test_many_copies_of_one_row() -> None:
    x, _ = vmf(3, 2.0, 100, 6)
    dup = np.concatenate([x, np.repeat(x[:1], 10, axis=0)])
    with pytest.warns(RuntimeWarning, match="dropped 10"):
        est = sphere_entropy(dup, k=2, return_details=True)
    assert est.n == 100
    assert est.value == pytest.approx(sphere_entropy(x, k=2), abs=1e-12)


def test_kl_entropy_duplicates() -> None:
    x = np.random.default_rng(8).normal(size=(100, 2))
    with pytest.warns(RuntimeWarning, match="dropped 3"):
        v = kl_entropy(np.concatenate([x, x[:3]]))
    assert v == pytest.approx(kl_entropy(x), abs=1e-12)
    with pytest.raises(ValueError, match="duplicate"):
        kl_entropy(np.concatenate([x, x[:3]]), duplicates="raise")


def test_no_warning_without_duplicates() -> None:
    x, _ = vmf(3, 2.0, 100, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sphere_entropy(x)


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.ones(5), {}, "2-D array"),
        (np.ones((2, 3, 4)), {}, "2-D array"),
        (np.random.default_rng(0).normal(size=(2, 3)), {"k": 2}, "at least k\\+1 = 3 rows"),
        (np.random.default_rng(0).normal(size=(10, 1)), {}, "d >= 2; got d = 1"),
        (np.where(np.arange(30).reshape(10, 3) == 7, np.nan, 1.0 + np.arange(30).reshape(10, 3)), {},
         r"non-finite .* row\(s\) \[2\]"),
        (np.where(np.arange(30).reshape(10, 3) == 4, np.inf, 1.0 + np.arange(30).reshape(10, 3)), {},
         r"non-finite .* \[1\]"),
        (np.vstack([np.ones((5, 3)) + np.arange(5)[:, None] * [0, 1, 2], np.zeros((1, 3))]), {},
         r"zero row.*\[5\]"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"k": 0}, "k must be a positive integer; got 0"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"k": 1.5}, "k must be a positive integer; got 1.5"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"method": "foo"}, "unknown method 'foo'"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"duplicates": "keep"}, "duplicates must be"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"backend": "gpu"}, "backend must be"),
        (np.random.default_rng(0).normal(size=(10, 3)), {"chunk_size": 0, "backend": "torch"}, "chunk_size"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "real floating"),
        (np.ones((4, 3)) * 1j, {}, "real floating"),
    ],
)
def test_input_validation(x: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sphere_entropy(x, **kwargs)


def test_angles_singular_chart_and_other_validation() -> None:
    x = np.random.default_rng(0).normal(size=(10, 4))
    x[3, 2:] = 0.0  # ‖x_{3:}‖ = 0: the angle chart is singular in row 3
    with pytest.raises(ValueError, match=r"singular.*\[3\]"):
        sphere_entropy(x, "angles")
    assert np.isfinite(sphere_entropy(x, "cap"))  # the intrinsic estimators do not care
    with pytest.raises(ValueError, match="metric must be"):
        nearest_neighbor_distances(x, metric="cosine")
    with pytest.raises(ValueError, match="at least k\\+1"):
        kl_entropy(np.ones((1, 3)))
    with pytest.raises(TypeError, match="unexpected option"):
        kl_entropy(x, metod="cap")
    with pytest.raises(ValueError, match="3-D array"):
        sphere_entropy_batch(x)
    with pytest.raises(ValueError, match="group 1: .*zero row"):
        xb = np.random.default_rng(1).normal(size=(2, 10, 3))
        xb[1, 4] = 0
        sphere_entropy_batch(xb)


# ------------------------------------------------------------------------------------------
# batch helper
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_single(method: str) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5, 150, 3)) + np.array([3.0, 0.0, 0.0]) * rng.uniform(0, 1, size=(5, 1, 1))
    vals, ses = sphere_entropy_batch(x, method)
    assert vals.shape == ses.shape == (5,)
    for g in range(5):
        est = sphere_entropy(x[g], method, return_details=True)
        assert vals[g] == est.value and ses[g] == est.stderr
    details = sphere_entropy_batch(x, method, return_details=True)
    assert [e.value for e in details] == list(vals)


def test_batch_duplicates_reported_once() -> None:
    x = np.random.default_rng(10).normal(size=(3, 50, 3))
    x[1, 7] = x[1, 3]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        vals, _ = sphere_entropy_batch(x)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "1 duplicate" in msgs[0] and "[1]" in msgs[0]
    assert vals[1] == sphere_entropy(np.delete(x[1], 7, axis=0))


def test_batch_speed_simulator_size() -> None:
    # the isotropic simulator's size: G = 300 grid points, N = 1000, d = 3 (measured ~0.4 s)
    x = np.random.default_rng(11).normal(size=(300, 1000, 3))
    t0 = time.perf_counter()
    vals, ses = sphere_entropy_batch(x)
    dt = time.perf_counter() - t0
    assert np.all(np.isfinite(vals)) and np.all(ses > 0)
    assert abs(vals.mean() - math.log(4 * math.pi)) < 0.02  # 300 × N = 1000 uniform: sd/√300 ≈ 0.003
    assert dt < 5.0  # generous for loaded CI machines


# ------------------------------------------------------------------------------------------
# slow statistical validations (python -m pytest -m slow tests/test_entropy.py)
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "d, ratio, n, tol",
    [
        # tol: 4.5 standard errors of a 20-seed mean (sd/√20 with sd measured ~0.06 at N = 1000,
        # ~0.12 at N = 250) plus the measured |bias| where it is not zero (docs/entropy.md)
        (3, 0.0, 1000, 0.07),
        (3, 10.0, 1000, 0.07),
        (3, 100.0, 250, 0.14),
        (5, 2.0, 1000, 0.08),
        (10, 0.0, 1000, 0.07),
        (30, 0.0, 1000, 0.08),
    ],
)
def test_slow_cap_bias_over_seeds(d: int, ratio: float, n: int, tol: float) -> None:
    errs = []
    for s in range(20):
        x, exact = uniform(d, n, 100 + s) if ratio == 0 else vmf(d, ratio * d, n, 100 + s)
        errs.append(sphere_entropy(x) - exact)
    assert abs(np.mean(errs)) < tol


@pytest.mark.slow
@pytest.mark.parametrize(
    "d, kappa, lo, hi, iid_min",
    [
        # d = 3: the jackknife is conservative (measured sd/stderr ≈ 0.67), the iid one calibrated
        (3, 30.0, 0.45, 0.95, 0.8),
        # concentrated d = 30: the jackknife is calibrated (≈ 1.07), the iid one ~1.8× too small
        (30, 300.0, 0.75, 1.4, 1.35),
    ],
)
def test_slow_stderr_calibration(d: int, kappa: float, lo: float, hi: float, iid_min: float) -> None:
    # 40 seeds: the sd over seeds itself is uncertain by ~11 %
    vals, ses, ses_iid = [], [], []
    for s in range(40):
        x, _ = vmf(d, kappa, 1000, 200 + s)
        est = sphere_entropy(x, return_details=True)
        vals.append(est.value)
        ses.append(est.stderr)
        ses_iid.append(est.stderr_iid)
    sd = np.std(vals, ddof=1)
    assert lo < sd / np.mean(ses) < hi
    assert sd / np.mean(ses_iid) > iid_min


@pytest.mark.slow
def test_slow_large_d_backends_and_chunks_agree() -> None:
    x, _ = vmf(200, 2000.0, 800, 3)
    a = sphere_entropy(x, return_details=True)
    b = sphere_entropy(x, chunk_size=77, memory_limit=2**20, gram_limit=8 * 800 * 100, return_details=True)
    assert a.value == pytest.approx(b.value, abs=1e-8)
    c = sphere_entropy(torch.from_numpy(x), return_details=True)
    assert c.value == pytest.approx(a.value, abs=1e-8)
    for m in METHODS:
        assert np.isfinite(sphere_entropy(x, m))


@pytest.mark.slow
def test_slow_kl_gaussian_dimensions() -> None:
    # isotropic Gaussian in R^m, N = 2000: KL bias grows with m (≈ +0.3 nats at m = 10)
    for m, tol in [(1, 0.05), (2, 0.06), (5, 0.15), (10, 0.45)]:
        errs = []
        for s in range(10):
            x = np.random.default_rng(s).normal(size=(2000, m))
            errs.append(kl_entropy(x) - 0.5 * m * math.log(2 * math.pi * math.e))
        assert abs(np.mean(errs)) < tol, (m, np.mean(errs))
