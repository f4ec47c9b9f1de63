"""Batch means and the drift test on series with known autocorrelation."""

import numpy as np
import pytest

from sgdthermo import stats


def ar1(rng, n, phi, reps=1):
    """AR(1) x_t = φ x_{t−1} + e_t, stationary start, unit innovation variance."""
    x = np.empty((reps, n))
    x[:, 0] = rng.standard_normal(reps) / np.sqrt(1 - phi**2)
    e = rng.standard_normal((reps, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def test_autocorr_time_ar1():
    # τ_int = (1+φ)/(2(1−φ)) for AR(1); Sokal's estimator with c = 5 has a relative
    # error ≈ sqrt(2(2M+1)/n) ≈ 6 % per series (M ≈ 5τ); averaged over 100 series ≈ 1 %,
    # plus the window's truncation bias (≈ φ^M, negligible): 5 % tolerance.
    rng = np.random.default_rng(4)
    for phi in (0.0, 0.5, 0.9):
        x = ar1(rng, 20_000, phi, reps=100)
        tau = stats.autocorr_time(x)
        assert np.mean(tau) == pytest.approx((1 + phi) / (2 * (1 - phi)), rel=0.05)


def test_stationarity_errors_and_verdict():
    rng = np.random.default_rng(5)
    phi, n = 0.95, 20_000
    x = ar1(rng, n, phi, reps=200)
    res = stats.stationarity(x)
    # the errors are calibrated: the spread of the means over replicates matches the mean
    # reported SE (relative sampling error of a 200-sample sd ≈ 5 %; allow 15 %)
    assert np.std(res["mean"]) / np.mean(res["stderr"]) == pytest.approx(1.0, rel=0.15)
    assert res["stationary"].mean() > 0.98
    # series much shorter than their correlation time (τ = 1000, n = 500) cannot be
    # certified: measured, about 78 % are flagged (τ is underestimated on such short
    # series, so some slip through); 60 % is 5 binomial sd below that
    short = ar1(np.random.default_rng(6), 500, 0.999, reps=200)
    assert (~stats.stationarity(short)["stationary"]).mean() > 0.6
    # a drift of 5 stationary sd is caught
    drift = x[:20] + np.linspace(0, 5 / np.sqrt(1 - phi**2), n)
    assert not stats.stationarity(drift)["stationary"].any()
