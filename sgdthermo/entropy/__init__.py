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

``"cap"``
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
``"chordal"`` (default)
    ``S_u ≈ m · mean_i log c_i + log V_m + ψ(N) − ψ(k)`` (Euclidean ball volume on chords).
``"angles"`` (the paper's estimator)
    hyperspherical angles ``φ_i = atan2(‖x_{i+1:}‖, x_i)`` for ``i < d−1`` and
    ``φ_{d−1} = atan2(x_d, x_{d−1})``; KL in the (d−1)-dim angle space plus the sample mean of the
    log-Jacobian::

        S_u ≈ KL_{d−1}(φ) + mean_n Σ_{i=1}^{d−2} (d−1−i) log sin φ_{n,i}

    (evaluated as ``Σ_{i=2}^{d−1} log T_i − (d−2) log T_1`` with ``T_i = ‖x_{i:}‖``, a telescoped
    form of the same sum).  The last angle is not treated as periodic (as in the paper).

How the default was chosen: every use of the entropy here compares entropies (against T, the
hyperparameters, V2, V4, the Maxwell fit), so the default is the most accurate estimator of
entropy *differences*, then of absolute values.  ``benchmarks/entropy_bias.py`` measures ΔS =
S(2T) − S(T) on exact VMF samples for d from 3 to 10⁴, κ/d from 0.05 to 100, N from 250 to 4000,
and on a VMF mixture (``docs/entropy.md``): the single-run rms error of ΔS has median 2.5 % and
90th percentile 10.6 % with ``"chordal"``, against 3.6 / 17.8 % (``"angles"``), 9.6 / 23.3 %
(``"geodesic"``) and 12.3 / 69.8 % (``"cap"``).  ``"cap"`` is the least biased on absolute
values (exactly unbiased for the uniform law) but its bias rises with the concentration, which
spoils differences in high d; ``"angles"`` is not rotation invariant.

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

from .estimators import (
    DEFAULT_METHOD,
    METHODS,
    EntropyEstimate,
    check_method_option,
    kl_entropy,
    sphere_entropy,
    sphere_entropy_batch,
    sphere_entropy_methods,
)
from .geometry import (
    log_betainc,
    log_cap_volume,
    log_sphere_area,
    log_unit_ball_volume,
    uniform_sphere_entropy,
)
from .neighbors import nearest_neighbor_distances

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "check_method_option",
    "EntropyEstimate",
    "kl_entropy",
    "sphere_entropy",
    "sphere_entropy_batch",
    "sphere_entropy_methods",
    "nearest_neighbor_distances",
    "log_unit_ball_volume",
    "log_sphere_area",
    "log_cap_volume",
    "log_betainc",
    "uniform_sphere_entropy",
]
