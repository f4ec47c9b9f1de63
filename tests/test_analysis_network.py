"""Tests of sgdthermo.analysis.network (and the sweep report) on synthetic sweep folders and on four real tiny runs.

The synthetic sweeps are run folders written from the ideal-gas closed forms of
:func:`sgdthermo.analysis.synthetic_results` (d = 1001, 4 × 4 grids, known noise), plus runs that
must be excluded (diverged, non-stationary, interpolating, failed, unfinished, no entropy) and
that carry absurd entropies, so that a fit that took them in would fail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdthermo.analysis import network as SA
from sgdthermo.analysis import synthetic_results
from sgdthermo.cli import analyze as analyze_cmd
from sgdthermo.cli.common import Parser
from sgdthermo.errors import UsageError
from sgdthermo.figures.network import SWEEP_FIGURES
from sgdthermo.report.network import analyze

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
D = 1001
R = (D - 1) / 2


# ---------------------------------------------------------------------------------------
# Synthetic sweep folders
# ---------------------------------------------------------------------------------------
def _write(folder: Path, config: dict | None = None, summary: dict | None = None,
           metrics: pd.DataFrame | None = None, error: str | None = None) -> None:
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if metrics is not None:
        metrics.to_csv(folder / "metrics.csv", index=False)
    if error is not None:
        (folder / "error.txt").write_text(error)


def _config(protocol: str, lr: float, wd: float | None, radius: float | None, seed: int = 0) -> dict:
    return {"model": "mlp", "width": 8, "dataset": "synthetic", "protocol": protocol, "lr": lr, "wd": wd,
            "radius": radius, "seed": seed, "iters": 1000, "batch_size": 32, "head_norm": 2.0, "loss": "ce",
            "queue_size": 50, "queue_every": 10, "noise_batches": 4, "d": D}


def _metrics(rho: float, U: float, sigma2: float) -> pd.DataFrame:
    steps = np.arange(100, 1001, 100)
    relax = np.exp(-steps / 200)
    return pd.DataFrame({"step": steps, "train_loss": U * (1 + relax), "test_loss": 1.1 * U * (1 + relax),
                         "train_acc": 0.9 - 0.2 * relax, "test_acc": 0.85 - 0.2 * relax,
                         "rho_mean": rho * (1 - 0.5 * relax), "sigma2": sigma2 * (1 + relax)})


def _none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def write_sweep(root: Path, protocol: str = "fixed-lr", *, n: int = 4, seed: int = 0,
                entropy_noise: float = 2.0, slope_error: float = 0.0, extras: bool = True,
                metrics: bool = True, keep: slice | None = None) -> pd.DataFrame:
    """An ideal-gas sweep (d = 1001, n × n grid) as run folders; returns the truth table.

    ``slope_error``: S → S − slope_error·R·log lr (a wrong Maxwell slope). ``extras``: add
    runs that must be excluded, each with an absurd entropy.
    """
    root.mkdir(parents=True, exist_ok=True)
    df = synthetic_results(protocol, dim=D, n_lr=n, n_wd=n, lr_range=(1e-2, 1e-1),
                           wd_range=(1e-3, 1e-2), radius_range=(0.5, 2.0), rel_noise=0.005,
                           entropy_noise=entropy_noise, seed=seed)
    df["S"] = df["S"] - slope_error * R * np.log(df["lr"])
    if keep is not None:
        df = df.iloc[keep].reset_index(drop=True)
    sph = protocol == "fixed-sphere"
    for k, r in df.iterrows():
        wd = None if sph else float(r["wd"])
        radius = float(r["radius"]) if sph else None
        gu = (D - 1) * 1.0 + r["grad_sq"]  # E‖g_B(u)‖² = tr Σ(u) + ‖∇L(u)‖², σ = 1
        summary = {
            "status": "completed", "message": "", "stationary": True, "interpolating": False, "reason": "",
            "d": D, "protocol": protocol, "lr": float(r["lr"]), "wd": wd, "radius": radius,
            "rho": r["rho"], "rho_err": r["rho_err"], "rho2": r["rho"] ** 2, "rho2_err": 2 * r["rho"] * r["rho_err"],
            "sigma2": 1.0, "sigma2_err": 0.01, "trace_cov": (D - 1) / r["rho"] ** 2, "grad_sq_unit": gu,
            "train_loss": r["U"], "train_loss_err": r["U_err"], "test_loss": 1.1 * r["U"],
            "train_acc": 0.9, "test_acc": 0.85, "T": r["T"], "T_err": 0.005 * r["T"], "R": R,
            "S_sphere": r["S_sphere"], "S_sphere_err": r["S_sphere_err"], "S": r["S"], "S_err": r["S_err"],
            "rho_theory": r["rho_theory"], "rho_theory_discrete": r["rho_theory_discrete"],
            "p": r["p"], "p_err": r["p_err"], "p_theory": r["p_theory"],
            "p_theory_discrete": r["p_theory_discrete"], "V": r["rho"] ** 2 / 2, "steps": 1000, "runtime_s": 1.0,
        }
        summary = {k2: (_none(v) if isinstance(v, float) else v) for k2, v in summary.items()}
        _write(root / f"run{k:03d}", _config(protocol, float(r["lr"]), wd, radius), summary,
               _metrics(float(r["rho"]), float(r["U"]), 1.0) if metrics else None)
    if extras:
        r = df.iloc[len(df) // 2]
        lr = float(r["lr"])
        wd = None if sph else float(r["wd"])
        radius = float(r["radius"]) if sph else None
        base = {"d": D, "protocol": protocol, "lr": lr, "wd": wd, "radius": radius, "rho": 3.0, "rho_err": 0.1,
                "rho2": 9.0, "sigma2": 1.0, "train_loss": 0.5, "T": float(r["T"]), "S_err": 1.0,
                "rho_theory": 1.0, "rho_theory_discrete": 1.0, "p": 1.0, "p_theory": 1.0, "p_theory_discrete": 1.0}
        cfg = _config(protocol, lr, wd, radius, seed=1)
        _write(root / "x_diverged", cfg, {**base, "status": "diverged", "stationary": False, "S": 1e6,
                                           "message": "non-finite loss or weights at step 12 (loss nan)"})
        _write(root / "x_nonstat", cfg, {**base, "status": "completed", "stationary": False, "S": 1e6,
                                          "interpolating": False, "reason": "not settled: rho"})
        _write(root / "x_interp", cfg, {**base, "status": "completed", "stationary": False, "S": -1e6,
                                         "interpolating": True,
                                         "reason": "interpolation regime: loss and gradient noise still falling, radius shrinking"})
        _write(root / "x_noentropy", cfg, {**base, "status": "completed", "stationary": True, "S": None,
                                            "interpolating": False})
        _write(root / "x_failed", cfg, error="Traceback (most recent call last):\n  ...\nRuntimeError: out of memory\n")
        _write(root / "x_failed_early", None, error="ValueError: unknown model 'vgg'\n")
        _write(root / "x_unfinished", cfg, metrics=_metrics(3.0, 0.5, 1.0).head(2))
        (root / "notes").mkdir()
        (root / "notes" / "readme.txt").write_text("not a run")
    return df


N_EXTRAS = 7


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "lr"
    write_sweep(root, "fixed-lr")
    return root


@pytest.fixture(scope="module")
def lr_runs(lr_sweep) -> pd.DataFrame:
    return SA.load_runs(lr_sweep)


# ---------------------------------------------------------------------------------------
# load_runs, usable, excluded
# ---------------------------------------------------------------------------------------
def test_load_runs_statuses_and_derived_columns(lr_runs):
    df = lr_runs
    assert len(df) == 16 + N_EXTRAS  # "notes/" is not a run
    by = df.set_index("run_id")
    assert by.loc["x_diverged", "status"] == "diverged"
    assert "non-finite" in by.loc["x_diverged", "exclusion_reason"]
    assert by.loc["x_failed", "status"] == "failed"
    assert by.loc["x_failed", "reason"] == "RuntimeError: out of memory"
    assert by.loc["x_failed_early", "status"] == "failed" and pd.isna(by.loc["x_failed_early", "protocol"])
    assert by.loc["x_unfinished", "status"] == "unfinished"
    assert "last logged step 200 of 1000" in by.loc["x_unfinished", "reason"]
    assert by.loc["x_interp", "exclusion_reason"].startswith("interpolating")
    assert by.loc["x_nonstat", "exclusion_reason"].startswith("non-stationary")
    assert "no entropy" in by.loc["x_noentropy", "exclusion_reason"]
    ok = SA.usable(df)
    assert ok.sum() == 16 and ok.equals(df["usable"].rename("usable"))
    assert set(df.loc[ok, "run_id"]) == {f"run{k:03d}" for k in range(16)}
    good = df[ok]
    assert np.allclose(good["U"], good["train_loss"])
    assert np.allclose(good["V"], good["rho2"] / 2)  # V from ρ², not ρ
    assert np.allclose(good["p"], good["wd"])
    assert np.allclose(good["R"], R) and (good["dim"] == D).all()
    assert (good["group"] == "fixed-lr").all()
    # round trip through CSV keeps the usable mask (string booleans)
    back = pd.read_csv(pd.io.common.StringIO(df.to_csv(index=False)))
    assert SA.usable(back).sum() == 16


def test_excluded_runs_table(lr_runs):
    ex = SA.excluded_runs(lr_runs)
    assert len(ex) == N_EXTRAS
    assert (ex["exclusion_reason"] != "").all()
    assert set(ex["status"]) == {"diverged", "completed", "failed", "unfinished"}


def test_load_runs_empty_and_missing(tmp_path):
    assert len(SA.load_runs(tmp_path)) == 0
    with pytest.raises(NotADirectoryError):
        SA.load_runs(tmp_path / "nope")


# ---------------------------------------------------------------------------------------
# V3 Maxwell
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["fixed-lr", "fixed-elr", "fixed-sphere"])
def test_maxwell_recovers_target(tmp_path, protocol):
    write_sweep(tmp_path / "s", protocol, metrics=False)
    mt = SA.maxwell_test(SA.load_runs(tmp_path / "s"))
    assert len(mt) == 1
    r = mt.iloc[0]
    assert r["verdict"] == "PASS", r["note"]
    assert r["n"] == 16  # the excluded runs (absurd S) never enter the fit
    # combo1 is the relation at lr = λ = 1, an extrapolation: its error is the larger one
    assert abs(r["combo1"] - 1) < 4 * r["combo1_err"] and r["combo1_err"] < 0.1
    assert r["centre"] == pytest.approx(1, abs=0.02)  # the relation where the data are
    assert abs(r["combo2"]) < 0.1 and abs(r["combo3"]) < 0.1
    assert r["r2"] > 0.99 and r["mean_rel_err"] < 0.05
    assert r["combo1_target"] == 1 and r["combo2_target"] == 0
    expected = {"fixed-lr": "(a1-a2)/R", "fixed-elr": "a2/(-R)", "fixed-sphere": "a2/(d-1)"}[protocol]
    assert r["combo1_name"] == expected
    assert r["d"] == D and r["R"] == R
    # the main combination splits into the radius term and the sphere entropy
    assert r["main_radius_part"] + r["main_sphere_part"] == pytest.approx(r["combo1"], abs=1e-6)


def test_flagged_entropies_stay_in_v1_but_not_in_v3(tmp_path):
    """Runs whose entropy came from correlated snapshots (``entropy_ok`` False in summary.json)
    are measured in V1 and the noise fits but kept out of the Maxwell fit, with the reason;
    summaries without the verdict (written before it existed) are not flagged."""
    root = tmp_path / "s"
    write_sweep(root, "fixed-lr", metrics=False, extras=False)
    flagged = sorted(root.iterdir())[:3]
    for folder in flagged:
        summ = json.loads((folder / "summary.json").read_text())
        summ.update(entropy_ok=False, queue_tau=12.0, queue_n_eff=2.0, queue_nn_lag=0.97,
                    entropy_note="correlated snapshots: 97 % ...; raise --queue-every", S=summ["S"] + 1e4)
        (folder / "summary.json").write_text(json.dumps(summ))
    df = SA.load_runs(root)
    assert df["entropy_ok"].isna().sum() == 13 and (df["entropy_ok"] == False).sum() == 3  # noqa: E712
    assert df.set_index("run_id").loc[flagged[0].name, "queue_nn_lag"] == 0.97
    assert len(SA.radius_table(df)) == 16
    mt = SA.maxwell_test(df).iloc[0]
    assert mt["n"] == 13 and mt["verdict"] == "PASS", mt["note"]  # the shifted S never enters
    ex = SA.excluded_runs(df)
    assert sorted(ex["run_id"]) == sorted(f.name for f in flagged)
    assert ex["exclusion_reason"].str.startswith("entropy not trusted (correlated snapshots").all()


def test_maxwell_fails_for_wrong_slope(tmp_path):
    write_sweep(tmp_path / "s", "fixed-lr", slope_error=0.3, extras=False, metrics=False)
    r = SA.maxwell_test(SA.load_runs(tmp_path / "s")).iloc[0]
    assert r["verdict"] == "FAIL"
    assert r["centre"] == pytest.approx(0.7, abs=0.02) and not r["centre_pass"]
    assert abs(r["combo1"] - 0.7) < 4 * r["combo1_err"]
    assert not r["combo1_pass"] and "(a1-a2)/R" in r["note"]


def test_maxwell_underdetermined_and_too_few(tmp_path):
    # 6 usable runs on 3 × 2 values: enough runs, not enough span → UNDERDETERMINED
    write_sweep(tmp_path / "a", "fixed-elr", n=3, extras=False, metrics=False, keep=slice(0, 6))
    df = SA.load_runs(tmp_path / "a")
    mt, _, notes = SA.maxwell_analysis(df)
    assert len(mt) == 1 and mt.iloc[0]["verdict"] == "UNDERDETERMINED" and not mt.iloc[0]["fitted"]
    assert "≥ 3" in mt.iloc[0]["note"]
    # 4 usable runs: no row, a note
    write_sweep(tmp_path / "b", "fixed-elr", n=2, extras=True, metrics=False)
    mt, _, notes = SA.maxwell_analysis(SA.load_runs(tmp_path / "b"))
    assert len(mt) == 0 and "4 usable run(s)" in notes[0]


# ---------------------------------------------------------------------------------------
# V1, noise, V2
# ---------------------------------------------------------------------------------------
def test_radius_table_and_verdict(lr_runs):
    rt = SA.radius_table(lr_runs)
    assert len(rt) == 16 and not rt["run_id"].str.startswith("x_").any()
    assert (rt["quantity"] == "rho").all()
    by = lr_runs.set_index("run_id")
    assert np.allclose(rt["measured"], by.loc[rt["run_id"], "rho"])
    assert np.allclose(rt["rel_discrete"], rt["measured"] / rt["discrete"] - 1)
    assert rt["z_discrete"].abs().max() < 5
    v = SA.radius_verdicts(lr_runs)
    assert v.iloc[0]["verdict"] == "PASS"


def test_radius_fixed_sphere_uses_pressure(tmp_path):
    write_sweep(tmp_path / "s", "fixed-sphere", extras=False, metrics=False)
    df = SA.load_runs(tmp_path / "s")
    rt = SA.radius_table(df)
    assert (rt["quantity"] == "p").all() and len(rt) == 16
    assert np.allclose(rt["measured"], df.set_index("run_id").loc[rt["run_id"], "p"])
    assert SA.radius_verdicts(df).iloc[0]["verdict"] == "PASS"


def test_noise_table_recovers_power_law(lr_runs):
    df = lr_runs.copy()
    ok = SA.usable(df)
    h = df["lr"] * df["wd"]
    rng = np.random.default_rng(1)
    df.loc[ok, "sigma2"] = 3.0 * h[ok] ** 0.4 * (1 + 0.01 * rng.standard_normal(ok.sum()))
    df.loc[ok, "sigma2_err"] = 0.01 * df.loc[ok, "sigma2"]
    nt = SA.noise_table(df).set_index("quantity")
    s = nt.loc["sigma2"]
    assert s["variable"] == "η·λ" and s["n"] == 16
    assert s["slope"] == pytest.approx(0.4, abs=max(4 * s["slope_err"], 0.02))
    assert abs(s["other_slope"]) < max(4 * s["other_slope_err"], 0.02)  # depends on ηλ only
    # the synthetic temperature: T = sqrt(ηλσ²/(2(d−1))) with σ² = 1 → slope 1/2
    assert nt.loc["T", "slope"] == pytest.approx(0.5, abs=0.02)


def test_potentials_check(lr_runs):
    pt = SA.potentials_check(lr_runs)
    assert len(pt) == 1 and pt.iloc[0]["verdict"] == "PASS" and pt.iloc[0]["n_used"] == 16


# ---------------------------------------------------------------------------------------
# analyze: files, report, figures
# ---------------------------------------------------------------------------------------
def test_analyze_writes_report_and_figures(lr_sweep, tmp_path):
    out = tmp_path / "report"
    tables = analyze(lr_sweep, out, dpi=50)
    for name in ("runs.csv", "maxwell.csv", "radius.csv", "noise.csv", "excluded.csv", "report.md"):
        assert (out / name).is_file(), name
    mx = pd.read_csv(out / "maxwell.csv")
    assert len(mx) == 1 and mx.loc[0, "verdict"] == "PASS"
    assert {"a0", "a5_err", "r2", "max_rel_err", "mean_rel_err", "combo1", "combo1_err"} <= set(mx.columns)
    assert len(pd.read_csv(out / "excluded.csv")) == N_EXTRAS
    assert len(pd.read_csv(out / "runs.csv")) == 16 + N_EXTRAS
    figs = sorted((out / "figures").glob("*.png"))
    assert {f.stem for f in figs} == {f"fixed-lr_{n}" for n in SWEEP_FIGURES}
    for f in figs:
        assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 2000
    text = (out / "report.md").read_text()
    for needle in ("## V1", "## V3", "## V2", "## Excluded runs", "## Runs by status", "(a1-a2)/R", "R² of the fit",
                   "max relative error", "x_interp", "x_failed_early", "interpolating", "**PASS**"):
        assert needle in text, needle
    for f in figs:
        assert f"figures/{f.name}" in text
    assert set(tables) >= {"runs", "radius", "noise", "maxwell", "potentials", "excluded"}


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="sgdthermo")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    analyze_cmd.add_parser(sub)
    return parser.parse_args(argv)


def test_cli_errors_write_nothing(tmp_path, lr_sweep):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "stuff").mkdir()
    done = tmp_path / "done"
    done.mkdir()
    (done / "report.md").write_text("old")
    cases = [
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "r1")], "no such folder"),
        ([str(empty), "--out", str(tmp_path / "r2")], "holds no runs"),
        ([str(lr_sweep), "--out", str(done)], "--force"),
        ([str(lr_sweep), "--out", str(tmp_path / "no" / "parent")], "parent folder"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, msg in cases:
        with pytest.raises(UsageError, match=msg) as info:
            analyze_cmd.run(_parse(["analyze", *argv]))
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (done / "report.md").read_text() == "old"
    with pytest.raises(UsageError):
        _parse(["analyze", str(lr_sweep)])  # --out is required


def test_cli_force_overwrites(tmp_path, lr_sweep, capsys):
    out = tmp_path / "done"
    out.mkdir()
    (out / "report.md").write_text("old")
    assert analyze_cmd.run(_parse(["analyze", str(lr_sweep), "--out", str(out), "--force", "--no-figures"])) == 0
    assert (out / "report.md").read_text().startswith("# Sweep analysis")
    stdout = capsys.readouterr().out
    assert "V3  PASS" in stdout and "report:" in stdout


# ---------------------------------------------------------------------------------------
# End to end on real (tiny) runs
# ---------------------------------------------------------------------------------------
def test_end_to_end_real_tiny_runs(tmp_path):
    torch = pytest.importorskip("torch")
    from sgdthermo.nn import TrainConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    try:
        sweep = tmp_path / "sweep"
        sweep.mkdir()
        for lr in (0.1, 0.3):
            for wd in (0.01, 0.03):
                cfg = TrainConfig(model="mlp", width=8, dataset="synthetic", protocol="fixed-lr", lr=lr, wd=wd,
                                  iters=200, log_every=50, noise_batches=2, queue_size=5, queue_every=10,
                                  batch_size=32)
                train(cfg, sweep / f"lr{lr}_wd{wd}", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "report"
    tables = analyze(sweep, out, dpi=40)
    runs = tables["runs"]
    assert len(runs) == 4 and (runs["status"] == "completed").all()
    assert runs["d"].notna().all() and (runs["model"] == "mlp").all()
    # whatever the stationarity verdicts, four runs cannot determine the quadratic fit
    assert len(tables["maxwell"]) == 0
    text = (out / "report.md").read_text()
    assert "V3 not tested" in text
    assert (out / "maxwell.csv").is_file() and (out / "figures" / "fixed-lr_curves.png").is_file()
    n_ok = int(SA.usable(runs).sum())
    assert len(tables["excluded"]) == 4 - n_ok
