"""Training with measurement: the CLI on digits, resumption, divergence, the noise estimator."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.cli import main
from sgdthermo.nn import TrainConfig, train
from sgdthermo.nn.measure import gradient_noise, log_schedule

FAST = dict(model="mlp", width=16, dataset="synthetic", protocol="fixed-elr", lr=0.02, wd=0.01,
            iters=300, log_every=50, checkpoint_every=100, noise_batches=4, queue_size=10,
            queue_every=10, batch_size=64)


def test_queue_correlation_is_recorded(tmp_path):
    """Every entropy estimate logs the queue's correlation; the summary carries the last one
    and the verdict (a 10-snapshot queue every 10 steps of a slowly turning MLP is correlated)."""
    train(TrainConfig(**FAST), tmp_path / "r", log=lambda m: None)
    m = pd.read_csv(tmp_path / "r" / "metrics.csv")
    est = m.dropna(subset=["S_sphere"])
    assert len(est) and est[["queue_tau", "queue_n_eff", "queue_nn_lag"]].notna().all().all()
    assert m.loc[m["S_sphere"].isna(), "queue_tau"].isna().all()
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["queue_tau"] == pytest.approx(est["queue_tau"].iloc[-1])
    assert s["queue_n_eff"] == pytest.approx(10 / (2 * s["queue_tau"]))
    assert s["entropy_ok"] is False and "raise --queue-every" in s["entropy_note"]


def test_log_schedule():
    s = log_schedule(30_000, every=200, linear_until=10_000, per_decade=20)
    assert s[:3] == [200, 400, 600] and 10_000 in s and s[-1] == 30_000
    assert all(b > a for a, b in zip(s, s[1:]))
    assert log_schedule(50, every=200) == [50]


def test_gradient_noise_against_brute_force():
    """tr Σ and ‖∇L‖² from K random minibatches vs the exact values over all batches.

    With 5 samples and batch size 2 drawn with replacement there are 25 equally likely
    ordered batches: the exact mean gradient and covariance trace are plain averages over
    them. The estimator from K = 400 random batches must agree within 4 of its standard
    errors (the trace's error is reported; the mean gradient's is sqrt(tr Σ / K)).
    """
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    y = torch.tensor([0, 1, 0, 1, 1])
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4, affine=False), nn.ReLU(),
                          nn.Linear(4, 2, bias=False))
    params = [model[0].weight]
    all_b = [torch.tensor([i, j]) for i in range(5) for j in range(5)]
    grads = []
    for b in all_b:
        model.zero_grad()
        F.cross_entropy(model(x[b]), y[b]).backward()
        grads.append(model[0].weight.grad.reshape(-1).double().clone())
    G = torch.stack(grads)
    mean = G.mean(0)
    exact_trace = float(((G - mean) ** 2).sum(1).mean())
    exact_gsq = float((mean**2).sum())
    gen = torch.Generator().manual_seed(1)
    K = 400
    batches = [torch.randint(0, 5, (2,), generator=gen) for _ in range(K)]
    running = [b.clone() for b in model[1].buffers()]
    est = gradient_noise(model, params, F.cross_entropy, x, y, batches)
    assert abs(est["trace_cov"] - exact_trace) < 4 * est["trace_cov_err"]
    assert abs(est["grad_sq"] - exact_gsq) < 4 * math.sqrt(exact_trace / K) * 2 * math.sqrt(exact_gsq) + 4 * exact_trace / K
    # BatchNorm running statistics untouched
    for a, b in zip(running, model[1].buffers()):
        assert torch.equal(a, b)


def test_cli_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "convnet", "--dataset", "digits", "--protocol", "fixed-lr",
                 "--lr", "0.1", "--wd", "0.01", "--iters", "400", "--log-every", "100",
                 "--noise-batches", "4", "--queue-size", "10", "--queue-every", "20",
                 "--checkpoint-every", "200", "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["head_norm"] == 2.0 and cfg["width"] == 4 and cfg["d"] > 1000
    m = pd.read_csv(out / "metrics.csv")
    need = {"step", "train_loss", "train_acc", "test_loss", "test_acc", "rho", "grad_norm", "trace_cov",
            "sigma2", "T", "S_sphere", "S", "elr", "snr", "grad_sq_unit"}
    assert need <= set(m.columns)
    assert m["step"].tolist() == [100, 200, 300, 400]
    assert m["S_sphere"].notna().sum() >= 1  # the queue (10 x 20 steps) refills twice
    s = json.loads((out / "summary.json").read_text())
    for k in ("status", "stationary", "d", "sigma2", "rho", "T", "S", "rho_err", "sigma2_err",
              "rho_theory", "rho_theory_discrete"):
        assert k in s
    assert s["status"] == "completed"
    assert (out / "curves.png").stat().st_size > 1000
    # a finished run is not overwritten without --force
    code = main(["train", "--model", "convnet", "--dataset", "digits", "--protocol", "fixed-lr",
                 "--lr", "0.1", "--wd", "0.01", "--iters", "400", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--force" in err


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = train(TrainConfig(**FAST), tmp_path / "full", log=lambda m: None)
    cfg = TrainConfig(**FAST)
    part = train(cfg, tmp_path / "part", log=lambda m: None, stop_after=200)
    assert part["status"] == "stopped"
    resumed = train(cfg, tmp_path / "part", resume=True, log=lambda m: None)
    a = pd.read_csv(tmp_path / "full" / "metrics.csv")
    b = pd.read_csv(tmp_path / "part" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for k in ("rho", "sigma2", "T", "S", "train_loss"):
        assert full[k] == resumed[k] or (full[k] is None and resumed[k] is None)


def test_measurement_does_not_change_training(tmp_path):
    """Measuring uses its own random stream and restores BatchNorm statistics."""
    train(TrainConfig(**{**FAST, "noise_batches": 2}), tmp_path / "a", log=lambda m: None)
    train(TrainConfig(**{**FAST, "noise_batches": 6}), tmp_path / "b", log=lambda m: None)
    ma = pd.read_csv(tmp_path / "a" / "metrics.csv")
    mb = pd.read_csv(tmp_path / "b" / "metrics.csv")
    np.testing.assert_array_equal(ma["rho"], mb["rho"])
    np.testing.assert_array_equal(ma["batch_loss"], mb["batch_loss"])


def test_sigkill_and_resume_matches(tmp_path):
    """Kill the CLI with SIGKILL after its first checkpoint; --resume must finish identically."""
    args = ["--model", "mlp", "--width", "16", "--dataset", "synthetic", "--protocol", "fixed-lr",
            "--lr", "0.05", "--wd", "0.01", "--iters", "3000", "--log-every", "100",
            "--noise-batches", "3", "--queue-size", "10", "--queue-every", "50",
            "--checkpoint-every", "300", "--batch-size", "64"]
    # every process with the same thread count, so that the arithmetic is the same
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(*extra):
        return [sys.executable, "-m", "sgdthermo", "train", *args, *extra]

    ref = tmp_path / "ref"
    assert subprocess.run(cli("--out", str(ref)), env=env, capture_output=True).returncode == 0
    run = tmp_path / "run"
    proc = subprocess.Popen(cli("--out", str(run)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_early = not (run / "summary.json").exists()
    r = subprocess.run(cli("--resume", "--out", str(run)), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert killed_early, "the run finished before it could be killed; make it longer"
    pd.testing.assert_frame_equal(pd.read_csv(ref / "metrics.csv"), pd.read_csv(run / "metrics.csv"))


def test_divergence_is_reported(tmp_path, capsys):
    out = tmp_path / "div"
    code = main(["train", "--model", "mlp", "--width", "16", "--dataset", "synthetic",
                 "--protocol", "fixed-lr", "--lr", "1e4", "--wd", "1.0", "--iters", "500",
                 "--log-every", "100", "--noise-batches", "2", "--queue-size", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "diverged" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "diverged" and "non-finite" in s["message"] and s["stationary"] is False


@pytest.mark.parametrize("args,match", [
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--protocol", "adam"], "unknown protocol 'adam'"),
    (["--lr", "nan"], "--lr nan"),
    (["--lr", "-1"], "--lr -1"),
    (["--wd", "inf"], "--wd inf"),
    (["--wd", "0"], "--wd 0"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--dataset", "cifar10"], "--data-dir"),
    (["--iters", "0"], "--iters 0"),
    (["--threads", "0"], "--threads 0"),
    (["--threads", "1000000"], "--threads 1000000: at most 1024"),
])
def test_bad_input(tmp_path, capsys, args, match):
    base = {"--model": "convnet", "--dataset": "digits", "--protocol": "fixed-lr", "--lr": "0.1",
            "--wd": "0.01", "--iters": "100"}
    it = iter(args)
    for k in it:
        base[k] = next(it)
    flat = [v for kv in base.items() for v in kv]
    out = tmp_path / "never"
    code = main(["train", *flat, "--out", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and match in lines[0], err
    assert not out.exists()


def _metrics(n, loss, cov, rho, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1) * 200
    noise = lambda s: 1 + s * rng.standard_normal(n)  # noqa: E731
    return pd.DataFrame({
        "step": steps, "train_loss": loss * noise(0.01), "batch_loss": loss * noise(0.01),
        "test_loss": loss * noise(0.01), "train_acc": np.full(n, 0.99), "test_acc": np.full(n, 0.95),
        "rho_mean": rho * noise(0.005), "rho2_mean": (rho * noise(0.005)) ** 2, "rho": rho,
        "sigma2": cov * rho**2 / 1000 * noise(0.05), "trace_cov": cov * noise(0.05),
        "grad_sq": np.full(n, 0.1), "grad_sq_unit": cov * rho**2 * noise(0.02), "elr": np.full(n, 0.01),
        "T": np.full(n, 1e-6), "snr": np.full(n, 0.5), "S_sphere": np.nan, "S_sphere_err": np.nan, "S": np.nan,
    })


def test_summary_flags_interpolation_and_accepts_settled_runs():
    from sgdthermo.nn.training import summarize

    cfg = TrainConfig(protocol="fixed-elr", lr=0.01, wd=0.01).resolved()
    n = 60
    settled = summarize(_metrics(n, np.full(n, 0.2), np.full(n, 1.0), np.full(n, 1.5)), cfg, 1001)
    assert settled["stationary"] and not settled["interpolating"]
    # the paper's Appendix H: loss and gradient noise keep falling, the radius shrinks
    t = np.linspace(0, 1, n)
    interp = summarize(_metrics(n, 0.2 * np.exp(-4 * t), np.exp(-4 * t), 1.5 * np.exp(-0.3 * t)), cfg, 1001)
    assert interp["interpolating"] and not interp["stationary"]
    assert "interpolation" in interp["reason"]
    # a radius still relaxing is not stationary either, but not interpolation
    drift = summarize(_metrics(n, np.full(n, 0.2), np.full(n, 1.0), 1.5 + 0.5 * t), cfg, 1001)
    assert not drift["stationary"] and not drift["interpolating"]


def test_unknown_entropy_method_is_rejected_by_the_config():
    with pytest.raises(ValueError, match="--entropy-method 'knn9'"):
        TrainConfig(protocol="fixed-lr", lr=0.1, wd=0.01, entropy_method="knn9").resolved().validate()


# ---------------------------------------------------------------------------------------
# Refused resumes change nothing; checkpoints are checked before they are used
# ---------------------------------------------------------------------------------------
def _files(folder):
    """Every file under ``folder`` with its bytes: what a refused command must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


