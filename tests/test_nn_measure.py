"""Tests of sgdthermo.nn.measure: the log schedule, the BatchNorm-aware gradient-noise
estimator and the Measurement that attaches to a training loop (README example, digits)."""

from __future__ import annotations

import copy
import io
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.nn.data import BatchSampler, load_dataset
from sgdthermo.nn.measure import (
    EntropyQueue,
    MeasureConfig,
    Measurement,
    gradient_noise,
    log_schedule,
    push_together,
)
from sgdthermo.nn.models import build_model, find_scale_invariant, set_si_norm, si_norm
from sgdthermo.nn.optim import make_optimizer

LR, WD = 0.02, 0.01  # fixed-elr: η̃ and λ of the README example


# ---------------------------------------------------------------------------- log_schedule


@pytest.mark.parametrize("iters,every,linear_until,per_decade", [
    (5_000, 100, 1_000, 10),
    (30_000, 200, 10_000, 20),
    (1_050, 100, 10_000, 20),   # last step not a multiple of `every`
    (1_000, 100, 1_000, 5),     # iters == linear_until: no log part
    (50, 200, 10_000, 20),      # fewer steps than `every`
    (12_345, 300, 2_000, 7),
])
def test_log_schedule_shape(iters, every, linear_until, per_decade):
    s = log_schedule(iters, every=every, linear_until=linear_until, per_decade=per_decade)
    assert all(isinstance(v, int) for v in s)
    assert all(b > a for a, b in itertools.pairwise(s))  # sorted, no duplicates
    assert 0 < s[0] and s[-1] == iters  # within (0, iters], the last step always included
    # the linear part: every `every` steps, exactly, up to min(iters, linear_until)
    lin = list(range(every, min(iters, linear_until) + 1, every))
    log_part = [v for v in s if v >= linear_until]
    if iters <= linear_until:
        assert s == sorted(set(lin) | {iters})
    else:
        assert [v for v in s if v <= linear_until] == sorted(set(lin) | {linear_until})
        assert log_part[0] == linear_until and log_part[-1] == iters
        ratios = np.diff(np.log10(log_part))
        # log-spaced: equal ratios up to the rounding of the steps to integers
        # (relative error 0.5/linear_until per step, both ends)
        tol = 2 * 0.5 / linear_until / math.log(10)
        assert np.ptp(ratios) <= 2 * tol
        # at least per_decade steps per decade
        assert ratios.max() <= 1.0 / per_decade + tol


def test_log_schedule_examples():
    assert log_schedule(50, every=200) == [50]
    assert log_schedule(1_050, every=100, linear_until=10_000) == [100 * i for i in range(1, 11)] + [1_050]
    s = log_schedule(5_000, every=100, linear_until=1_000, per_decade=10)
    # ceil(10 log10 5) + 1 = 8 log points from 1000 to 5000, the first one shared with the linear part
    assert s[:10] == list(range(100, 1_001, 100)) and len(s) == 10 + 7
    assert s[-1] == 5_000


# ---------------------------------------------------------------------------- gradient_noise


