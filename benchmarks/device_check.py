"""Checks for a GPU machine, in one short run: the CUDA paths that a CPU machine cannot test.

1. A pack on the device follows its members' solo runs on the device: three digits ConvNet
   members (fixed LR, their own seeds and samplers), 200 steps in float64, batched (grouped
   convolutions, the optimizers stepping together) against each alone; the largest relative
   difference of the weights and the losses (CPU, same code: ~1e-13).
2. The entropy estimator on the device against the CPU: a correlated random walk on the sphere
   (N = 1000, d = 6084, the digits ConvNet's queue), the same estimate to float64 rounding.
3. The 49-point CIFAR-shaped grid batched against one after another
   (``bench_batched.py --data cifar-shaped --sizes 49 --steps STEPS --solo-rows 1 --once
   --no-jobs2``): skipped with ``--no-timing``.

Printed, and written as JSON to ``--out`` (default ``device_check.json``):

    python benchmarks/device_check.py [--device cuda] [--steps 1000] [--out FILE] [--no-timing]

With ``--device cpu`` the same checks run on the CPU (to try the script where no GPU is).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from sgdthermo.entropy import sphere_entropy
from sgdthermo.nn.batched import StackedModel, _optimizer_groups, _optimizer_steps
from sgdthermo.nn.data import BatchSampler, load_dataset
from sgdthermo.nn.models import build_model, find_scale_invariant, set_si_norm
from sgdthermo.nn.optim import make_optimizer

MEMBERS = [(0.1, 0.01, 0), (0.3, 0.003, 1), (0.05, 0.03, 2)]  # (η, λ, seed), fixed LR


def _member(lr: float, wd: float, seed: int, x: torch.Tensor, y: torch.Tensor):
    """One fixed-LR digits ConvNet run in float64 on ``x``'s device, set up as a solo run is."""
    torch.manual_seed(seed)
    model = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=2.0,
                        image_size=8).to(device=x.device, dtype=torch.float64)
    si, other = find_scale_invariant(model, x[:128], y[:128], F.cross_entropy)
    set_si_norm(si, 1.0)
    opt = make_optimizer("fixed-lr", si, lr=lr, weight_decay=wd, other_params=other or None)
    return model, opt, BatchSampler(x.shape[0], 128, seed=seed, device=x.device)


def pack_against_solo(device: str, steps: int = 200) -> dict:
    data = load_dataset("digits", device=device)
    x, y = data.train_x.double(), data.train_y
    solo = []
    for c in MEMBERS:
        model, opt, sampler = _member(*c, x, y)
        model.train()
        losses = []
        for _ in range(steps):
            idx = sampler.next()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        solo.append((model.state_dict(), losses))
    members = [_member(*c, x, y) for c in MEMBERS]
    stacked = StackedModel([m for m, _, _ in members]).train()
    runs = [SimpleNamespace(model=m, opt=o) for m, o, _ in members]
    groups = _optimizer_groups(stacked, runs)
    got_losses: list[list[float]] = [[] for _ in members]
    for _ in range(steps):
        idx = torch.stack([s.next() for _, _, s in members])
        stacked.zero_grad()
        out = stacked(x[idx])
        losses = torch.stack([F.cross_entropy(out[k], y[idx[k]]) for k in range(len(members))])
        losses.sum().backward()
        errors = _optimizer_steps(groups, runs)
        if any(e is not None for e in errors):
            raise RuntimeError(f"a member's step failed: {errors}")
        for k, v in enumerate(losses.tolist()):
            got_losses[k].append(v)
    weights = losses_rel = 0.0
    for (want, want_losses), (model, _, _), got in zip(solo, members, got_losses):
        state = model.state_dict()
        for key, w in want.items():
            scale = float(w.double().abs().max()) or 1.0
            weights = max(weights, float((state[key].double() - w.double()).abs().max()) / scale)
        losses_rel = max(losses_rel, max(abs(a - b) / abs(b) for a, b in zip(got, want_losses)))
    return {"members": len(MEMBERS), "steps": steps, "grouped": bool(stacked.grouped),
            "weights_rel_diff": weights, "losses_rel_diff": losses_rel, "ok": weights <= 1e-9}


def entropy_device_against_cpu(device: str, n: int = 1000, d: int = 6084) -> dict:
    gen = torch.Generator().manual_seed(0)
    steps = torch.randn(n, d, generator=gen, dtype=torch.float64)
    walk = torch.cumsum(0.05 * steps, dim=0) + torch.randn(d, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    here = sphere_entropy(walk, device=device, return_details=True, ordered=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    took = time.perf_counter() - t0
    t0 = time.perf_counter()
    cpu = sphere_entropy(walk, device="cpu", return_details=True, ordered=True)
    took_cpu = time.perf_counter() - t0
    diff = abs(float(here.value) - float(cpu.value))
    return {"n": n, "d": d, "value": float(here.value), "value_cpu": float(cpu.value), "abs_diff": diff,
            "stderr": float(here.stderr), "seconds": took, "seconds_cpu": took_cpu,
            "ok": math.isfinite(diff) and diff <= 1e-8 * max(1.0, abs(float(cpu.value)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=1000, help="steps of the 49-point timing")
    ap.add_argument("--out", type=Path, default=Path("device_check.json"))
    ap.add_argument("--no-timing", action="store_true", help="skip the 49-point timing")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available on this machine")
    result: dict = {"device": args.device, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    for name, check in (("pack_against_solo", pack_against_solo), ("entropy", entropy_device_against_cpu)):
        t0 = time.perf_counter()
        try:
            result[name] = check(args.device)
        except Exception as exc:  # report and go on to the next check
            result[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result[name]["wall_s"] = time.perf_counter() - t0
        print(name, json.dumps(result[name]), flush=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_timing:
        cmd = [sys.executable, str(Path(__file__).with_name("bench_batched.py")), "--data", "cifar-shaped",
               "--device", args.device, "--sizes", "49", "--steps", str(args.steps), "--solo-rows", "1",
               "--once", "--no-jobs2"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        result["timing"] = {"command": " ".join(cmd[1:]), "rc": proc.returncode, "wall_s": time.perf_counter() - t0,
                            "output": proc.stdout.strip().splitlines() + proc.stderr.strip().splitlines()[-5:]}
        print("\n".join(result["timing"]["output"]), flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