_FAST_FLAGS = ["--model", "mlp", "--width", "16", "--dataset", "synthetic", "--protocol", "fixed-elr",
               "--wd", "0.01", "--iters", "300", "--log-every", "50", "--checkpoint-every", "100",
               "--noise-batches", "4", "--queue-size", "10", "--queue-every", "10", "--batch-size", "64"]


@pytest.fixture
def stopped_run(tmp_path):
    """A run stopped after its checkpoint at step 200 of 300 (lr 0.02)."""
    out = tmp_path / "r"
    assert train(TrainConfig(**FAST), out, log=lambda m: None, stop_after=200)["status"] == "stopped"
    return out


def test_refused_resume_writes_nothing(stopped_run, capsys):
    """Resuming with another lr is refused, names the setting, and leaves config.json (and
    every other file) as it was, so the folder still describes the run it holds."""
    before = _files(stopped_run)
    code = main(["train", *_FAST_FLAGS, "--lr", "0.03", "--resume", "--out", str(stopped_run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lr=0.02 (now 0.03)" in err[0], err
    assert _files(stopped_run) == before
    assert json.loads((stopped_run / "config.json").read_text())["lr"] == 0.02
    # the same resume with the run's own settings goes on
    assert main(["train", *_FAST_FLAGS, "--lr", "0.02", "--resume", "--out", str(stopped_run)]) == 0


def test_resume_with_another_thread_count_is_refused(stopped_run):
    from sgdthermo.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"threads=1 \(now 2\)"):
        train(TrainConfig(**FAST, threads=2), stopped_run, resume=True, log=lambda m: None)


@pytest.mark.parametrize("change,why", [
    ({"step": 10**6}, "step 1000000 outside [0, 300]"),
    ({"step": -50}, "step -50 outside [0, 300]"),
    ({"step": 250}, "step 250 but 200 batches drawn"),
    ({"step": 300, "sampler_steps": 300}, "metrics logged up to step 200"),
])
def test_impossible_checkpoint_step_is_refused(stopped_run, change, why):
    """A checkpoint whose step cannot be right (outside the run, not the number of batches
    its sampler drew, or not matching its metrics) is refused, never run to 'completed'."""
    from sgdthermo.errors import CheckpointError

    path = stopped_run / "checkpoint.pt"
    ck = torch.load(path, weights_only=True)
    ck["step"] = change["step"]
    if "sampler_steps" in change:
        ck["sampler"]["steps"] = change["sampler_steps"]
    torch.save(ck, path)
    before = _files(stopped_run)
    with pytest.raises(CheckpointError, match="impossible checkpoint") as err:
        train(TrainConfig(**FAST), stopped_run, resume=True, log=lambda m: None)
    assert why in str(err.value) and str(path) in str(err.value)
    assert _files(stopped_run) == before


@pytest.mark.parametrize("content", ["empty", "truncated", "garbage", "list", "dict"])
def test_unreadable_checkpoint_gives_one_line(stopped_run, capsys, content):
    path = stopped_run / "checkpoint.pt"
    data = path.read_bytes()
    if content == "empty":
        path.write_bytes(b"")
    elif content == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif content == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "list":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"step": 200, "model": {}}, path)
    before = _files(stopped_run)
    code = main(["train", *_FAST_FLAGS, "--lr", "0.02", "--resume", "--out", str(stopped_run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "--force" in err[0], err
    assert _files(stopped_run) == before


def test_train_out_that_is_a_file_gives_one_line(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    code = main(["train", *_FAST_FLAGS, "--lr", "0.02", "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a folder" in err[0]
    assert target.read_text() == "keep"


def test_a_run_being_trained_elsewhere_is_refused(stopped_run, capsys):
    """Two trainers on one folder: the second is refused with the first's pid, and writes nothing."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from sgdthermo.nn.training import run_lock\n"
        f"with run_lock(__import__('pathlib').Path({str(stopped_run)!r})):\n"
        "    print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _files(stopped_run)
        code = main(["train", *_FAST_FLAGS, "--lr", "0.02", "--resume", "--out", str(stopped_run)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and f"being trained by another process (pid {holder.pid})" in err[-1], err
        assert _files(stopped_run) == before
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", *_FAST_FLAGS, "--lr", "0.02", "--resume", "--out", str(stopped_run)]) == 0


def test_freed_memory_is_retained_where_the_c_library_allows():
    """glibc takes both mallopt settings (mallopt returns 1); elsewhere the call is a no-op
    that says so. Repeated calls do nothing more and give the same answer."""
    import platform

    from sgdthermo.nn.training import retain_freed_memory

    first = retain_freed_memory()
    assert retain_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
