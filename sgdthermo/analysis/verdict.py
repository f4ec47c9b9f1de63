r"""The outcome of one check: :class:`Verdict` (PASS, FAIL or NOT TESTED) and their table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

__all__ = ["CHECKS", "STATUSES", "Verdict", "verdicts_frame", "too_few"]

#: Names of the four checks.
CHECKS: tuple[str, ...] = ("V1 radius", "V2 potentials", "V3 Maxwell", "V4 adiabats")
#: A verdict's status: the check passed, failed, or could not be made (too few usable rows).
STATUSES: tuple[str, ...] = ("PASS", "FAIL", "NOT TESTED")


@dataclass
class Verdict:
    """Outcome of one check on one protocol.

    Attributes
    ----------
    name : str
        One of :data:`CHECKS` ("V1 radius", "V2 potentials", "V3 Maxwell", "V4 adiabats").
    protocol : str
        "fixed-lr", "fixed-elr" or "fixed-sphere".
    passed : bool
        Whether the check passed (False also when it was NOT TESTED).
    summary : str
        One line with the key numbers.
    details : dict
        Scalar numbers behind the verdict (tolerances included).
    headline : str
        The key number in a few characters, for summary tables.
    table : DataFrame or None
        Per-row / per-grid-point / per-adiabat numbers, where relevant.
    excluded : DataFrame
        Rows left out (identification columns, ``drift_z`` and a ``reason``).
    extras : dict
        Non-scalar artefacts (the fit object, the potential matrix) for figures.
    status : str
        One of :data:`STATUSES`; by default PASS or FAIL from ``passed``. NOT TESTED: too few
        usable rows to make the check (:func:`too_few`; ``details["need"]`` says how many).
    """

    name: str
    protocol: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    table: pd.DataFrame | None = None
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    extras: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "PASS" if self.passed else "FAIL"
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}: expected one of {', '.join(STATUSES)}")

    @property
    def check(self) -> str:
        """Short check id, "V1" … "V4"."""
        return self.name.split()[0]

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.summary


def verdicts_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """Tidy table of verdicts: one row per (protocol, check) with the key numbers."""
    rows = []
    for v in verdicts:
        d = v.details
        key, val, err, target, tol = _key_numbers(v)
        rows.append({"protocol": v.protocol, "check": v.check, "name": v.name,
                     "passed": v.passed, "n_used": d.get("n_used"), "n_excluded": d.get("n_excluded"),
                     "metric": key, "value": val, "stderr": err, "target": target,
                     "tolerance": tol, "headline": v.headline, "summary": v.summary})
    return pd.DataFrame(rows)


def _key_numbers(v: Verdict) -> tuple[str, float, float, float, float]:
    """(metric name, value, stderr, target, tolerance) of the decisive number of a verdict."""
    d = v.details
    nan = float("nan")
    if d.get("reason") == "too few rows":
        return "n_used", float(d.get("n_used", nan)), nan, nan, nan
    if v.check == "V1":
        return ("discrete median |rel. err|", d["discrete_median_abs_rel"], nan,
                0.0, max(d["median_tol"], 2 * d["discrete_median_rel_se"]))
    if v.check == "V2":
        return "fraction confirmed", d["fraction_confirmed"], nan, 1.0, d["min_fraction"]
    if v.check == "V3":
        return d["main"], d["main_value"], d["main_stderr"], d["main_target"], d["main_tolerance"]
    return ("(dS/db)/R at centre", d["dS_db_over_R_centre"], d["dS_db_over_R_centre_stderr"], 0.0,
            d["dS_db_over_R_centre_tolerance"])


def too_few(name: str, protocol: str, n: int, need: int, excluded: pd.DataFrame, extra: str = "") -> Verdict:
    """A NOT TESTED verdict: only ``n`` usable rows where the check needs ``need``."""
    msg = (f"{protocol} {name}: NOT TESTED — only {n} usable rows (need ≥ {need})"
           f"{extra}; {len(excluded)} excluded")
    return Verdict(name=name, protocol=protocol, passed=False, summary=msg,
                   details={"n_used": n, "n_excluded": len(excluded), "reason": "too few rows", "need": need},
                   headline="too few rows", excluded=excluded, status="NOT TESTED")
