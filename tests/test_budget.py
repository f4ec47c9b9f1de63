"""Memory and work budgets (sgdthermo.budget): huge values refused at validation with one line
holding the estimate; the estimates against what the code allocates; reasonable settings pass."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from sgdthermo import budget
from sgdthermo.cli import main
from sgdthermo.errors import ConfigError
from sgdthermo.isotropic import validate_settings
from sgdthermo.nn.config import TrainConfig

GiB = 2**30
SIZE = re.compile(r"\d+(\.\d+)? (B|KiB|MiB|GiB|TiB|PiB|EiB)\b")
DIGITS = dict(model="convnet", dataset="digits", protocol="fixed-elr", lr=0.02, wd=0.01, iters=100)
TRAIN_CLI = ["train", "--model", "convnet", "--dataset", "digits", "--protocol", "fixed-elr",
             "--lr", "0.02", "--wd", "0.01", "--iters", "100"]


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


@pytest.fixture
def ram24(monkeypatch):
    """A machine with 24 GiB: every device reports it."""
    monkeypatch.setattr(budget, "available_memory", lambda device="cpu": 24 * GiB)


def iso(protocol="fixed-lr", *, n_lr=1, n_second=1, dim=3, iters=200_000, queue_size=1000,
        queue_every=1, burn_in=0.5):
    lr = np.geomspace(1e-2, 1e-1, n_lr)
    second = np.geomspace(1e-3, 1e-1, n_second)
    kw = {"radius": second, "wd": None} if protocol == "fixed-sphere" else {"wd": second, "radius": None}
    validate_settings(protocol, dim=dim, lr=lr, sigma=1.0, iters=iters, queue_size=queue_size,
                      queue_every=queue_every, burn_in=burn_in, **kw)


# ---------------------------------------------------------------------------------------
# The building blocks
# ---------------------------------------------------------------------------------------
def test_format_bytes():
    assert budget.format_bytes(0) == "0 B"
    assert budget.format_bytes(512) == "512 B"
    assert budget.format_bytes(1536) == "1.50 KiB"
    assert budget.format_bytes(24 * GiB) == "24.0 GiB"
    assert budget.format_bytes(1000 * 6084 * 4 * 10**6) == "22.1 TiB"
    assert budget.format_bytes(3 * 2**60) == "3.00 EiB"
    assert budget.format_bytes(5000 * 2**60) == "5000 EiB"


def test_available_memory(monkeypatch):
    phys = budget._physical_memory()
    n = budget.available_memory()
    assert isinstance(n, int) and n > 0
    if phys is not None:
        assert n <= phys
    monkeypatch.setattr(budget, "_cgroup_limit", lambda: 2 * GiB)
    assert budget.available_memory("cpu") == min(2 * GiB, phys or 2 * GiB)
    if not torch.cuda.is_available():  # no GPU: a CUDA device falls back to the host
        assert budget.available_memory("cuda:0") == budget.available_memory("cpu")
        assert budget.available_memory("auto") == budget.available_memory("cpu")
    monkeypatch.setattr(budget, "_cgroup_limit", lambda: None)
    monkeypatch.setattr(budget, "_physical_memory", lambda: None)
    assert budget.available_memory() == budget.FALLBACK_MEMORY


def test_check_memory_names_the_largest_part():
    parts = {"small": 10 * 2**20, "queue": 3 * 2**40}
    budget.check_memory(parts, available=4 * 2**40)  # fits
    with pytest.raises(ConfigError) as exc:
        budget.check_memory(parts, available=24 * GiB, subject={"queue": "--queue-size 9"},
                            details={"queue": "9 x 9"}, advice={"queue": "lower --queue-size"})
    assert one_line(exc) == ("--queue-size 9: needs 3.00 TiB of CPU memory, 3.00 TiB of it for the "
                             "queue (9 x 9), more than the 24.0 GiB there is; lower --queue-size")
    with pytest.raises(ConfigError, match=r"^needs .* for the queue, more than the 1 B there is; smaller$"):
        budget.check_memory(parts, available=1, advice="smaller")


def test_check_steps():
    budget.check_steps(budget.MAX_STEPS)
    with pytest.raises(ConfigError) as exc:
        budget.check_steps(10**20)
    assert one_line(exc).startswith("--iters 100000000000000000000: more than 1e+12 steps")


def test_importing_budget_imports_no_torch():
    code = "import sys, sgdthermo.budget, sgdthermo.nn.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_constants_mirror_the_code_they_describe():
    from sgdthermo.entropy import neighbors
    from sgdthermo.isotropic import kernels
    from sgdthermo.nn import data
    from sgdthermo.nn.measure import MeasureConfig

    assert budget.KDTREE_MAX_DIM == neighbors.KDTREE_MAX_DIM
    assert budget.GRAM_LIMIT == neighbors.DEFAULT_GRAM_LIMIT
    assert budget.CHUNK_LIMIT == neighbors.DEFAULT_MEMORY_LIMIT
    assert budget.ISOTROPIC_STATS == kernels.N_STATS
    assert budget.EVAL_BATCH == MeasureConfig().eval_batch_size
    for name in ("digits", "synthetic"):
        ds = data.load_dataset(name)
        s = budget.dataset_shape(name)
        assert (s.in_channels, s.image_size, s.num_classes, s.n_train, s.n_test) == (
            ds.in_channels, ds.image_size, ds.num_classes, ds.n_train, ds.n_test)
    assert budget.dataset_shape("digits", samples_per_label=20).n_train == 200
    assert budget.dataset_shape("cifar100").num_classes == 100


# ---------------------------------------------------------------------------------------
# The isotropic model: huge values refused by validate_settings
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,flag,advice", [
    (dict(dim=10**9), "--dim 1000000000", "lower --dim"),
    (dict(queue_size=10**9, iters=10**10), "--queue-size 1000000000", "lower --queue-size"),
    (dict(queue_size=10**9), "--queue-size 1000000000", "lower --queue-size"),  # before the window check
    (dict(n_lr=100_000, n_second=100_000), "--lr x --wd (100000 x 100000 = 10000000000 grid points)",
     "use fewer grid points"),
    (dict(protocol="fixed-sphere", n_lr=3000, n_second=3000), "--lr x --radius (3000 x 3000 = 9000000 grid points)",
     "use fewer grid points"),
])
def test_isotropic_memory_refused(kwargs, flag, advice):
    with pytest.raises(ConfigError) as exc:
        iso(**kwargs)
    msg = one_line(exc)
    assert msg.startswith(flag + ":") and SIZE.search(msg) and "more than the" in msg and advice in msg


def test_isotropic_steps_and_work_refused():
    with pytest.raises(ConfigError) as exc:
        iso(iters=10**20)
    assert one_line(exc).startswith("--iters 100000000000000000000: more than 1e+12 steps")
    assert "per grid point" in str(exc.value)
    # 10^4 points x 10^12 steps x d = 3: memory fits, the work does not
    with pytest.raises(ConfigError) as exc:
        iso(n_lr=100, n_second=100, iters=10**12)
    msg = one_line(exc)
    assert msg.startswith("--lr x --wd (100 x 100 = 10000 grid points) x --iters 1000000000000 x --dim 3")
    assert "3.00e+16 coordinate updates" in msg and "use at most 3333 grid points" in msg


def test_isotropic_cli_refuses_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["isotropic", "--protocol", "fixed-lr", "--dim", "1000000000", "--lr", "0.01",
                 "--wd", "0.01", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1 and "--dim 1000000000" in err and "TiB" in err
    code = main(["isotropic", "--protocol", "fixed-lr", "--lr", "1e-3:1e-1:100000", "--wd",
                 "1e-3:1e-1:100000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and len(err.strip().splitlines()) == 1 and "PiB" in err
    code = main(["isotropic", "--protocol", "fixed-lr", "--lr", "0.01", "--wd", "0.01",
                 "--iters", "100000000000000000000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and len(err.strip().splitlines()) == 1 and "--iters" in err


class _RecordingNumpy:
    """numpy for the simulator module, recording the arrays zeros/empty/empty_like make."""

    def __init__(self):
        self.made = []

    def __getattr__(self, name):
        return getattr(np, name)

    def _record(self, fn):
        def wrapped(*a, **k):
            out = fn(*a, **k)
            self.made.append(out)
            return out
        return wrapped

    @property
    def zeros(self):
        return self._record(np.zeros)

    @property
    def empty(self):
        return self._record(np.empty)

    @property
    def empty_like(self):
        return self._record(np.empty_like)


@pytest.mark.parametrize("protocol,dim", [("fixed-lr", 3), ("fixed-sphere", 25)])
def test_isotropic_estimate_matches_the_simulator(monkeypatch, protocol, dim):
    """The queue and the iterates exactly, the block statistics from the block array."""
    from sgdthermo.isotropic import simulate_isotropic, simulator

    rec = _RecordingNumpy()
    monkeypatch.setattr(simulator, "np", rec)
    second = {"radius": [0.5, 1.0, 2.0]} if protocol == "fixed-sphere" else {"wd": [0.01, 0.02, 0.05]}
    G, iters, n = 6, 3000, 40
    res = simulate_isotropic(protocol, lr=[0.02, 0.05], **second, dim=dim, iters=iters,
                             queue_size=n, queue_every=10)
    parts = budget.estimate_isotropic_memory(G, dim, iters, n)
    shapes = {a.shape: a for a in rec.made}
    queue, blocks, W = shapes[(G, n, dim)], shapes[(G, 1000, 4)], shapes[(G, dim)]
    assert queue is res.queue.base or np.shares_memory(queue, res.queue)
    assert parts["entropy queue"] == queue.nbytes
    per_point = 13 * 8  # random state (4 words) and nine per-point vectors
    assert parts["iterates and per-point settings"] == 2 * W.nbytes + G * per_point
    assert parts["block statistics"] == budget.BLOCK_COPIES * blocks.nbytes
    assert parts["per-point tables"] >= G * 100 * 5 * 8  # at least the trace's rows


# ---------------------------------------------------------------------------------------
# Networks: huge values refused by TrainConfig.validate
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,flag,part,advice", [
    (dict(width=10**6), "--width 1000000", "entropy estimate", "lower --width"),
    (dict(width=10**6, queue_size=2), "--width 1000000", "", "lower --width"),
    (dict(batch_size=10**9), "--batch-size 1000000000", "activations", "lower --batch-size"),
    (dict(queue_size=10**9), "--queue-size 1000000000", "entropy estimate", "lower --queue-size"),
    (dict(noise_batches=10**9), "--noise-batches 1000000000", "noise gradients", "lower --noise-batches"),
    (dict(model="resnet18", width=5000), "--width 5000", "", "lower --width"),
    (dict(model="mlp", width=10**7, queue_size=2), "--width 10000000", "", "lower --width"),
    (dict(log_every=1, log_linear_until=10**12, iters=10**12), "--log-every 1", "log", "raise --log-every"),
])
def test_train_memory_refused(kwargs, flag, part, advice):
    with pytest.raises(ConfigError) as exc:
        TrainConfig(**{**DIGITS, **kwargs}).validate()
    msg = one_line(exc)
    assert msg.startswith(flag + ":") and SIZE.search(msg) and "more than the" in msg
    assert f"for the {part}" in msg and advice in msg


def test_train_steps_refused():
    with pytest.raises(ConfigError) as exc:
        TrainConfig(**{**DIGITS, "iters": 10**20}).validate()
    assert one_line(exc).startswith("--iters 100000000000000000000: more than 1e+12 steps")


@pytest.mark.parametrize("extra,flag", [(["--queue-size", "1000000000"], "--queue-size 1000000000"),
                                        (["--width", "1000000"], "--width 1000000"),
                                        (["--batch-size", "1000000000"], "--batch-size 1000000000"),
                                        (["--iters", "100000000000000000000"], "--iters")])
def test_train_cli_refuses_before_writing(tmp_path, capsys, extra, flag):
    out = tmp_path / "run"
    argv = list(TRAIN_CLI)
    if extra[0] == "--iters":
        argv = argv[:-2]
    code = main([*argv, *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1 and flag in err


def test_sweep_refuses_at_expansion():
    from sgdthermo.sweep.spec import SweepSpec, expand

    spec = SweepSpec(base=TrainConfig(**DIGITS), grid={"width": [4, 1_000_000]})
    with pytest.raises(ValueError) as exc:
        expand(spec)
    msg = one_line(exc)
    assert msg.startswith("--width 1000000: needs") and msg.endswith("(grid point width=1000000, seed=0)")


def test_log_schedule_settings_checked():
    for name, v in [("log_linear_until", -5), ("log_linear_until", 0), ("log_per_decade", 0),
                    ("log_per_decade", -1), ("log_per_decade", 2.5)]:
        with pytest.raises(ConfigError) as exc:
            TrainConfig(**{**DIGITS, name: v}).validate()
        assert one_line(exc).startswith(f"{name} {v!r}: must be a positive integer")
    TrainConfig(**{**DIGITS, "log_linear_until": 1, "log_per_decade": 1}).validate()


def test_memory_check_skipped_when_the_size_is_unknown(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no model")

    monkeypatch.setattr(budget, "model_size", broken)
    TrainConfig(**{**DIGITS, "width": 10**6}).validate()  # no crash: left to the run
    with pytest.raises(ConfigError, match="--iters"):  # the step bound needs no model
        TrainConfig(**{**DIGITS, "iters": 10**20}).validate()


# ---------------------------------------------------------------------------------------
# The estimates against the real thing
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,dataset,widths", [
    ("convnet", "digits", [1, 4, 7]), ("convnet", "cifar10", [2, 8]), ("convnet", "cifar100", [8]),
    ("resnet18", "cifar10", [1, 4, 5]), ("resnet18", "digits", [3]), ("resnet18", "cifar100", [4]),
    ("mlp", "synthetic", [1, 16]), ("mlp", "digits", [64]), ("mlp", "cifar10", [10]),
])
def test_parameter_count_is_exact(model, dataset, widths):
    from sgdthermo.nn.models import build_model

    s = budget.dataset_shape(dataset)
    for k in widths:
        net = build_model(model, in_channels=s.in_channels, num_classes=s.num_classes, width=k,
                          image_size=s.image_size)
        size = budget.model_size(model, k, dataset)
        assert size.parameters == sum(p.numel() for p in net.parameters())
        assert size.trainable == sum(p.numel() for p in net.parameters() if p.requires_grad)
        parts = budget.estimate_train_memory(TrainConfig(model=model, dataset=dataset, width=k))
        assert parts["parameters"] == 4 * size.parameters


def test_every_model_has_a_layout():
    """A model added to the package needs its layout here (else its memory goes unchecked)."""
    from sgdthermo.nn.config import MODELS

    assert set(MODELS) <= set(budget._MODEL_SIZES)
    with pytest.raises(LookupError):
        budget.model_size("vgg", 4, "digits")


def test_paper_parameter_counts():
    assert budget.model_size("convnet", 8, "cifar10").trainable == 24_408
    assert budget.model_size("resnet18", 4, "cifar10").trainable == 43_692
    assert budget.model_size("convnet", 4, "digits").trainable == 6084


@pytest.mark.parametrize("model,dataset,width", [("convnet", "digits", 4), ("mlp", "synthetic", 16)])
def test_queue_bytes_are_exact(model, dataset, width):
    """d (found by testing the built model) and the queue's storage, for every dtype."""
    from sgdthermo.nn.data import load_dataset
    from sgdthermo.nn.measure import EntropyQueue
    from sgdthermo.nn.models import build_model, find_scale_invariant

    data = load_dataset(dataset)
    net = build_model(model, in_channels=data.in_channels, num_classes=data.num_classes,
                      width=width, image_size=data.image_size)
    si, _ = find_scale_invariant(net, data.train_x[:64], data.train_y[:64])
    d = sum(p.numel() for p in si)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        cfg = TrainConfig(model=model, dataset=dataset, width=width, queue_size=37, queue_dtype=dtype)
        q = EntropyQueue(37, d, stride=1, dtype=getattr(torch, dtype), device=torch.device("cpu"))
        assert budget.estimate_train_memory(cfg)["entropy queue"] == q.nbytes


