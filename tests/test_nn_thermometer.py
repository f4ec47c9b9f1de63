"""The Thermometer: group detection, per-step measurement against direct computation,
predictions and verdicts on models where the equilibrium is known, outputs, bad input."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.cli import main
from sgdthermo.nn.thermometer import FRAME_COLUMNS, Thermometer, optimizer_kind


class Direction(nn.Module):
    """A model whose output depends only on the direction of its one weight vector."""

    def __init__(self, d: int, rho0: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, generator=g, dtype=torch.float64)
        self.w = nn.Parameter(w / w.norm() * rho0)

    def forward(self, x):
        return x @ (self.w / self.w.norm())


def _noise_grad(w: torch.Tensor, G: float, gen: torch.Generator) -> torch.Tensor:
    """A random gradient orthogonal to w with ‖g_B(u)‖² = ρ²‖g‖² = G (scale invariance)."""
    z = torch.randn(w.shape, generator=gen, dtype=w.dtype)
    z -= (z @ w) / (w @ w) * w
    return z / z.norm() * math.sqrt(G) / w.norm()


def _drive(model, opt, th, steps, G=1.0, log_every=None, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, model.w.numel(), dtype=torch.float64)
    model(x)  # the batch the detection sees
    for t in range(1, steps + 1):
        model.w.grad = _noise_grad(model.w.detach(), G, gen)
        opt.step()
        th.step()
        if log_every and t % log_every == 0:
            th.log(t)


def _mlp(norm: nn.Module, width: int = 16) -> nn.Module:
    return nn.Sequential(nn.Linear(8, width, bias=False), norm, nn.ReLU(), nn.Linear(width, 3))


# ---------------------------------------------------------------------------------------
# Groups
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [
    nn.BatchNorm1d(16, affine=False), nn.LayerNorm(16, elementwise_affine=False),
    nn.GroupNorm(4, 16, affine=False), nn.RMSNorm(16, elementwise_affine=False),
])
def test_groups_are_the_weights_before_a_normalisation(norm):
    model = _mlp(norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-3)
    th = Thermometer(model, opt, example=torch.randn(32, 8))
    assert list(th.groups) == ["0.weight"] and th.d == 128
    assert th.others == ["3.weight", "3.bias"]  # listed, not dropped


def test_groups_found_from_the_first_batch_and_conv_groupnorm():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.GroupNorm(2, 4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    th = Thermometer(model, opt)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 2, (16,))
    F.cross_entropy(model(x), y).backward()
    opt.step()
    th.step()
    # the two convs (each followed by a normalisation), and the GroupNorm's affine weight and
    # bias, invariant together only (the BatchNorm after the second conv normalises them away)
    assert set(th.groups) == {"0.weight", "3.weight", "joint"}
    assert th.groups["joint"].params == [model[1].weight, model[1].bias]
    rows = th.log(1)
    assert [r["group"] for r in rows] == [*th.groups, "all"]
    assert rows[-1]["d"] == sum(r["d"] for r in rows[:-1])


def test_a_model_without_invariant_weights_is_told_so():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no scale-invariant parameters found"):
        Thermometer(model, opt, example=torch.randn(8, 8))


def test_bad_input_is_refused_with_a_clear_message():
    model = _mlp(nn.LayerNorm(16))
    with pytest.raises(ValueError, match=r"parameter '0.weight' \(group '0.weight'\) is not in the optimizer"):
        Thermometer(model, torch.optim.SGD(model[3].parameters(), lr=0.1), example=torch.randn(4, 8))
    frozen = _mlp(nn.LayerNorm(16)).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Thermometer(frozen, torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
    nan = _mlp(nn.LayerNorm(16))
    with torch.no_grad():
        nan[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        Thermometer(nan, torch.optim.SGD(nan.parameters(), lr=0.1), groups={"first": [nan[0].weight]})
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        Thermometer(model, "sgd")
    with pytest.raises(RuntimeError, match="before the model saw a batch"):
        Thermometer(model, torch.optim.SGD(model.parameters(), lr=0.1)).step()


# ---------------------------------------------------------------------------------------
# Per-step measurement against a direct computation
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
])
@pytest.mark.parametrize("held", [256, 3])  # 3: the held steps are reduced twice within the interval
def test_angle_radius_and_update_split_match_a_direct_computation(make, held, monkeypatch):
    import sgdthermo.nn.thermometer as thermometer

    monkeypatch.setattr(thermometer, "STEP_BUFFER", held)
    model = Direction(50, rho0=2.0)
    opt = make(model.parameters())
    th = Thermometer(model, opt, groups={"w": [model.w]})
    gen = torch.Generator().manual_seed(3)
    theta2, rho, radial, tangential, gu, a2 = [], [], [], [], [], []
    for _ in range(7):
        w0 = model.w.detach().clone()
        model.w.grad = _noise_grad(w0, 2.0, gen)
        g = model.w.grad.clone()
        opt.step()
        th.step()
        w = model.w.detach()
        d = w - w0
        theta2.append(math.acos(float(w0 @ w / (w0.norm() * w.norm()))) ** 2)
        rho.append(float(w.norm()))
        radial.append(float(d @ w0 / w0.norm()))
        tangential.append(math.sqrt(float(d @ d) - radial[-1] ** 2))
        gu.append(float(w0 @ w0 * (g @ g)))
        if isinstance(opt, torch.optim.AdamW):  # the normalised update from Adam's own state
            st = opt.state[model.w]
            b1, b2 = opt.param_groups[0]["betas"]
            t = float(st["step"])
            a = (st["exp_avg"] / (1 - b1**t)) / ((st["exp_avg_sq"] / (1 - b2**t)).sqrt() + opt.param_groups[0]["eps"])
            a2.append(float(a @ a))
    row = th.log(7)[0]
    assert row["angular_update"] == pytest.approx(math.sqrt(np.mean(theta2)), rel=1e-9)
    assert row["rho"] == pytest.approx(np.mean(rho), rel=1e-12)
    assert row["radial_update"] == pytest.approx(np.mean(radial), rel=1e-9)
    assert row["tangential_update"] == pytest.approx(np.mean(tangential), rel=1e-9)
    assert row["grad_sq_unit"] == pytest.approx(np.mean(gu), rel=1e-12)
    if a2:
        assert row["update_sq"] == pytest.approx(np.mean(a2), rel=1e-6)


def test_hyperparameters_follow_a_schedule():
    model = Direction(20)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    th = Thermometer(model, opt, groups={"w": [model.w]})
    gen = torch.Generator().manual_seed(0)
    lrs = []
    for t in range(1, 31):
        model.w.grad = _noise_grad(model.w.detach(), 1.0, gen)
        opt.step()
        th.step()
        sched.step()
        if t % 10 == 0:
            lrs.append(th.log(t)[0]["lr"])
    assert lrs == [0.05, 0.025, 0.0125]


def test_gradient_noise_from_noise_batches_matches_the_estimator():
    from sgdthermo.nn.measure import noise_moments

    torch.manual_seed(0)
    model = _mlp(nn.BatchNorm1d(16))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-3)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    th = Thermometer(model, opt, example=x[:32], noise_k=4)
    F.cross_entropy(model(x[:32]), y[:32]).backward()
    opt.step()
    th.step()
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    buffers = [b.clone() for b in model[1].buffers()]
    row = th.log(1, noise_batches=iter(batches))[0]
    assert all(torch.equal(a, b) for a, b in zip(buffers, model[1].buffers()))  # BN statistics restored
    grads = []
    for bx, by in batches:
        g, = torch.autograd.grad(F.cross_entropy(model(bx), by), [model[0].weight])
        grads.append(g.reshape(-1).double())
    for b, s in zip(model[1].buffers(), buffers):
        b.copy_(s)
    ref = noise_moments(torch.stack(grads))
    assert row["trace_cov"] == pytest.approx(ref["trace_cov"], rel=1e-6)
    assert row["sigma2"] == pytest.approx(row["rho"] ** 2 * ref["trace_cov"] / (128 - 1), rel=1e-5)
    assert math.isfinite(row["T"])


# ---------------------------------------------------------------------------------------
# Predictions and verdicts where the equilibrium is known
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,steps", [
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2), 1500),
    (lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=1e-2), 8000),
    (lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 8000),
])
def test_equilibrated_is_claimed_only_at_the_prediction(make, steps):
    """Started 5x above the equilibrium radius: 'approaching' with an estimate of the steps
    left while far, 'equilibrated' once there, and then measured within 10 % of the
    predicted radius and angular update (d = 500: the per-step noise averages out)."""
    model = Direction(500, rho0=1.0)
    opt = make(model.parameters())
    th = Thermometer(model, opt, groups={"w": [model.w]})
    # start 5x above the predicted radius
    _drive(model, opt, th, 1, log_every=1)
    rho_eq = th.rows[-1]["rho_pred"]
    with torch.no_grad():
        model.w.mul_(5 * rho_eq / model.w.norm())
    _drive(model, opt, th, steps, log_every=steps // 20)
    df = th.to_frame()
    w = df[df["group"] == "w"]
    first, last = w.iloc[1], w.iloc[-1]
    assert first["verdict"] == "approaching" and first["steps_left"] > 0
    assert last["verdict"] == "equilibrated", last["reason"]
    assert last["rho"] == pytest.approx(last["rho_pred"], rel=0.1)
    assert last["angular_update"] == pytest.approx(last["angular_update_pred"], rel=0.1)
    # the first claim comes after the predicted number of steps, not before
    first_eq = int(w.loc[w["verdict"] == "equilibrated", "step"].iloc[0])
    assert first_eq >= 0.5 * first["steps_left"]


def _flips(hysteresis: float, monkeypatch) -> tuple[int, "object"]:
    """SGD at equilibrium (relaxation 1/(2ηλ) = 50 steps) with a lognormal gradient size, so that
    ρ fluctuates by several % between log points 20 steps apart: verdict changes after the
    first 1000 steps, and those rows."""
    import sgdthermo.nn.thermometer as thermometer

    monkeypatch.setattr(thermometer, "HYSTERESIS", hysteresis)
    model = Direction(100, rho0=1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
    th = Thermometer(model, opt, groups={"w": [model.w]})
    gen = torch.Generator().manual_seed(1)
    model(torch.randn(4, 100, dtype=torch.float64))
    for t in range(1, 6001):
        size = math.exp(0.5 * float(torch.randn((), generator=gen, dtype=torch.float64)))
        model.w.grad = _noise_grad(model.w.detach(), size, gen)
        opt.step()
        th.step()
        if t % 20 == 0:
            th.log(t)
    df = th.to_frame()
    w = df[(df["group"] == "w") & (df["step"] > 1000)]
    v = list(w["verdict"])
    return sum(a != b for a, b in zip(v, v[1:])), w


def test_the_verdict_does_not_flicker_about_the_edge(monkeypatch):
    plain, _ = _flips(1.0, monkeypatch)
    held, w = _flips(1.5, monkeypatch)
    # measured: 34 changes of verdict in 250 log points without hysteresis, 4 with it
    assert plain >= 15 and held <= plain / 3
    eq = w[w["verdict"] == "equilibrated"]
    assert len(eq) > 0.9 * len(w)
    # a held claim is still within 1.5 tolerances of both predictions
    assert ((eq["rho"] / eq["rho_pred"] - 1).abs() <= 0.15).all()
    assert ((eq["angular_update"] / eq["angular_update_pred"] - 1).abs() <= 0.15).all()


def test_an_unknown_optimizer_is_measured_without_a_verdict():
    model = Direction(100)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, weight_decay=1e-2)
    assert optimizer_kind(opt) == "unknown"
    th = Thermometer(model, opt, groups={"w": [model.w]})
    _drive(model, opt, th, 50, log_every=25)
    df = th.to_frame()
    assert (df["verdict"] == "unknown").all() and df["rho"].gt(0).all() and df["angular_update"].gt(0).all()
    assert df["rho_pred"].isna().all()


def test_diverging_weights_are_flagged():
    model = Direction(20)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-2)
    th = Thermometer(model, opt, groups={"w": [model.w]})
    _drive(model, opt, th, 5, log_every=5)
    model.w.grad = torch.full_like(model.w, float("inf"))
    opt.step()
    th.step()
    rows = th.log(6)
    assert rows[0]["verdict"] == "diverging" and rows[-1]["verdict"] == "diverging"


# ---------------------------------------------------------------------------------------
# Output: the frame, files, the command
# ---------------------------------------------------------------------------------------
def test_frame_files_and_the_thermo_command(tmp_path, capsys):
    model = Direction(200)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    log_dir = tmp_path / "run" / "thermo"
    with Thermometer(model, opt, log_dir=log_dir) as th:
        _drive(model, opt, th, 400, log_every=100)
    df = th.to_frame()
    assert list(df.columns[:len(FRAME_COLUMNS)]) == list(FRAME_COLUMNS)
    assert set(df["group"]) == {"w", "all"} and list(df["step"].unique()) == [100, 200, 300, 400]
    assert set(df["verdict"]) <= {"approaching", "equilibrated", "interpolating", "diverging", "unknown"}
    pd.testing.assert_frame_equal(pd.read_csv(log_dir / "thermo.csv"), df, check_dtype=False)
    assert json.loads((log_dir / "groups.json").read_text())["groups"]["w"]["d"] == 200
    assert main(["thermo", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "step 400" in out and "w" in out and (log_dir / "thermo.png").exists()
    assert main(["thermo", str(tmp_path)]) == 2
    assert "no thermo.csv" in capsys.readouterr().err


def test_parquet_output(tmp_path):
    pytest.importorskip("pyarrow")
    model = Direction(50)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    th = Thermometer(model, opt, log_dir=tmp_path, parquet=True)
    _drive(model, opt, th, 20, log_every=10)
    th.close()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "thermo.parquet"), th.to_frame())


def test_protocol_optimizer_per_tensor_groups_are_predicted_as_sgd_at_the_step_rate():
    """A tensor of a protocol's scale-invariant vector gets plain SGD at η_t = η̃ρ_t² (the
    whole-vector formula applies only to the whole vector); a tensor of the other param group
    must not crash the log."""
    from sgdthermo.nn.optim import make_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32, bias=False), nn.LayerNorm(32), nn.ReLU(),
                          nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32, affine=False), nn.ReLU(),
                          nn.Linear(32, 3))
    si = [model[0].weight, model[3].weight]
    other = [p for p in model.parameters() if all(p is not q for q in si)]
    opt = make_optimizer("fixed-elr", si, lr=0.02, weight_decay=0.01, other_params=other)
    th = Thermometer(model, opt)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for t in range(1, 41):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        th.step()
        if t % 20 == 0:
            rows = th.log(t)
    by = {r["group"]: r for r in rows}
    assert by["0.weight"]["lr"] == pytest.approx(opt.last_step["lr"])
    assert math.isfinite(by["0.weight"]["rho_pred"]) and by["0.weight"]["verdict"] != "unknown"
    assert "joint" in by  # the LayerNorm's γ and β, in the other param group: logged, no crash
    whole = Thermometer(model, opt, groups={"si": si})
    assert whole._protocol_part("si", opt.param_groups[0])[0] == "fixed-elr"
