"""Sweep spec files and sizes: duplicate keys, unreadable files, grids too large to build."""

import json
import os
import time

import pytest

from sgdthermo.sweep import SweepSpec, expand
from sgdthermo.sweep.spec import MAX_RUNS

TINY = ("model: mlp\nwidth: 8\ndataset: synthetic\nprotocol: fixed-lr\niters: 100\nlog_every: 50\n"
        "noise_batches: 2\nqueue_size: 5\nqueue_every: 10\nbatch_size: 32\n")


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------------------------------
# Duplicate keys
# ---------------------------------------------------------------------------------------
def test_duplicate_top_level_key_names_key_and_both_lines(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("model: mlp\nprotocol: fixed-lr\nlr: 0.1\nwd: 0.01\ndataset: synthetic\n"
                 "iters: 100\nlr: 0.2\n")
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    assert one_line(exc) == f"--config {p}: key 'lr' given twice (lines 3 and 7)"


def test_duplicate_key_inside_grid(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text(TINY + "grid:\n  lr: [0.01, 0.02]\n  wd: [0.001]\n  lr: [0.1]\n")
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    msg = one_line(exc)
    assert "key 'lr' given twice (lines 12 and 14)" in msg and str(p) in msg


def test_duplicate_key_in_a_flow_mapping_and_in_json(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("{lr: 0.1, lr: 0.2}\n")
    with pytest.raises(ValueError, match=r"key 'lr' given twice \(both on line 1\)"):
        SweepSpec.from_yaml(p)
    p = tmp_path / "a.json"
    p.write_text('{\n  "lr": 0.1,\n  "wd": 0.01,\n  "lr": 0.2\n}\n')
    with pytest.raises(ValueError, match=r"key 'lr' given twice \(lines 2 and 4\)"):
        SweepSpec.from_yaml(p)


def test_two_spellings_of_one_key_are_a_duplicate(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text(TINY + "lr: 0.1\nwd: 0.01\nbatch-size: 16\n")  # TINY has batch_size
    with pytest.raises(ValueError, match=r"'batch_size' given twice \(as 'batch_size' and 'batch-size'\)"):
        SweepSpec.from_yaml(p)
    with pytest.raises(ValueError, match=r"'time_min' given twice \(as 'time' and 'time_min'\)"):
        SweepSpec.from_dict({"lr": 0.1, "time": 30, "time_min": 60})
    with pytest.raises(ValueError, match=r"grid axis 'batch_size' given twice"):
        SweepSpec.from_dict({"lr": 0.1, "grid": {"batch_size": [8], "batch-size": [16]}})


def test_flag_overrides_the_files_alias_of_an_executor_key(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text(TINY + "lr: 0.1\nwd: 0.01\nexecutor: slurm-local\ntime: 30\n")
    assert SweepSpec.from_args(config=str(p)).time_min == 30
    assert SweepSpec.from_args(config=str(p), time_min=60).time_min == 60


def test_merge_key_is_not_a_duplicate(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text(TINY + "grid:\n  <<: {lr: [0.01, 0.02], wd: [0.001, 0.01]}\n  wd: [0.1]\n")
    spec = SweepSpec.from_yaml(p)
    assert spec.grid == {"lr": [0.01, 0.02], "wd": [0.1]}  # the mapping's own key wins
    p.write_text("axes: &axes\n  lr: [0.01, 0.02]\n")
    with pytest.raises(ValueError, match="unknown sweep key"):  # anchors read; the key is unknown
        SweepSpec.from_yaml(p)
    p.write_text(TINY + "wd: &wd 0.01\ngrid:\n  lr: [0.01, 0.02]\nhead_norm: 2\ninit_norm: *wd\n")
    assert SweepSpec.from_yaml(p).base.init_norm == 0.01


def test_sweep_json_reads_back(tmp_path):
    spec = SweepSpec.from_dict({"model": "mlp", "width": 8, "dataset": "synthetic", "protocol": "fixed-lr",
                                "iters": 100, "lr": "0.01:0.1:3", "wd": [0.001, 0.01], "seeds": "0,1"})
    p = tmp_path / "sweep.json"
    p.write_text(json.dumps(spec.to_dict(), indent=2))
    again = SweepSpec.from_yaml(p)
    assert again == spec
    assert [r for r, _ in expand(again)] == [r for r, _ in expand(spec)]
    p.write_text(json.dumps(spec.to_dict()))  # on one line
    assert SweepSpec.from_yaml(p) == spec


# ---------------------------------------------------------------------------------------
# Files that cannot be read as a spec
# ---------------------------------------------------------------------------------------
def test_binary_file(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    assert one_line(exc) == (f"--config {p}: not a text file (byte 0x89 at offset 0 is not UTF-8); "
                             f"expected YAML or JSON")
    p.write_bytes(b"lr: 0.1\x00\x00\x01\n")  # valid UTF-8, but binary
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    assert one_line(exc) == f"--config {p}: not a text file (it holds NUL bytes); expected YAML or JSON"


def test_utf8_bom_and_utf16_files_read(tmp_path):
    p = tmp_path / "a.yaml"
    text = TINY + "lr: 0.1\nwd: 0.01\n"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert SweepSpec.from_yaml(p).base.lr == 0.1
    p.write_bytes(text.encode("utf-16"))
    assert SweepSpec.from_yaml(p).base.wd == 0.01


def test_folder_missing_and_empty_file(tmp_path):
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(tmp_path)
    assert one_line(exc) == f"--config {tmp_path}: is a folder, not a spec file"
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(tmp_path / "nope.yaml")
    assert one_line(exc) == f"--config {tmp_path / 'nope.yaml'}: no such file"
    p = tmp_path / "empty.yaml"
    for text in ("", "\n# only a comment\n"):
        p.write_text(text)
        with pytest.raises(ValueError) as exc:
            SweepSpec.from_yaml(p)
        assert one_line(exc) == f"--config {p}: the file is empty; expected a mapping of settings"
    p.write_text("- lr\n- wd\n")
    with pytest.raises(ValueError, match="expected a mapping of settings, got list"):
        SweepSpec.from_yaml(p)


def test_invalid_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("model: mlp\nlr: [0.1\n")
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    msg = one_line(exc)
    assert msg.startswith(f"--config {p}: not valid YAML at line 3") and "expected ',' or ']'" in msg
    p.write_text("lr: !!python/object:os.system 1\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        SweepSpec.from_yaml(p)


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "a.yaml"
    p.write_text("lr: 0.1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(p), "read_bytes", denied)
    with pytest.raises(ValueError) as exc:
        SweepSpec.from_yaml(p)
    assert one_line(exc) == f"--config {p}: permission denied (the file is not readable)"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_for_real(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("lr: 0.1\n")
    p.chmod(0)
    try:
        with pytest.raises(ValueError, match=r"permission denied"):
            SweepSpec.from_yaml(p)
    finally:
        p.chmod(0o600)


# ---------------------------------------------------------------------------------------
# Size limits
# ---------------------------------------------------------------------------------------
def test_huge_grid_is_refused_before_any_run_is_built():
    t0 = time.perf_counter()
    spec = SweepSpec.from_dict({"model": "mlp", "dataset": "synthetic", "protocol": "fixed-lr",
                                "lr": "1e-3:1e-1:100000", "wd": "1e-4:1e-2:100000"})
    assert spec.n_runs == 10**10
    with pytest.raises(ValueError) as exc:
        expand(spec)
    assert time.perf_counter() - t0 < 0.8
    assert one_line(exc) == ("grid of 100000 x 100000 values x 1 seed(s) = 1e+10 runs: more than the "
                             "100000 a sweep may hold; use fewer values per axis")


def test_run_count_just_above_and_at_the_limit():
    spec = SweepSpec.from_dict({"model": "mlp", "dataset": "synthetic", "protocol": "fixed-lr",
                                "lr": "0.01:0.1:400", "wd": "0.01:0.1:250", "seeds": "0,1"})
    assert spec.n_runs == 2 * MAX_RUNS
    with pytest.raises(ValueError, match=r"grid of 400 x 250 values x 2 seed\(s\) = 200000 runs"):
        spec.validate()
    spec = SweepSpec.from_dict({"lr": "0.01:0.1:400", "wd": "0.01:0.1:250", "protocol": "fixed-lr"})
    assert spec.n_runs == MAX_RUNS
    spec.validate()  # at the limit: allowed (the runs themselves are not built here)


def test_spec_with_a_huge_n_is_refused_before_it_is_built():
    t0 = time.perf_counter()
    for value in ("1e-3:1e-1:1000000000000", "1e-3:1e-1:100001", "1e-3:1e-2:60000,1e-2:1e-1:60000"):
        with pytest.raises(ValueError) as exc:
            SweepSpec.from_dict({"lr": value})
        n = sum(int(p.split(":")[2]) for p in value.split(","))
        assert one_line(exc) == (f"--lr {value!r}: {n} values, more than the 100000 a sweep may hold; "
                                 f"use a smaller N")
    with pytest.raises(ValueError, match="200000 values"):
        SweepSpec.from_dict({"lr": 0.1, "seeds": "1:100:200000"})
    with pytest.raises(ValueError, match="200000 values"):
        SweepSpec.from_dict({"lr": 0.1, "grid": {"width": ["1:100:200000"]}})
    with pytest.raises(ValueError, match="malformed"):  # N written as a float: left to the SPEC grammar
        SweepSpec.from_dict({"lr": "1e-3:1e-1:1e12"})
    assert time.perf_counter() - t0 < 0.5


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------
def test_cli_sweep_with_a_duplicated_key_writes_nothing(tmp_path, capsys):
    from sgdthermo.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(TINY + "lr: 0.02\nwd: 0.01\ngrid:\n  width: [4, 8]\n  width: [16]\n")
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "S")]) == 2
    err = capsys.readouterr().err
    assert err == f"sgdthermo: error: --config {path}: key 'width' given twice (lines 14 and 15)\n"
    assert not (tmp_path / "S").exists()


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "not a text file"),
    (b"", "the file is empty"),
    (None, "is a folder, not a spec file"),
])
def test_cli_sweep_with_an_unusable_config_writes_nothing(tmp_path, capsys, content, needle):
    from sgdthermo.cli import main

    path = tmp_path / "cfg"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "S")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgdthermo: error: --config {path}: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "S").exists()


def test_cli_sweep_with_a_huge_grid_writes_nothing(tmp_path, capsys):
    from sgdthermo.cli import main

    argv = ["sweep", "--model", "mlp", "--dataset", "synthetic", "--protocol", "fixed-lr", "--iters", "10",
            "--lr", "1e-3:1e-1:1000", "--wd", "1e-4:1e-2:1000", "--out", str(tmp_path / "S")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("sgdthermo: error: grid of 1000 x 1000 values x 1 seed(s) = 1e+06 runs: more than the "
                   "100000 a sweep may hold; use fewer values per axis\n")
    assert not (tmp_path / "S").exists()
