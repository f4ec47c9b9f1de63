"""Speed of the isotropic simulator against baselines measured in the same run.

The paper's grid: 17 x 17 = 289 configurations, d = 3, fixed LR, entropy queue of 1000
weights every 50 steps, 2·10⁶ steps. Three timings, all on this machine, now:

- floor: drawing the run's Gaussian noise (G·d·steps normals) with ``torch.randn``
  (float32, all threads) and nothing else;
- plain loop: a per-step PyTorch loop over the grid (one vectorised update per step, as
  one would write it by hand), timed over a few thousand steps and extrapolated;
- sgdthermo: the whole run (noise, updates, queue, statistics, entropy, results table).

It prints the ratios (sgdthermo / floor, plain loop / sgdthermo) and how the time grows
with the grid size, the dimension and the number of steps.

    python benchmarks/bench_isotropic.py            # the paper's full run (about a minute)
    python benchmarks/bench_isotropic.py --quick    # 10x fewer steps
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sgdthermo.isotropic import simulate_isotropic

PAPER_CODE_US_PER_STEP = 400.0  # reported for the paper's own code on a 2-core machine


def floor_seconds(n_normals: int, chunk: int = 50_000_000) -> float:
    t0 = time.perf_counter()
    left = n_normals
    while left > 0:
        m = min(chunk, left)
        torch.randn(m)
        left -= m
    return time.perf_counter() - t0


def plain_loop_us_per_step(G: int, d: int, steps: int, lr: float = 0.01, wd: float = 0.01) -> float:
    """A straightforward vectorised PyTorch loop: gradient, noise, update, statistics."""
    w = torch.randn(G, d, dtype=torch.float64)
    w /= w.norm(dim=1, keepdim=True)
    mu = torch.zeros(d, dtype=torch.float64)
    mu[0] = 1.0
    acc_r2 = torch.zeros(G, dtype=torch.float64)
    acc_loss = torch.zeros(G, dtype=torch.float64)
    queue = torch.zeros(G, 1000, d, dtype=torch.float64)
    t0 = time.perf_counter()
    for t in range(steps):
        r2 = (w * w).sum(1, keepdim=True)
        r = r2.sqrt()
        u = w / r
        c = u @ mu
        z = torch.randn(G, d, dtype=torch.float64)
        g = (mu - c[:, None] * u + z - (z * u).sum(1, keepdim=True) * u) / r
        w = w - lr * (g + wd * w)
        acc_r2 += r2[:, 0]
        acc_loss += 1 + c
        if t % 50 == 0:
            queue[:, (t // 50) % 1000] = w
    return (time.perf_counter() - t0) / steps * 1e6


def sim_seconds(G_side: int, d: int, steps: int, queue_every: int = 50) -> float:
    lr = np.geomspace(1e-3, 1e-1, G_side)
    t0 = time.perf_counter()
    simulate_isotropic("fixed-lr", lr=lr, wd=lr, dim=d, iters=steps, queue_size=1000,
                       queue_every=queue_every, seed=0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer steps")
    args = ap.parse_args()
    steps = 200_000 if args.quick else 2_000_000
    G_side, d = 17, 3
    G = G_side**2
    print(f"torch threads: {torch.get_num_threads()}; grid {G_side}x{G_side}, d={d}, {steps} steps")
    sim_seconds(2, 3, 200_000)  # compile / load the kernel cache outside the timing

    t_sim = sim_seconds(G_side, d, steps)
    t_floor = floor_seconds(G * d * steps)
    us_plain = plain_loop_us_per_step(G, d, 2000)
    t_plain = us_plain * 1e-6 * steps
    t_paper = PAPER_CODE_US_PER_STEP * 1e-6 * steps
    print(f"floor (torch.randn of {G * d * steps:.3g} normals): {t_floor:8.2f} s")
    print(f"plain PyTorch loop ({us_plain:.0f} us/step, extrapolated): {t_plain:8.1f} s")
    print(f"sgdthermo whole run: {t_sim:8.2f} s  ({t_sim / steps * 1e6:.2f} us/step)")
    print(f"ratio sgdthermo / floor:      {t_sim / t_floor:6.2f}   (goal <= 1.5)")
    print(f"speed-up over the plain loop: {t_plain / t_sim:6.1f}x  (goal >= 15)")
    print(f"speed-up over the paper's code (400 us/step as reported): {t_paper / t_sim:6.1f}x  (goal >= 30)")

    s = steps // 10
    print(f"\nscaling (each row: one factor changed, {s} steps unless stated)")
    qe = max(1, s // 2 // 1000)  # keep the queue inside the stationary half
    base = sim_seconds(G_side, d, s, qe)
    print(f"  base 17x17, d=3:           {base:6.2f} s")
    for side in (5, 9, 33):
        t = sim_seconds(side, d, s, qe)
        print(f"  grid {side}x{side} (G={side * side:4d}):     {t:6.2f} s   time/G relative to base: "
              f"{(t / side**2) / (base / G):5.2f}")
    for dd in (10, 30, 100):
        t = sim_seconds(G_side, dd, s, qe)
        print(f"  d={dd:4d}:                   {t:6.2f} s   time/d relative to base: {(t / dd) / (base / d):5.2f}")
    t = sim_seconds(G_side, d, 2 * s, qe)
    print(f"  steps x2:                  {t:6.2f} s   ratio to base: {t / base:5.2f}")


if __name__ == "__main__":
    main()
