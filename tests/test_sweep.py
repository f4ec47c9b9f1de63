"""Sweeps: grid expansion, run ids, YAML specs, skip/resume/failure isolation, executors, CLI."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sgdthermo import sweep as sw
from sgdthermo.nn import TrainConfig, train
from sgdthermo.sweep import (
    SweepJob,
    SweepSpec,
    config_hash,
    expand,
    make_executor,
    make_run_id,
    run_sweep,
)

TINY = dict(model="mlp", width=8, dataset="synthetic", protocol="fixed-elr", wd=0.01, iters=100,
            log_every=50, checkpoint_every=50, noise_batches=2, queue_size=5, queue_every=10,
            batch_size=32)
QUIET = dict(progress=False, log=lambda m: None)


def tiny_spec(**kw):
    return SweepSpec.from_dict({**TINY, "lr": [0.01, 0.02], **kw})


def snapshot(folder):
    """{relative path: (mtime_ns, bytes)} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = (os.stat(p).st_mtime_ns, fh.read())
    return out


# ---------------------------------------------------------------------------------------
# Expansion and run ids
# ---------------------------------------------------------------------------------------
def test_expand_full_product_with_axis_values_and_seeds():
    spec = SweepSpec.from_dict({**TINY, "protocol": "fixed-lr", "lr": "0.02:0.2:3", "wd": "0.001,0.01",
                                "seeds": "0,1,2"})
    runs = expand(spec)
    assert len(runs) == 3 * 2 * 3
    np.testing.assert_allclose(spec.grid["lr"], np.geomspace(0.02, 0.2, 3), rtol=1e-11)
    assert spec.grid["wd"] == [0.001, 0.01] and spec.seeds == [0, 1, 2]
    got = {(c.lr, c.wd, c.seed) for _, c in runs}
    assert got == {(lr, wd, s) for lr in spec.grid["lr"] for wd in (0.001, 0.01) for s in (0, 1, 2)}
    ids = [rid for rid, _ in runs]
    assert len(set(ids)) == len(ids)
    rid, cfg = runs[0]
    assert rid.startswith("lr0.02_wd0.001_s0-") and len(rid.rsplit("-", 1)[1]) == 10
    assert cfg.head_norm == 2.0 and cfg.width == 8  # resolved
    # any TrainConfig field can be an axis; integers stay integers; a seed axis becomes seeds
    spec = SweepSpec(base=TrainConfig(**{**TINY, "lr": 0.02}), grid={"width": [4, 8], "seed": [3, 4]})
    runs = expand(spec)
    assert spec.seeds == [3, 4] and [c.width for _, c in runs] == [4, 4, 8, 8]
    assert runs[0][0].startswith("w4_lr0.02_wd0.01_s3-")
    with pytest.raises(ValueError, match="--width 4.5: must be an integer"):
        SweepSpec.from_dict({**TINY, "lr": 0.02, "width": [4, 4.5]})


