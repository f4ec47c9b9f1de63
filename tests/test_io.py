"""Tests of sgdthermo.io: atomic writes, CSV/JSON output and the output-folder check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdthermo import io as sio
from sgdthermo.errors import ConfigError
from sgdthermo.io import (
    atomic_write_text,
    check_output_folder,
    jsonable,
    read_json,
    write_csv,
    write_json,
)


def listing(root: Path) -> list[str]:
    """Every path under ``root`` (relative), sorted: files and folders alike."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------- atomic_write_text


def test_atomic_write_text_writes_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.txt"
    text = "a,b\n1,2\nρ² ≥ 0 — ünïcode\n"
    ret = atomic_write_text(target, text)
    assert isinstance(ret, Path) and ret == target
    assert target.read_bytes() == text.encode("utf-8")
    assert listing(tmp_path) == ["out.txt"]
    # overwriting replaces the whole content (no append, no truncation leftovers)
    atomic_write_text(str(target), "short")
    assert target.read_text(encoding="utf-8") == "short"
    assert listing(tmp_path) == ["out.txt"]


class _NotText:
    """Neither a str nor convertible to one: the text file's write raises, after the
    temporary file has been created."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_atomic_write_text_failure_in_write_keeps_the_original(tmp_path):
    target = tmp_path / "keep.json"
    target.write_text("original\n", encoding="utf-8")
    with pytest.raises(TypeError):
        atomic_write_text(target, _NotText())  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "original\n"
    assert leftovers(tmp_path, "keep.json") == []
    assert listing(tmp_path) == ["keep.json"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_text_failure_in_rename_keeps_the_original(tmp_path, monkeypatch, exc):
    target = tmp_path / "keep.csv"
    target.write_text("x\n1\n", encoding="utf-8")
    seen = []

    def bad_replace(src, dst):
        seen.append(Path(src))
        assert Path(src).exists()  # the temporary file was written next to the target
        raise exc

    monkeypatch.setattr(sio.os, "replace", bad_replace)
    with pytest.raises(type(exc)):
        atomic_write_text(target, "y\n2\n")
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0].parent == tmp_path
    assert seen[0].name.startswith(".keep.csv.") and seen[0].name.endswith(".tmp")
    assert target.read_text(encoding="utf-8") == "x\n1\n"
    assert leftovers(tmp_path, "keep.csv") == []
    assert listing(tmp_path) == ["keep.csv"]


def test_atomic_write_text_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "nope" / "f.txt", "x")
    assert listing(tmp_path) == []


# ---------------------------------------------------------------------------- CSV / JSON


def test_write_csv_round_trips_without_index(tmp_path):
    df = pd.DataFrame({"step": [200, 400, 600], "rho": [1.0, 1.25, np.nan],
                       "protocol": ["fixed-lr", "fixed-elr", "fixed-sphere"]},
                      index=[7, 8, 9])  # a non-default index that must not be written
    path = write_csv(df, tmp_path / "metrics.csv")
    assert path == tmp_path / "metrics.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == "step,rho,protocol"
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))
    assert listing(tmp_path) == ["metrics.csv"]


def test_write_json_converts_numpy_and_paths(tmp_path):
    obj = {"d": np.int64(1530), "rho": np.float32(0.5), "ok": np.bool_(True),
           "grid": np.array([[1.0, 2.0], [3.0, 4.5]]), "ids": np.arange(3),
           "out": tmp_path / "run", "pair": (1, 2), "nested": {"lr": [np.float64(0.1)]}}
    path = write_json(obj, tmp_path / "cfg.json")
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "d": 1530' in text  # indented, one trailing newline
    back = read_json(path)
    assert back == {"d": 1530, "rho": 0.5, "ok": True, "grid": [[1.0, 2.0], [3.0, 4.5]],
                    "ids": [0, 1, 2], "out": str(tmp_path / "run"), "pair": [1, 2],
                    "nested": {"lr": [0.1]}}
    assert type(back["d"]) is int and type(back["ok"]) is bool and type(back["rho"]) is float
    assert back == json.loads(text)
    assert listing(tmp_path) == ["cfg.json"]


def test_write_json_refuses_unknown_objects_and_keeps_the_original(tmp_path):
    target = tmp_path / "cfg.json"
    write_json({"a": 1}, target)
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json({"a": object()}, target)
    assert read_json(target) == {"a": 1}
    assert listing(tmp_path) == ["cfg.json"]


def test_jsonable_gives_plain_python():
    out = jsonable({"t": (1, (2, 3)), "i": np.int32(4), "f": np.float64(0.25), "b": np.bool_(False),
                    "a": np.array([1, 2]), "p": Path("/x/y"), "s": "s", "n": None})
    assert out == {"t": [1, [2, 3]], "i": 4, "f": 0.25, "b": False, "a": [1, 2], "p": "/x/y", "s": "s",
                   "n": None}
    assert type(out["t"]) is list and type(out["t"][1]) is list
    assert type(out["i"]) is int and type(out["f"]) is float and type(out["b"]) is bool
    assert all(type(v) is int for v in out["a"])
    # what was saved and what is current compare equal once both pass through jsonable
    assert jsonable({"lr": (0.1, 0.2)}) == jsonable({"lr": [np.float64(0.1), 0.2]})
    assert jsonable({"lr": (0.1, 0.2)}) != {"lr": (0.1, 0.2)}


# ---------------------------------------------------------------------------- check_output_folder


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_check_output_folder_new_folder(tmp_path):
    before = listing(tmp_path)
    out = check_output_folder(str(tmp_path / "new"), marker="summary.json")
    assert isinstance(out, Path) and out == tmp_path / "new"
    assert not out.exists()
    assert listing(tmp_path) == before


def test_check_output_folder_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_output_folder("~/run") == tmp_path / "run"
    assert listing(tmp_path) == []


def test_check_output_folder_missing_parent(tmp_path):
    (tmp_path / "a").mkdir()
    before = listing(tmp_path)
    out = tmp_path / "a" / "b" / "c"
    with pytest.raises(ConfigError) as err:
        check_output_folder(out)
    msg = _one_line(err)
    assert "parent folder" in msg and str(out.parent) in msg and msg.startswith(f"--out {out}")
    assert isinstance(err.value, ValueError)
    assert listing(tmp_path) == before


def test_check_output_folder_path_is_a_file(tmp_path):
    f = tmp_path / "results"
    f.write_text("not a folder")
    before = listing(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_output_folder(f, flag="--report")
    msg = _one_line(err)
    assert "exists and is not a folder" in msg and msg.startswith(f"--report {f}")
    assert listing(tmp_path) == before and f.read_text() == "not a folder"


def test_check_output_folder_marker(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # a folder without the marker, with other files, is accepted
    (run / "notes.txt").write_text("x")
    assert check_output_folder(run, marker="summary.json") == run
    (run / "summary.json").write_text("{}")
    before = listing(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_output_folder(run, marker="summary.json", what="a finished run")
    msg = _one_line(err)
    assert "already holds" in msg and "summary.json" in msg and "a finished run" in msg
    assert str(run) in msg
    assert check_output_folder(run, marker="summary.json", force=True) == run
    # without a marker the same folder is fine too
    assert check_output_folder(run) == run
    assert listing(tmp_path) == before
    assert (run / "summary.json").read_text() == "{}"
