"""Tests of sgdthermo.figures and sgdthermo.report on synthetic results tables.

One report over all three protocols (with a non-stationary row in each) is written once per
module at a low dpi to keep the suite quick; the tests check that every figure exists and is a
non-empty PNG, that the report links them with relative paths and mentions every check, and
that the CSV outputs are tidy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdthermo import figures as F
from sgdthermo.analysis import CHECKS, PROTOCOLS, synthetic_results, verify
from sgdthermo.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NONSTATIONARY_ROWS = [2, 17]


def _table(n: int = 6, seed: int = 0) -> pd.DataFrame:
    frames = []
    for k, p in enumerate(PROTOCOLS):
        df = synthetic_results(p, n_lr=n, n_wd=n, seed=seed + k)
        df.loc[NONSTATIONARY_ROWS, "stationary"] = False
        df.loc[NONSTATIONARY_ROWS, "drift_z"] = 8.5
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return path.stat().st_size > 2000 and data[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("report")
    df = _table()
    path = write_report(df, out, title="Synthetic check", settings={"runtime_s": 1.5, "note": "fixture"},
                        dpi=50)
    return path, df


def test_report_written(report: tuple[Path, pd.DataFrame]) -> None:
    path, _ = report
    assert path.name == "report.md" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Synthetic check")
    for check in CHECKS:
        assert check in text
    for p in PROTOCOLS:
        assert f"## {p}" in text
    assert "## Settings" in text and "## Summary" in text
    assert "runtime_s" in text and "1.5" in text
    assert "12/12 checks passed" in text
    assert "non-stationary (drift z = 8.50)" in text  # the excluded rows are listed
    assert "(a1 − a2)/R" in text and "a2/(−R)" in text and "a2/(d−1)" in text  # Maxwell tables
    assert "R²" in text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_figure_written(report: tuple[Path, pd.DataFrame], protocol: str) -> None:
    path, _ = report
    for name in F.FIGURES:
        fig = path.parent / "figures" / f"{protocol}_{name}.png"
        assert fig.is_file(), fig
        assert _is_png(fig), fig


def test_report_links_resolve(report: tuple[Path, pd.DataFrame]) -> None:
    path, _ = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text(encoding="utf-8"))
    assert len(links) == len(PROTOCOLS) * len(F.FIGURES)
    for rel in links:
        assert not Path(rel).is_absolute()
        assert (path.parent / rel).is_file(), rel


def test_verdict_csvs(report: tuple[Path, pd.DataFrame]) -> None:
    path, df = report
    tidy = pd.read_csv(path.parent / "verdicts.csv")
    assert len(tidy) == len(PROTOCOLS) * len(CHECKS)
    assert {"protocol", "check", "passed", "metric", "value", "tolerance"} <= set(tidy.columns)
    assert set(tidy["check"]) == {"V1", "V2", "V3", "V4"}
    assert tidy["passed"].all()
    assert (tidy["n_excluded"] == len(NONSTATIONARY_ROWS)).all()
    details = pd.read_csv(path.parent / "verdicts_details.csv")
    assert {"protocol", "check", "quantity", "value"} <= set(details.columns)
    assert "r2" in set(details["quantity"])


def test_report_shows_failures_without_figures(tmp_path: Path) -> None:
    df = synthetic_results("fixed-elr", n_lr=5, n_wd=5, seed=3)
    df["rho"] *= 1.2  # V1 must fail
    verdicts = verify(df)
    path = write_report(df, tmp_path, verdicts=verdicts, figures=False)
    text = path.read_text(encoding="utf-8")
    assert "FAIL" in text and "**FAIL**" in text
    assert "3/4 checks passed" in text
    assert not (tmp_path / "figures").exists()
    assert ".png" not in text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plot_functions_return_their_path(tmp_path: Path, protocol: str) -> None:
    """Each figure function on a single-protocol table (protocol inferred)."""
    df = synthetic_results(protocol, n_lr=4, n_wd=4, seed=5)
    for name, fn in F.FIGURES.items():
        if name == "overview":
            continue  # drawn by the report fixture; the slowest figure
        target = tmp_path / "sub" / f"{name}.png"
        assert fn(df, target, dpi=40) == target
        assert target.read_bytes()[:8] == PNG_MAGIC


def test_potentials_with_chosen_configs(tmp_path: Path) -> None:
    df = synthetic_results("fixed-lr", n_lr=5, n_wd=5, seed=6)
    out = F.plot_potentials(df, tmp_path / "pot.png", configs=[0, 12], dpi=40)
    assert _is_png(out) or out.stat().st_size > 0



def test_no_pyplot_figures_left_open(tmp_path: Path) -> None:
    """Figures are built without pyplot, so nothing stays registered after a call."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    F.plot_radius(synthetic_results("fixed-lr", n_lr=4, n_wd=4), tmp_path / "r.png", dpi=40)
    assert set(plt.get_fignums()) == before


