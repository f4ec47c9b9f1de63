"""Measurement overhead of `sgdthermo train` against a bare PyTorch SGD loop.

Same model (the digits ConvNet, width 4), same data and the same i.i.d. batches; all three
timings in this run:

- bare: `torch.optim.SGD` with weight decay, forward/backward/step, nothing else;
- sgdthermo: the training loop of `sgdthermo.nn.training.train` with the default measurement
  schedule (a log point every 200 steps: train and test evaluation, K = 8 minibatch
  gradients for tr Σ, the free per-step statistics; entropy queue of 1000 snapshots every
  25 steps, whose entropy is estimated each time the queue refills, i.e. every 25 000 steps:
  its cost is measured separately and amortised);
- paper-style: the reference code's measurement, 4000 extra minibatch gradients per log
  point, timed on 200 gradients and scaled.

    python benchmarks/bench_training.py [--steps 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F

from sgdthermo.nn.data import BatchSampler, load_dataset
from sgdthermo.entropy import sphere_entropy
from sgdthermo.nn.models import build_model, find_scale_invariant, set_si_norm
from sgdthermo.nn import TrainConfig, train


def bare_loop(steps: int) -> float:
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=2.0, image_size=8)
    si, _ = find_scale_invariant(model, data.train_x[:128], data.train_y[:128], F.cross_entropy)
    set_si_norm(si, 1.0)
    opt = torch.optim.SGD(si, lr=0.01, weight_decay=0.01)
    sampler = BatchSampler(data.train_x.shape[0], 128, seed=0)
    x, y = data.train_x, data.train_y
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = sampler.next()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - t0


def paper_style_log_seconds(n_grads: int = 4000, timed: int = 200) -> float:
    data = load_dataset("digits")
    model = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=2.0, image_size=8)
    sampler = BatchSampler(data.train_x.shape[0], 128, seed=1)
    x, y = data.train_x, data.train_y
    t0 = time.perf_counter()
    for _ in range(timed):
        idx = sampler.next()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
    return (time.perf_counter() - t0) * n_grads / timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.steps
    bare_loop(50)  # warm-up

    def measured() -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(model="convnet", dataset="digits", protocol="fixed-elr", lr=0.01, wd=0.01,
                              iters=n, checkpoint_every=10 * n)
            s = train(cfg, f"{tmp}/run", log=lambda m: None)
            return s["runtime_s"], s["d"]

    # interleaved repeats, best of each: the machine's other load affects both alike
    t_bare, t_meas = float("inf"), float("inf")
    for _ in range(args.repeats):
        t_bare = min(t_bare, bare_loop(n))
        t, d = measured()
        t_meas = min(t_meas, t)
    q = torch.randn(1000, d)
    t0 = time.perf_counter()
    sphere_entropy(q)
    t_ent = time.perf_counter() - t0
    t_ent_amortised = t_ent * n / 25_000
    n_logs = n // 200
    t_paper_extra = paper_style_log_seconds() * n_logs
    print(f"{n} steps of the digits ConvNet (d = {d}), batch 128, {torch.get_num_threads()} threads")
    print(f"bare SGD loop:                        {t_bare:7.2f} s  ({t_bare / n * 1e3:.2f} ms/step)")
    print(f"sgdthermo loop with measurement:      {t_meas:7.2f} s")
    print(f"entropy of 1000 snapshots:            {t_ent:7.2f} s  (amortised over 25000 steps: {t_ent_amortised:.2f} s here)")
    over = (t_meas + t_ent_amortised) / t_bare - 1
    print(f"measurement overhead:                 {100 * over:6.1f} %   (goal <= 10 %)")
    print(f"paper-style measurement (4000 gradients per log point): +{t_paper_extra:.1f} s "
          f"= {100 * t_paper_extra / t_bare:.0f} % overhead")


if __name__ == "__main__":
    main()