def _tiny_bn_model(seed: int = 0) -> nn.Module:
    """Linear → BN(affine=False) → ReLU → Linear → BN(affine) → ReLU → frozen head."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6, bias=False), nn.BatchNorm1d(6, affine=False), nn.ReLU(),
                          nn.Linear(6, 4, bias=False), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.Linear(4, 3, bias=False))
    model[6].weight.requires_grad_(False)
    return model


def _independent_grads(model, x, y, batches):
    """K flat float64 gradients, each from a fresh copy of the model in train mode."""
    out = []
    for idx in batches:
        m = copy.deepcopy(model).train()
        ps = [p for p in m.parameters() if p.requires_grad]
        gs = torch.autograd.grad(F.cross_entropy(m(x[idx]), y[idx]), ps)
        out.append(np.concatenate([g.detach().double().numpy().ravel() for g in gs]))
    return np.stack(out)


@pytest.mark.parametrize("K", [2, 3, 7])
def test_gradient_noise_matches_independent_gradients(K):
    model = _tiny_bn_model()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    # non-trivial running statistics, then eval mode: the estimator must still use train mode
    with torch.no_grad():
        for _ in range(3):
            model(x[torch.randint(0, 40, (16,), generator=gen)])
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 4  # two Linear weights, BN(4)'s affine weight and bias
    batches = [torch.randint(0, 40, (8,), generator=gen) for _ in range(K)]

    G = _independent_grads(model, x, y, batches)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    for p in params:  # stale gradients must not leak into the first minibatch gradient
        p.grad = torch.ones_like(p)

    est = gradient_noise(model, params, F.cross_entropy, x, y, batches)

    trace = float(np.var(G, axis=0, ddof=1).sum())
    mean = G.mean(0)
    # the same float32 gradients reduced in float64 in another order: ~1e-15 relative
    assert est["trace_cov"] == pytest.approx(trace, rel=1e-10)
    assert est["grad_sq"] == pytest.approx(float(mean @ mean) - trace / K, rel=1e-10, abs=1e-12)
    assert est["grad_norm"] == pytest.approx(math.sqrt(max(est["grad_sq"], 0.0)), rel=1e-12)
    pieces = ((G - mean) ** 2).sum(1) * K / (K - 1)
    assert est["trace_cov_err"] == pytest.approx(pieces.std(ddof=1) / math.sqrt(K), rel=1e-10)
    # BatchNorm running statistics (and every other buffer and weight) unchanged
    after = model.state_dict()
    assert after.keys() == buffers.keys()
    for k, v in buffers.items():
        assert torch.equal(after[k], v), k
    assert not model.training  # the caller's mode is restored
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in params)  # .grad left as it was


def test_gradient_noise_restores_train_mode_and_running_stats_after_train_mode_call():
    model = _tiny_bn_model(1).train()
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    params = [p for p in model.parameters() if p.requires_grad]
    bn = model[1]
    mean0, var0, n0 = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    gradient_noise(model, params, F.cross_entropy, x, y, [torch.arange(0, 10), torch.arange(10, 20)])
    assert model.training
    assert torch.equal(bn.running_mean, mean0) and torch.equal(bn.running_var, var0)
    assert int(bn.num_batches_tracked) == n0


@pytest.mark.parametrize("K", [0, 1])
def test_gradient_noise_needs_two_batches(K):
    model = _tiny_bn_model()
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    params = [p for p in model.parameters() if p.requires_grad]
    with pytest.raises(ValueError, match="at least 2"):
        gradient_noise(model, params, F.cross_entropy, x, y, [torch.arange(5)] * K)


# ---------------------------------------------------------------------------- Measurement


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


class Run:
    """The README loop on digits: ConvNet k=2, fixed ELR, a Measurement attached."""

    def __init__(self, data, *, queue_size=3, queue_every=2, noise_batches=2, seed=0):
        torch.manual_seed(seed)
        self.data = data
        self.model = build_model("convnet", in_channels=1, num_classes=10, width=2, head_norm=2.0)
        self.si, other = find_scale_invariant(self.model, data.train_x[:128], data.train_y[:128],
                                              F.cross_entropy)
        assert other == []
        set_si_norm(self.si, 1.0)
        self.opt = make_optimizer("fixed-elr", self.si, lr=LR, weight_decay=WD)
        self.cfg = MeasureConfig(queue_size=queue_size, queue_every=queue_every,
                                 noise_batches=noise_batches, batch_size=64)
        self.meas = Measurement(self.model, self.si, self.opt, F.cross_entropy, data, self.cfg)
        self.sampler = BatchSampler(data.train_x.shape[0], 64, seed=seed)
        self.step_no = 0
        self.history: list[dict] = []  # per step: the optimizer's last_step and the batch loss

    def step(self) -> None:
        self.step_no += 1
        idx = self.sampler.next()
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(self.data.train_x[idx]), self.data.train_y[idx])
        loss.backward()
        self.opt.step()
        self.meas.after_step(self.step_no, loss.item())
        self.history.append({**self.opt.last_step, "batch_loss": loss.item(),
                             "rho_after": float(torch.cat([p.detach().reshape(-1).double() for p in self.si]).norm())})

    def flat_si(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.si])

    def state(self) -> dict:
        """A checkpoint as the training loop writes one, through torch.save / weights_only load."""
        buf = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                    "sampler": self.sampler.state_dict(), "meas": self.meas.state_dict(),
                    "step": self.step_no}, buf)
        buf.seek(0)
        return torch.load(buf, weights_only=True)

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sampler.load_state_dict(state["sampler"])
        self.meas.load_state_dict(state["meas"])
        self.step_no = int(state["step"])


def _same_row(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, va in a.items():
        vb = b[k]
        assert va == vb or (math.isnan(va) and math.isnan(vb)), (k, va, vb)


def test_after_step_accumulates_interval_means(digits):
    run = Run(digits, queue_size=50, queue_every=5)
    for _ in range(7):
        run.step()
    assert run.meas.acc["n"] == 7
    first = run.meas.log(7)
    for _ in range(5):
        run.step()
    second = run.meas.log(12)
    for row, hist in ((first, run.history[:7]), (second, run.history[7:])):
        rho = [h["rho_after"] for h in hist]  # the radius after each step
        # float64 norms of the float32 weights, summed in another order: a few ulps
        assert row["rho_mean"] == pytest.approx(math.fsum(rho) / len(rho), rel=1e-12)
        assert row["rho2_mean"] == pytest.approx(math.fsum(r * r for r in rho) / len(rho), rel=1e-12)
        gsu = [h["grad_sq_unit"] for h in hist]
        # the thermometer reduces the float32 gradient in float32 (the optimizer in float64): ~1e-7
        assert row["grad_sq_unit"] == pytest.approx(math.fsum(gsu) / len(gsu), rel=1e-6)
        bl = [h["batch_loss"] for h in hist]
        assert row["batch_loss"] == pytest.approx(math.fsum(bl) / len(bl), rel=1e-12)
    # the second interval's means are not polluted by the first one's steps
    rho_all = [h["rho_after"] for h in run.history]
    assert second["rho_mean"] != pytest.approx(math.fsum(rho_all) / len(rho_all), rel=1e-9)
    # rho is the norm now, not the interval mean; the ELR is the hyperparameter
    assert second["rho"] == pytest.approx(float(si_norm(run.si)), rel=1e-6)  # float32 vs float64 norm
    assert second["rho"] != second["rho_mean"]
    assert second["elr"] == pytest.approx(LR, rel=1e-12)
    assert run.meas.acc["n"] == 0  # reset after the log point


def test_queue_fills_in_ring_order(digits):
    run = Run(digits, queue_size=3, queue_every=2)
    d = run.meas.d
    q = run.meas.queue
    assert d == sum(p.numel() for p in run.si) and q.data.shape == (3, d)
    assert run.meas.queue_bytes == 3 * d * 4  # float32
    snaps = {}
    for _ in range(10):
        run.step()
        n = run.step_no
        assert q.valid == min(3, n // 2)  # a snapshot exactly every queue_every steps
        if n % 2 == 0:
            snaps[n] = run.flat_si().clone()
            slot = (n // 2 - 1) % 3
            assert torch.equal(q.data[slot], snaps[n]) and int(q.step[slot]) == n
    # 5 snapshots in 3 slots: steps 8, 10 overwrote slots 0, 1; slot 2 still holds step 6
    assert torch.equal(q.data[0], snaps[8]) and torch.equal(q.data[1], snaps[10]) and torch.equal(q.data[2], snaps[6])
    expect_rho = torch.stack([snaps[s].double().norm() for s in (8, 10, 6)])
    assert torch.equal(q.rho, expect_rho)
    # time order, oldest first
    assert torch.equal(q.ordered(), torch.stack([snaps[s] for s in (6, 8, 10)]).double())


def test_auto_queue_spaces_snapshots_by_the_measured_correlation():
    """``queue_every="auto"``: a queue fed an AR(1) sequence of directions with correlation time
    τ = (1+φ)/(2(1−φ)) = 9.5 steps (φ = 0.9) raises its stride from 1 to a power of two ≥ 2τ, keeps
    only the snapshots on the new stride, and ends with nearly independent snapshots; the stride
    stops at ``max_stride`` with a note when the window is too short."""
    from sgdthermo.nn.measure import EntropyQueue
    from sgdthermo.stats import autocorr_time

    d, phi = 50, 0.9
    rng = np.random.default_rng(3)
    x = np.zeros(d)
    x[0] = 20.0
    steps = {}

    def feed(q, n):
        nonlocal x
        for t in range(1, n + 1):
            x = phi * x + np.sqrt(1 - phi**2) * rng.normal(size=d)
            x[0] = 20.0
            w = torch.tensor(x)
            steps[t] = w
            if q.wants(t):
                q.push(t, [w])
            if t % 500 == 0:
                q.adapt()

    q = EntropyQueue(200, d, stride="auto", dtype=torch.float64, device=torch.device("cpu"))
    feed(q, 12_000)
    assert q.stride in (32, 64) and q.note == ""  # 2τ = 19 asks for ≥ 19; τ is measured with noise
    held = q.step[q.order()].numpy()
    assert np.all(held % q.stride == 0) and np.all(np.diff(held) == q.stride)
    assert torch.equal(q.ordered(), torch.stack([steps[int(t)] for t in held]))
    # the held snapshots are nearly independent (τ = ½ when independent)
    assert float(np.max(autocorr_time(q.proj[q.order()].T.numpy()))) < 1.0
    capped = EntropyQueue(200, d, stride="auto", dtype=torch.float64, device=torch.device("cpu"), max_stride=4)
    x[:] = 0.0
    feed(capped, 3000)
    assert capped.stride == 4 and "do not fit the stationary window" in capped.note


def test_entropy_only_after_a_complete_refill(digits):
    run = Run(digits, queue_size=3, queue_every=2)
    finite = {}
    for step in range(1, 15):
        run.step()
        if step % 2 == 0 and step >= 4:
            row = run.meas.log(step)
            finite[step] = math.isfinite(row["S_sphere"])
            assert math.isfinite(row["S"]) == finite[step] == math.isfinite(row["S_sphere_err"])
            if finite[step]:
                # S = S_u + (d−1) log ρ̄, ρ̄ the mean norm of the queued snapshots
                rho_q = float(run.meas.queue.rho.mean())
                # float64 arithmetic on a value of magnitude ~d: a few ulps
                assert row["S"] == pytest.approx(row["S_sphere"] + (run.meas.d - 1) * math.log(rho_q),
                                                 rel=1e-12)
    # snapshots at 2, 4, ...: full (3) at step 6, refilled completely again at step 12
    assert finite == {4: False, 6: True, 8: False, 10: False, 12: True, 14: False}


def test_row_keys_and_relations(digits):
    run = Run(digits, queue_size=3, queue_every=2, noise_batches=3)
    for _ in range(6):
        run.step()
    was = copy.deepcopy(run.model.state_dict())
    row = run.meas.log(6)
    documented = {"step", "train_loss", "train_acc", "test_loss", "test_acc", "batch_loss", "rho",
                  "rho_mean", "rho2_mean", "elr", "grad_sq_unit", "grad_sq", "grad_norm", "trace_cov",
                  "trace_cov_err", "trace_cov_unit", "sigma2", "snr", "T", "S_sphere", "S_sphere_err", "S"}
    assert documented <= row.keys()
    assert "norm_excess" not in row  # fixed sphere only
    assert row["step"] == 6
    assert all(math.isfinite(row[k]) for k in documented)
    d, rho = run.meas.d, row["rho"]
    # float64 products of the same numbers: rounding only
    assert row["trace_cov_unit"] == pytest.approx(rho**2 * row["trace_cov"], rel=1e-12)
    assert row["sigma2"] == pytest.approx(rho**2 * row["trace_cov"] / (d - 1), rel=1e-12)
    assert row["T"] == pytest.approx(LR * row["sigma2"] / 2, rel=1e-12)  # fixed ELR: T = η̃σ²/2
    assert row["snr"] == pytest.approx(row["grad_sq"] / row["trace_cov"], rel=1e-12)
    assert row["trace_cov"] > 0 and 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1
    # train/test loss: eval mode (running statistics) over the whole set
    m = copy.deepcopy(run.model).eval()
    with torch.no_grad():
        tl = float(F.cross_entropy(m(digits.train_x), digits.train_y))
        acc = float((m(digits.test_x).argmax(1) == digits.test_y).double().mean())
    # batched float32 sums vs one float32 mean over 1347 samples
    assert row["train_loss"] == pytest.approx(tl, rel=1e-5)
    assert row["test_acc"] == pytest.approx(acc, abs=1e-12)  # the same 450 argmaxes counted
    # logging leaves the model as it was: train mode, same weights and running statistics
    assert run.model.training
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, was[k]), k


def test_state_dict_round_trip_gives_the_same_next_rows(digits):
    a = Run(digits, queue_size=3, queue_every=2)
    for _ in range(6):
        a.step()
    assert math.isfinite(a.meas.log(6)["S_sphere"])  # an entropy estimate before the checkpoint
    for _ in range(2):
        a.step()  # half an interval accumulated at the checkpoint
    ckpt = a.state()

    b = Run(digits, queue_size=3, queue_every=2, seed=1)  # other weights, batches and queue
    b.restore(ckpt)
    rows = {"a": [], "b": []}
    for name, run in (("a", a), ("b", b)):
        for step in range(9, 15):
            run.step()
            if step % 2 == 0:
                rows[name].append(run.meas.log(step))
    for ra, rb in zip(rows["a"], rows["b"]):
        _same_row(ra, rb)
    # the rows exercise every part of the state: the interval means (acc), the noise batches
    # (generator), the queue contents and counters (S_sphere NaN at 10, finite at 12)
    assert [math.isfinite(r["S_sphere"]) for r in rows["a"]] == [False, True, False]

    # a fresh Measurement without the state gives other rows
    c = Run(digits, queue_size=3, queue_every=2)
    c.restore({**ckpt, "meas": c.meas.state_dict()})
    for _ in range(9, 11):
        c.step()
    row_c = c.meas.log(10)
    assert row_c["rho_mean"] != rows["a"][0]["rho_mean"]
    assert row_c["trace_cov"] != rows["a"][0]["trace_cov"]


def test_state_dict_restores_into_a_fresh_measurement(digits):
    for every in (1, "auto"):
        a = Run(digits, queue_size=4, queue_every=every)
        for _ in range(5):
            a.step()
        state = a.state()["meas"]
        fresh = Measurement(a.model, a.si, a.opt, F.cross_entropy, digits, a.cfg)
        fresh.load_state_dict(state)
        qa, qf = a.meas.queue, fresh.queue
        assert qf.valid == 4 and fresh.acc == a.meas.acc
        assert (qf.stride, qf.head, qf.last_estimate_step) == (qa.stride, qa.head, qa.last_estimate_step)
        for key in ("data", "rho", "step", "proj"):
            assert torch.equal(getattr(qf, key), getattr(qa, key))
        _same_row(a.meas.log(5), fresh.log(5))


def test_measuring_does_not_change_the_trajectory(digits):
    quiet = Run(digits, queue_size=3, queue_every=2, noise_batches=3)
    loud = Run(digits, queue_size=3, queue_every=2, noise_batches=3)
    logged = 0
    for step in range(1, 31):
        quiet.step()
        loud.step()
        if step % 10 == 0:
            loud.meas.log(step)
            logged += 1
    assert logged == 3
    sa, sb = quiet.model.state_dict(), loud.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:  # weights and BatchNorm running statistics, bit for bit
        assert torch.equal(sa[k], sb[k]), k
    assert [h["rho"] for h in quiet.history] == [h["rho"] for h in loud.history]
    # and the runs did move: the comparison is not between two untouched initialisations
    torch.manual_seed(0)
    init = build_model("convnet", in_channels=1, num_classes=10, width=2, head_norm=2.0)
    assert not torch.equal(init.features[0].weight * (1 / init.features[0].weight.norm()),
                           sa["features.0.weight"] * (1 / sa["features.0.weight"].norm()))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_queues_pushed_together_hold_what_each_push_holds(dtype):
    """Five queues (auto strides of two seeds, one fixed stride) fed the same snapshots one
    by one and together: the same stored rows, steps and slots; radii and projections to
    rounding (another order of summation: rel 1e-12), over more pushes than slots."""
    d = 300
    seeds = [0, 0, 1, 1, 0]
    strides = ["auto", "auto", "auto", "auto", 3]
    alone = [EntropyQueue(4, d, stride=s, dtype=getattr(torch, dtype), device=torch.device("cpu"), seed=sd)
             for s, sd in zip(strides, seeds)]
    together = [EntropyQueue(4, d, stride=s, dtype=getattr(torch, dtype), device=torch.device("cpu"), seed=sd)
                for s, sd in zip(strides, seeds)]
    assert alone[0]._dirs is together[1]._dirs and not torch.equal(alone[0]._dirs, alone[2]._dirs)
    g = torch.Generator().manual_seed(3)
    for step in range(1, 8):
        w = torch.randn(5, d, generator=g)
        parts = [w[:, :100], w[:, 100:]]  # each queue's group: two tensors
        for k, q in enumerate(alone):
            q.push(step, [p[k] for p in parts])
        push_together(together, [step] * 5, w)
    for a, b in zip(alone, together):
        assert torch.equal(a.data, b.data) and torch.equal(a.step, b.step)
        assert (a.head, a.valid) == (b.head, b.valid)
        assert torch.allclose(b.rho, a.rho, rtol=1e-12, atol=0)
        assert torch.allclose(b.proj, a.proj, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="for 5 queues"):
        push_together(together, [1] * 5, torch.zeros(4, d))
    # the shared directions live as long as a queue holds them (a 10⁷-parameter group's are 640 MB)
    import gc

    from sgdthermo.nn import measure

    del alone, together, a, b, q
    gc.collect()
    assert not [k for k in measure._DIRECTIONS if k[1] == d]
