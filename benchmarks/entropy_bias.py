"""Measure the bias and spread of every sphere entropy estimator against exact VMF entropies.

Regenerates the tables in ``docs/entropy.md`` (between the ``BEGIN/END BIAS TABLES`` markers)::

    python benchmarks/entropy_bias.py            # full grid (~10 min on 2 CPU cores), prints
    python benchmarks/entropy_bias.py --write    # ... and rewrites the block in docs/entropy.md
    python benchmarks/entropy_bias.py --quick    # small grid, for a smoke run

Reference: samples from ``scipy.stats.vonmises_fisher(mu, kappa)`` (``mu`` a fixed random unit
vector per d, so the angle chart is in generic position) with exact entropy ``.entropy()``; the
uniform distribution (κ = 0) is sampled as normalised Gaussians, exact entropy ``log |S^{d-1}|``.
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

from sgdthermo.entropy import METHODS, sphere_entropy, uniform_sphere_entropy  # noqa: E402

DOC = ROOT / "docs" / "entropy.md"
BEGIN, END = "<!-- BEGIN BIAS TABLES -->", "<!-- END BIAS TABLES -->"


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small grid (smoke run)")
    ap.add_argument("--write", action="store_true", help="rewrite the tables in docs/entropy.md")
    ap.add_argument("--csv", type=Path, default=None, help="also save the raw estimates as CSV")
    args = ap.parse_args(argv)
    methods = list(METHODS)
    if args.quick:
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
    header = (f"_Generated by `python benchmarks/entropy_bias.py` in {time.perf_counter() - t0:.0f} s; "
              f"d ∈ {ds}, κ/d ∈ {ratios}, N ∈ {ns}._\n\n")
    text = header + text
    print(text)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.write:
        doc = DOC.read_text()
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"markers {BEGIN} / {END} not found in {DOC}")
        pat = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        DOC.write_text(pat.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc))
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
