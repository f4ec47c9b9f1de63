"""Tests of sgdthermo.analysis: the quadratic fit and the V1–V4 checks.

The checks are run on synthetic results tables (``synthetic_results``: closed-form
stationary states plus Gaussian noise of known size, the ``*_err`` columns holding exactly
that size). Each check must PASS on correct data — for several seeds and noise levels, so
that sampling noise cannot fail it — and FAIL on deliberately wrong data (radius off by
5–20 %, wrong energy or entropy scale, a wrong radius term in S, a spurious λ dependence).
The exact VMF formulas used for one of the "correct" tables are rebuilt here with scipy,
independently of ``sgdthermo.theory``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ive

from sgdthermo.analysis import (
    CHECKS,
    PROTOCOLS,
    QuadraticFit,
    Verdict,
    check_adiabats,
    check_maxwell,
    check_potentials,
    check_radius,
    potential_matrix,
    quadratic_fit,
    stationary_mask,
    synthetic_results,
    verdicts_frame,
    verify,
)

CHECK_FUNCS = {"V1": check_radius, "V2": check_potentials, "V3": check_maxwell, "V4": check_adiabats}


# ---------------------------------------------------------------------------------------
# Independent closed forms (exact VMF, docs/theory.md) and helpers
# ---------------------------------------------------------------------------------------
def _A(kappa: np.ndarray, d: int) -> np.ndarray:
    """Mean resultant length A_d(κ) = I_{d/2}(κ)/I_{d/2−1}(κ) (scaled Bessel: no overflow)."""
    return ive(d / 2, kappa) / ive(d / 2 - 1, kappa)


def vmf_energy(T: np.ndarray, d: int) -> np.ndarray:
    """U = 1 − A_d(1/T)."""
    return 1.0 - _A(1.0 / np.asarray(T, float), d)


def vmf_entropy(T: np.ndarray, d: int) -> np.ndarray:
    """S_u = −log C_d(κ) − κA_d(κ), log C_d = (d/2−1)log κ − (d/2)log 2π − log I_{d/2−1}(κ)."""
    k = 1.0 / np.asarray(T, float)
    log_c = (d / 2 - 1) * np.log(k) - d / 2 * np.log(2 * np.pi) - (np.log(ive(d / 2 - 1, k)) + k)
    return -log_c - k * _A(k, d)


def vmf_grad_sq(T: np.ndarray, d: int) -> np.ndarray:
    """E‖∇L(u)‖² = (d−1)A_d(κ)/κ."""
    k = 1.0 / np.asarray(T, float)
    return (d - 1) * _A(k, d) / k


def small_t_entropy(T: np.ndarray, d: int, slope: float = 1.0) -> np.ndarray:
    """slope · (d−1)/2 · log(2πeT): slope = 1 is the ideal gas, anything else is wrong."""
    return slope * (d - 1) / 2 * np.log(2 * np.pi * np.e * np.asarray(T, float))


def second_axis(protocol: str) -> str:
    return "radius" if protocol == "fixed-sphere" else "wd"


def with_entropy_term(df: pd.DataFrame, coef: float) -> pd.DataFrame:
    """Add a spurious term coef·log(wd or radius) to S (a Maxwell / adiabat violation)."""
    out = df.copy()
    protocol = out["protocol"].iloc[0]
    out["S"] = out["S"] + coef * np.log(out[second_axis(protocol)])
    return out


def with_radius_exponent(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Recompute S = S_u + factor·(d−1)·log ρ (factor = 1 is correct)."""
    out = df.copy()
    d = out["dim"].iloc[0]
    out["S"] = out["S_sphere"] + factor * (d - 1) * np.log(out["rho"])
    return out


