"""The command line end to end: outputs, bad input (exit 2, one line, nothing written)."""

import subprocess
import sys

import pandas as pd
import pytest

from sgdthermo.cli import main

SMALL = ["--dim", "3", "--iters", "20000", "--queue-size", "100", "--queue-every", "100"]


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_isotropic_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["isotropic", "--protocol", "fixed-lr", "--lr", "0.01:0.1:2",
                               "--wd", "0.05", *SMALL, "--no-report", "--out", str(out)], capsys)
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    need = {"protocol", "dim", "lr", "wd", "radius", "sigma", "T", "p", "V", "U", "S_sphere", "S",
            "rho", "U_theory", "S_sphere_theory", "rho_theory", "rho_theory_discrete", "U_err",
            "S_err", "rho_err", "stationary"}
    assert need <= set(df.columns)
    assert len(df) == 2 and df["lr"].tolist() == pytest.approx([0.01, 0.1])
    assert (out / "trace.csv").exists() and (out / "settings.json").exists()
    assert "2 grid point(s)" in stdout


def test_isotropic_queue_every_auto(tmp_path, capsys, caplog):
    """``--queue-every`` is ``auto`` by default: ⌈2/η̃⌉, recorded; a window too short for it runs at
    the largest stride that fits and says so (a warning, kept in settings.json); a word that is not 'auto' is a one-line
    error with exit 2 and nothing written."""
    import json

    out = tmp_path / "auto"
    args = ["isotropic", "--protocol", "fixed-elr", "--lr", "0.05", "--wd", "0.01", "--dim", "3",
            "--iters", "20000", "--queue-size", "100", "--no-report"]
    code, _, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 0 and "--queue-every auto" not in err
    settings = json.loads((out / "settings.json").read_text())
    assert settings["queue_every"] == 40 and settings["queue_every_auto"] is True
    assert pd.read_csv(out / "results.csv")["queue_every"].iloc[0] == 40
    short = tmp_path / "short"
    with caplog.at_level("WARNING", logger="sgdthermo"):
        code, _, _ = run_cli([*args[:-3], "--queue-size", "1000", "--no-report", "--out", str(short)], capsys)
    assert code == 0 and "--queue-every auto: the slowest point" in caplog.text and "using 10," in caplog.text
    settings = json.loads((short / "settings.json").read_text())
    assert settings["queue_every"] == 10 and settings["queue_every_note"] in caplog.text
    target = tmp_path / "bad"
    code, _, err = run_cli([*args, "--queue-every", "often", "--out", str(target)], capsys)
    assert code == 2 and "--queue-every 'often'" in err and err.count("\n") == 1 and not target.exists()


def test_isotropic_sphere_with_report(tmp_path, capsys):
    out = tmp_path / "sphere"
    code, stdout, _ = run_cli(["isotropic", "--protocol", "fixed-sphere", "--lr", "0.01:0.05:3",
                               "--radius", "0.5:2:3", *SMALL, "--out", str(out)], capsys)
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 9 and df["radius"].notna().all() and df["wd"].isna().all()
    assert (out / "report.md").exists()
    assert list((out / "figures").glob("*.png"))


def test_existing_results_need_force(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["isotropic", "--protocol", "fixed-elr", "--lr", "0.05", "--wd", "0.05", *SMALL,
            "--no-report", "--out", str(out)]
    assert run_cli(args, capsys)[0] == 0
    before = (out / "results.csv").read_bytes()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "results.csv").read_bytes() == before
    assert run_cli(args + ["--seed", "1", "--force"], capsys)[0] == 0
    assert (out / "results.csv").read_bytes() != before


BAD = [
    (["--protocol", "fixed-lr", "--dim", "1", "--lr", "0.1", "--wd", "0.1"], "--dim 1"),
    (["--protocol", "fixed-lr", "--lr", "-0.1", "--wd", "0.1"], "--lr -0.1"),
    (["--protocol", "fixed-lr", "--lr", "0", "--wd", "0.1"], "--lr 0"),
    (["--protocol", "fixed-lr", "--lr", "nan", "--wd", "0.1"], "--lr nan"),
    (["--protocol", "fixed-lr", "--lr", "inf", "--wd", "0.1"], "--lr inf"),
    (["--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0"], "--wd 0"),
    (["--protocol", "fixed-elr", "--lr", "0.1", "--wd", "0"], "--wd 0"),
    (["--protocol", "fixed-elr", "--lr", "0.1"], "--wd"),
    (["--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1", "--sigma", "-1"], "--sigma -1"),
    (["--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1", "--sigma", "nan"], "--sigma nan"),
    (["--protocol", "fixed-sphere", "--lr", "0.1", "--radius", "0"], "--radius 0"),
    (["--protocol", "fixed-sphere", "--lr", "0.1", "--radius", "inf"], "--radius inf"),
    (["--protocol", "fixed-sphere", "--lr", "0.1", "--wd", "0.1"], "--radius"),
    (["--protocol", "sgd", "--lr", "0.1", "--wd", "0.1"], "unknown protocol 'sgd'"),
    (["--protocol", "fixed-lr", "--lr", "1:2", "--wd", "0.1"], "malformed"),
    (["--protocol", "fixed-lr", "--lr", "a:b:3", "--wd", "0.1"], "malformed"),
    (["--protocol", "fixed-lr", "--lr", "0.01:0.1:0", "--wd", "0.1"], "malformed"),
    (["--protocol", "fixed-lr", "--lr", "", "--wd", "0.1"], "empty"),
    (["--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1", "--iters", "abc"], "--iters"),
    (["--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1", "--dim", "2.5"], "--dim"),
]


