r"""Stationary statistics of correlated time series: batch means and a drift test.

A stationary average from a Markov chain (SGD iterates) is correlated in time, so the
naive standard error :math:`s/\sqrt{n}` is too small by a factor :math:`\sqrt{2\tau}`
(:math:`\tau` the integrated autocorrelation time). The batch-means estimator cuts the
series into :math:`b` contiguous batches; when each batch is much longer than
:math:`\tau` the batch means are nearly independent and

.. math::  \mathrm{SE}(\bar x) = \mathrm{sd}(\bar x_1, \dots, \bar x_b) / \sqrt{b}.

The stationarity verdict compares the first and second halves of the stationary window:
:math:`z = (\bar x_{\mathrm{2nd}} - \bar x_{\mathrm{1st}}) / \sqrt{\mathrm{SE}_1^2 + \mathrm{SE}_2^2}`.
A series that is still relaxing (drifting) gives a large :math:`|z|`; the threshold is the
two-sided Student-t quantile at a small false-alarm probability, so that a settled run
is rarely flagged even over a grid of hundreds of configurations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = [
    "BatchMeans",
    "batch_means",
    "autocorr_time",
    "mean_stderr",
    "drift_z",
    "drift_threshold",
    "is_stationary",
    "stationarity",
]


@dataclass(frozen=True)
class BatchMeans:
    """Mean of a correlated series with its batch-means standard error."""

    mean: float
    stderr: float
    n_batches: int
    tau: float  # integrated autocorrelation time estimate, in units of samples


def _batch(x: np.ndarray, n_batches: int) -> np.ndarray:
    """Means of ``n_batches`` contiguous equal batches along the last axis (tail dropped)."""
    n = x.shape[-1]
    size = n // n_batches
    if size < 1:
        raise ValueError(f"series of length {n} is too short for {n_batches} batches")
    trimmed = x[..., n - size * n_batches:]  # drop the oldest samples, keep the tail
    return trimmed.reshape(*x.shape[:-1], n_batches, size).mean(axis=-1)


def batch_means(x: np.ndarray, n_batches: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batch-means mean and standard error along the last axis.

    Parameters
    ----------
    x : array (..., n)
        Time series (e.g. block means of an observable), oldest first.
    n_batches : int
        Number of batches :math:`b` (use fewer when n is small; at least 2).

    Returns
    -------
    mean, stderr, tau : arrays (...)
        :math:`\bar x`, :math:`\mathrm{sd}(\text{batch means})/\sqrt b`, and the implied
        integrated autocorrelation time :math:`\tau = (n/b)\,\mathrm{var}_b / (2\,\mathrm{var}_x)`
        (in samples of x; ≈ 0.5 for an uncorrelated series).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    b = int(max(2, min(n_batches, n)))
    bm = _batch(x, b)
    mean = x.mean(axis=-1)
    var_b = bm.var(axis=-1, ddof=1)
    se = np.sqrt(var_b / b)
    var_x = x.var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(var_x > 0, (n // b) * var_b / (2.0 * var_x), 0.0)
    return mean, se, tau


def autocorr_time(x: np.ndarray, c: float = 5.0) -> np.ndarray:
    r"""Integrated autocorrelation time along the last axis, Sokal's adaptive window.

    :math:`\tau = \tfrac12 + \sum_{t=1}^{M} \rho(t)` with the smallest window
    :math:`M \ge c\,\tau(M)`, so that :math:`\mathrm{var}(\bar x) = 2\tau\,\mathrm{var}(x)/n`
    (τ = 1/2 for an uncorrelated series). The autocorrelation ρ(t) comes from an FFT.
    Constant series give τ = 1/2.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(xc, n=2 * n, axis=-1)
    acf = np.fft.irfft(f * np.conj(f), axis=-1)[..., :n]
    var0 = acf[..., :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(var0 > 0, acf / np.where(var0 > 0, var0, 1.0), 0.0)
    taus = 0.5 + np.cumsum(rho[..., 1:], axis=-1)  # τ(M) for M = 1..n−1
    m = np.arange(1, n)
    ok = m >= c * taus
    first = np.where(ok.any(axis=-1), ok.argmax(axis=-1), n - 2)
    tau = np.take_along_axis(taus, first[..., None], axis=-1)[..., 0]
    return np.maximum(tau, 0.5)


def mean_stderr(x: np.ndarray, tau: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and its standard error :math:`\sqrt{2\tau\,\mathrm{var}(x)/n}` (last axis)."""
    x = np.asarray(x, dtype=np.float64)
    if tau is None:
        tau = autocorr_time(x)
    n = x.shape[-1]
    return x.mean(axis=-1), np.sqrt(2.0 * tau * x.var(axis=-1, ddof=1) / n)


def stationarity(
    x: np.ndarray, false_alarm: float = 1e-4, min_independent: float = 10.0
) -> dict[str, np.ndarray]:
    r"""Stationary mean with an autocorrelation-aware error, and the verdict (last axis).

    The error uses the integrated autocorrelation time τ of the whole window. The drift
    test compares the halves, :math:`z = (\bar x_2 - \bar x_1)/\sqrt{SE_1^2 + SE_2^2}`
    with each half's SE from the same τ, against the normal quantile at ``false_alarm``.
    A window holding fewer than ``min_independent`` independent samples
    (:math:`n / 2\tau`) cannot show that it settled and is reported as not stationary.

    Returns a dict of arrays: mean, stderr, tau (in samples), n_eff, z, stationary.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    tau = autocorr_time(x)
    mean, se = mean_stderr(x, tau)
    half = n // 2
    m1, s1 = mean_stderr(x[..., :half], tau)
    m2, s2 = mean_stderr(x[..., n - half:], tau)
    den = np.sqrt(s1**2 + s2**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(den > 0, (m2 - m1) / den, 0.0)
    z = np.where((den == 0) & (m2 != m1), np.copysign(np.inf, m2 - m1), z)
    n_eff = n / (2.0 * tau)
    zcrit = float(_st.norm.isf(false_alarm / 2.0))
    ok = (np.abs(z) < zcrit) & (n_eff >= min_independent)
    return {"mean": mean, "stderr": se, "tau": tau, "n_eff": n_eff, "z": z, "stationary": ok}


def drift_z(x: np.ndarray, n_batches: int = 10) -> np.ndarray:
    r"""Drift z-score between the first and second halves of a series (last axis).

    :math:`z = (\bar x_2 - \bar x_1)/\sqrt{\mathrm{SE}_1^2 + \mathrm{SE}_2^2}`, each half's
    standard error by batch means with ``n_batches`` batches. Constant series give 0.
    """
    x = np.asarray(x, dtype=np.float64)
    half = x.shape[-1] // 2
    m1, s1, _ = batch_means(x[..., :half], n_batches)
    m2, s2, _ = batch_means(x[..., x.shape[-1] - half:], n_batches)
    den = np.sqrt(s1**2 + s2**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(den > 0, (m2 - m1) / den, 0.0)
    # a non-constant difference with zero spread is infinitely significant
    z = np.where((den == 0) & (m2 != m1), np.copysign(np.inf, m2 - m1), z)
    return z


def drift_threshold(n_batches: int = 10, false_alarm: float = 1e-4) -> float:
    """Two-sided threshold on |z| for :func:`drift_z` at the given false-alarm probability.

    The difference of two batch-means averages with ``n_batches`` batches each is close to
    Student-t with about ``2 (n_batches - 1)`` degrees of freedom.
    """
    return float(_st.t.ppf(1.0 - false_alarm / 2.0, 2 * (n_batches - 1)))


def is_stationary(x: np.ndarray, n_batches: int = 10, false_alarm: float = 1e-4) -> np.ndarray:
    """True where :func:`drift_z` stays below :func:`drift_threshold` (last axis = time)."""
    return np.abs(drift_z(x, n_batches)) < drift_threshold(n_batches, false_alarm)
