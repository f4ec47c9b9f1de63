"""Verification of the ideal-gas predictions and the analysis of network sweeps.

- :mod:`~sgdthermo.analysis.selection`: the one rule for which rows enter a check;
- :mod:`~sgdthermo.analysis.verdict`: :class:`Verdict` (PASS, FAIL, NOT TESTED) and its table;
- :mod:`~sgdthermo.analysis.fits`: weighted linear and quadratic least squares;
- :mod:`~sgdthermo.analysis.checks`: V1–V4 on a results table (:func:`verify`);
- :mod:`~sgdthermo.analysis.network`: a sweep folder as a tidy table, and V1, noise, V3, V2 per
  grid of runs;
- :mod:`~sgdthermo.analysis.synthetic`: a results table from closed forms plus known noise.
"""

from __future__ import annotations

from .checks import (
                     PROTOCOLS,
                     PotentialMatrix,
                     check_adiabats,
                     check_maxwell,
                     check_potentials,
                     check_radius,
                     potential_matrix,
                     verify,
)
from .fits import QuadraticFit, linear_fit, quadratic_fit
from .selection import stationary_mask
from .synthetic import synthetic_results
from .verdict import CHECKS, STATUSES, Verdict, verdicts_frame

__all__ = ["CHECKS", "PROTOCOLS", "STATUSES", "Verdict", "QuadraticFit", "quadratic_fit", "linear_fit",
           "PotentialMatrix", "potential_matrix", "check_radius", "check_potentials", "check_maxwell",
           "check_adiabats", "verify", "verdicts_frame", "synthetic_results", "stationary_mask"]
