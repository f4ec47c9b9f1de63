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


def test_batch_means_error_matches_ar1_theory():
    # For AR(1), var(mean) ≈ σ_x² (1+φ)/(1−φ) / n. Over 400 replicates the mean of the
    # batch-means variance estimates has a relative sampling error of about
    # sqrt(2/(b−1))/sqrt(400) ≈ 1.6 % (b = 20 batches); allow 10 % for the small bias
    # of batch means at batch length 500 ≫ τ ≈ 9.5.
    rng = np.random.default_rng(1)
    phi, n = 0.9, 10_000
    x = ar1(rng, n, phi, reps=400)
    mean, se, tau = stats.batch_means(x, n_batches=20)
    true_var = (1 / (1 - phi**2)) * (1 + phi) / (1 - phi) / n
    assert np.mean(se**2) / true_var == pytest.approx(1.0, rel=0.10)
    # τ = (1+φ)/(2(1−φ)) = 9.5 samples
    assert np.mean(tau) == pytest.approx(9.5, rel=0.15)
    # the naive error would be far too small: this is why batch means are needed
    naive = x.std(axis=1, ddof=1) / np.sqrt(n)
    assert np.mean(se / naive) > 3.0


def test_drift_test_false_alarm_and_power():
    rng = np.random.default_rng(2)
    x = ar1(rng, 4000, 0.8, reps=300)
    # settled series: threshold at false-alarm 1e-4 (per series), so among 300 series
    # we expect ~0.03 alarms; even 2 would be a 1-in-10⁴ event
    assert stats.is_stationary(x).sum() >= 299
    # a drift of 5 stationary standard deviations over the series is caught every time
    # (power measured: 70 % missed at 1 sd, 9 % at 2 sd, 0.3 % at 3 sd, none at 5 sd)
    trend = np.linspace(0, 5.0 / np.sqrt(1 - 0.8**2), 4000)
    assert not stats.is_stationary(x + trend).any()


def test_drift_z_constant_series():
    assert stats.drift_z(np.ones(100)) == 0.0
    step = np.r_[np.zeros(50), np.ones(50)]
    assert np.isinf(stats.drift_z(step))


def test_batch_means_rejects_too_short():
    with pytest.raises(ValueError):
        stats.batch_means(np.ones(1), n_batches=2)


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
