"""The network reproduction: presets expand into sweeps, run, and are analysed."""

import pandas as pd
import pytest

from sgdthermo.cli import main
from sgdthermo.reproduce import NN_PRESETS, NNPreset, nn_sweep_specs, reproduce_nn
from sgdthermo.sweep import expand

TINY = NNPreset(
    name="tiny", model="mlp", dataset="synthetic", width=8, iters=150, queue_size=5, queue_every=10,
    log_every=50, noise_batches=2,
    grids={"fixed-lr": {"lr": (0.05, 0.1, 2), "wd": (0.01, 0.02, 2)},
           "fixed-elr": {"lr": (0.02, 0.04, 2), "wd": (0.01, 0.02, 2)},
           "fixed-sphere": {"lr": (0.02, 0.04, 2), "radius": (0.5, 1.0, 2)}},
)


@pytest.mark.parametrize("name", sorted(NN_PRESETS))
def test_presets_expand_to_valid_grids(name):
    preset = NN_PRESETS[name]
    specs = nn_sweep_specs(preset, data_dir=".", device="cpu")
    assert set(specs) == {"fixed-lr", "fixed-elr", "fixed-sphere"}
    for protocol, spec in specs.items():
        runs = expand(spec)
        n = 1
        for lo, hi, k in preset.grids[protocol].values():
            n *= k
        assert len(runs) == n * len(preset.seeds)
        assert all(cfg.protocol == protocol for _, cfg in runs)
        assert len({rid for rid, _ in runs}) == len(runs)


def test_reproduce_tiny_preset_end_to_end(tmp_path):
    out = tmp_path / "nn"
    res = reproduce_nn(out, TINY, log=lambda m: None)
    status = res["status"]
    assert len(status) == 12 and status["status"].isin(["completed", "diverged"]).all()
    assert (out / "report.md").exists() and (out / "runs.csv").exists() and (out / "maxwell.csv").exists()
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["protocol"]) == {"fixed-lr", "fixed-elr", "fixed-sphere"}
    # a second call trains nothing: every run is reused
    again = reproduce_nn(out, TINY, log=lambda m: None)
    assert (again["status"]["status"] == "skipped").all()


def test_reproduce_nn_cli_bad_input(tmp_path, capsys):
    code = main(["reproduce", "nn", "--preset", "imagenet", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "imagenet" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--device", "cuda:0"], "--device cuda:0"),
    (["--preset", "cifar10-convnet", "--device", "cpu", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--preset", "cifar10-convnet", "--device", "cpu"], "--data-dir"),
    (["--grid", "1"], "--grid 1"),
    (["--queue-every", "0"], "--queue-every"),
    (["--paper"], "--paper"),
])
def test_reproduce_nn_validates_everything_before_creating_out(tmp_path, capsys, argv, needle):
    import torch

    if argv[:2] == ["--device", "cuda:0"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "x"
    code = main(["reproduce", "nn", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not out.exists()


def test_reproduce_nn_honours_the_overrides(tmp_path):
    """--grid, --iters, --seed and the queue settings reach every run; the header states
    the steps actually run; each protocol's runs are a sweep of their own."""
    lines = []
    out = tmp_path / "nn"
    res = reproduce_nn(out, TINY, protocols=("fixed-lr",), n_grid=3, iters=120, seed=4, queue_size=4,
                       queue_every=5, log=lines.append)
    status = res["status"]
    assert len(status) == 9
    header = next(m for m in lines if m.startswith("[fixed-lr]"))
    assert "120 steps per run" in header and "3 x 3 grid" in header and "seed 4" in header
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["iters"]) == {120} and set(runs["seed"]) == {4} and set(runs["queue_size"]) == {4}
    assert (out / "runs" / "fixed-lr" / "sweep.json").exists()
