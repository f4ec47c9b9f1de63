"""The Thermometer's equilibrium predictions against what networks do when trained.

Each run trains one model with one optimizer (fixed seeds, i.i.d. batches of 128, a log point
every 200 steps, no noise batches) with a `Thermometer` attached, and compares, per
scale-invariant group, the measured radius ρ and RMS angular update θ with the predictions of
`sgdthermo.theory.equilibrium` that the Thermometer puts next to them:

- models: the digits ConvNet (width 4, frozen head of norm 2; 4 conv groups found by the
  Thermometer), a LayerNorm MLP on the flattened digits (64 → 256 → 256 → 10, bias-free
  Linear + LayerNorm before each ReLU, trainable head) with fresh Gaussian noise (σ = 1) added
  to the standardised pixels of every batch (`ln-mlp`; without it, `ln-mlp-clean`, the MLP fits
  the 1347 training images and there is no stationary state), and two models from
  `transformers` built from a config (nobody here wrote them): a small BERT on random tokens
  (AdamW without decay for biases and LayerNorm weights) and a small ResNet (basic blocks,
  BatchNorm with affine parameters, trainable classifier) on the digits with the same input
  noise (`hf-resnet`; without it `hf-resnet-clean`);
- optimizers: `torch.optim.SGD` (momentum 0 and 0.9, coupled weight decay), `torch.optim.AdamW`
  and the protocol optimizers `fixed-lr` / `fixed-elr` of `sgdthermo.nn.optim` (scale-invariant
  set initialised to norm 1, the other parameters decayed with the same λ). The protocols
  treat the whole scale-invariant set as one vector, so they are measured twice: with one group
  per tensor (`groups="per tensor"`) and with the whole set as one group (`groups="whole set"`).

Per group with at least `--min-d` parameters and for the whole set (`all`): the mean of
measured/predicted over the final window (the last 25 % of the run) for ρ and θ, the verdict
at the end, the first log step at which it was `equilibrated` and the share of the final
window's log points that are. For AdamW also the measured normalised update power
`update_sq` over its noise-dominated value d(1−β₁)/(1+β₁) and the radius predicted from it.
Two checks of the verdict at a fixed step: AdamW on the ConvNet after 4000 steps (the norm
still relaxing: `approaching` with `steps_left`) against SGD with momentum 0.9 after 2500
steps (`equilibrated`; read at the first log point from then on, step 2600).

    python benchmarks/thermometer_validation.py [--out validation.csv] [--frames DIR]
        [--runs convnet,ln-mlp,ln-mlp-clean,bert,hf-resnet,hf-resnet-clean] [--optimizers adamw,...]
        [--scale 1.0] [--threads 1]

`--scale` multiplies every run's length (0.25 for a quick look; the checks need the ConvNet
AdamW run to reach step 4000 and the SGD momentum run step 2500).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.nn.data import BatchSampler, load_dataset
from sgdthermo.nn.models import build_model, set_si_norm
from sgdthermo.nn.optim import make_optimizer
from sgdthermo.nn.thermometer import Thermometer
from sgdthermo.theory.equilibrium import adamw_equilibrium

LOG_EVERY = 200
FINAL_FRACTION = 0.25
#: the two cases the verdict must tell apart: (model, optimizer, step, expected verdict)
CHECKS = (("convnet", "adamw", 4000, "approaching"), ("convnet", "sgd-m0.9", 2500, "equilibrated"))


@dataclass(frozen=True)
class Run:
    model: str
    optimizer: str  # sgd-m0 | sgd-m0.9 | adamw | fixed-lr | fixed-elr
    lr: float
    wd: float
    steps: int
    betas: tuple[float, float] = (0.9, 0.999)
    note: str = ""


def runs(scale: float) -> list[Run]:
    """The runs, their lengths multiplied by ``scale`` (rounded to log points)."""

    def n(steps: int) -> int:
        return max(LOG_EVERY * 8, round(steps * scale / LOG_EVERY) * LOG_EVERY)

    out = []
    for m in ("convnet", "ln-mlp"):
        out += [Run(m, "sgd-m0", 0.05, 5e-3, n(10_000 if m == "convnet" else 20_000)),
                Run(m, "sgd-m0.9", 0.05, 5e-3, n(5_000)),
                Run(m, "adamw", 3e-3, 0.1, n(20_000)),
                Run(m, "fixed-lr", 0.1, 5e-3, n(6_000)),
                # the whole-set gradient on the sphere of the MLP is ~10x the ConvNet's: at
                # eta~ = 0.02 the learning rate eta~ rho^2 that its head shares diverges
                Run(m, "fixed-elr", 0.02 if m == "convnet" else 0.01, 0.01, n(6_000))]
    # the MLP on the digits themselves (no input noise): it fits the 1347 training images
    out += [Run("ln-mlp-clean", "sgd-m0", 0.05, 5e-3, n(20_000)),
            Run("ln-mlp-clean", "sgd-m0.9", 0.05, 5e-3, n(5_000)),
            Run("ln-mlp-clean", "adamw", 3e-3, 0.1, n(10_000))]
    out += [Run("bert", "adamw", 1e-3, 0.01, n(2_000), note="common BERT settings: tau ~ 5e4 steps"),
            Run("bert", "adamw", 2e-3, 1.0, n(4_000), (0.9, 0.99), "chosen so that tau ~ 400 steps"),
            Run("hf-resnet", "sgd-m0.9", 0.05, 5e-3, n(5_000)),
            Run("hf-resnet-clean", "sgd-m0.9", 0.05, 5e-3, n(5_000))]
    return out


# ------------------------------------------------------------------------------------ models
def layernorm_mlp(in_features: int = 64, hidden: int = 256, classes: int = 10) -> nn.Module:
    """64 → 256 → 256 → 10: bias-free Linear, LayerNorm, ReLU (twice), then a linear head."""
    return nn.Sequential(
        nn.Linear(in_features, hidden, bias=False), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, hidden, bias=False), nn.LayerNorm(hidden), nn.ReLU(),
        nn.Linear(hidden, classes),
    )


@dataclass
class Task:
    """A model, the scale-invariant tensors the protocol optimizers get, and its batches."""

    model: nn.Module
    si: list[nn.Parameter]
    batch: Callable[[], Any]           # the next training batch
    loss: Callable[[Any], torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def _digits_task(model: nn.Module, flatten: bool, si: list[nn.Parameter], input_noise: float = 0.0) -> Task:
    data = load_dataset("digits")
    x = data.train_x.flatten(1) if flatten else data.train_x
    y = data.train_y
    sampler = BatchSampler(x.shape[0], 128, seed=0)
    gen = torch.Generator().manual_seed(0)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = sampler.next()
        if input_noise:  # fresh Gaussian noise on the standardised pixels: no finite training set to fit
            return x[idx] + input_noise * torch.randn(x[idx].shape, generator=gen), y[idx]
        return x[idx], y[idx]

    return Task(model, si, batch, lambda b: F.cross_entropy(model(b[0]), b[1]))


def make_task(name: str) -> Task:
    torch.manual_seed(0)
    if name == "convnet":
        model = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=2.0, image_size=8)
        return _digits_task(model, False, [p for p in model.parameters() if p.requires_grad])
    if name in ("ln-mlp", "ln-mlp-clean"):
        model = layernorm_mlp()
        return _digits_task(model, True, [model[0].weight, model[3].weight], 1.0 if name == "ln-mlp" else 0.0)
    if name in ("hf-resnet", "hf-resnet-clean"):
        from transformers import ResNetConfig, ResNetForImageClassification

        cfg = ResNetConfig(num_channels=1, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                           layer_type="basic", num_labels=10)
        model = ResNetForImageClassification(cfg)
        task = _digits_task(model, False, [], 1.0 if name == "hf-resnet" else 0.0)
        task.loss = lambda b: F.cross_entropy(model(b[0]).logits, b[1])
        return task
    if name == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                         vocab_size=100, max_position_embeddings=16, type_vocab_size=1, num_labels=2,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model = BertForSequenceClassification(cfg)
        gen = torch.Generator().manual_seed(0)

        def batch() -> dict[str, torch.Tensor]:
            # fresh random tokens every step; label: is the second token below 50, 20 % flipped
            ids = torch.randint(0, 100, (64, 16), generator=gen)
            flip = torch.rand(64, generator=gen) < 0.2
            return {"input_ids": ids, "labels": ((ids[:, 1] < 50) ^ flip).long()}

        # detected from a batch before the first step (the default, the first batch the model
        # sees, finds the same joint embedding set; see docs/networks.md)
        return Task(model, [], batch, lambda b: model(**b).loss, {"example": batch(), "no_decay": ("bias", "LayerNorm")})
    raise ValueError(f"unknown model {name!r}")


def make_optimizer_for(run: Run, task: Task) -> torch.optim.Optimizer:
    params = [p for p in task.model.parameters() if p.requires_grad]
    if run.optimizer.startswith("sgd"):
        mu = float(run.optimizer.split("-m")[1])
        return torch.optim.SGD(params, lr=run.lr, momentum=mu, weight_decay=run.wd)
    if run.optimizer == "adamw":
        skip = task.extra.get("no_decay")
        if skip:  # the usual recipe for transformers: no decay for biases and LayerNorm weights
            named = [(n, p) for n, p in task.model.named_parameters() if p.requires_grad]
            groups = [{"params": [p for n, p in named if not any(k in n for k in skip)]},
                      {"params": [p for n, p in named if any(k in n for k in skip)], "weight_decay": 0.0}]
            return torch.optim.AdamW(groups, lr=run.lr, weight_decay=run.wd, betas=run.betas)
        return torch.optim.AdamW(params, lr=run.lr, weight_decay=run.wd, betas=run.betas)
    si_ids = {id(p) for p in task.si}
    others = [p for p in params if id(p) not in si_ids]
    # the other parameters (LayerNorm affine, head) decay too, so that nothing grows without bound
    return make_optimizer(run.optimizer, task.si, lr=run.lr, weight_decay=run.wd, other_params=others,
                          other_weight_decay=run.wd)


# ------------------------------------------------------------------------------------ training
def train(run: Run) -> tuple[dict[str, pd.DataFrame], float]:
    """Train ``run``; the Thermometer frames by label, and the seconds it took."""
    task = make_task(run.model)
    if run.optimizer.startswith("fixed"):
        set_si_norm(task.si, 1.0)  # the protocols' convention (`sgdthermo train --init-norm 1`)
    opt = make_optimizer_for(run, task)
    names = {id(p): n for n, p in task.model.named_parameters()}
    if run.optimizer.startswith("fixed"):
        # one group per SI tensor (passed: the detection would also pick up groups in the
        # optimizer's non-SI param group), and the whole set as one vector, as the protocol sees it
        thermos = {"per tensor": Thermometer(task.model, opt, groups={names[id(p)]: [p] for p in task.si}),
                   "whole set": Thermometer(task.model, opt, groups={"si": task.si})}
    else:
        thermos = {"detected": Thermometer(task.model, opt, example=task.extra.get("example"))}
    task.model.train()
    t0 = time.perf_counter()
    for step in range(1, run.steps + 1):
        b = task.batch()
        opt.zero_grad(set_to_none=True)
        task.loss(b).backward()
        opt.step()
        for th in thermos.values():
            th.step()
        if step % LOG_EVERY == 0:
            for th in thermos.values():
                th.log(step)
    seconds = time.perf_counter() - t0
    frames = {}
    for label, th in thermos.items():
        th.close()
        df = th.to_frame()
        df.insert(0, "groups", label)
        frames[label] = df
    return frames, seconds


# ------------------------------------------------------------------------------------ summary
def summarise(run: Run, df: pd.DataFrame, min_d: int) -> list[dict[str, Any]]:
    out = []
    start = run.steps * (1 - FINAL_FRACTION)
    for group, g in df.groupby("group", sort=False):
        d = int(g["d"].iloc[0])
        if d < min_d and group != "all":
            continue
        g = g.sort_values("step")
        fin = g[g["step"] > start]
        eq = g.loc[g["verdict"] == "equilibrated", "step"]
        last = g.iloc[-1]
        extra = {}
        if run.optimizer == "adamw" and group != "all":
            # the radius predicted from the measured normalised update power instead of d(1-b1)/(1+b1)
            u = float(fin["update_sq"].mean())
            b1 = run.betas[0]
            extra = {"update_sq_ratio": u / (d * (1 - b1) / (1 + b1)),
                     "rho_ratio_measured_u": float(fin["rho"].mean())
                     / adamw_equilibrium(run.lr, run.wd, d, betas=run.betas, update_sq=u).rho}
        out.append({
            "summary": "final window", "model": run.model, "optimizer": run.optimizer, "lr": run.lr, "wd": run.wd,
            "beta2": run.betas[1] if run.optimizer == "adamw" else float("nan"), "steps": run.steps,
            "groups": g["groups"].iloc[0], "group": group, "d": d,
            "rho_ratio": float((fin["rho"] / fin["rho_pred"]).mean()),
            "rho_ratio_sd": float((fin["rho"] / fin["rho_pred"]).std()),
            "angle_ratio": float((fin["angular_update"] / fin["angular_update_pred"]).mean()),
            "angle_ratio_sd": float((fin["angular_update"] / fin["angular_update_pred"]).std()),
            "rho": float(fin["rho"].mean()), "rho_pred": float(fin["rho_pred"].mean()),
            "angular_update": float(fin["angular_update"].mean()),
            "angular_update_pred": float(fin["angular_update_pred"].mean()),
            "relaxation_steps": float(last["relaxation_steps"]),
            "equilibrated_share": float((fin["verdict"] == "equilibrated").mean()),
            "first_equilibrated": int(eq.iloc[0]) if len(eq) else -1,
            "at_step": int(last["step"]), "verdict": last["verdict"], "steps_left": float(last["steps_left"]),
            "reason": last["reason"], **extra,
        })
    return out


def check_rows(run: Run, df: pd.DataFrame, at: int, expected: str, min_d: int) -> list[dict[str, Any]]:
    out = []
    for _, r in df[df["step"] == at].iterrows():
        if r["d"] < min_d and r["group"] != "all":
            continue
        out.append({
            "summary": f"check at step {at}", "model": run.model, "optimizer": run.optimizer, "lr": run.lr,
            "wd": run.wd, "beta2": run.betas[1] if run.optimizer == "adamw" else float("nan"), "steps": run.steps,
            "groups": r["groups"], "group": r["group"], "d": int(r["d"]),
            "rho_ratio": r["rho"] / r["rho_pred"], "angle_ratio": r["angular_update"] / r["angular_update_pred"],
            "rho": r["rho"], "rho_pred": r["rho_pred"], "angular_update": r["angular_update"],
            "angular_update_pred": r["angular_update_pred"], "relaxation_steps": r["relaxation_steps"],
            "at_step": at, "verdict": r["verdict"], "steps_left": r["steps_left"], "reason": r["reason"],
            "expected": expected, "as_expected": bool(r["verdict"] == expected),
        })
    return out


def _fmt(x: Any, spec: str = ".3f") -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "—"
    return format(x, spec)


def _short(name: str) -> str:
    for long, short in (("resnet.encoder.stages.", "stages."), (".layers.0.layer.", ".l"), (".convolution", ".conv")):
        name = name.replace(long, short)
    return name


def _adam(r: pd.Series) -> str:
    u, q = r.get("update_sq_ratio", float("nan")), r.get("rho_ratio_measured_u", float("nan"))
    return "" if not (isinstance(u, float) and math.isfinite(u)) else f"{u:.2f}, {q:.3f}"


def markdown(table: pd.DataFrame) -> str:
    fin = table[table["summary"] == "final window"]
    header = ("| model | optimizer | η, λ | steps (τ) | groups | group | d | ρ/ρ_pred | θ/θ_pred | verdict at end | "
              "first equilibrated | equilibrated share | AdamW: U/U_pred, ρ/ρ_pred(U) |")
    lines = [header, "|" + "---|" * 13]
    for _, r in fin.iterrows():
        tau = r["relaxation_steps"]
        lines.append(
            f"| {r['model']} | {r['optimizer']} | {r['lr']:g}, {r['wd']:g} | {r['steps']} ({_fmt(tau, '.0f')}) | "
            f"{r['groups']} | {_short(r['group'])} | {r['d']} | {_fmt(r['rho_ratio'])} | {_fmt(r['angle_ratio'])} | "
            f"{r['verdict']} | {int(r['first_equilibrated']) if r['first_equilibrated'] >= 0 else 'never'} | "
            f"{100 * r['equilibrated_share']:.0f} % | {_adam(r)} |")
    chk = table[table["summary"] != "final window"]
    if len(chk):
        lines += ["", "| check | group | d | ρ/ρ_pred | θ/θ_pred | verdict | steps_left | expected |", "|" + "---|" * 8]
        for _, r in chk.iterrows():
            lines.append(f"| {r['model']} {r['optimizer']} at step {r['at_step']} | {_short(r['group'])} | {r['d']} | "
                         f"{_fmt(r['rho_ratio'])} | {_fmt(r['angle_ratio'])} | {r['verdict']} | "
                         f"{_fmt(float(r['steps_left']), '.0f')} | {r['expected']}"
                         f"{'' if r['as_expected'] else ' (MISSED)'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="tidy CSV of the summaries")
    ap.add_argument("--frames", type=Path, default=None, help="folder for every run's full Thermometer frame")
    ap.add_argument("--runs", default="convnet,ln-mlp,ln-mlp-clean,bert,hf-resnet,hf-resnet-clean",
                    help="models to run (comma-separated)")
    ap.add_argument("--optimizers", default=None, help="only these optimizers (comma-separated)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run's length")
    ap.add_argument("--min-d", type=int, default=1000, help="smallest group reported")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (runs are reproducible for a given count)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = args.runs.split(",")
    opts = None if args.optimizers is None else set(args.optimizers.split(","))
    todo = [r for r in runs(args.scale) if r.model in models and (opts is None or r.optimizer in opts)]
    rows: list[dict[str, Any]] = []
    total = time.perf_counter()
    if args.frames is not None:
        args.frames.mkdir(parents=True, exist_ok=True)
    for run in todo:
        frames, seconds = train(run)
        print(f"{run.model:9s} {run.optimizer:9s} lr {run.lr:g} wd {run.wd:g} {run.steps} steps: {seconds:6.1f} s",
              flush=True)
        for label, df in frames.items():
            rows += [dict(r, runtime_s=seconds) for r in summarise(run, df, args.min_d)]
            for model, opt, at, expected in CHECKS:
                if (run.model, run.optimizer) == (model, opt) and at <= run.steps:
                    at = int(df.loc[df["step"] >= at, "step"].min())  # the first log point from then on
                    rows += check_rows(run, df, at, expected, args.min_d)
            if args.frames is not None:
                tag = f"{run.model}_{run.optimizer}_lr{run.lr:g}_wd{run.wd:g}" + ("" if len(frames) == 1 else "_" + label.replace(" ", "-"))
                df.to_csv(args.frames / f"{tag}.csv", index=False)
    table = pd.DataFrame(rows)
    print(f"\ntotal {time.perf_counter() - total:.0f} s, {torch.get_num_threads()} thread(s)\n")
    print(markdown(table))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
