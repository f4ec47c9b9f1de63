"""Measure the bias and spread of every sphere entropy estimator against exact entropies.

Two studies, each regenerating a block of ``docs/entropy.md``:

* ``absolute`` (``BEGIN/END BIAS TABLES``): bias of S_u itself on VMF samples, d ≤ 300.
* ``differences`` (``BEGIN/END DIFFERENCE TABLES``): what the checks use — the entropy difference
  between two temperatures, ``S(2T) − S(T)`` (κ → κ/2, T = 1/κ), i.e. the slope
  ``dS_u/dlog T ≈ ΔS / log 2`` whose exact value is the VMF heat capacity (→ (d−1)/2 when cold),
  for d from 3 to 10⁴, κ/d from 0.05 to 100 and N from 250 to 4000; plus a non-VMF law, a
  two-component VMF mixture, whose entropy is computed by Monte Carlo from its exact density.

::

    python benchmarks/entropy_bias.py                      # both studies (~15 min on 2 CPU cores)
    python benchmarks/entropy_bias.py --write              # ... and rewrite both blocks of the doc
    python benchmarks/entropy_bias.py --study differences  # one study
    python benchmarks/entropy_bias.py --quick              # small grids, for a smoke run

Reference samples: ``scipy.stats.vonmises_fisher(mu, kappa)`` for the absolute study (``mu`` a
fixed random unit vector per d, so the angle chart is in generic position; κ = 0 is the uniform
distribution, normalised Gaussians); the difference study draws VMF samples with Wood's (1994)
algorithm (``vmf_sample`` below; scipy's sampler takes minutes per draw at d = 10⁴), checked against
scipy at the start of the run. Exact entropies from :func:`sgdthermo.theory.vmf_entropy`.
Bias = mean over seeds of (estimate − exact); sd = standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import vonmises_fisher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgdthermo.entropy import (  # noqa: E402
    DEFAULT_METHOD,
    METHODS,
    sphere_entropy,
    sphere_entropy_methods,
    uniform_sphere_entropy,
)
from sgdthermo.theory import vmf_entropy, vmf_heat_capacity, vmf_log_normalizer  # noqa: E402

DOC = ROOT / "docs" / "entropy.md"
BEGIN, END = "<!-- BEGIN BIAS TABLES -->", "<!-- END BIAS TABLES -->"
DBEGIN, DEND = "<!-- BEGIN DIFFERENCE TABLES -->", "<!-- END DIFFERENCE TABLES -->"


def mean_direction(d: int) -> np.ndarray:
    mu = np.random.default_rng(1000 + d).normal(size=d)
    return mu / np.linalg.norm(mu)


def sample(d: int, kappa: float, n: int, seed: int, mu: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(samples (n, d), exact entropy) of VMF(mu, kappa) on S^{d-1}; kappa = 0 is uniform."""
    rng = np.random.default_rng(seed)
    if kappa == 0:
        x = rng.normal(size=(n, d))
        return x / np.linalg.norm(x, axis=1, keepdims=True), uniform_sphere_entropy(d)
    mu = mean_direction(d) if mu is None else mu
    dist = vonmises_fisher(mu, kappa)
    return dist.rvs(n, random_state=rng), float(dist.entropy())


