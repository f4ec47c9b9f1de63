"""The isotropic-noise model: noisy gradient descent on scale-invariant test functions.

:func:`simulate_isotropic` runs a whole hyperparameter grid in one fused numba kernel
(:mod:`~sgdthermo.isotropic.kernels`), one random stream per grid point.
"""

from __future__ import annotations

from .simulator import SimulationResult, auto_queue_every, simulate_isotropic, validate_settings, vmf_loss

__all__ = ["auto_queue_every", "SimulationResult", "simulate_isotropic", "validate_settings", "vmf_loss"]