def test_make_figures_skips_undrawable_when_not_strict(tmp_path: Path) -> None:
    """All rows non-stationary: the V2 heat map has no state to draw."""
    df = synthetic_results("fixed-elr", n_lr=4, n_wd=4, seed=8)
    df["stationary"] = False
    with pytest.raises(ValueError):
        F.make_figures(df, tmp_path, names=["potentials"])
    with pytest.warns(RuntimeWarning, match="potentials"):
        made = F.make_figures(df, tmp_path, names=["potentials", "radius"], strict=False)
    assert set(made["fixed-elr"]) == {"radius"}
    # the report still gets written, listing every configuration as excluded
    with pytest.warns(RuntimeWarning, match="potentials"):
        path = write_report(df, tmp_path / "rep", dpi=40)
    text = path.read_text(encoding="utf-8")
    assert "0/4 checks passed" in text
    assert "## Notes" in text and "fixed-elr_potentials skipped" in text
    assert np.sum([line.count("non-stationary") for line in text.splitlines()]) >= 16


# ---------------------------------------------------------------------------------------
# Drawing side by side in worker processes (style.draw_all)
# ---------------------------------------------------------------------------------------
def _pid_file(path: Path, warn: str | None = None, fail: str | None = None) -> Path:
    """A stand-in figure: writes the pid of the process that drew it (a module-level function,
    so that worker processes can import it)."""
    import os
    import warnings

    if warn:
        warnings.warn(warn, UserWarning, stacklevel=1)
    if fail:
        raise ValueError(fail)
    path.write_text(str(os.getpid()))
    return path


def test_figures_drawn_by_workers_are_the_bytes_drawn_here(tmp_path: Path) -> None:
    df = _table(n=5)
    names = ["radius", "maxwell", "adiabats"]
    here = F.make_figures(df, tmp_path / "here", names=names, dpi=40, workers=1)
    there = F.make_figures(df, tmp_path / "there", names=names, dpi=40, workers=2)
    assert {p: set(v) for p, v in here.items()} == {p: set(v) for p, v in there.items()} == {p: set(names) for p in PROTOCOLS}
    for p in PROTOCOLS:
        for n in names:
            assert _is_png(there[p][n]) and there[p][n].read_bytes() == here[p][n].read_bytes(), (p, n)


def test_draw_all_uses_other_processes_and_keeps_each_jobs_outcome(tmp_path: Path) -> None:
    """Two workers: the files come from other processes; a job's warning comes back with it,
    a job's error is its own (the others are drawn), and the order is the jobs' order."""
    import os

    from sgdthermo.figures import style

    jobs = [(_pid_file, (tmp_path / f"{k}.txt",), {"warn": "odd" if k == 1 else None,
                                                    "fail": "no data" if k == 2 else None}) for k in range(4)]
    drawn = style.draw_all(jobs, workers=2)
    assert [d.path for d in drawn] == [tmp_path / "0.txt", tmp_path / "1.txt", None, tmp_path / "3.txt"]
    pids = {int((tmp_path / f"{k}.txt").read_text()) for k in (0, 1, 3)}
    assert os.getpid() not in pids
    assert drawn[1].warnings == [("odd", UserWarning)] and drawn[0].warnings == []
    assert isinstance(drawn[2].error, ValueError) and str(drawn[2].error) == "no data"
    here = style.draw_all(jobs, workers=1)  # one after another, in this process
    assert {int((tmp_path / f"{k}.txt").read_text()) for k in (0, 1, 3)} == {os.getpid()}
    assert [(d.path, d.warnings, type(d.error)) for d in here] == [(d.path, d.warnings, type(d.error)) for d in drawn]


def test_draw_all_draws_here_when_no_worker_can_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import joblib

    from sgdthermo.figures import style

    def refuse(*args, **kwargs):
        raise OSError("cannot start a process")

    monkeypatch.setattr(joblib, "Parallel", refuse)
    drawn = style.draw_all([(_pid_file, (tmp_path / f"{k}.txt",), {}) for k in range(3)], workers=2)
    assert [d.error for d in drawn] == [None] * 3
    assert {int((tmp_path / f"{k}.txt").read_text()) for k in range(3)} == {os.getpid()}