# ---------------------------------------------------------------------------------------
# quadratic_fit
# ---------------------------------------------------------------------------------------
def _grid(n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    # log-spaced hyperparameters as in the sweeps: x, y ∈ [log 1e-3, log 1e-1]
    g = np.log(np.geomspace(1e-3, 1e-1, n))
    x, y = np.meshgrid(g, g, indexing="ij")
    return x.ravel(), y.ravel()


TRUE_COEF = np.array([0.7, 1.3, -0.4, 0.05, -0.03, 0.02])


def _quad(x: np.ndarray, y: np.ndarray, a: np.ndarray = TRUE_COEF) -> np.ndarray:
    return a[0] + a[1] * x + a[2] * y + a[3] * x**2 + a[4] * x * y + a[5] * y**2


@pytest.mark.parametrize("weighted", [False, True])
def test_quadratic_fit_exact_without_noise(weighted: bool) -> None:
    x, y = _grid()
    z = _quad(x, y)
    fit = quadratic_fit(x, y, z, np.full(z.size, 0.1) if weighted else None)
    assert isinstance(fit, QuadraticFit)
    assert fit.weighted is weighted
    np.testing.assert_allclose(fit.coef, TRUE_COEF, rtol=0, atol=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.resid_std < 1e-9
    np.testing.assert_allclose(fit.predict(x, y), z, atol=1e-9)
    gx, gy = fit.gradient(x, y)
    np.testing.assert_allclose(gx, TRUE_COEF[1] + 2 * TRUE_COEF[3] * x + TRUE_COEF[4] * y, atol=1e-9)
    np.testing.assert_allclose(gy, TRUE_COEF[2] + TRUE_COEF[4] * x + 2 * TRUE_COEF[5] * y, atol=1e-9)
    if not weighted:  # unweighted covariance is s²(XᵀX)⁻¹ and s = 0 here
        assert np.all(fit.stderr < 1e-9)


def test_quadratic_fit_recovers_coefficients_within_its_errors() -> None:
    rng = np.random.default_rng(1)
    x, y = _grid(9)
    sigma = 0.02
    z = _quad(x, y) + sigma * rng.standard_normal(x.size)
    for err in (np.full(x.size, sigma), None):
        fit = quadratic_fit(x, y, z, err)
        # each coefficient within 3 of its own standard errors (fixed seed; P(fail) ≈ 1.6 %)
        assert np.all(np.abs(fit.coef - TRUE_COEF) <= 3 * fit.stderr), (fit.coef, fit.stderr)
        assert fit.r2 > 0.99
        # a linear combination and its error are v·a and sqrt(vᵀCv)
        v = np.array([0, 1, -1, 0, 0, 0.0])
        val, e = fit.combination(v)
        assert val == pytest.approx(fit.coef[1] - fit.coef[2])
        assert e == pytest.approx(np.sqrt(v @ fit.cov @ v))
    # weighted with correct errors: reduced chi² ≈ 1 (dof = 75, sd ≈ 0.16)
    assert 0.5 < quadratic_fit(x, y, z, np.full(x.size, sigma)).chi2_red < 1.6


def test_quadratic_fit_error_coverage() -> None:
    """The reported standard errors are calibrated: ~68 % of coefficients within 1σ.

    Over 300 replicates × 6 coefficients the 1σ coverage has a sampling sd ≈ 1 %; the
    weighted covariance is inflated by max(1, χ²_red) (never deflated), which pushes the
    coverage slightly above 68 % (to ≈ 71 %). Band [0.62, 0.78].
    """
    rng = np.random.default_rng(7)
    x, y = _grid(7)
    sigma = 0.05
    inside = []
    for _ in range(300):
        z = _quad(x, y) + sigma * rng.standard_normal(x.size)
        fit = quadratic_fit(x, y, z, np.full(x.size, sigma))
        inside.append(np.abs(fit.coef - TRUE_COEF) <= fit.stderr)
    cover = float(np.mean(inside))
    assert 0.62 < cover < 0.78, cover


def test_quadratic_fit_inflates_underestimated_errors() -> None:
    """Errors 10× too small: χ²_red ≈ 100 and the covariance is scaled by it (Birge), which
    for constant errors gives exactly the unweighted s²(XᵀX)⁻¹ covariance."""
    rng = np.random.default_rng(3)
    x, y = _grid(7)
    z = _quad(x, y) + 0.1 * rng.standard_normal(x.size)
    optimistic = quadratic_fit(x, y, z, np.full(x.size, 0.01))
    assert optimistic.chi2_red > 50
    np.testing.assert_allclose(optimistic.stderr, quadratic_fit(x, y, z).stderr, rtol=1e-8)
    # errors 10× too large are not deflated
    pessimistic = quadratic_fit(x, y, z, np.full(x.size, 1.0))
    assert pessimistic.chi2_red < 0.1
    np.testing.assert_allclose(pessimistic.stderr, 100 * optimistic.stderr / np.sqrt(optimistic.chi2_red),
                               rtol=1e-8)


def test_quadratic_fit_input_validation() -> None:
    x, y = _grid(7)
    z = _quad(x, y)
    with pytest.raises(ValueError):
        quadratic_fit(x[:5], y[:5], z[:5])
    with pytest.raises(ValueError):
        quadratic_fit(x, y[:-1], z)
    # a zero error cannot be a weight: falls back to ordinary least squares
    err = np.full(z.size, 0.1)
    err[0] = 0.0
    assert quadratic_fit(x, y, z, err).weighted is False


# ---------------------------------------------------------------------------------------
# All checks pass on correct data
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_checks_pass_on_correct_data(protocol: str) -> None:
    df = synthetic_results(protocol, seed=0)
    verdicts = verify(df)
    assert [v.name for v in verdicts] == list(CHECKS)
    for v in verdicts:
        assert isinstance(v, Verdict)
        assert v.protocol == protocol
        assert v.passed, v.summary
        assert "PASS" in v.summary
        assert v.excluded.empty
        assert v.details["n_used"] == len(df)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_checks_pass_on_exact_vmf(protocol: str) -> None:
    """d = 3 with the exact VMF energy, entropy and gradient norm (not the asymptotes)."""
    df = synthetic_results(protocol, dim=3, energy=vmf_energy, sphere_entropy=vmf_entropy,
                           grad_sq=vmf_grad_sq, seed=5, n_lr=9, n_wd=9)
    for v in verify(df):
        assert v.passed, v.summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("rel_noise,entropy_noise", [(0.005, 0.02), (0.05, 0.1)])
def test_sampling_noise_does_not_fail(protocol: str, rel_noise: float, entropy_noise: float) -> None:
    """Ten seeds per noise level: 5 % per-row noise on ρ, p, U and 0.1 nats on S included.

    All tolerances scale with the reported errors (3σ, or 2·median error bar), so noise of
    any size passes; with ten fixed seeds × 4 checks the chance failures (≲ 1 % per V4 check,
    far less for the others) are absent for these seeds (checked once; deterministic).
    """
    for seed in range(10):
        df = synthetic_results(protocol, rel_noise=rel_noise, entropy_noise=entropy_noise, seed=seed)
        for v in verify(df):
            assert v.passed, (seed, v.summary)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_maxwell_targets_exact_without_noise(protocol: str) -> None:
    """Noise-free ideal gas on a product grid: the main combination equals its target.

    The Maxwell relations hold for any S_u(T) (S_u depends on x (and y) only through T), and
    the least-squares projection of such an S onto the quadratic basis keeps the relevant
    coefficients exact on a full product grid with equal lr and wd ranges.
    """
    df = synthetic_results(protocol, rel_noise=0.0, entropy_noise=0.0)
    v = check_maxwell(df)
    assert v.passed
    assert v.details["main_value"] == pytest.approx(1.0, abs=1e-8)
    assert v.details["r2"] > 0.999


# ---------------------------------------------------------------------------------------
# V1 radius
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("factor", [1.2, 1.07, 0.95])
def test_radius_fails_on_systematic_error(protocol: str, factor: float) -> None:
    """A 5–20 % systematic error of the measured radius (fixed sphere: pressure) fails."""
    df = synthetic_results(protocol, seed=1)
    col = "p" if protocol == "fixed-sphere" else "rho"
    df[col] = df[col] * factor
    v = check_radius(df)
    assert not v.passed, v.summary
    assert "FAIL" in v.summary
    assert v.details["discrete_mean_rel"] == pytest.approx(factor - 1, abs=0.01)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_radius_fails_on_local_error(protocol: str) -> None:
    """20 % off only at the largest learning rate (1/7 of the grid, > 10 % of the rows)."""
    df = synthetic_results(protocol, seed=2)
    col = "p" if protocol == "fixed-sphere" else "rho"
    top = df["lr"] == df["lr"].max()
    df.loc[top, col] *= 1.2
    v = check_radius(df)
    assert not v.passed
    assert v.details["discrete_frac_discrepant"] == pytest.approx(top.mean())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_radius_verdict_is_on_the_discrete_prediction(protocol: str) -> None:
    """A large full-batch gradient (network-like ‖∇L‖² ≈ tr Σ) puts the SDE radius far off;
    the verdict follows the Appendix G prediction, and the SDE numbers are reported."""
    df = synthetic_results(protocol, seed=3, grad_sq=lambda T, d: 0.8 * (d - 1) * np.ones_like(T))
    v = check_radius(df)
    assert v.passed, v.summary
    assert not v.details["sde_would_pass"]
    assert v.details["sde_mean_rel"] > 0.05  # measured larger than the SDE prediction
    assert {"rel_sde", "z_sde", "rel_discrete", "z_discrete"} <= set(v.table.columns)


# ---------------------------------------------------------------------------------------
# V2 potentials
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_potential_matrix(protocol: str) -> None:
    df = synthetic_results(protocol, seed=4, n_lr=5, n_wd=4)
    pm = potential_matrix(df)
    n = len(df)
    assert pm.phi.shape == pm.sigma.shape == (n, n)
    np.testing.assert_allclose(np.diag(pm.gap), 0.0)
    np.testing.assert_allclose(np.diag(pm.sigma), 0.0)
    i, j = 3, 7
    T, U, S, V, p = (df[c].to_numpy() for c in ("T", "U", "S", "V", "p"))
    if protocol == "fixed-sphere":
        assert pm.kind == "Helmholtz"
        same = np.isclose(df["radius"].to_numpy()[:, None], df["radius"].to_numpy()[None, :])
        assert np.array_equal(np.isfinite(pm.phi), same)
        j = int(np.flatnonzero(same[i] & (np.arange(n) != i))[0])
        assert pm.phi[i, j] == pytest.approx(U[j] - T[i] * S[j])
    else:
        assert pm.kind == "Gibbs"
        assert pm.phi[i, j] == pytest.approx(U[j] - T[i] * S[j] + p[i] * V[j])
    # correct data: every configuration's own state is the argmin
    np.testing.assert_array_equal(pm.argmin(), np.arange(n))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("wrong", ["energy x2", "entropy slope 0.5"])
def test_potentials_fail_on_wrong_thermodynamics(protocol: str, wrong: str) -> None:
    """U twice too large, or S_u with half the T-slope, moves the minimum of U − T_i S by a
    factor 2 in T — over a grid step (×2.15), so most configurations see a lower potential
    at a neighbour, far beyond the noise (ΔΦ ≈ 0.15–0.4 T_i vs σ ≈ 0.03 T_i)."""
    if wrong == "energy x2":
        df = synthetic_results(protocol, seed=5, energy=lambda T, d: (d - 1) * T)
    else:
        df = synthetic_results(protocol, seed=5, sphere_entropy=lambda T, d: small_t_entropy(T, d, 0.5))
    v = check_potentials(df)
    assert not v.passed, v.summary
    assert v.details["fraction_confirmed"] < 0.9
    assert v.details["min_gap_z"] < -3
    assert isinstance(v.extras["matrix"].phi, np.ndarray)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_potentials_tolerate_noise(protocol: str) -> None:
    """Entropy noise 0.15 nats: the plain argmin then often picks a neighbour, but those
    differences are within 3σ, so the noise-tolerant verdict still passes."""
    df = synthetic_results(protocol, seed=6, entropy_noise=0.15)
    v = check_potentials(df)
    assert v.passed, v.summary
    assert v.details["fraction_argmin"] < 1.0  # the plain argmin is fooled by the noise
    assert v.details["fraction_confirmed"] >= v.details["fraction_argmin"]


# ---------------------------------------------------------------------------------------
# V3 Maxwell relations
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_maxwell_fails_on_wrong_radius_term(protocol: str) -> None:
    """S with 0.8·(d−1)·log ρ instead of (d−1)·log ρ: main combination 0.8 ≠ 1."""
    v = check_maxwell(with_radius_exponent(synthetic_results(protocol, seed=7), 0.8))
    assert not v.passed, v.summary
    assert v.details["main_value"] == pytest.approx(0.8, abs=0.05)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_maxwell_fails_on_spurious_dependence(protocol: str) -> None:
    """A spurious 0.3·log(wd or radius) term in S (0.3 R for d = 3; 0.15 of d−1)."""
    v = check_maxwell(with_entropy_term(synthetic_results(protocol, seed=8), 0.3))
    assert not v.passed, v.summary
    assert v.details["max_rel_err"] > 0.1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_maxwell_report_contents(protocol: str) -> None:
    v = check_maxwell(synthetic_results(protocol, seed=9))
    combos = v.extras["combinations"]
    assert list(combos.columns) == ["combination", "value", "stderr", "target", "deviation", "z"]
    assert len(combos) == 3 and list(combos["target"]) == [1.0, 0.0, 0.0]
    assert np.all(combos["stderr"] > 0)
    assert 0 <= v.details["mean_rel_err"] <= v.details["max_rel_err"] < 0.05
    # the relation at the grid centre is far better constrained than the extrapolation to 0
    assert v.details["centre_value"] == pytest.approx(1.0, abs=3 * v.details["centre_stderr"])
    assert v.details["centre_stderr"] < v.details["main_stderr"]
    assert {"relation", "rel_err", "dS_dx", "dS_dy"} <= set(v.table.columns)
    assert len(v.table) == 49


# ---------------------------------------------------------------------------------------
# V4 adiabats
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_adiabats_fail_on_wrong_entropy_slope(protocol: str) -> None:
    """S_u with 0.7 of the ideal-gas T-slope: S changes along the adiabats by
    0.15 R (fixed LR / ELR) to 0.6 R (fixed sphere) per e-fold of λ or ρ."""
    df = synthetic_results(protocol, seed=10, sphere_entropy=lambda T, d: small_t_entropy(T, d, 0.7))
    v = check_adiabats(df)
    assert not v.passed, v.summary
    assert abs(v.details["dS_db_over_R_centre"]) > 0.1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_adiabats_fail_on_spurious_dependence(protocol: str) -> None:
    v = check_adiabats(with_entropy_term(synthetic_results(protocol, seed=11), 0.2))
    assert not v.passed, v.summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_adiabat_table(protocol: str) -> None:
    v = check_adiabats(synthetic_results(protocol, seed=12))
    tab = v.table
    assert len(tab) >= 7 and (tab["n"] >= 2).all()
    # S is constant along each adiabat up to noise: the spread is of the size of S_err
    assert (tab["S_std"] < 4 * tab["S_err_rms"]).all()
    # small-T ideal gas: dS/d log(invariant) = R
    assert v.details["dS_da_over_R"] == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------------------------------
# Non-stationary rows, missing values, too few rows, several protocols
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nonstationary_rows_are_excluded_and_listed(protocol: str) -> None:
    df = synthetic_results(protocol, seed=13)
    bad = [0, 10, 24, 40]
    df.loc[bad, "stationary"] = False
    df.loc[bad, "drift_z"] = 12.0
    # garbage in the drifting rows: would fail every check if averaged in
    for col in ("rho", "p", "U", "S", "V"):
        df.loc[bad, col] = df.loc[bad, col] * 3.0 + 5.0
    for v in verify(df):
        assert v.passed, v.summary
        assert v.details["n_used"] == len(df) - len(bad)
        assert len(v.excluded) == len(bad)
        assert v.excluded["reason"].str.contains("non-stationary").all()
        np.testing.assert_allclose(np.sort(v.excluded["lr"]), np.sort(df.loc[bad, "lr"]))
        assert f"{len(bad)} excluded" in v.summary


def test_missing_values_are_excluded() -> None:
    df = synthetic_results("fixed-elr", seed=14)
    df.loc[5, "S"] = np.nan
    v = check_maxwell(df)
    assert v.passed and len(v.excluded) == 1
    assert "missing S" in v.excluded["reason"].iloc[0]
    assert check_radius(df).excluded.empty  # V1 does not need S


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_too_few_rows_fail_with_reason(protocol: str) -> None:
    df = synthetic_results(protocol, seed=15)
    df["stationary"] = False
    df.loc[[0, 1], "stationary"] = True
    for v in verify(df):
        assert not v.passed
        assert "too few" in v.headline and "usable rows" in v.summary
        assert len(v.excluded) == len(df) - 2


def test_several_protocols() -> None:
    df = pd.concat([synthetic_results(p, seed=16, n_lr=5, n_wd=5) for p in PROTOCOLS],
                   ignore_index=True)
    verdicts = verify(df)
    assert [(v.protocol, v.name) for v in verdicts] == [(p, c) for p in PROTOCOLS for c in CHECKS]
    assert all(v.passed for v in verdicts)
    with pytest.raises(ValueError, match="protocol"):
        check_radius(df)  # ambiguous without protocol=
    assert check_radius(df, "fixed-elr").protocol == "fixed-elr"
    tidy = verdicts_frame(verdicts)
    assert len(tidy) == 12
    assert {"protocol", "check", "passed", "metric", "value", "target", "tolerance"} <= set(tidy.columns)
    assert tidy["passed"].all()


def test_unknown_protocol_rejected() -> None:
    df = synthetic_results("fixed-lr", n_lr=4, n_wd=4)
    with pytest.raises(ValueError):
        check_radius(df, "adam")
    df["protocol"] = "adam"
    with pytest.raises(ValueError):
        verify(df)


def test_stationary_mask_and_csv_round_trip(tmp_path) -> None:
    df = synthetic_results("fixed-lr", n_lr=4, n_wd=4, seed=17)
    df.loc[3, "stationary"] = False
    df["stationary"] = df["stationary"].astype(object)
    df.loc[5, "stationary"] = np.nan  # unknown counts as non-stationary
    mask = stationary_mask(df)
    assert mask.sum() == len(df) - 2 and not mask[3] and not mask[5]
    strings = df.assign(stationary=np.where(mask, "True", "False"))
    np.testing.assert_array_equal(stationary_mask(strings), mask)
    assert stationary_mask(df.drop(columns="stationary")).all()
    # a table written to CSV and read back gives the same verdicts
    path = tmp_path / "results.csv"
    df.to_csv(path, index=False)
    back = [(v.passed, v.details["n_used"]) for v in verify(pd.read_csv(path))]
    assert back == [(v.passed, v.details["n_used"]) for v in verify(df)]
