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

On a GPU, the 49-point grid of CIFAR-shaped images (3 x 32 x 32, ten learnable synthetic
classes written in torchvision's CIFAR-10 format, read by the real loader):

    python benchmarks/bench_batched.py --data cifar-shaped --device cuda --sizes 49 \
        --steps 1000 --solo-rows 1 --no-jobs2 --once

``--solo-rows R`` times only R of the grid's η rows (evenly spread; 7 runs a row at G = 49) one
after another and scales their time to the G runs (the runs differ only in (η, λ) and cost about
the same; printed as an extrapolation). Goal there: at least 10x for G = 49.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

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


def write_cifar_shaped(root: Path, *, n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> Path:
    """A CIFAR-10-shaped data set under ``root/cifar-10-batches-py``, in torchvision's python
    format (five ``data_batch_*``, ``test_batch``, ``batches.meta``): uint8 3 x 32 x 32
    images of ten learnable classes (a fixed random mean image per class plus pixel noise)."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(64, 192, size=(10, 3072))
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.permutation(np.arange(n) % 10)
        data = np.clip(means[labels] + rng.normal(0, 48, size=(n, 3072)), 0, 255).astype(np.uint8)
        return {b"data": data, b"labels": labels.tolist()}

    per = n_train // 5
    for i in range(5):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch(per), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test), protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return root


def sweep(g: int, steps: int, out: Path, batched: bool, jobs: int = 1, *, data: dict | None = None,
          device: str = "cpu", rows: int | None = None) -> tuple[float, int]:
    """Wall time of a sweep of the grid of ``g`` points into ``out`` (only ``rows`` of its η
    rows, evenly spread, if given), and the number of runs it trained."""
    lrs, wds = grid(g)
    if rows == 1:
        lrs = [lrs[len(lrs) // 2]]
    elif rows is not None and rows < len(lrs):
        lrs = [lrs[round(i * (len(lrs) - 1) / (rows - 1))] for i in range(rows)]
    spec = {"model": "convnet", "width": 4, "dataset": "digits", "protocol": "fixed-lr", "iters": steps,
            "device": device, "grid": {"lr": lrs, "wd": wds}, **(data or {})}
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
    ap.add_argument("--data", choices=("digits", "cifar-shaped"), default="digits",
                    help="digits (8 x 8 grey) or synthetic CIFAR-shaped images (3 x 32 x 32)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--solo-rows", type=int, default=None,
                    help="time only this many η rows of the grid one after another and scale to G")
    ap.add_argument("--no-jobs2", action="store_true", help="skip the two-at-a-time sweep")
    ap.add_argument("--once", action="store_true", help="one batched sweep (after the solo one), not two around it")
    args = ap.parse_args()
    if args.solo_rows is not None and args.solo_rows < 1:
        ap.error(f"--solo-rows {args.solo_rows}: must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        data = {"dataset": "digits"}
        if args.data == "cifar-shaped":
            data = {"dataset": "cifar10", "data_dir": str(write_cifar_shaped(Path(tmp) / "data"))}
        cfg = TrainConfig(model="convnet", width=4, protocol="fixed-lr", lr=0.1, wd=0.01, iters=args.steps,
                          device=args.device, **data)
        parts = budget.estimate_train_memory(cfg)
        member = sum(v for k, v in parts.items() if k != "data set")
        what = "digits" if args.data == "digits" else "CIFAR-shaped (3 x 32 x 32, synthetic)"
        print(f"{what} ConvNet width 4, fixed LR, {args.steps} steps, default measurement, on {args.device}; "
              f"{os.cpu_count()} CPU(s)")
        print(f"memory per member (estimate, data set held once per pack): {budget.format_bytes(member)} "
              f"(entropy queue {budget.format_bytes(parts['entropy queue'])}, "
              f"activations {budget.format_bytes(parts['activations'])})")
        for g in (int(s) for s in args.sizes.split(",")):
            kw = dict(data=data, device=args.device)
            run = Path(tempfile.mkdtemp(dir=tmp))
            packs = [] if args.once else [sweep(g, args.steps, run / "batched0", True, **kw)[0]]
            solo, n_solo = sweep(g, args.steps, run / "solo", False, rows=args.solo_rows, **kw)
            took, n = sweep(g, args.steps, run / "batched", True, **kw)
            packs.append(took)
            two = None if args.no_jobs2 else sweep(g, args.steps, run / "two", False, jobs=2, rows=args.solo_rows,
                                                   **kw)[0] * n / n_solo
            note = "" if n_solo == n else f" (extrapolated from {n_solo} runs: {solo:.1f} s)"
            solo *= n / n_solo
            pack = sum(packs) / len(packs)
            times = " / ".join(f"{t:.1f}" for t in packs)
            print(f"G = {n:3d}: one after another {solo:7.1f} s{note} ({1e3 * solo / n / args.steps:.2f} ms/run/step), "
                  f"batched {pack:7.1f} s ({times} s; {1e3 * pack / n / args.steps:.2f} ms/run/step): "
                  f"ratio {solo / pack:.2f}x"
                  + ("" if two is None else f"; two at a time {two:7.1f} s: ratio {two / pack:.2f}x"), flush=True)


if __name__ == "__main__":
    main()
