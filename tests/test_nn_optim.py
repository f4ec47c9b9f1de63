"""Tests of sgdthermo.nn.optim: the three protocols of docs/theory.md as torch optimizers.

The reference for every update is a NumPy (float64) transcription of the table "The three
training protocols" in docs/theory.md, applied to the concatenation of all scale-invariant tensors
(one vector w, ρ = |w|):

    fixed LR      w ← w − η (g + λw)
    fixed ELR     w ← w − η̃ρ_t² (g + λw)
    fixed sphere  w' = w − η̃ρ_t² g,  w ← ρ w'/|w'|
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch

from sgdthermo.nn.optim import (
    FixedELR,
    FixedLR,
    FixedSphere,
    ProtocolOptimizer,
    make_optimizer,
    step_stacked,
)

PROTOCOLS = ("fixed-sphere", "fixed-elr", "fixed-lr")
SHAPES = [(3, 4), (5,), (2, 2, 2)]

# Hyperparameters of the toy problems: lr = η (fixed LR) or η̃ (fixed ELR, fixed sphere).
HYPER = {
    "fixed-lr": dict(lr=0.3, weight_decay=0.05),
    "fixed-elr": dict(lr=0.2, weight_decay=0.05),
    "fixed-sphere": dict(lr=0.1, radius=1.7),
}


# ---------------------------------------------------------------------------------------------
# Reference: NumPy transcription of docs/theory.md
# ---------------------------------------------------------------------------------------------


def ref_step(protocol: str, w: np.ndarray, g: np.ndarray, hp: dict) -> tuple[np.ndarray, dict]:
    """One step on the flat vector w with gradient g; returns (new w, expected statistics)."""
    rho = float(np.linalg.norm(w))
    stats = {"rho": rho, "grad_sq": float(g @ g), "grad_sq_unit": rho**2 * float(g @ g)}
    if protocol == "fixed-lr":
        eta = hp["lr"]
        new = w - eta * (g + hp["weight_decay"] * w)
    elif protocol == "fixed-elr":
        eta = hp["lr"] * rho**2
        new = w - hp["lr"] * rho**2 * (g + hp["weight_decay"] * w)
    else:
        eta = hp["lr"] * rho**2
        wp = w - hp["lr"] * rho**2 * g
        stats["norm_pre"] = float(np.linalg.norm(wp))
        new = hp["radius"] * wp / np.linalg.norm(wp)
    stats["lr"] = eta
    return new, stats


def flat(tensors) -> np.ndarray:
    return np.concatenate([t.detach().double().numpy().ravel() for t in tensors])


def make_params(dtype, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return [
        torch.tensor(scale * rng.standard_normal(s), dtype=dtype, requires_grad=True)
        for s in SHAPES
    ]


def set_grads(params, rng, scale=0.5):
    for p in params:
        p.grad = torch.tensor(scale * rng.standard_normal(tuple(p.shape)), dtype=p.dtype)


def set_orth_grads(params, rng, scale=0.5):
    """Gradients of a scale-invariant function: orthogonal to w, of size ~scale/ρ."""
    w = flat(params)
    g = rng.standard_normal(w.size)
    g -= (g @ w) / (w @ w) * w
    g *= scale / np.sqrt(w @ w)
    i = 0
    for p in params:
        p.grad = torch.tensor(g[i : i + p.numel()].reshape(tuple(p.shape)), dtype=p.dtype)
        i += p.numel()


def build(protocol, params, **extra):
    return make_optimizer(protocol, params, **HYPER[protocol], **extra)


# ---------------------------------------------------------------------------------------------
# Each update against its formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_update_matches_formula_float64(protocol):
    params = make_params(torch.float64)
    opt = build(protocol, params)
    assert isinstance(opt, ProtocolOptimizer) and opt.protocol == protocol
    w = flat(params)
    rng = np.random.default_rng(1)
    for _ in range(10):
        set_grads(params, rng)
        g = flat([p.grad for p in params])
        w, expected = ref_step(protocol, w, g, HYPER[protocol])
        opt.step()
        # an independent NumPy trajectory: float64 rounding differences stay ~1e-15
        np.testing.assert_allclose(flat(params), w, rtol=1e-12, atol=1e-14)
        assert set(opt.last_step) == set(expected)
        for key, val in expected.items():
            assert isinstance(opt.last_step[key], float)
            assert opt.last_step[key] == pytest.approx(val, rel=1e-12), key


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_update_matches_formula_float32(protocol):
    params = make_params(torch.float32)
    opt = build(protocol, params)
    rng = np.random.default_rng(2)
    for _ in range(10):
        w = flat(params)  # the float32 state, exactly, in float64
        set_grads(params, rng)
        g = flat([p.grad for p in params])
        new, expected = ref_step(protocol, w, g, HYPER[protocol])
        opt.step()
        assert all(p.dtype == torch.float32 for p in params)
        # float32 storage: a few ulp (6e-8) of the vector's scale per element
        np.testing.assert_allclose(flat(params), new, rtol=0, atol=1e-6 * np.linalg.norm(new))
        # statistics are float64 reductions of the float32 tensors
        for key, val in expected.items():
            assert opt.last_step[key] == pytest.approx(val, rel=1e-6), key


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_grad_sq_unit_is_rho2_grad_sq(protocol):
    params = make_params(torch.float64, seed=3, scale=2.0)
    opt = build(protocol, params)
    rng = np.random.default_rng(4)
    for _ in range(5):
        rho = np.linalg.norm(flat(params))
        assert opt.si_norm() == pytest.approx(rho, rel=1e-14)
        set_grads(params, rng, scale=3.0)
        gsq = float(np.sum(flat([p.grad for p in params]) ** 2))
        opt.step()
        st = opt.last_step
        assert st["rho"] == pytest.approx(rho, rel=1e-14)
        assert st["grad_sq"] == pytest.approx(gsq, rel=1e-14)
        assert st["grad_sq_unit"] == pytest.approx(rho**2 * gsq, rel=1e-14)
        assert st["grad_sq_unit"] == pytest.approx(st["rho"] ** 2 * st["grad_sq"], rel=1e-14)


# ---------------------------------------------------------------------------------------------
# Invariants of each protocol
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-14), (torch.float32, 3e-7)])
def test_fixed_sphere_keeps_norm(dtype, tol):
    params = make_params(dtype, seed=5)
    radius = 1.7
    opt = FixedSphere(params, elr=0.5, radius=radius, project=True)
    assert opt.si_norm() == pytest.approx(radius, rel=tol)
    rng = np.random.default_rng(6)
    for i in range(1000):
        w = flat(params)
        set_grads(params, rng, scale=10.0 if i % 2 else 0.1)
        g = flat([p.grad for p in params])
        opt.step()
        wp = w - 0.5 * (w @ w) * g  # w' before the projection
        assert opt.last_step["norm_pre"] == pytest.approx(np.linalg.norm(wp), rel=10 * tol)
        assert abs(opt.si_norm() - radius) <= tol * radius
    assert opt.effective_lr() == 0.5


def test_fixed_sphere_first_step_projects():
    params = make_params(torch.float64, seed=7, scale=5.0)
    rho0 = np.linalg.norm(flat(params))
    opt = FixedSphere(params, elr=0.1, radius=0.4)  # project=False: not on the sphere yet
    assert opt.si_norm() == pytest.approx(rho0, rel=1e-14)
    set_grads(params, np.random.default_rng(8))
    opt.step()
    assert opt.last_step["rho"] == pytest.approx(rho0, rel=1e-14)
    assert opt.last_step["lr"] == pytest.approx(0.1 * rho0**2, rel=1e-14)
    assert opt.si_norm() == pytest.approx(0.4, rel=1e-14)


def test_fixed_elr_keeps_effective_lr():
    params = make_params(torch.float64, seed=9)
    elr = 0.2
    opt = FixedELR(params, elr=elr, weight_decay=0.05)
    rng = np.random.default_rng(10)
    rhos = []
    for _ in range(50):
        set_orth_grads(params, rng, scale=0.2)  # ‖g_B(u)‖ ≈ 1: stationary ρ² ≈ 2
        opt.step()
        st = opt.last_step
        rhos.append(st["rho"])
        assert st["lr"] / st["rho"] ** 2 == pytest.approx(elr, rel=1e-14)
        assert opt.effective_lr() == elr
    assert np.ptp(rhos) > 0.1  # the radius did move, so η_t really changed


def test_fixed_lr_effective_lr():
    params = make_params(torch.float64, seed=11)
    opt = FixedLR(params, lr=0.3, weight_decay=0.05)
    rng = np.random.default_rng(12)
    for _ in range(20):
        rho = np.linalg.norm(flat(params))
        assert opt.effective_lr() == pytest.approx(0.3 / rho**2, rel=1e-14)
        set_grads(params, rng)
        opt.step()
        assert opt.last_step["lr"] == 0.3


def test_mixed_dtype_group():
    params = make_params(torch.float64, seed=13)
    params[1] = params[1].detach().float().requires_grad_(True)
    opt = FixedSphere(params, elr=0.3, radius=2.0, project=True)
    rng = np.random.default_rng(14)
    for _ in range(20):
        set_grads(params, rng)
        opt.step()
        assert opt.si_norm() == pytest.approx(2.0, rel=1e-6)
    assert params[0].dtype == torch.float64 and params[1].dtype == torch.float32


def test_closure_is_called():
    params = make_params(torch.float64)
    opt = build("fixed-elr", params)

    def closure():
        opt.zero_grad()
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and opt.last_step["grad_sq"] > 0


# ---------------------------------------------------------------------------------------------
# A scale-invariant network: Linear → BatchNorm1d(affine=False) → ReLU → frozen head
# ---------------------------------------------------------------------------------------------


def _data(seed=0, n=2048):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 12, generator=g)
    teacher = torch.randn(12, 4, generator=g)
    y = (X @ teacher + torch.randn(n, 4, generator=g)).argmax(1)  # noisy labels: loss stays > 0
    return X, y


def _net(rho0, seed=0):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(12, 16, bias=False)
    head = torch.nn.Linear(16, 4, bias=False)
    with torch.no_grad():
        lin.weight.mul_(rho0 / lin.weight.norm())
        head.weight.mul_(2.0 / head.weight.norm())
    head.requires_grad_(False)
    # eps ≪ the pre-activation variance, so L(αw) = L(w) to float32 rounding
    bn = torch.nn.BatchNorm1d(16, eps=1e-10, affine=False)
    net = torch.nn.Sequential(lin, bn, torch.nn.ReLU(), head)
    return net.train()


def _train(opt, net, X, y, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    hist = {k: [] for k in ("rho", "grad_sq_unit", "loss", "norm_pre", "lr", "grad_sq", "dot")}
    w = net[0].weight
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            hist["dot"].append(abs(float((w.grad * w).sum() / (w.norm() * w.grad.norm()))))
        opt.step()
        hist["loss"].append(loss.item())
        for k, v in opt.last_step.items():
            hist[k].append(v)
    return hist


def test_toy_network_is_scale_invariant():
    X, y = _data()
    net = _net(1.0)
    w = net[0].weight
    loss1 = torch.nn.functional.cross_entropy(net(X[:64]), y[:64])
    (g1,) = torch.autograd.grad(loss1, w)
    with torch.no_grad():
        w.mul_(3.0)
    loss3 = torch.nn.functional.cross_entropy(net(X[:64]), y[:64])
    (g3,) = torch.autograd.grad(loss3, w)
    assert loss3.item() == pytest.approx(loss1.item(), rel=1e-5)
    torch.testing.assert_close(g3, g1 / 3.0, rtol=1e-4, atol=1e-7)  # ∇L(αw) = ∇L(w)/α


def test_toy_network_fixed_sphere():
    X, y = _data()
    net = _net(1.0)
    elr, radius = 0.1, 1.5
    opt = make_optimizer("fixed-sphere", [net[0].weight], lr=elr, radius=radius, project=True)
    h = _train(opt, net, X, y, 300)
    rho = np.array(h["rho"])
    assert np.all(np.isfinite(h["loss"]))
    assert np.max(np.abs(rho - radius)) < 1e-6 * radius
    assert abs(opt.si_norm() - radius) < 1e-6 * radius
    # gradient ⟂ w, so Pythagoras: |w'|² = ρ² + η_t²‖g‖² (the radius identity behind p_eff)
    assert max(h["dot"]) < 1e-4
    pyth = rho**2 + np.array(h["lr"]) ** 2 * np.array(h["grad_sq"])
    np.testing.assert_allclose(np.array(h["norm_pre"]) ** 2, pyth, rtol=1e-5)
    assert np.mean(h["loss"][-50:]) < np.mean(h["loss"][:20])


@pytest.mark.parametrize(
    "protocol, lr, wd", [("fixed-elr", 0.2, 0.05), ("fixed-lr", 0.3, 0.03)]
)
@pytest.mark.parametrize("rho0", [0.3, 5.0])
def test_toy_network_radius_relaxes_to_discrete_prediction(protocol, lr, wd, rho0):
    """From far below or above, ρ moves to the discrete-time prediction built from the
    recorded grad_sq_unit: fixed ELR ρ² = η̃E‖g_B(u)‖²/(2λ), fixed LR ρ⁴ = ηE‖g_B(u)‖²/(2λ)."""
    X, y = _data()
    net = _net(rho0)
    opt = make_optimizer(protocol, [net[0].weight], lr=lr, weight_decay=wd)
    h = _train(opt, net, X, y, 300)
    assert np.all(np.isfinite(h["loss"]))
    G = np.mean(h["grad_sq_unit"][-100:])
    q = lr * G / (2 * wd)
    pred = math.sqrt(q) if protocol == "fixed-elr" else q**0.25
    end = np.mean(h["rho"][-100:])
    assert np.sign(end - rho0) == np.sign(pred - rho0)
    assert abs(end - pred) < 0.1 * pred  # observed ≤ 3 % on this model


# ---------------------------------------------------------------------------------------------
# Non-scale-invariant parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_other_params_plain_sgd(protocol):
    si = make_params(torch.float64, seed=15)
    rng = np.random.default_rng(16)
    bias = torch.tensor(rng.standard_normal(4), requires_grad=True)
    head = torch.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    unused = torch.tensor(rng.standard_normal(2), requires_grad=True)
    other_wd = 0.1
    opt = build(protocol, si, other_params=[bias, head, unused], other_weight_decay=other_wd)
    assert len(opt.param_groups) == 2
    assert opt.param_groups[0]["si"] is True and opt.param_groups[1]["si"] is False
    assert opt.param_groups[1]["weight_decay"] == other_wd
    assert len(opt.param_groups[1]["params"]) == 3
    w = flat(si)
    for _ in range(3):
        set_grads(si, rng)
        for p in (bias, head):
            p.grad = torch.tensor(rng.standard_normal(tuple(p.shape)))
        unused.grad = None
        b0, h0, u0 = bias.detach().clone(), head.detach().clone(), unused.detach().clone()
        w, expected = ref_step(protocol, w, flat([p.grad for p in si]), HYPER[protocol])
        opt.step()
        eta = expected["lr"]  # the SI group's η_t of this step
        assert opt.last_step["lr"] == pytest.approx(eta, rel=1e-14)
        np.testing.assert_allclose(flat(si), w, rtol=1e-12, atol=1e-14)
        for p, p0 in ((bias, b0), (head, h0)):
            ref = p0.numpy() - eta * (p.grad.numpy() + other_wd * p0.numpy())
            np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-13, atol=1e-14)
        assert torch.equal(unused.detach(), u0)  # no gradient: skipped, as in torch.optim.SGD


def test_si_tensor_without_grad_counts_as_zero_gradient():
    params = make_params(torch.float64, seed=17)
    opt = FixedLR(params, lr=0.3, weight_decay=0.05)
    set_grads(params, np.random.default_rng(18))
    params[1].grad = None
    w = flat(params)
    g = np.concatenate(
        [params[0].grad.numpy().ravel(), np.zeros(5), params[2].grad.numpy().ravel()]
    )
    new, _ = ref_step("fixed-lr", w, g, HYPER["fixed-lr"])
    opt.step()
    np.testing.assert_allclose(flat(params), new, rtol=1e-12, atol=1e-14)


def test_add_param_group_and_duplicates():
    params = make_params(torch.float64)
    opt = build("fixed-elr", params)
    extra = torch.zeros(3, requires_grad=True)
    opt.add_param_group({"params": [extra]})
    assert opt.param_groups[1]["si"] is False and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="only one scale-invariant"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "si": True})
    with pytest.raises(ValueError):
        build("fixed-lr", params, other_params=[params[0]])  # SI and non-SI overlap
    with pytest.raises(ValueError, match="twice"):
        build("fixed-lr", [params[0], params[0]])


# ---------------------------------------------------------------------------------------------
# state_dict round trip
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_round_trip(protocol, dtype):
    rng = np.random.default_rng(19)
    si = make_params(dtype, seed=19)
    other = [torch.tensor(rng.standard_normal(3), dtype=dtype, requires_grad=True)]
    opt = build(protocol, si, other_params=other, other_weight_decay=0.01)
    for _ in range(3):
        set_grads(si + other, rng)
        opt.step()

    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "params": [p.detach() for p in si + other]}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)

    si2 = [p.clone().requires_grad_(True) for p in ckpt["params"][:3]]
    other2 = [p.clone().requires_grad_(True) for p in ckpt["params"][3:]]
    # different hyperparameters on construction: load_state_dict must restore the saved ones
    hp = {k: 2 * v for k, v in HYPER[protocol].items()}
    opt2 = make_optimizer(protocol, si2, **hp, other_params=other2, other_weight_decay=0.5)
    opt2.load_state_dict(ckpt["opt"])
    for g1, g2 in zip(opt.param_groups, opt2.param_groups):
        assert {k: v for k, v in g1.items() if k != "params"} == {
            k: v for k, v in g2.items() if k != "params"
        }

    for _ in range(2):
        grads = [
            torch.tensor(rng.standard_normal(tuple(p.shape)), dtype=dtype) for p in si + other
        ]
        for p, p2, g in zip(si + other, si2 + other2, grads):
            p.grad, p2.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
        for p, p2 in zip(si + other, si2 + other2):
            assert torch.equal(p, p2)  # bit-exact
        assert opt.last_step == opt2.last_step


def test_load_state_dict_of_other_protocol_fails():
    params = make_params(torch.float64)
    sd = build("fixed-elr", params).state_dict()
    opt = FixedLR(params, lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="fixed-elr"):
        opt.load_state_dict(sd)


# ---------------------------------------------------------------------------------------------
# Bad values
# ---------------------------------------------------------------------------------------------

_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("bad", [0.0, -0.1, _NAN, _INF, -_INF])
def test_bad_lr(protocol, bad):
    kw = dict(HYPER[protocol], lr=bad)
    with pytest.raises(ValueError, match=re.escape(f"lr={bad!r}")):
        make_optimizer(protocol, make_params(torch.float64), **kw)


@pytest.mark.parametrize("protocol", ["fixed-elr", "fixed-lr"])
@pytest.mark.parametrize("bad", [0.0, -0.1, _NAN, _INF])
def test_bad_weight_decay(protocol, bad):
    kw = dict(HYPER[protocol], weight_decay=bad)
    with pytest.raises(ValueError, match=re.escape(f"weight_decay={bad!r}")):
        make_optimizer(protocol, make_params(torch.float64), **kw)


@pytest.mark.parametrize("bad", [0.0, -1.0, _NAN, _INF])
def test_bad_radius(bad):
    with pytest.raises(ValueError, match=re.escape(f"radius={bad!r}")):
        make_optimizer("fixed-sphere", make_params(torch.float64), lr=0.1, radius=bad)


@pytest.mark.parametrize("bad", [-0.1, _NAN, _INF])
def test_bad_other_weight_decay(bad):
    with pytest.raises(ValueError, match=re.escape(f"other_weight_decay={bad!r}")):
        make_optimizer(
            "fixed-lr", make_params(torch.float64), lr=0.1, weight_decay=0.1,
            other_params=[torch.zeros(2, requires_grad=True)], other_weight_decay=bad,
        )


@pytest.mark.parametrize("bad", ["0.1", True, None, [0.1]])
def test_non_numeric_lr(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        make_optimizer("fixed-elr", make_params(torch.float64), lr=bad, weight_decay=0.1)


def test_missing_and_misplaced_hyperparameters():
    p = make_params(torch.float64)
    for protocol in ("fixed-lr", "fixed-elr"):
        msg = f"protocol '{protocol}' requires weight_decay"
        with pytest.raises(ValueError, match=re.escape(msg)):
            make_optimizer(protocol, p, lr=0.1)
        with pytest.raises(ValueError, match=re.escape("radius=1.0")):
            make_optimizer(protocol, p, lr=0.1, weight_decay=0.1, radius=1.0)
        with pytest.raises(ValueError, match="project"):
            make_optimizer(protocol, p, lr=0.1, weight_decay=0.1, project=True)
    with pytest.raises(ValueError, match=re.escape("protocol 'fixed-sphere' requires radius")):
        make_optimizer("fixed-sphere", p, lr=0.1)
    with pytest.raises(ValueError, match=re.escape("weight_decay=0.1")):
        make_optimizer("fixed-sphere", p, lr=0.1, radius=1.0, weight_decay=0.1)
    make_optimizer("fixed-sphere", p, lr=0.1, radius=1.0, weight_decay=0.0)  # zero is fine


def test_unknown_protocol():
    msg = "unknown protocol 'x': expected one of fixed-sphere, fixed-elr, fixed-lr"
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_optimizer("x", make_params(torch.float64), lr=0.1, weight_decay=0.1)


def test_constructors_validate_and_bad_params():
    p = make_params(torch.float64)
    with pytest.raises(ValueError, match=re.escape("elr=-1")):
        FixedELR(p, elr=-1, weight_decay=0.1)
    with pytest.raises(ValueError, match=re.escape("weight_decay=0")):
        FixedLR(p, lr=0.1, weight_decay=0)
    with pytest.raises(ValueError, match=re.escape("radius=nan")):
        FixedSphere(p, elr=0.1, radius=_NAN)
    with pytest.raises(ValueError, match="empty"):
        FixedLR([], lr=0.1, weight_decay=0.1)
    with pytest.raises(TypeError):
        FixedLR(p[0], lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="floating point"):
        FixedLR([torch.zeros(3, dtype=torch.int64)], lr=0.1, weight_decay=0.1)
    zero = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="norm"):
        FixedSphere(zero, elr=0.1, radius=1.0, project=True)


# ---------------------------------------------------------------------------------------------
# Many runs at once
# ---------------------------------------------------------------------------------------------
STACK_HYPER = {
    "fixed-lr": [dict(lr=0.3, weight_decay=0.05), dict(lr=0.1, weight_decay=0.2), dict(lr=0.02, weight_decay=0.01)],
    "fixed-elr": [dict(lr=0.05, weight_decay=0.1), dict(lr=0.2, weight_decay=0.02), dict(lr=0.01, weight_decay=0.5)],
    "fixed-sphere": [dict(lr=0.05, radius=1.5), dict(lr=0.2, radius=0.7), dict(lr=0.01, radius=3.0)],
}


def _stack(dtype, seed=0):
    """Three members' SI tensors (SHAPES) and one non-SI tensor, stacked, with gradients."""
    g = torch.Generator().manual_seed(seed)
    si = [torch.randn(3, *s, generator=g, dtype=dtype) for s in SHAPES]
    other = torch.randn(3, 4, generator=g, dtype=dtype)
    grads = [torch.randn(t.shape, generator=g, dtype=dtype) for t in [*si, other]]
    return si, other, grads


