"""A grid trained as one batched model (`sgdthermo.nn.batched`) against the same runs one after another.

For each grid size G: a digits ConvNet grid (width 4, fixed LR, G values of (η, λ) on a
log grid, `--steps` steps, the default measurement: a log point every 200 steps with train
and test evaluation and K = 8 noise batches, an entropy queue) swept into fresh folders in
this run:

- one after another: `sgdthermo sweep --executor local --jobs 1` (each run with its default
  single torch thread);
- batched: `sgdthermo sweep --executor batched --pack G` (one pack, the machine's cores as
  its torch threads);
- two at a time (`--jobs 2`: the machine's two cores used by solo runs; `--no-jobs2` skips it).

Printed: wall time of each sweep (set-up, figures and summaries included), the ratios, the
time per run and step, and the memory of one member (`sgdthermo.budget` estimate without the
data set, which a pack holds once). The sweeps write the same run ids and files.

The batched sweep runs before and after the solo one and the ratio is taken against the mean
of the two (on a shared machine whose speed drifts by 10-20 % over minutes, a drift that is
linear in time cancels; the two batched times show how much it moved). `--once` runs it once,
after the solo sweep.

    python benchmarks/bench_batched.py [--sizes 4,16] [--steps 3000] [--no-jobs2] [--once]

Goal: at least 3x for G = 16 at 3000 steps on 2 CPU cores, against one after another.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from sgdthermo import budget
from sgdthermo.nn import TrainConfig
from sgdthermo.sweep import SweepSpec
from sgdthermo.sweep.runner import run_sweep


def grid(g: int) -> tuple[list[float], list[float]]:
    """``g`` (η, λ) pairs at most: a near-square log grid around the digits defaults."""
    a = int(math.ceil(math.sqrt(g)))
    b = int(math.ceil(g / a))
    lrs = [0.03 * (10 ** (i / max(1, a - 1))) for i in range(a)]
    wds = [0.003 * (10 ** (j / max(1, b - 1))) for j in range(b)]
    return lrs, wds


def sweep(g: int, steps: int, out: Path, batched: bool, jobs: int = 1) -> tuple[float, int]:
    lrs, wds = grid(g)
    spec = dict(model="convnet", width=4, dataset="digits", protocol="fixed-lr", iters=steps,
                grid={"lr": lrs, "wd": wds})
    if batched:
        spec.update(executor="batched", pack=g)
    else:
        spec.update(jobs=jobs)
    t0 = time.perf_counter()
    df = run_sweep(SweepSpec.from_dict(spec), out, log=lambda m: None)
    took = time.perf_counter() - t0
    assert set(df["status"]) <= {"completed", "diverged"}, df[["run_id", "status", "message"]]
    return took, len(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,16", help="comma-separated grid sizes G")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--no-jobs2", action="store_true", help="skip the two-at-a-time sweep")
    ap.add_argument("--once", action="store_true", help="one batched sweep (after the solo one), not two around it")
    args = ap.parse_args()
    cfg = TrainConfig(model="convnet", width=4, dataset="digits", protocol="fixed-lr", lr=0.1, wd=0.01,
                      iters=args.steps)
    parts = budget.estimate_train_memory(cfg)
    member = sum(v for k, v in parts.items() if k != "data set")
    print(f"digits ConvNet width 4, fixed LR, {args.steps} steps, default measurement; {os.cpu_count()} CPU(s)")
    print(f"memory per member (estimate, data set held once per pack): {budget.format_bytes(member)} "
          f"(entropy queue {budget.format_bytes(parts['entropy queue'])}, "
          f"activations {budget.format_bytes(parts['activations'])})")
    for g in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            packs = [] if args.once else [sweep(g, args.steps, Path(tmp) / "batched0", batched=True)[0]]
            solo, n = sweep(g, args.steps, Path(tmp) / "solo", batched=False)
            packs.append(sweep(g, args.steps, Path(tmp) / "batched", batched=True)[0])
            two = None if args.no_jobs2 else sweep(g, args.steps, Path(tmp) / "two", batched=False, jobs=2)[0]
        pack = sum(packs) / len(packs)
        times = " / ".join(f"{t:.1f}" for t in packs)
        print(f"G = {n:3d}: one after another {solo:7.1f} s ({1e3 * solo / n / args.steps:.2f} ms/run/step), "
              f"batched {pack:7.1f} s ({times} s; {1e3 * pack / n / args.steps:.2f} ms/run/step): "
              f"ratio {solo / pack:.2f}x"
              + ("" if two is None else f"; two at a time {two:7.1f} s: ratio {two / pack:.2f}x"), flush=True)


if __name__ == "__main__":
    main()
