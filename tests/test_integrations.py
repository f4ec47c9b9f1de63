"""The Lightning and Hugging Face callbacks that run a Thermometer inside their trainers."""

import importlib
import math
import subprocess
import sys

import pytest
import torch
from torch import nn


def _data(n=256, features=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    y = (x @ w).argmax(1)
    return x, y


def _net(features=12, hidden=16, classes=3, dropout=0.0):
    """Linear → BatchNorm: the first weight is scale-invariant. Dropout draws from the global
    random state, which the callbacks' noise batches must leave alone."""
    return nn.Sequential(nn.Linear(features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, classes))


def _check_frame(df, steps=(10, 20, 30)):
    assert sorted(df["step"].unique()) == list(steps)
    assert "all" in set(df["group"])
    allrows = df[df["group"] == "all"]
    assert len(allrows) == len(steps)
    assert (allrows["rho"] > 0).all()
    assert all(math.isfinite(v) for v in allrows["angular_update"])
    assert (allrows["angular_update"] > 0).all()
    assert (df["group"] != "all").sum() >= len(steps)  # at least one scale-invariant group of its own


def test_import_is_lazy():
    """Importing the package pulls in neither framework; the names resolve on first use."""
    code = ("import sys, sgdthermo, sgdthermo.integrations as m\n"
            "assert sorted(m.__all__) == ['ThermometerCallback', 'ThermometerTrainerCallback']\n"
            "bad = [n for n in ('lightning', 'pytorch_lightning', 'transformers', 'accelerate',\n"
            "       'sgdthermo.integrations.lightning', 'sgdthermo.integrations.huggingface') if n in sys.modules]\n"
            "assert not bad, bad\n"
            "try:\n    m.NoSuchCallback\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_scalars_of_the_all_row():
    from sgdthermo.integrations import _scalars

    rows = [{"step": 10, "group": "0.weight", "rho": 2.0},
            {"step": 10, "group": "all", "d": 5, "steps": 10, "rho": 3.0, "elr": float("nan"), "verdict": "unknown",
             "angular_update": 0.1}]
    assert _scalars(rows) == {"rho": 3.0, "angular_update": 0.1}
    assert _scalars(rows, group="none") == {}


# ---------------------------------------------------------------------------------------------
# Lightning


def _lightning():
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        return pytest.importorskip("pytorch_lightning")


def _lightning_module(L, dropout=0.0):
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net(dropout=dropout)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)

    return Tiny()


def _fit(L, tmp_path, callbacks, logger=False, dropout=0.0):
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(0, verbose=False)
    module = _lightning_module(L, dropout)
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    trainer = L.Trainer(max_steps=30, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=tmp_path,
                        callbacks=callbacks, num_sanity_val_steps=0)
    trainer.fit(module, loader)
    return module, trainer


def test_lightning_callback(tmp_path):
    L = _lightning()
    from sgdthermo.integrations import ThermometerCallback

    logger = L.loggers.CSVLogger(tmp_path, name="run")
    cb = ThermometerCallback(log_every=10, noise_batches=2)
    _, trainer = _fit(L, tmp_path, [cb], logger=logger)
    df = cb.to_frame()
    _check_frame(df)
    allrows = df[df["group"] == "all"]
    assert (allrows["trace_cov"] > 0).all()  # the noise estimate ran
    assert cb.thermometer is not None and cb.thermometer.kind == "sgd"
    assert math.isfinite(cb.latest["angular_update_pred"]) and cb.latest["rho"] > 0
    # the default folder: the logger's, then thermo/
    csv = tmp_path / "run" / "version_0" / "thermo" / "thermo.csv"
    assert csv.is_file()
    # the scalars reached the logger under thermo/ and the callback metrics
    metrics = (tmp_path / "run" / "version_0" / "metrics.csv").read_text()
    assert "thermo/rho" in metrics and "thermo/angular_update" in metrics
    assert "thermo/rho" in trainer.callback_metrics


def test_lightning_callback_only_observes(tmp_path):
    """With noise batches drawn at every log point, training follows the same trajectory."""
    L = _lightning()
    from sgdthermo.integrations import ThermometerCallback

    plain, _ = _fit(L, tmp_path / "a", [], dropout=0.2)
    cb = ThermometerCallback(log_every=10, noise_batches=3, log_dir=tmp_path / "th")
    watched, _ = _fit(L, tmp_path / "b", [cb], dropout=0.2)
    for p, q in zip(plain.parameters(), watched.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for p, q in zip(plain.buffers(), watched.buffers()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (tmp_path / "th" / "thermo.csv").is_file()
    _check_frame(cb.to_frame())


def test_lightning_callback_arguments():
    _lightning()
    from sgdthermo.integrations.lightning import ThermometerCallback

    with pytest.raises(ValueError):
        ThermometerCallback(noise_batches=1)
    with pytest.raises(ValueError):
        ThermometerCallback(log_every=0)
    with pytest.raises(TypeError):
        ThermometerCallback(noise_k=4)
    assert list(ThermometerCallback().to_frame().columns)[:2] == ["step", "group"]


# ---------------------------------------------------------------------------------------------
# Hugging Face


class _DictNet(nn.Module):
    """A plain module in the Trainer's calling convention: ``forward(x, labels)`` returns a
    mapping with ``"loss"`` and ``"logits"``."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.net = _net(dropout=dropout)

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class _DictData(torch.utils.data.Dataset):
    def __init__(self):
        self.x, self.y = _data()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _hf_train(tmp_path, callbacks, dropout=0.0):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    transformers.set_seed(0)
    model = _DictNet(dropout)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=30, per_device_train_batch_size=16, logging_steps=1000,
        save_strategy="no", report_to=[], use_cpu=True, learning_rate=0.1, weight_decay=1e-3,
        lr_scheduler_type="constant", warmup_steps=0, disable_tqdm=True, dataloader_num_workers=0, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_DictData(), callbacks=callbacks,
                                   optimizers=(opt, None))
    trainer.train()
    return model, trainer


def test_huggingface_callback(tmp_path):
    pytest.importorskip("transformers")
    from sgdthermo.integrations import ThermometerTrainerCallback

    cb = ThermometerTrainerCallback(log_every=10, noise_batches=2)
    _hf_train(tmp_path, [cb])
    df = cb.to_frame()
    _check_frame(df)
    assert (df[df["group"] == "all"]["trace_cov"] > 0).all()
    th = cb.thermometer
    assert th.kind == "sgd"  # accelerate's wrapper was unwrapped
    assert type(th.optimizer) is torch.optim.SGD
    assert (df["lr"] == 0.1).all()  # the learning rate of the step, read before the scheduler moves
    assert cb.latest["rho"] > 0
    assert (tmp_path / "thermo" / "thermo.csv").is_file()


def test_huggingface_callback_only_observes(tmp_path):
    pytest.importorskip("transformers")
    from sgdthermo.integrations.huggingface import ThermometerTrainerCallback

    plain, _ = _hf_train(tmp_path / "a", [], dropout=0.2)
    cb = ThermometerTrainerCallback(log_every=10, noise_batches=3)
    watched, _ = _hf_train(tmp_path / "b", [cb], dropout=0.2)
    for p, q in zip(plain.parameters(), watched.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    _check_frame(cb.to_frame())


def test_huggingface_helpers():
    pytest.importorskip("transformers")
    from sgdthermo.integrations.huggingface import model_loss, unwrap_optimizer

    net = _DictNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    class Wrapped(torch.optim.Optimizer):
        def __init__(self, optimizer):
            self.optimizer = optimizer

    assert unwrap_optimizer(Wrapped(Wrapped(opt))) is opt
    assert unwrap_optimizer(opt) is opt
    x, y = _data(n=8)
    assert model_loss(net, {"x": x, "labels": y}).ndim == 0
    with pytest.raises(ValueError):
        model_loss(net, {"x": x})
