"""Tests of sgdthermo.entropy.correlation and the time-ordered (queue) entropy errors.

Synthetic sequences with a known correlation, exact VMF samples for independent queues, and
replicas of the isotropic model (fixed sphere, whose stationary law is VMF) for the
calibration of the error bars.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import vonmises_fisher

from sgdthermo import simulate_isotropic, sphere_entropy
from sgdthermo.analysis.selection import exclusion_reasons, split_usable
from sgdthermo.entropy.correlation import (
    entropy_ok,
    iid_lag_fraction,
    nn_lag_fraction,
    projection_tau,
)


def ar1_sphere(n: int, d: int, phi: float, kappa: float, seed: int) -> np.ndarray:
    """Directions ``normalize(κ e₁ + z_t)`` with z an AR(1) chain of coefficient φ: the
    tangential projections are AR(1) to first order in 1/κ, so their integrated autocorrelation
    time is ``(1 + φ)/(2(1 − φ))``."""
    rng = np.random.default_rng(seed)
    z = np.empty((n, d))
    z[0] = rng.standard_normal(d)
    s = np.sqrt(1 - phi**2)
    for t in range(1, n):
        z[t] = phi * z[t - 1] + s * rng.standard_normal(d)
    x = z.copy()
    x[:, 0] += kappa
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_iid_lag_fraction_is_exact():
    """The expectation 2/n, against a Monte Carlo of 200 sets of 100 uniform points (the mean
    fraction has a standard error of about sqrt(0.02/100/200) = 1e-3; 4e-3 is four of them)."""
    rng = np.random.default_rng(0)
    n, fr = 100, []
    for _ in range(200):
        x = rng.standard_normal((n, 5))
        g = x @ x.T - np.diag(np.full(n, np.inf))
        d2 = (x**2).sum(1)[:, None] + (x**2).sum(1)[None] - 2 * g
        fr.append(nn_lag_fraction(np.argmin(d2, axis=1)))
    assert iid_lag_fraction(n) == pytest.approx(0.02)
    assert np.mean(fr) == pytest.approx(0.02, abs=4e-3)


def test_nn_lag_fraction_counts_adjacent_neighbours():
    assert nn_lag_fraction(np.array([1, 0, 1, 2])) == 1.0
    assert nn_lag_fraction(np.array([2, 3, 0, 1])) == 0.0
    assert nn_lag_fraction(np.array([1, 2, 0, 2])) == 0.75


@pytest.mark.parametrize("phi", [0.0, 0.6, 0.9])
def test_projection_tau_recovers_a_known_correlation(phi):
    """AR(1) of coefficient φ: τ = (1+φ)/(2(1−φ)) = 0.5, 2, 9.5. Sokal's estimate from N = 4000
    has a relative error of about sqrt(2(2M+1)/N) ≈ 15 % at φ = 0.9 (M ≈ 5τ), and the
    maximum over 9 projections sits above the mean: 30 % (0.2 absolute at τ = ½) allows it."""
    u = ar1_sphere(4000, 20, phi, kappa=30.0, seed=1)
    tau = (1 + phi) / (2 * (1 - phi))
    assert projection_tau(u) == pytest.approx(tau, rel=0.3, abs=0.2)


def test_independent_vmf_queue_is_ok_and_a_random_walk_is_not():
    """d = 300: exact VMF samples are trusted; a slowly moving chain (φ = 0.99, whose nearest
    neighbours are all adjacent in time) is flagged with a reason naming the stride."""
    d, n = 300, 500
    mu = np.zeros(d)
    mu[0] = 1.0
    iid = vonmises_fisher(mu, 300.0).rvs(n, random_state=np.random.default_rng(2))
    est = sphere_entropy(iid, ordered=True, return_details=True)
    assert est.nn_lag_fraction < 0.02
    assert entropy_ok(est.nn_lag_fraction, est.n, est.queue_tau) == (True, "")
    walk = ar1_sphere(n, d, 0.99, kappa=20.0, seed=3)
    est = sphere_entropy(walk, ordered=True, return_details=True)
    ok, why = entropy_ok(est.nn_lag_fraction, est.n, est.queue_tau)
    assert est.nn_lag_fraction > 0.9 and not ok and "--queue-every" in why


def test_entropy_ok_needs_enough_independent_snapshots():
    ok, why = entropy_ok(0.004, 1000, queue_tau=20.0)
    assert not ok and "25 independent of 1000" in why
    assert entropy_ok(0.004, 1000, queue_tau=0.6)[0]
    assert not entropy_ok(float("nan"), 3, float("nan"))[0]


def test_ordered_errors_widen_only_by_the_measured_correlation():
    """Without order the estimate and its jackknife error are as before; ordered, the value is
    the same and the error is the jackknife one times sqrt(max(1, 2τ))."""
    u = ar1_sphere(600, 5, 0.9, kappa=5.0, seed=4)
    plain = sphere_entropy(u, return_details=True)
    ordered = sphere_entropy(u, ordered=True, return_details=True)
    assert ordered.value == plain.value
    assert np.isnan(plain.tau) and np.isnan(plain.queue_tau)
    assert ordered.stderr == pytest.approx(plain.stderr * np.sqrt(max(1.0, 2 * ordered.tau)), rel=1e-12)
    assert ordered.n_eff == pytest.approx(ordered.n / (2 * ordered.queue_tau))


def replicas(stride: int, d: int, n: int, reps: int):
    """``reps`` independent fixed-sphere runs (η̃ = 0.02, ρ = 1) and their ordered estimates."""
    res = simulate_isotropic("fixed-sphere", lr=[0.02], radius=[1.0] * reps, dim=d,
                             iters=2 * n * stride + 2000, queue_size=n, queue_every=stride, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [sphere_entropy(res.queue[g], ordered=True, return_details=True) for g in range(reps)], res


@pytest.mark.parametrize("stride", [5, 200])
def test_error_bars_are_calibrated_over_seeds(stride):
    """d = 3, N = 400, 24 replicas: the spread of the estimates over replicas matches the mean
    reported error within a factor 1.5, for a correlated queue (stride 5, τ ≈ 11 snapshots) and
    a well-spaced one (stride 200). With 24 replicas the sample std has a relative error of
    1/sqrt(46) ≈ 15 %, so the factor is about three of those. Measured: 1.22 and 0.89."""
    ests, _ = replicas(stride, 3, 400, 24)
    spread = np.std([e.value for e in ests], ddof=1)
    se = np.mean([e.stderr for e in ests])
    assert 1 / 1.5 < spread / se < 1.5


def test_isotropic_results_flag_correlated_queues():
    """The d = 100 fixed-LR point η = 0.1, λ = 0.01 relaxes over ~300 steps: a stride of 20 puts
    nearly every nearest neighbour next to itself in time and is flagged, a stride of 2000 is not."""
    kw = dict(lr=0.1, wd=0.01, dim=100, queue_size=200, seed=9)
    close = simulate_isotropic("fixed-lr", iters=40_000, queue_every=20, **kw).table.iloc[0]
    far = simulate_isotropic("fixed-lr", iters=1_000_000, queue_every=2000, **kw).table.iloc[0]
    assert close["queue_nn_lag"] > 0.5 and not close["entropy_ok"]
    assert "raise --queue-every" in close["entropy_note"]
    assert far["queue_nn_lag"] < 0.05 and far["entropy_ok"] and far["entropy_note"] == ""
    assert far["queue_n_eff"] > 100


def test_untrusted_entropies_are_kept_out_of_entropy_checks_only():
    import pandas as pd

    rows = pd.DataFrame({"protocol": ["fixed-lr"] * 2, "dim": 3, "lr": [0.1, 0.2], "wd": 0.01,
                         "radius": np.nan, "T": 0.1, "stationary": True, "drift_z": 0.0,
                         "rho": 1.0, "S": [1.0, 2.0], "entropy_ok": [True, False],
                         "entropy_note": ["", "correlated snapshots: raise --queue-every"]})
    used, excluded = split_usable(rows, ["S"])
    assert list(used["lr"]) == [0.1]
    assert excluded["reason"].iloc[0] == "entropy not trusted (correlated snapshots: raise --queue-every)"
    assert exclusion_reasons(rows.iloc[1].to_dict(), ["rho"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("stride", [100, 300])
def test_error_bars_are_calibrated_in_high_dimension(stride):
    """d = 100, N = 400, 32 replicas (std relative error 1/sqrt(62) ≈ 13 %): the spread matches
    the reported error within a factor 1.5 for a queue just inside the trusted range (stride
    100: 1.6 % of nearest neighbours adjacent in time) and a well-spaced one (stride 300). The
    delete-one jackknife is conservative here (measured ratios 0.7–0.8); closer strides are
    flagged by ``entropy_ok`` and their errors, which grow to ~1.6× the spread, are not used."""
    ests, _ = replicas(stride, 100, 400, 32)
    spread = np.std([e.value for e in ests], ddof=1)
    se = np.mean([e.stderr for e in ests])
    assert 1 / 1.5 < spread / se < 1.5