def test_run_id_hash_is_stable_and_specific():
    cfg = TrainConfig(**{**TINY, "lr": 0.02})
    rid = make_run_id(cfg)
    assert rid == make_run_id(TrainConfig(**dict(reversed(list({**TINY, "lr": 0.02}.items())))))
    # resolved: the default width/head norm spelled out give the same run
    assert make_run_id(dataclasses.replace(cfg, head_norm=2.0)) == rid
    # pinned: the id of a config must not change between processes, versions or releases
    # (finished runs would be recomputed); this fails if TrainConfig gains a field
    assert rid == "lr0.02_wd0.01_s0-" + config_hash(cfg)
    assert config_hash(cfg) == PINNED_HASH
    code = ("from sgdthermo.sweep import make_run_id; from sgdthermo.nn import TrainConfig; "
            f"print(make_run_id(TrainConfig(**{TINY | {'lr': 0.02}!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == rid
    # any change of any field changes the hash
    changes = dict(model="convnet", width=16, head_norm=3.0, loss="mse", dataset="digits",
                   samples_per_label=5, download=True, protocol="fixed-lr", lr=0.03, wd=0.02,
                   init_norm=2.0, iters=101, batch_size=64, seed=1, checkpoint_every=10, log_every=25,
                   log_linear_until=5, log_per_decade=3, noise_batches=3, queue_size=6, queue_every=11,
                   queue_dtype="float64", entropy_method="cap", tail_fraction=0.4, tensorboard=True,
                   extra={"a": 1}, device="auto", data_dir="/x", threads=2)
    assert set(changes) | {"radius"} == {f.name for f in dataclasses.fields(TrainConfig)}
    hashes = {config_hash(dataclasses.replace(cfg, **{k: v})) for k, v in changes.items()}
    hashes.add(config_hash(dataclasses.replace(cfg, protocol="fixed-sphere", wd=None, radius=1.0)))
    assert len(hashes) == len(changes) + 1 and config_hash(cfg) not in hashes
    # the order of the grid axes does not matter
    a = SweepSpec(base=cfg, grid={"lr": [0.01, 0.02], "wd": [0.001, 0.01]})
    b = SweepSpec(base=cfg, grid={"wd": [0.001, 0.01], "lr": [0.01, 0.02]})
    assert sorted(r for r, _ in expand(a)) == sorted(r for r, _ in expand(b))


PINNED_HASH = "dd188b6969"


def test_expand_validates_every_config_first():
    with pytest.raises(ValueError, match=r"^--lr -0.1: must be a positive finite number \(grid point lr=-0.1"):
        expand(tiny_spec(lr=[0.01, -0.1]))
    with pytest.raises(ValueError, match="fixed-sphere takes --radius, not --wd"):
        expand(tiny_spec(protocol="fixed-sphere", radius=[1.0, 2.0]))
    with pytest.raises(ValueError, match="same run"):
        expand(tiny_spec(lr=[0.01, 0.01]))
    with pytest.raises(ValueError, match="grid axis 'colour'"):
        SweepSpec(base=TrainConfig(**TINY), grid={"colour": [1, 2]})
    with pytest.raises(ValueError, match="--lr '0.1:x:3': malformed"):
        tiny_spec(lr="0.1:x:3")
    with pytest.raises(ValueError, match="--jobs 0"):
        expand(tiny_spec(jobs=0))
    with pytest.raises(ValueError, match="--executor 'pbs'"):
        expand(tiny_spec(executor="pbs"))


# ---------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------
def test_yaml_round_trip_and_unknown_keys(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("model: mlp\nwidth: 8\ndataset: synthetic\nprotocol: fixed-lr\niters: 100\n"
                 "grid:\n  lr: 0.02:0.2:3\n  wd: [1e-3, 0.01]\nseeds: [0, 1]\n"
                 "executor: slurm-local\njobs: 2\ntime: 30\n")
    spec = SweepSpec.from_yaml(p)
    assert len(spec.grid["lr"]) == 3 and spec.grid["wd"] == [0.001, 0.01] and spec.seeds == [0, 1]
    assert (spec.executor, spec.cluster, spec.jobs, spec.time_min) == ("slurm", "local", 2, 30)
    spec.to_yaml(tmp_path / "back.yaml")
    again = SweepSpec.from_yaml(tmp_path / "back.yaml")
    assert again == spec
    assert [r for r, _ in expand(again)] == [r for r, _ in expand(spec)]
    # top-level list / SPEC values make axes; a single value stays in the base config
    s = SweepSpec.from_dict({"lr": "0.01:0.1:2", "width": [4, 8], "batch_size": 16, "wd": 0.01})
    assert list(s.grid) == ["lr", "width"] and s.base.batch_size == 16 and s.base.wd == 0.01
    p.write_text("model: mlp\nlr: 0.1\ncolour: red\nsize: 3\n")
    with pytest.raises(ValueError, match=r"unknown sweep key\(s\): colour, size"):
        SweepSpec.from_yaml(p)
    p.write_text("model: [mlp\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        SweepSpec.from_yaml(p)


# ---------------------------------------------------------------------------------------
# Skip, resume, failures (in this process)
# ---------------------------------------------------------------------------------------
def test_finished_runs_are_skipped(tmp_path):
    out = tmp_path / "sw"
    df = run_sweep(tiny_spec(), out, **QUIET)
    assert list(df["status"]) == ["completed", "completed"]
    for rid in df["run_id"]:
        assert {"config.json", "metrics.csv", "summary.json", "checkpoint.pt", "curves.png",
                "log.txt"} <= set(os.listdir(out / rid))
    assert SweepSpec.from_yaml(out / "sweep.json") == tiny_spec()
    before = snapshot(out)
    calls = []
    df2 = run_sweep(tiny_spec(), out, progress=lambda rows, last=None: calls.append(last), log=lambda m: None)
    assert list(df2["status"]) == ["skipped", "skipped"] and list(df2["result"]) == ["completed"] * 2
    assert calls == [None]
    after = snapshot(out)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {"sweep.json", "status.csv", ".sweep.lock"}  # the runs' files are untouched
    st = pd.read_csv(out / "status.csv")
    assert list(st["status"]) == ["skipped", "skipped"] and list(st["lr"]) == [0.01, 0.02]
    # force: the runs start over
    calls = []
    df3 = run_sweep(tiny_spec(), out, force=True, progress=lambda rows, last=None: calls.append(last),
                    log=lambda m: None)
    assert list(df3["status"]) == ["completed", "completed"]
    # once at the start (a pack reports its runs only when it ends: the clock starts here), then per run
    assert calls[0] is None and [c["run_id"] for c in calls[1:]] == list(df3["run_id"])
    assert all("resumed" not in m for m in df3["message"])
    rid = df3.loc[0, "run_id"]
    assert os.stat(out / rid / "summary.json").st_mtime_ns != before[f"{rid}/summary.json"][0]


def test_a_run_trained_elsewhere_is_left_alone(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    (rid, cfg), = expand(tiny_spec(lr=0.02))
    (tmp_path / rid).mkdir()
    with open(tmp_path / rid / ".lock", "a+") as fh:  # another sweep holds the run
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        row = sw.run_one(rid, dataclasses.asdict(cfg), str(tmp_path), True)
    assert row["status"] == "failed" and "being trained by another process" in row["message"]
    assert os.listdir(tmp_path / rid) == [".lock"]  # nothing written, nothing removed


def test_interrupted_run_resumes_exactly(tmp_path):
    spec = tiny_spec(lr=0.02, iters=150)
    (rid, cfg), = expand(spec)
    out = tmp_path / "sw"
    out.mkdir()
    assert train(cfg, out / rid, stop_after=100, log=lambda m: None)["status"] == "stopped"
    assert not (out / rid / "summary.json").exists()
    df = run_sweep(spec, out, **QUIET)
    assert df.loc[0, "status"] == "completed" and "resumed at step 100" in df.loc[0, "message"]
    full = train(cfg, tmp_path / "full", log=lambda m: None)
    a = pd.read_csv(tmp_path / "full" / "metrics.csv")
    b = pd.read_csv(out / rid / "metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert json.loads((out / rid / "summary.json").read_text())["rho"] == full["rho"]


def test_a_failing_run_does_not_stop_the_others(tmp_path):
    empty = tmp_path / "no-cifar-here"
    empty.mkdir()
    # passes validation (the folder exists) but fails in the worker (no CIFAR files)
    base = {k: v for k, v in TINY.items() if k != "dataset"}
    spec = SweepSpec.from_dict({**base, "lr": 0.02, "data_dir": str(empty),
                                "grid": {"dataset": ["cifar10", "synthetic"]}})
    out = tmp_path / "sw"
    df = run_sweep(spec, out, **QUIET)
    assert list(df["status"]) == ["failed", "completed"]
    bad = df.iloc[0]
    assert bad["run_id"].startswith("cifar10_") and "cifar" in bad["message"].lower()
    assert "\n" not in bad["message"]
    assert "Traceback" in (out / bad["run_id"] / "error.txt").read_text()
    st = pd.read_csv(out / "status.csv")
    assert list(st["status"]) == ["failed", "completed"] and st.loc[0, "message"] == bad["message"]


# ---------------------------------------------------------------------------------------
# Executors on a 2 x 1 grid
# ---------------------------------------------------------------------------------------
def _check_done(df, out):
    assert list(df["status"]) == ["completed", "completed"], df["message"].tolist()
    for rid in df["run_id"]:
        assert json.loads((out / rid / "summary.json").read_text())["status"] == "completed"
    assert list(pd.read_csv(out / "status.csv")["status"]) == ["completed", "completed"]


@pytest.fixture(scope="module")
def in_process_sweep(tmp_path_factory):
    """The tiny sweep run in this process: the reference for every executor."""
    out = tmp_path_factory.mktemp("ref") / "sw"
    df = run_sweep(tiny_spec(), out, **QUIET)
    _check_done(df, out)
    return out, df


def _same_metrics(ref, out, df):
    """Same run ids, and every run's metrics equal to the last bit (each run pins its threads)."""
    ref_out, ref_df = ref
    assert list(df["run_id"]) == list(ref_df["run_id"])
    for rid in df["run_id"]:
        pd.testing.assert_frame_equal(pd.read_csv(out / rid / "metrics.csv"),
                                      pd.read_csv(ref_out / rid / "metrics.csv"), check_exact=True)


def test_local_pool_two_jobs_gives_the_in_process_metrics(tmp_path, in_process_sweep):
    out = tmp_path / "sw"
    ex = make_executor(tiny_spec(jobs=2), out)
    assert isinstance(ex, sw.LocalExecutor) and "2 local processes" in ex.describe()
    df = run_sweep(tiny_spec(jobs=2), out, **QUIET)
    _check_done(df, out)
    pids = {(out / rid / "log.txt").read_text().split("(pid ")[1].split(")")[0] for rid in df["run_id"]}
    assert str(os.getpid()) not in pids  # ran in worker processes
    _same_metrics(in_process_sweep, out, df)


def test_ray_local_instance_gives_the_in_process_metrics(tmp_path, in_process_sweep):
    ray = pytest.importorskip("ray")
    out = tmp_path / "sw"
    df = run_sweep(tiny_spec(executor="ray", jobs=2), out, **QUIET)
    _check_done(df, out)
    assert not ray.is_initialized()  # the instance we started is shut down
    _same_metrics(in_process_sweep, out, df)


def test_thread_count_is_part_of_the_run(tmp_path):
    """threads=2 is another run (another id); threads=1 keeps the ids runs had before the
    field existed; the log names the count."""
    one, two = expand(tiny_spec()), expand(tiny_spec(threads=2))
    assert [r for r, _ in one] != [r for r, _ in two]
    assert all(cfg.threads == 2 for _, cfg in two)
    df = run_sweep(tiny_spec(threads=2, lr=0.01), tmp_path / "sw", **QUIET)
    rid = df["run_id"][0]
    assert "2 torch thread(s)" in (tmp_path / "sw" / rid / "log.txt").read_text()
    assert json.loads((tmp_path / "sw" / rid / "config.json").read_text())["threads"] == 2


def test_ray_missing_gives_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'sgdthermo\[ray\]'"):
        make_executor(tiny_spec(executor="ray"), tmp_path)


def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    from submitit.helpers import DelayedSubmission

    out = tmp_path / "sw"
    spec = tiny_spec(executor="slurm-local", jobs=2)
    ex = make_executor(spec, out)
    assert ex.parameters()["slurm_array_parallelism"] == 2 and ex.parameters()["gpus_per_node"] == 0
    df = run_sweep(spec, out, **QUIET)
    _check_done(df, out)
    assert (out / "submitit").is_dir()
    # preemption: the job requeues itself with resume=True (never starting a forced run over)
    job = SweepJob()
    delayed = job.checkpoint("rid", {"lr": 1.0}, str(out), True)
    assert isinstance(delayed, DelayedSubmission) and delayed.function is job
    assert delayed.kwargs == {"resume": True} and delayed.args[3] is False


@pytest.mark.slow
def test_submitit_preempted_job_requeues_and_resumes(tmp_path):
    """SIGUSR2 (Slurm's preemption/timeout signal) to a running job: submitit calls
    SweepJob.checkpoint, the job is requeued and the run resumes from its checkpoint."""
    import signal
    import time

    submitit = pytest.importorskip("submitit")
    (rid, cfg), = expand(tiny_spec(lr=0.02, iters=20_000, checkpoint_every=200, log_every=2000))
    ex = submitit.AutoExecutor(folder=str(tmp_path / "submitit"), cluster="local")
    ex.update_parameters(timeout_min=10, cpus_per_task=1, gpus_per_node=0)
    job = ex.submit(SweepJob(), rid, dataclasses.asdict(cfg), str(tmp_path), True)
    log = tmp_path / rid / "log.txt"
    t0 = time.time()
    while not (tmp_path / rid / "checkpoint.pt").exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    pid = int(log.read_text().split("(pid ")[1].split(")")[0])
    os.kill(pid, signal.SIGUSR2)
    row = job.result()
    assert row["status"] == "completed" and "resumed at step" in row["message"], row
    assert log.read_text().count("--- ") == 2


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def run_cli(argv):
    from sgdthermo.cli import main

    return main(["sweep", *argv])


CLI_OK = ["--model", "mlp", "--width", "8", "--dataset", "synthetic", "--protocol", "fixed-lr",
          "--lr", "0.02:0.2:2", "--wd", "0.01", "--iters", "100", "--log-every", "50",
          "--noise-batches", "2", "--queue-size", "5", "--queue-every", "10", "--batch-size", "32"]


def _replace(argv, flag, value):
    argv = list(argv)
    if flag in argv:
        i = argv.index(flag)
        if value is None:
            del argv[i:i + 2]
        else:
            argv[i + 1] = value
    else:
        argv += [flag, value]
    return argv


@pytest.mark.parametrize("change, needle", [
    (("--lr", "-1"), "--lr -1"),
    (("--lr", "0.1:abc:3"), "malformed"),
    (("--wd", "0"), "--wd 0"),
    (("--width", "2.5"), "--width 2.5"),
    (("--seeds", "a,b"), "--seeds"),
    (("--protocol", "fixed-volume"), "fixed-volume"),
    (("--jobs", "0"), "--jobs 0"),
    (("--jobs", "two"), "--jobs"),
    (("--executor", "pbs"), "--executor"),
    (("--model", None), "--model is required"),
    (("--address", "localhost:1"), "--address"),
    (("--radius", "1.0"), "takes --wd, not --radius"),
])
def test_cli_bad_input(tmp_path, capsys, change, needle):
    out = tmp_path / "sw"
    code = run_cli(_replace(CLI_OK, *change) + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []  # nothing written


def test_cli_bad_output_and_config(tmp_path, capsys):
    assert run_cli(CLI_OK + ["--out", str(tmp_path / "missing" / "sw")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert run_cli(CLI_OK + ["--out", str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    cfg = tmp_path / "s.yaml"
    cfg.write_text("model: mlp\nlr: 0.1\nwd: 0.01\nbogus: 1\n")
    assert run_cli(["--config", str(cfg), "--out", str(tmp_path / "sw")]) == 2
    assert "unknown sweep key(s): bogus" in capsys.readouterr().err
    assert run_cli(["--config", str(cfg), "--lr", "0.1", "--out", str(tmp_path / "sw")]) == 2
    assert "not both (got --lr)" in capsys.readouterr().err
    assert run_cli(["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "sw")]) == 2
    assert "no such file" in capsys.readouterr().err
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:  # an unreachable cluster is bad input too (ray.init would retry it for minutes)
        argv = CLI_OK + ["--executor", "ray", "--address", "127.0.0.1:1", "--out", str(tmp_path / "sw")]
        assert run_cli(argv) == 2
        assert "--address 127.0.0.1:1: no Ray cluster reachable" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["file", "s.yaml"]


def test_cli_runs_a_sweep_from_yaml(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg.write_text("model: mlp\nwidth: 8\nprotocol: fixed-elr\nlr: 0.02\nwd: 0.01\niters: 100\n"
                   "log_every: 50\nnoise_batches: 2\nqueue_size: 5\nqueue_every: 10\nbatch_size: 32\n"
                   f"data_dir: {empty}\ngrid:\n  dataset: [synthetic, cifar10]\n")
    out = tmp_path / "sw"
    assert run_cli(["--config", str(cfg), "--jobs", "1", "--out", str(out)]) == 1  # one failed
    cap = capsys.readouterr()
    assert "1 completed" in cap.err and "1 failed" in cap.err and "failed" in cap.out
    st = pd.read_csv(out / "status.csv")
    assert sorted(st["status"]) == ["completed", "failed"]
    cfg.write_text(cfg.read_text().replace("[synthetic, cifar10]", "[synthetic]"))
    assert run_cli(["--config", str(cfg), "--out", str(out)]) == 2  # another spec: refused
    assert "holds a sweep of another spec" in capsys.readouterr().err
    assert run_cli(["--config", str(cfg), "--add", "--out", str(out)]) == 0  # the finished run is skipped
    assert "skipped" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# One sweep per folder, one sweep at a time; faults of runs and workers
# ---------------------------------------------------------------------------------------
def test_another_spec_in_the_folder_is_refused_unless_added_or_forced(tmp_path, capsys):
    out = tmp_path / "sw"
    a = CLI_OK + ["--out", str(out)]
    assert run_cli(a) == 0
    capsys.readouterr()
    first = {rid for rid in pd.read_csv(out / "status.csv")["run_id"]}
    before = snapshot(out)
    b = _replace(CLI_OK, "--lr", "0.03") + ["--out", str(out)]
    assert run_cli(b) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another spec" in err[0] and "lr" in err[0] and "--add" in err[0], err
    assert snapshot(out) == before  # refused: nothing changed
    # other executor settings are the same sweep
    assert run_cli(a + ["--jobs", "1"]) == 0
    capsys.readouterr()
    # --add: both specs' runs in the folder, the first spec kept in the history
    assert run_cli(b + ["--add"]) == 0
    capsys.readouterr()
    sweep = json.loads((out / "sweep.json").read_text())
    assert [h["status"] for h in sweep["history"]] == ["added"]
    assert SweepSpec.from_yaml(out / "sweep.json").base.lr == 0.03  # still a spec file
    added = {rid for rid in pd.read_csv(out / "status.csv")["run_id"]}
    assert first.isdisjoint(added) and all((out / r).is_dir() for r in first | added)
    # both specs of the folder now run without --add
    assert run_cli(a) == 0 and run_cli(b) == 0
    capsys.readouterr()
    # --force with a third spec replaces the folder's sweep: the other runs are removed
    c = _replace(CLI_OK, "--lr", "0.04") + ["--out", str(out), "--force"]
    assert run_cli(c) == 0
    capsys.readouterr()
    now = {rid for rid in pd.read_csv(out / "status.csv")["run_id"]}
    assert not any((out / r).exists() for r in first | added)
    assert all((out / r / "summary.json").exists() for r in now)
    sweep = json.loads((out / "sweep.json").read_text())
    assert {h["status"] for h in sweep["history"]} == {"replaced"}


def test_a_second_sweep_on_a_busy_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "sw"
    assert run_cli(CLI_OK + ["--out", str(out)]) == 0
    capsys.readouterr()
    from sgdthermo.sweep.runner import _SweepLock

    held = _SweepLock(out)  # another sweep at work in the folder
    try:
        before = snapshot(out)
        assert run_cli(CLI_OK + ["--out", str(out), "--force"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"another sweep is running in this folder (pid {os.getpid()})" in err[0]
        assert snapshot(out) == before
    finally:
        held.release()
    assert run_cli(CLI_OK + ["--out", str(out)]) == 0  # free again


def test_a_sweep_restarts_a_run_whose_checkpoint_is_unreadable(tmp_path):
    """A damaged checkpoint is kept aside and its run trained from scratch, with a note;
    the result equals a clean run's."""
    spec = tiny_spec(lr=0.02, iters=150)
    (rid, cfg), = expand(spec)
    out = tmp_path / "sw"
    out.mkdir()
    assert train(cfg, out / rid, stop_after=100, log=lambda m: None)["status"] == "stopped"
    ck = out / rid / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    df = run_sweep(spec, out, **QUIET)
    assert df.loc[0, "status"] == "completed"
    assert "unreadable checkpoint" in df.loc[0, "message"] and "started over" in df.loc[0, "message"]
    assert (out / rid / "checkpoint.pt.rejected").exists()
    train(cfg, tmp_path / "clean", log=lambda m: None)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "clean" / "metrics.csv"),
                                  pd.read_csv(out / rid / "metrics.csv"), check_exact=True)


def test_the_lock_of_a_killed_trainer_is_taken_over(tmp_path):
    (rid, cfg), = expand(tiny_spec(lr=0.02))
    (tmp_path / rid).mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fh = open({str(tmp_path / rid / '.lock')!r}, 'a+')\n"
        "fcntl.flock(fh.fileno(), fcntl.LOCK_EX)\n"
        "fh.write(str(os.getpid())); fh.flush(); print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    busy = sw.run_one(rid, dataclasses.asdict(cfg), str(tmp_path))
    assert busy["status"] == "failed" and f"pid {holder.pid}" in busy["message"]
    holder.kill()
    holder.wait()
    row = sw.run_one(rid, dataclasses.asdict(cfg), str(tmp_path))
    assert row["status"] == "completed", row


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_workers_die_with_a_killed_sweep(tmp_path, executor):
    """SIGKILL of the sweep process: its workers (local processes, or a local Ray
    instance's) exit too instead of finishing their runs and blocking, and the next sweep
    trains and resumes the runs normally."""
    import signal
    import time

    if executor == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "sw"
    argv = _replace(_replace(CLI_OK, "--iters", "8000"), "--lr", "0.01,0.02")
    cmd = [sys.executable, "-m", "sgdthermo", "sweep", *argv, "--checkpoint-every", "200",
           "--executor", executor, "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids, deadline = set(), time.time() + 120
    while len(pids) < 2 and time.time() < deadline:
        time.sleep(0.2)
        for log in out.glob("*/log.txt"):
            text = log.read_text()
            if "(pid " in text and (log.parent / "checkpoint.pt").exists():
                pids.add(int(text.split("(pid ")[1].split(")")[0]))
    assert len(pids) == 2, "the workers did not start in time"
    assert proc.poll() is None, "the sweep ended before it could be killed; make the runs longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 20
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "workers outlived their sweep"
    for rid in [p.name for p in out.iterdir() if p.is_dir()]:
        assert not (out / rid / "summary.json").exists()
    short = cmd[:-2]
    r = subprocess.run([*short, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    st = pd.read_csv(out / "status.csv")
    assert list(st["status"]) == ["completed", "completed"]
    assert all("resumed at step" in m for m in st["message"])