@pytest.mark.parametrize("args,match", BAD)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, match):
    out = tmp_path / "never"
    code, stdout, err = run_cli(["isotropic", *args, "--iters", "20000", "--queue-size", "10",
                                 "--out", str(out)] if "--iters" not in args else
                                ["isotropic", *args, "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sgdthermo: error:"), err
    assert match in lines[0]
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_output_parent(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir"
    code, _, err = run_cli(["isotropic", "--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1",
                            *SMALL, "--out", str(out)], capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()


def test_unknown_command_and_missing_flag(capsys):
    code, _, err = run_cli(["frobnicate"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["isotropic", "--protocol", "fixed-lr", "--lr", "0.1"], capsys)
    assert code == 2 and "--out" in err


def test_reproduce_small_grid(tmp_path, capsys):
    out = tmp_path / "repro"
    code, stdout, _ = run_cli(["reproduce", "isotropic", "--grid", "3", "--iters", "40000",
                               "--queue-size", "100", "--queue-every", "100", "--out", str(out)], capsys)
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    assert set(df["protocol"]) == {"fixed-lr", "fixed-elr", "fixed-sphere"} and len(df) == 27
    assert (out / "report.md").exists() and (out / "verdicts.csv").exists()
    # a second call reuses the finished protocols
    code, stdout, err = run_cli(["reproduce", "isotropic", "--grid", "3", "--iters", "40000",
                                 "--queue-size", "100", "--queue-every", "100", "--out", str(out)], capsys)
    assert code == 0 and stdout.count("reusing finished results") == 3
    # other settings: refused (exit 2) unless --force, finished results untouched
    before = (out / "fixed-lr" / "results.csv").read_bytes()
    code, _, err = run_cli(["reproduce", "isotropic", "--grid", "3", "--iters", "40000", "--seed", "9",
                            "--queue-size", "100", "--queue-every", "100", "--out", str(out)], capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "fixed-lr" / "results.csv").read_bytes() == before


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "sgdthermo", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "sgdthermo" in r.stdout


def test_unknown_entropy_method(tmp_path, capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(["isotropic", "--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1", *SMALL,
                            "--entropy-method", "knn9", "--out", str(out)], capsys)
    assert code == 2 and "knn9" in err and "cap" in err and not out.exists()


# ---------------------------------------------------------------------------------------
# A folder that cannot be written: refused up front by every subcommand
# ---------------------------------------------------------------------------------------
@pytest.fixture
def readonly_dir(tmp_path):
    """An existing folder in which no file can be created, even by the super-user: a
    read-only tmpfs when running as root (permission bits do not stop root), else mode 0555."""
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot make a read-only folder here (root without mount)")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def _ro_commands(tmp_path, out):
    sweep_dir = tmp_path / "runs"
    sweep_dir.mkdir(exist_ok=True)
    train = ["--model", "mlp", "--width", "8", "--dataset", "synthetic", "--protocol", "fixed-elr",
             "--lr", "0.02", "--wd", "0.01", "--iters", "100", "--log-every", "50", "--noise-batches", "2",
             "--queue-size", "5", "--queue-every", "10"]
    return {
        "isotropic": ["isotropic", "--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.01", "--iters", "2000",
                      "--queue-size", "10", "--out", out],
        "train": ["train", *train, "--out", out],
        "sweep": ["sweep", *train, "--out", out],
        "analyze": ["analyze", str(sweep_dir), "--out", out],
        "reproduce": ["reproduce", "isotropic", "--grid", "3", "--iters", "2000", "--queue-size", "10",
                      "--out", out],
    }


@pytest.mark.parametrize("command", ["isotropic", "train", "sweep", "analyze", "reproduce"])
@pytest.mark.parametrize("where", ["folder", "inside"])
def test_read_only_output_is_refused_before_any_work(tmp_path, capsys, readonly_dir, command, where):
    """--out a read-only folder, or a new folder inside one: one line, exit 2, before any
    computing (the isotropic and train commands used to fail only after all of it)."""
    out = str(readonly_dir if where == "folder" else readonly_dir / "new")
    code = main(_ro_commands(tmp_path, out)[command])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot write in" in err[0], err


@pytest.mark.parametrize("cmd", [["reproduce", "nn"], ["sweep", "--model", "convnet", "--dataset", "digits", "--protocol", "fixed-lr", "--iters", "100", "--lr", "0.1,0.2", "--wd", "0.01"]])
@pytest.mark.parametrize("pack", ["lots", "0", "-3"])
def test_a_bad_pack_is_one_line_and_writes_nothing(tmp_path, capsys, cmd, pack):
    out = tmp_path / "out"
    code, _, err = run_cli([*cmd, "--executor", "batched", f"--pack={pack}", "--out", str(out)], capsys)
    assert code == 2 and "--pack" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
