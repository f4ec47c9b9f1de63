"""Overhead of the Thermometer (`sgdthermo.nn.thermometer`) on an ordinary training loop.

Two models, each with its own optimizer, the same i.i.d. batches in every variant; all
timings in this run, repeats interleaved (bare, thermometer, thermometer + noise, bare, ...),
best of the repeats and the median printed:

- (a) the digits ConvNet (width 4, frozen head of norm 2, d = 6084 in 4 conv groups) with
  `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`;
- (b) a LayerNorm MLP on the flattened digits (64 → 256 → 256 → 10, `Linear(bias=False)` then
  `LayerNorm` before each ReLU, trainable head) with `torch.optim.AdamW`.

Variants of the same loop (forward, backward, `optimizer.step()`):

- bare: nothing else;
- thermometer: a `Thermometer` with default options, `th.step()` after every step and
  `th.log(step)` every 200 steps (no noise batches); the group detection on the first batch is
  part of the timed loop and also printed on its own;
- thermometer + noise: the same with `noise_batches` (K = 8 extra minibatch gradients at
  frozen weights) at every log point.

The overhead is (variant / bare − 1) on the best-of times. The goal is at most 5 % with the
default schedule (no noise batches). One torch thread by default (`--threads`): on a shared
machine two threads that wait on each other make the timings swing by factors, not percents.

    python benchmarks/bench_thermometer.py [--steps 3000] [--repeats 3] [--log-every 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.nn.data import BatchSampler, load_dataset
from sgdthermo.nn.models import build_model
from sgdthermo.nn.thermometer import Thermometer


def layernorm_mlp(in_features: int = 64, hidden: int = 256, classes: int = 10) -> nn.Module:
    """64 → 256 → 256 → 10: bias-free Linear, LayerNorm, ReLU (twice), then a linear head."""
    return nn.Sequential(
        nn.Linear(in_features, hidden, bias=False), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, hidden, bias=False), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, classes),
    )


def setup(name: str) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    """A fresh model and optimizer (seed 0) with the digits tensors it trains on."""
    data = load_dataset("digits")
    torch.manual_seed(0)
    if name == "convnet":
        model = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=2.0, image_size=8)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
        return model, opt, data.train_x, data.train_y
    model = layernorm_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    return model, opt, data.train_x.flatten(1), data.train_y


def run(name: str, steps: int, variant: str, log_every: int) -> tuple[float, float, float]:
    """Seconds for ``steps`` steps of ``variant`` ("bare" | "thermo" | "noise"), the seconds of
    the first ``th.step()`` (the group detection; 0 for bare) and the seconds of one
    ``th.step()`` alone (200 more calls after the loop, untimed in the total; 0 for bare)."""
    model, opt, x, y = setup(name)
    sampler = BatchSampler(x.shape[0], 128, seed=0)
    noise_sampler = BatchSampler(x.shape[0], 128, seed=1)

    def noise() -> tuple[torch.Tensor, torch.Tensor]:
        idx = noise_sampler.next()
        return x[idx], y[idx]

    th = Thermometer(model, opt) if variant != "bare" else None
    nb: Callable | None = noise if variant == "noise" else None
    t_detect = 0.0
    model.train()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = sampler.next()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if th is not None:
            if step == 1:
                t1 = time.perf_counter()
                th.step()
                t_detect = time.perf_counter() - t1
            else:
                th.step()
            if step % log_every == 0:
                th.log(step, noise_batches=nb)
    total = time.perf_counter() - t0
    t_step = 0.0
    if th is not None:
        t1 = time.perf_counter()
        for _ in range(200):
            th.step()
        t_step = (time.perf_counter() - t1) / 200
        th.close()
    return total, t_detect, t_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--log-every", type=int, default=200)
    ap.add_argument("--models", default="convnet,mlp", help="comma-separated: convnet, mlp")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.steps
    variants = ("bare", "thermo", "noise")
    print(f"{n} steps, batch 128, log every {args.log_every} steps, {torch.get_num_threads()} threads; "
          f"best of {args.repeats} interleaved repeats (median in brackets)")
    labels = {"convnet": "digits ConvNet, SGD momentum 0.9", "mlp": "LayerNorm MLP, AdamW"}
    for name in args.models.split(","):
        for v in variants:  # warm-up
            run(name, 50, v, args.log_every)
        times: dict[str, list[float]] = {v: [] for v in variants}
        detect: list[float] = []
        per_step: list[float] = []
        for _ in range(args.repeats):
            for v in variants:
                t, td, ts = run(name, n, v, args.log_every)
                times[v].append(t)
                if v == "thermo":
                    detect.append(td)
                    per_step.append(ts)
        best = {v: min(ts) for v, ts in times.items()}
        med = {v: statistics.median(ts) for v, ts in times.items()}
        print(f"\n({name}) {labels[name]}")
        print(f"  bare loop:                      {best['bare']:7.2f} s [{med['bare']:6.2f}]  "
              f"({best['bare'] / n * 1e3:.2f} ms/step)")
        for v, label in (("thermo", "thermometer (default):       "), ("noise", "thermometer + noise (K = 8):")):
            print(f"  {label}   {best[v]:7.2f} s [{med[v]:6.2f}]  overhead {100 * (best[v] / best['bare'] - 1):+5.1f} % "
                  f"[{100 * (med[v] / med['bare'] - 1):+5.1f} %]")
        print(f"  group detection (first th.step(), included above): {min(detect):.3f} s")
        print(f"  one th.step() alone: {min(per_step) * 1e6:.0f} us "
              f"({100 * min(per_step) * n / best['bare']:.1f} % of the bare loop)")
        print(f"  default-schedule overhead {100 * (best['thermo'] / best['bare'] - 1):+.1f} %  (goal <= 5 %)")


if __name__ == "__main__":
    main()