@pytest.mark.parametrize("model,dataset,width", [("convnet", "cifar10", 8), ("convnet", "digits", 4),
                                                 ("resnet18", "cifar10", 4), ("resnet18", "digits", 4),
                                                 ("mlp", "digits", 64), ("mlp", "cifar10", 256)])
def test_activations_within_their_factor(model, dataset, width):
    """The per-sample layer outputs against what autograd saves for backward (which the peak
    memory of a step follows: 0.9-1.6 times it, measured): within a factor of 2."""
    from sgdthermo.nn.models import build_model

    s = budget.dataset_shape(dataset)
    net = build_model(model, in_channels=s.in_channels, num_classes=s.num_classes, width=width,
                      image_size=s.image_size)
    saved = []
    for batch in (2, 4):
        seen = {}

        def pack(t, seen=seen):
            seen[id(t)] = (t, t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(torch.randn(batch, s.in_channels, s.image_size, s.image_size))
        saved.append(sum(b for _, b in seen.values()))
    per_sample = (saved[1] - saved[0]) / 2
    estimate = 4 * budget.model_size(model, width, dataset).activations_per_sample
    assert 0.5 < estimate / per_sample < 2


# ---------------------------------------------------------------------------------------
# Nothing reasonable is refused (on a machine with 24 GiB)
# ---------------------------------------------------------------------------------------
def test_paper_network_settings_pass(ram24, tmp_path):
    paper = dict(protocol="fixed-elr", lr=1e-3, wd=5e-4, iters=100_000, batch_size=128,
                 queue_size=4000, queue_every=25, queue_dtype="float32", data_dir=str(tmp_path))
    for model, width in (("resnet18", 4), ("convnet", 8)):
        for dataset in ("cifar10", "cifar100"):
            cfg = TrainConfig(model=model, width=width, dataset=dataset, **paper)
            cfg.validate()
            assert sum(budget.estimate_train_memory(cfg).values()) < 8 * GiB
    # d ≈ 44 000 in float32 (the queue alone 670 MiB), batch 1024 and 64-bit queues still fit
    TrainConfig(model="resnet18", dataset="cifar10", **{**paper, "batch_size": 1024,
                                                        "queue_dtype": "float64"}).validate()


def test_defaults_and_test_settings_pass(ram24):
    TrainConfig(wd=0.01).validate()
    for model in ("convnet", "resnet18", "mlp"):
        for dataset in ("digits", "synthetic"):
            TrainConfig(model=model, dataset=dataset, wd=0.01).validate()
    fast = dict(model="mlp", width=16, dataset="synthetic", protocol="fixed-elr", lr=0.02, wd=0.01,
                iters=300, log_every=50, checkpoint_every=100, noise_batches=4, queue_size=10,
                queue_every=10, batch_size=64)  # tests/test_nn_training.py
    TrainConfig(**fast).validate()
    TrainConfig(**{**fast, "iters": 10**12}).validate()  # long, but not refused
    TrainConfig(model="convnet", width=4, dataset="digits", protocol="fixed-elr", lr=0.01, wd=0.01,
                iters=10_000, queue_size=400, queue_every=10).validate()  # docs/networks.md


def test_paper_isotropic_settings_pass(ram24):
    from sgdthermo.reproduce import DEFAULT, PAPER

    for protocol in ("fixed-lr", "fixed-elr", "fixed-sphere"):
        iso(protocol, n_lr=17, n_second=17, iters=2_000_000, queue_size=4000, queue_every=50)
        iso(protocol, n_lr=17, n_second=17, iters=2_000_000, queue_size=1000, queue_every=50)
        iso(protocol)  # the command line's defaults, one point
        iso(protocol, n_lr=9, n_second=9, iters=1_000_000, queue_every=500)  # the README's grid
    for preset in (DEFAULT, PAPER):
        assert sum(budget.estimate_isotropic_memory(preset.n_grid**2, preset.dim, preset.iters,
                                                    preset.queue_size).values()) < GiB
    # d = 100 with a 400-snapshot queue (tests/test_isotropic_simulator.py), and d = 10^4
    iso("fixed-sphere", n_lr=2, n_second=1, dim=100, queue_size=400)
    iso("fixed-sphere", n_lr=2, n_second=2, dim=10_000, queue_size=1000)
