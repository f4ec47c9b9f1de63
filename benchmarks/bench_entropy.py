"""Benchmark sphere_entropy on network-sized snapshot queues: N = 4000 snapshots, d = 10⁵.

Compares the chunked estimator (``sgdthermo.entropy.sphere_entropy``) with a naive baseline
measured in the same run: normalise the whole matrix in float64, ``torch.cdist`` on the full
N×N problem, minimum per row, same cap formula.  Prints times, their ratio, the peak memory of
each (resident set size above the level before the call on CPU; ``torch.cuda.max_memory_allocated``
on GPU) and the difference between the two estimates (the baseline's |a|²+|b|²−2ab cancellation)::

    python benchmarks/bench_entropy.py            # N = 4000, d = 100000 (~2 min on 2 cores)
    python benchmarks/bench_entropy.py --quick    # N = 2000, d = 20000
    python benchmarks/bench_entropy.py --methods cap angles --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgdthermo.entropy import log_cap_volume, sphere_entropy  # noqa: E402
from scipy.special import digamma  # noqa: E402


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Sample the resident set size every 5 ms; ``peak`` is the maximum above the start level."""

    def __enter__(self) -> "PeakRSS":
        self.start = _rss()
        self.max = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max = max(self.max, _rss())
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.max = max(self.max, _rss())

    @property
    def peak(self) -> int:
        return self.max - self.start


def measure(fn: Callable[[], float], device: torch.device) -> tuple[float, float, int]:
    """(value, seconds, peak bytes) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        v = fn()
        torch.cuda.synchronize()
        return v, time.perf_counter() - t0, torch.cuda.max_memory_allocated() - base
    with PeakRSS() as pk:
        t0 = time.perf_counter()
        v = fn()
        dt = time.perf_counter() - t0
    return v, dt, pk.peak


def naive_cap_entropy(x: np.ndarray, device: torch.device) -> float:
    """Baseline: whole matrix in float64 on the device, torch.cdist, min per row, cap formula."""
    u = torch.from_numpy(x).to(device=device, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    dm = torch.cdist(u, u)
    dm.fill_diagonal_(float("inf"))
    chord = dm.min(dim=1).values.cpu().numpy()
    del dm, u
    theta = 2 * np.arcsin(np.minimum(chord / 2, 1))
    n, d = x.shape
    return float(np.mean(log_cap_volume(theta, d)) + digamma(n) - digamma(1))


def snapshots(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Snapshot-like float32 data: a common direction plus isotropic spread (NN angle ≈ 0.25)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(d, dtype=np.float32)
    mu /= np.linalg.norm(mu)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x *= np.float32(0.25 / np.sqrt(d))
    x += mu
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 2000, d = 20000")
    ap.add_argument("-n", type=int, default=None, help="number of snapshots (default 4000)")
    ap.add_argument("-d", type=int, default=None, help="dimension (default 100000)")
    ap.add_argument("--methods", nargs="+", default=["cap"], help="estimators to time")
    ap.add_argument("--device", action="append", default=None,
                    help="device(s) to run on (default: cpu, plus cuda when available)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    args = ap.parse_args(argv)
    n = args.n or (2000 if args.quick else 4000)
    d = args.d or (20_000 if args.quick else 100_000)
    devices = [torch.device(s) for s in (args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])))]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"devices: {', '.join(str(s) for s in devices)}")
    t0 = time.perf_counter()
    x = snapshots(n, d)
    print(f"data: N = {n} snapshots, d = {d}, float32 ({x.nbytes / 2**20:.0f} MiB), "
          f"generated in {time.perf_counter() - t0:.1f} s")

    for dev in devices:
        print(f"\n== device {dev} ==")
        if dev.type == "cuda":  # warm-up (context creation, kernels)
            sphere_entropy(x[:64, :1000], device=dev)
        results = {}
        for m in args.methods:
            v, dt, mem = measure(lambda: sphere_entropy(x, m, device=dev), dev)
            results[m] = (v, dt, mem)
            print(f"sphere_entropy(method={m!r:10}) = {v:.6f}   time {dt:7.2f} s   peak extra memory {mem / 2**20:8.0f} MiB")
        if not args.no_baseline:
            v0, dt0, mem0 = measure(lambda: naive_cap_entropy(x, dev), dev)
            print(f"naive baseline (float64 cdist)   = {v0:.6f}   time {dt0:7.2f} s   peak extra memory {mem0 / 2**20:8.0f} MiB")
            if "cap" in results:
                v, dt, mem = results["cap"]
                print(f"speed-up cap vs baseline: {dt0 / dt:.2f}x;  memory ratio baseline/cap: {mem0 / max(mem, 1):.1f}x;"
                      f"  |cap − baseline| = {abs(v - v0):.3g} nats (baseline cancellation error)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
