r"""Stationary statistics of correlated time series: errors and a stationarity verdict.

A stationary average from a Markov chain (SGD iterates) is correlated in time, so the naive
standard error :math:`s/\sqrt{n}` is too small by a factor :math:`\sqrt{2\tau}`, with
:math:`\tau` the integrated autocorrelation time:

.. math::  \mathrm{SE}(\bar x) = \sqrt{2\tau\,\mathrm{var}(x)/n}.

τ is estimated with Sokal's adaptive window (:func:`autocorr_time`). The verdict
(:func:`stationarity`) compares the halves of the window,
:math:`z = (\bar x_{\mathrm{2nd}} - \bar x_{\mathrm{1st}}) / \sqrt{\mathrm{SE}_1^2 + \mathrm{SE}_2^2}`,
against the normal quantile at a small false-alarm probability (so that a settled run is
rarely flagged even over a grid of hundreds of configurations), and requires enough
independent samples :math:`n/2\tau` in the window: a still-relaxing series either drifts
visibly or inflates τ until too few independent samples remain.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st

__all__ = ["autocorr_time", "mean_stderr", "stationarity"]


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