@pytest.mark.parametrize("side_by_side", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stacked_step_is_each_members_own_step(protocol, dtype, side_by_side):
    """Three members with their own hyperparameters, an SI group of three tensors and a
    non-SI group with weight decay, against each member's own step() on copies. Only the
    order of summation inside the norms may differ (the same update kernels): parameters and
    last_step within a few ulp (rel 1e-13 in float64, 1e-6 in float32, where one ulp is
    6e-8); a wrong member, hyperparameter or ρ_t is off by order one."""
    si, other, grads = _stack(dtype)
    want, want_stats = [], []
    for k in range(3):
        ps = [t[k].clone() for t in si]
        o = other[k].clone()
        for p, gr in zip([*ps, o], grads):
            p.grad = gr[k].clone()
        opt = make_optimizer(protocol, ps, other_params=[o], other_weight_decay=0.03, **STACK_HYPER[protocol][k])
        opt.step()
        want.append([*ps, o])
        want_stats.append(opt.last_step)
    opts = [make_optimizer(protocol, [t[k] for t in si], other_params=[other[k]], other_weight_decay=0.03,
                           **STACK_HYPER[protocol][k]) for k in range(3)]
    if side_by_side:  # the SI group as one 3 × d view, as a batched model holds it
        flat = torch.cat([t.reshape(3, -1) for t in si], 1)
        gflat = torch.cat([gr.reshape(3, -1) for gr in grads[:3]], 1)
        errors = step_stacked(opts, [[flat], [other]], [[gflat], [grads[3]]])
        offs = np.cumsum([0] + [math.prod(s) for s in SHAPES])
        got_si = [flat[:, a:b].reshape(3, *s) for a, b, s in zip(offs[:-1], offs[1:], SHAPES)]
    else:
        errors = step_stacked(opts, [si, [other]], [grads[:3], [grads[3]]])
        got_si = si
    assert errors == [None] * 3
    rel = 1e-13 if dtype == torch.float64 else 1e-6
    for k in range(3):
        for a, b in zip(want[k], [*[t[k] for t in got_si], other[k]]):
            assert torch.allclose(b, a, rtol=rel, atol=rel * float(a.abs().max()))
        assert opts[k].last_step.keys() == want_stats[k].keys()
        for key, v in want_stats[k].items():
            assert opts[k].last_step[key] == pytest.approx(v, rel=rel)


def test_a_stacked_fixed_sphere_member_with_a_zero_iterate_fails_alone():
    """A member whose iterate w' is zero gets the error its step() raises and keeps w'
    unprojected; the others are projected onto their spheres."""
    si, other, grads = _stack(torch.float64)
    elr, radius = 0.5, 2.0
    for t in si:  # member 1 at the origin: η_t = η̃ρ_t² = 0, so w' = 0
        t[1] = 0.0
    opts = [make_optimizer("fixed-sphere", [t[k] for t in si], lr=elr, radius=radius) for k in range(3)]
    errors = step_stacked(opts, [si], [grads[:3]])
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], RuntimeError) and "zero norm" in str(errors[1])
    assert opts[1].last_step == {}
    for k in (0, 2):
        assert math.sqrt(sum(float(t[k].square().sum()) for t in si)) == pytest.approx(radius, rel=1e-14)
    assert all(float(t[1].abs().max()) == 0.0 for t in si)


def test_a_stacked_step_refuses_mixed_protocols_and_wrong_tensors():
    si, _, grads = _stack(torch.float64)
    lr = make_optimizer("fixed-lr", [t[0] for t in si], lr=0.1, weight_decay=0.1)
    elr = make_optimizer("fixed-elr", [t[1] for t in si], lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="one protocol"):
        step_stacked([lr, elr], [[t[:2] for t in si]], [[gr[:2] for gr in grads[:3]]])
    other = make_optimizer("fixed-lr", [t[1] for t in si], lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="do not hold"):
        step_stacked([lr, other], [[t[:2] for t in si[:2]]], [[gr[:2] for gr in grads[:2]]])