def run_grid(ds, ratios, ns, n_seeds, methods, log=print):
    rows = []
    for d in ds:
        t0 = time.perf_counter()
        for r in ratios:
            kappa = r * d
            for n in ns:
                seeds = n_seeds(n)
                for s in range(seeds):
                    x, exact = sample(d, kappa, n, seed=10_000 * d + 100 * s + int(n // 250))
                    for m in methods:
                        est = sphere_entropy(x, m, return_details=True)
                        rows.append(dict(d=d, ratio=r, kappa=kappa, N=n, seed=s, method=m,
                                         value=est.value, exact=exact, err=est.value - exact,
                                         stderr=est.stderr, stderr_iid=est.stderr_iid))
        log(f"  d={d}: {time.perf_counter() - t0:.1f}s")
    return rows


def summarize(rows):
    g = defaultdict(list)
    for r in rows:
        g[(r["d"], r["ratio"], r["N"], r["method"])].append(r)
    out = {}
    for key, rs in g.items():
        e = np.array([r["err"] for r in rs])
        se = np.array([r["stderr"] for r in rs])
        se_iid = np.array([r["stderr_iid"] for r in rs])
        out[key] = dict(bias=e.mean(), sd=e.std(ddof=1) if e.size > 1 else float("nan"),
                        se=se.mean(), se_iid=se_iid.mean(), n=e.size, exact=rs[0]["exact"])
    return out


def fmt(b: float, s: float) -> str:
    return f"{b:+.3f} ± {s:.3f}" if abs(b) < 10 else f"{b:+.1f} ± {s:.1f}"


def ratio_label(r: float) -> str:
    return "0 (unif.)" if r == 0 else f"{r:g}"


def tables(summary, ds, ratios, ns, methods) -> str:
    lines: list[str] = []
    # 1. full bias tables, one per N
    for n in ns:
        seeds = next(v["n"] for k, v in summary.items() if k[2] == n)
        lines.append(f"#### N = {n} (bias ± sd over {seeds} seeds, nats)\n")
        lines.append("| d | κ/d | exact S_u | " + " | ".join(f"`{m}`" for m in methods) + " |")
        lines.append("|---|---|---|" + "---|" * len(methods))
        for d in ds:
            for r in ratios:
                cells = []
                best = min(methods, key=lambda m: abs(summary[(d, r, n, m)]["bias"]))
                for m in methods:
                    v = summary[(d, r, n, m)]
                    c = fmt(v["bias"], v["sd"])
                    cells.append(f"**{c}**" if m == best else c)
                ex = summary[(d, r, n, methods[0])]["exact"]
                lines.append(f"| {d} | {ratio_label(r)} | {ex:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    # 2. mean |bias| per method, d, N
    lines.append("#### Mean |bias| over κ (nats), and how often each method is the least biased\n")
    lines.append("| d | N | " + " | ".join(f"`{m}`" for m in methods) + " |")
    lines.append("|---|---|" + "---|" * len(methods))
    wins = defaultdict(int)
    tot = defaultdict(list)
    for d in ds:
        for n in ns:
            cells = []
            for m in methods:
                mb = np.mean([abs(summary[(d, r, n, m)]["bias"]) for r in ratios])
                tot[m].append(mb)
                cells.append(f"{mb:.3f}" if mb < 10 else f"{mb:.1f}")
            lines.append(f"| {d} | {n} | " + " | ".join(cells) + " |")
            for r in ratios:
                wins[min(methods, key=lambda m: abs(summary[(d, r, n, m)]["bias"]))] += 1
    n_cells = len(ds) * len(ns) * len(ratios)
    lines.append("| all | all | " + " | ".join(f"{np.mean(tot[m]):.3f}" for m in methods) + " |")
    lines.append("| wins | | " + " | ".join(f"{wins[m]}/{n_cells}" for m in methods) + " |")
    lines.append("")
    # 3. bias differences between kappa and 2 kappa (what entropy differences see)
    pairs = [(a, b) for a in ratios for b in ratios if a > 0 and math.isclose(b, 2 * a)]
    if pairs:
        lines.append("#### Bias of the entropy *difference* S(κ) − S(2κ): bias(κ) − bias(2κ), nats\n")
        lines.append("Compare with the difference itself (column Δ exact).\n")
        lines.append("| d | N | κ/d → 2κ/d | Δ exact | " + " | ".join(f"`{m}`" for m in methods) + " |")
        lines.append("|---|---|---|---|" + "---|" * len(methods))
        for d in ds:
            for n in ns:
                for a, b in pairs:
                    cells = []
                    for m in methods:
                        va, vb = summary[(d, a, n, m)], summary[(d, b, n, m)]
                        db = va["bias"] - vb["bias"]
                        sd = math.hypot(va["sd"], vb["sd"]) / math.sqrt(va["n"])
                        cells.append(f"{db:+.3f} ± {sd:.3f}")
                    dex = summary[(d, a, n, methods[0])]["exact"] - summary[(d, b, n, methods[0])]["exact"]
                    lines.append(f"| {d} | {n} | {a:g} → {b:g} | {dex:.3f} | " + " | ".join(cells) + " |")
        lines.append("(± is the standard error of the mean difference over seeds.)\n")
    # 4. stderr calibration
    lines.append("#### Standard-error calibration: sd over seeds / mean reported stderr\n")
    lines.append("Median (and max) over the (d, κ) cells; 1 = calibrated, > 1 = stderr too small. "
                 "`jack` is the reported `stderr` (delete-one jackknife), `iid` the naive std(t)/√N.\n")
    lines.append("| N | " + " | ".join(f"`{m}` jack / iid" for m in methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for n in ns:
        cells = []
        for m in methods:
            rr = [summary[(d, r, n, m)]["sd"] / summary[(d, r, n, m)]["se"] for d in ds for r in ratios]
            ri = [summary[(d, r, n, m)]["sd"] / summary[(d, r, n, m)]["se_iid"] for d in ds for r in ratios]
            cells.append(f"{np.median(rr):.2f} (max {np.max(rr):.2f}) / {np.median(ri):.2f} (max {np.max(ri):.2f})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def orientation_table(n_seeds: int, methods) -> str:
    """Bias of each method when the VMF mean sits on a coordinate axis (angle-chart pole)."""
    lines = ["#### Orientation dependence (N = 1000): mean direction random vs on the axis e_1 "
             "(pole of φ_1) vs e_d\n",
             "| d | κ/d | μ | " + " | ".join(f"`{m}`" for m in methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for d in (3, 10):
        for r in (1.0, 100.0):
            for name in ("random", "e_1", "e_d"):
                mu = mean_direction(d) if name == "random" else np.eye(d)[0 if name == "e_1" else d - 1]
                errs = defaultdict(list)
                for s in range(n_seeds):
                    x, exact = sample(d, r * d, 1000, seed=77 + s, mu=mu)
                    for m in methods:
                        errs[m].append(sphere_entropy(x, m) - exact)
                cells = [fmt(np.mean(errs[m]), np.std(errs[m], ddof=1)) for m in methods]
                lines.append(f"| {d} | {r:g} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Differences between temperatures
# --------------------------------------------------------------------------------------------


def vmf_sample(mu: np.ndarray, kappa: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of VMF(mu, kappa) on S^{d-1} by Wood's (1994) rejection algorithm.

    The cosine w = <x, mu> has density ∝ exp(κw)(1 − w²)^{(d−3)/2}; it is drawn by rejection from
    the transformed Beta((d−1)/2, (d−1)/2) proposal, and x = w mu + sqrt(1 − w²) v with v uniform on
    the sphere orthogonal to mu.  O(n d) work, unlike a rotation by a d × d matrix.
    """
    d = mu.size
    m = d - 1.0
    b = m / (2.0 * kappa + np.sqrt(4.0 * kappa**2 + m**2))  # (−2κ + sqrt(4κ² + m²)) / m, stably
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + m * np.log1p(-x0 * x0)
    w = np.empty(0)
    while w.size < n:
        k = int(1.2 * (n - w.size)) + 16
        z = rng.beta(m / 2.0, m / 2.0, size=k)
        cand = (1.0 - (1.0 + b) * z) / (1.0 - (1.0 - b) * z)
        keep = kappa * cand + m * np.log1p(-x0 * cand) - c >= np.log(rng.uniform(size=k))
        w = np.concatenate([w, cand[keep]])
    w = w[:n]
    v = rng.normal(size=(n, d))
    v -= np.outer(v @ mu, mu)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return w[:, None] * mu + np.sqrt(np.clip(1.0 - w * w, 0.0, None))[:, None] * v


def check_sampler() -> str:
    """Compare Wood's sampler with scipy's at d = 30 (KS test of the cosine to the mean)."""
    from scipy.stats import ks_2samp

    d, kappa = 30, 45.0
    mu = mean_direction(d)
    a = vmf_sample(mu, kappa, 20_000, np.random.default_rng(1)) @ mu
    bb = vonmises_fisher(mu, kappa).rvs(20_000, random_state=np.random.default_rng(2)) @ mu
    p = ks_2samp(a, bb).pvalue
    if p < 1e-3:
        raise SystemExit(f"Wood's sampler disagrees with scipy's (KS p = {p:.2g})")
    return f"Wood's sampler vs scipy at d = {d}, κ = {kappa:g}: KS p = {p:.2f} (20 000 draws each)"


def mixture_means(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Two unit means at 60° (the second tilted from the first towards a random direction)."""
    mu1 = mean_direction(d)
    g = np.random.default_rng(2000 + d).normal(size=d)
    g -= (g @ mu1) * mu1
    g /= np.linalg.norm(g)
    return mu1, 0.5 * mu1 + np.sqrt(0.75) * g


MIX_W = 0.7  # weight of the first component


def mixture_sample(d: int, kappa: float, n: int, rng: np.random.Generator) -> np.ndarray:
    mu1, mu2 = mixture_means(d)
    n1 = rng.binomial(n, MIX_W)
    x = np.concatenate([vmf_sample(mu1, kappa, n1, rng), vmf_sample(mu2, kappa, n - n1, rng)])
    return x[rng.permutation(n)]


def mixture_log_density(x: np.ndarray, d: int, kappa: float) -> np.ndarray:
    """log f(x), f = w C_d(κ) e^{κ<μ1,x>} + (1 − w) C_d(κ) e^{κ<μ2,x>} (surface measure)."""
    mu1, mu2 = mixture_means(d)
    return float(vmf_log_normalizer(kappa, d)) + np.logaddexp(
        np.log(MIX_W) + kappa * (x @ mu1), np.log1p(-MIX_W) + kappa * (x @ mu2))


def mixture_entropy(d: int, kappa: float, m: int = 200_000, chunk: int = 10_000) -> tuple[float, float]:
    """(entropy, Monte Carlo standard error) of the mixture: −E log f over m exact draws."""
    rng = np.random.default_rng(7 + d)
    vals = np.concatenate([mixture_log_density(mixture_sample(d, kappa, chunk, rng), d, kappa)
                           for _ in range(m // chunk)])
    return float(-vals.mean()), float(vals.std(ddof=1) / np.sqrt(vals.size))


def run_differences(ds, ratios, ns, n_seeds, methods, mixture, log=print):
    """Rows: one per (law, d, κ/d at T, N, seed, method), estimates at κ and κ/2 (T and 2T)."""
    rows = []
    cells = [("vmf", d, r, n) for d in ds for r in ratios for n in ns]
    cells += [("mixture", d, r, n) for d, rs, n in mixture for r in rs]
    mix_cache: dict[tuple[int, float], tuple[float, float]] = {}
    t0 = time.perf_counter()
    last_d = None
    for law, d, r, n in cells:
        if (law, d) != last_d and last_d is not None:
            log(f"  {last_d[0]} d={last_d[1]}: done at {time.perf_counter() - t0:.0f}s")
        last_d = (law, d)
        kappa = r * d
        exact, mc = {}, {}
        for kap in (kappa, kappa / 2):
            if law == "vmf":
                exact[kap], mc[kap] = float(vmf_entropy(1.0 / kap, d)), 0.0
            else:
                if (d, kap) not in mix_cache:
                    mix_cache[d, kap] = mixture_entropy(d, kap)
                exact[kap], mc[kap] = mix_cache[d, kap]
        for s in range(n_seeds(d, n)):
            est = {}
            for j, kap in enumerate((kappa, kappa / 2)):
                rng = np.random.default_rng([d, int(round(kap * 1000)), n, s, j, law == "mixture"])
                x = vmf_sample(mean_direction(d), kap, n, rng) if law == "vmf" else mixture_sample(d, kap, n, rng)
                est[kap] = sphere_entropy_methods(x, methods)
            for m in methods:
                hot, cold = est[kappa / 2][m], est[kappa][m]
                rows.append(dict(
                    law=law, d=d, ratio=r, kappa=kappa, N=n, seed=s, method=m,
                    S_cold=cold.value, S_hot=hot.value, exact_cold=exact[kappa], exact_hot=exact[kappa / 2],
                    exact_mc_err=float(np.hypot(mc[kappa], mc[kappa / 2])),
                    diff=hot.value - cold.value, exact_diff=exact[kappa / 2] - exact[kappa],
                    diff_stderr=float(np.hypot(hot.stderr, cold.stderr)),
                ))
    log(f"  {last_d[0]} d={last_d[1]}: done at {time.perf_counter() - t0:.0f}s")
    return rows


def summarize_differences(rows):
    g = defaultdict(list)
    for r in rows:
        g[(r["law"], r["d"], r["ratio"], r["N"], r["method"])].append(r)
    out = {}
    for key, rs in g.items():
        diff = np.array([r["diff"] for r in rs])
        ex = rs[0]["exact_diff"]
        sd = diff.std(ddof=1) if diff.size > 1 else float("nan")
        se = np.array([r["diff_stderr"] for r in rs]).mean()
        err_mean = np.hypot(sd / np.sqrt(diff.size), rs[0]["exact_mc_err"])
        abs_bias = np.mean([r["S_cold"] - r["exact_cold"] for r in rs])
        rms = np.sqrt((diff.mean() - ex) ** 2 + (sd if diff.size > 1 else 0.0) ** 2) / abs(ex)
        out[key] = dict(rel=(diff.mean() - ex) / ex, rel_err=err_mean / abs(ex), exact=ex, rms=rms,
                        sd=sd, se=se, n=diff.size, abs_bias=abs_bias, exact_cold=rs[0]["exact_cold"])
    return out


def pct(v: float, e: float) -> str:
    return f"{100 * v:+.1f} ± {100 * e:.1f}"


def difference_tables(summary, ds, ratios, ns, methods, mixture) -> tuple[str, str]:
    """(markdown tables, the chosen default with its reason)."""
    lines: list[str] = []
    # 1. relative error of the difference, one table per N
    for n in ns:
        lines.append(f"#### N = {n}: relative error of ΔS = S(2T) − S(T) (%, mean ± its standard error "
                     "over seeds)\n")
        lines.append("The slope dS_u/dlog T ≈ ΔS/log 2 is off by the same fraction. "
                     "C = exact dS_u/dlog T at T (the VMF heat capacity; (d−1)/2 when cold).\n")
        lines.append("| d | κ/d at T | exact ΔS | C | " + " | ".join(f"`{m}`" for m in methods) + " |")
        lines.append("|---|---|---|---|" + "---|" * len(methods))
        for d in ds:
            for r in ratios:
                v0 = summary[("vmf", d, r, n, methods[0])]
                best = min(methods, key=lambda m: abs(summary[("vmf", d, r, n, m)]["rel"]))
                cells = []
                for m in methods:
                    v = summary[("vmf", d, r, n, m)]
                    c = pct(v["rel"], v["rel_err"])
                    cells.append(f"**{c}**" if m == best else c)
                heat = float(vmf_heat_capacity(1.0 / (r * d), d))
                lines.append(f"| {d} | {r:g} | {v0['exact']:.4g} | {heat:.4g} | " + " | ".join(cells) + " |")
        lines.append("")
    # 2. mixture
    lines.append(f"#### Non-VMF law: mixture {MIX_W:g}·VMF(μ₁, κ) + {1 - MIX_W:g}·VMF(μ₂, κ), ∠(μ₁, μ₂) = 60°\n")
    lines.append("Exact entropy by Monte Carlo over 200 000 draws of its exact density (its error is "
                 "included in the ±).\n")
    lines.append("| d | N | κ/d at T | exact ΔS | " + " | ".join(f"`{m}`" for m in methods) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(methods))
    for d, rs, n in mixture:
        for r in rs:
            v0 = summary[("mixture", d, r, n, methods[0])]
            cells = [pct(summary[("mixture", d, r, n, m)]["rel"], summary[("mixture", d, r, n, m)]["rel_err"])
                     for m in methods]
            lines.append(f"| {d} | {n} | {r:g} | {v0['exact']:.4g} | " + " | ".join(cells) + " |")
    lines.append("")
    # 3. summary per method: differences first, absolute values second
    keys = [k for k in summary if k[4] == methods[0]]
    # a cell is resolvable when at least one method gets ΔS to 25 % rms in a single run; cells
    # whose ΔS is below every estimator's noise at that N (nearly uniform laws) rank nothing
    resolvable = [k for k in keys if min(summary[k[:4] + (m,)]["rms"] for m in methods) <= 0.25]
    unresolved = [k for k in keys if k not in resolvable]
    lines.append("#### Summary over the cells (VMF and mixture)\n")
    lines.append("Single-run error of a difference: rms = sqrt(bias² + sd²)/ΔS over seeds.  Ranked over "
                 f"the {len(resolvable)} cells where some method reaches rms ≤ 25 %"
                 + (f"; {len(unresolved)} cells are below every method's noise at that N ("
                    + ", ".join(f"{k[0]} d={k[1]} κ/d={k[2]:g} N={k[3]}" for k in unresolved) + ")"
                    if unresolved else "") + ".\n")
    lines.append("| | " + " | ".join(f"`{m}`" for m in methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    stats = {}
    for m in methods:
        rms = np.array([summary[k[:4] + (m,)]["rms"] for k in resolvable])
        rel = np.array([abs(summary[k[:4] + (m,)]["rel"]) for k in resolvable])
        hi = np.array([summary[k[:4] + (m,)]["rms"] for k in resolvable if k[1] >= 300])
        ab = np.array([abs(summary[k[:4] + (m,)]["abs_bias"]) / max(1.0, abs(summary[k[:4] + (m,)]["exact_cold"]))
                       for k in keys])
        wins = sum(min(methods, key=lambda mm: summary[k[:4] + (mm,)]["rms"]) == m for k in resolvable)
        stats[m] = dict(median=np.median(rms), p90=np.quantile(rms, 0.9), max=rms.max(),
                        bias=np.median(rel), hi_median=np.median(hi) if hi.size else float("nan"),
                        within5=np.mean(rms <= 0.05), wins=wins, abs=np.median(ab))
    table = [("median rms error of ΔS", "median", "{:.1%}"), ("90th percentile", "p90", "{:.1%}"),
             ("max", "max", "{:.1%}"), ("median \\|bias\\| of ΔS", "bias", "{:.1%}"),
             ("median rms at d ≥ 300", "hi_median", "{:.1%}"), ("cells within 5 % rms", "within5", "{:.0%}"),
             ("least rms error (cells)", "wins", "{:d}"),
             ("median \\|absolute bias\\| / max(1, \\|S\\|), all cells", "abs", "{:.1%}")]
    for label, key, f in table:
        lines.append(f"| {label} | " + " | ".join(f.format(stats[m][key]) for m in methods) + " |")
    lines.append("")
    ranked = sorted(methods, key=lambda m: (stats[m]["p90"], stats[m]["median"], stats[m]["abs"]))
    best = ranked[0]
    rule = (f"lowest 90th-percentile rms error of entropy differences, then median, then absolute "
            f"bias: `{best}` ({stats[best]['p90']:.1%} / {stats[best]['median']:.1%}); "
            + ", ".join(f"`{m}` {stats[m]['p90']:.1%} / {stats[m]['median']:.1%}" for m in ranked[1:])
            + f"; library default `{DEFAULT_METHOD}`")
    lines.append(f"Rule: {rule}.\n")
    return "\n".join(lines), best


def write_block(begin: str, end: str, text: str) -> None:
    doc = DOC.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"markers {begin} / {end} not found in {DOC}")
    pat = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    DOC.write_text(pat.sub(lambda _: f"{begin}\n{text}\n{end}", doc))
    print(f"wrote {DOC}", file=sys.stderr)


def absolute_study(quick: bool, methods, csv_path: Path | None) -> str:
    if quick:
        ds, ratios, ns = [3, 30], [0.0, 1.0, 2.0, 100.0], [250, 1000]
        n_seeds = lambda n: 3  # noqa: E731
        orient_seeds = 2
    else:
        ds = [3, 5, 10, 30, 100, 300]
        ratios = [0.0, 0.5, 1.0, 2.0, 10.0, 20.0, 100.0, 200.0]
        ns = [250, 1000, 4000]
        n_seeds = lambda n: 10 if n <= 1000 else 6  # noqa: E731
        orient_seeds = 10
    t0 = time.perf_counter()
    rows = run_grid(ds, ratios, ns, n_seeds, methods, log=lambda s: print(s, file=sys.stderr))
    summary = summarize(rows)
    text = tables(summary, ds, ratios, ns, methods) + "\n" + orientation_table(orient_seeds, methods)
    header = (f"_Generated by `python benchmarks/entropy_bias.py --study absolute` in "
              f"{time.perf_counter() - t0:.0f} s; d ∈ {ds}, κ/d ∈ {ratios}, N ∈ {ns}._\n\n")
    if csv_path:
        save_csv(csv_path.with_name(csv_path.stem + "_absolute.csv"), rows)
    return header + text


def difference_study(quick: bool, methods, csv_path: Path | None) -> str:
    if quick:
        ds, ratios, ns = [3, 300], [0.1, 1.0, 100.0], [250]
        n_seeds = lambda d, n: 2  # noqa: E731
        mixture = [(30, [1.0], 250)]
    else:
        ds = [3, 10, 30, 100, 300, 1000, 3000, 10000]
        ratios = [0.1, 0.5, 1.0, 2.0, 10.0, 100.0]
        ns = [250, 1000, 4000]
        n_seeds = lambda d, n: (8 if d <= 300 else 4) if n <= 1000 else (4 if d <= 1000 else 2)  # noqa: E731
        mixture = [(3, [0.5, 10.0], 1000), (30, [0.5, 2.0, 10.0], 1000), (300, [0.5, 2.0, 10.0], 1000),
                   (3000, [1.0, 10.0], 1000)]
    t0 = time.perf_counter()
    note = check_sampler()
    print(note, file=sys.stderr)
    rows = run_differences(ds, ratios, ns, n_seeds, methods, mixture, log=lambda s: print(s, file=sys.stderr))
    summary = summarize_differences(rows)
    text, best = difference_tables(summary, ds, ratios, ns, methods, mixture)
    header = (f"_Generated by `python benchmarks/entropy_bias.py --study differences` in "
              f"{time.perf_counter() - t0:.0f} s; d ∈ {ds}, κ/d at T ∈ {ratios} (at 2T half that), "
              f"N ∈ {ns}; independent samples at T and 2T; {note}._\n\n")
    if csv_path:
        save_csv(csv_path.with_name(csv_path.stem + "_differences.csv"), rows)
    return header + text


def save_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", choices=("all", "absolute", "differences"), default="all")
    ap.add_argument("--quick", action="store_true", help="small grids (smoke run)")
    ap.add_argument("--write", action="store_true", help="rewrite the tables in docs/entropy.md")
    ap.add_argument("--csv", type=Path, default=None,
                    help="also save the raw estimates (FILE_absolute.csv, FILE_differences.csv)")
    args = ap.parse_args(argv)
    methods = list(METHODS)
    if args.study in ("all", "absolute"):
        text = absolute_study(args.quick, methods, args.csv)
        print(text)
        if args.write:
            write_block(BEGIN, END, text)
    if args.study in ("all", "differences"):
        text = difference_study(args.quick, methods, args.csv)
        print(text)
        if args.write:
            write_block(DBEGIN, DEND, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
