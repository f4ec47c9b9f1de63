r"""Closed-form ideal-gas theory of SGD on scale-invariant networks.

Every formula follows ``docs/theory.md`` (the project's formula sheet); the notation there is used
throughout. This module is pure math: functions take scalars or numpy arrays, broadcast them
against each other with numpy's rules, and return a ``float`` (numpy float64) for scalar input
or an ``np.ndarray`` of the broadcast shape otherwise.

Conventions
-----------
* ``d``      number of scale-invariant parameters; the direction ``u = w/|w|`` lives on the
  unit sphere S^{d-1} (dimension d-1).
* ``rho``    radius ``ρ = |w|``; ``V = ρ²/2`` is the volume; ``R = (d-1)/2`` the gas constant.
* ``lr``     the learning-rate hyperparameter of the protocol: the effective learning rate
  ``η̃ = η/ρ²`` for ``"fixed-sphere"`` and ``"fixed-elr"``, the plain learning rate ``η`` for
  ``"fixed-lr"``. Functions whose meaning depends on which one it is take ``lr`` keyword-only
  together with the protocol (or are specific to one protocol and say so).
* ``wd``     weight decay ``λ`` = pressure ``p`` (fixed ELR and fixed LR).
* ``radius`` the fixed radius ``ρ`` of the fixed-sphere protocol.
* ``sigma``  noise scale σ of the isotropic noise model ``Σ(u) = σ²(I − uuᵀ)`` on the unit
  sphere (``tr Σ(u) = σ²(d−1)``).
* Temperatures: ``T = η̃σ²/2`` (fixed sphere, fixed ELR), ``T = sqrt(ηλσ²/(2(d−1)))`` (fixed LR).
* Stationary radius (SDE): fixed ELR ``ρ*² = η̃σ²(d−1)/(2λ)``; fixed LR ``ρ*⁴ = ησ²(d−1)/(2λ)``.
  Fixed sphere: effective pressure ``p = (d−1)T/ρ²``. Ideal-gas law ``pV = RT`` everywhere.
* Entropies are in nats. ``S_u`` (``S_sphere``) is the differential entropy of the direction on
  S^{d−1} with respect to the surface measure; the total entropy is ``S = S_u + (d−1) log ρ``.

The von Mises–Fisher (VMF) test function ``L(w) = 1 + ⟨μ, w/|w|⟩`` and its exact
thermodynamics are documented in :mod:`~sgdthermo.theory.vmf`; the numerics of ``log I_ν`` and
their measured accuracy in :mod:`~sgdthermo.theory.bessel`.

Modules: :mod:`~sgdthermo.theory.gas` (temperature, radius, pressure, potentials),
:mod:`~sgdthermo.theory.bessel` (log I_ν), :mod:`~sgdthermo.theory.vmf` (the exact VMF
thermodynamics and the stationary state), :mod:`~sgdthermo.theory.relations` (Maxwell
relations, adiabats, isotherms). Every name is re-exported here: ``theory.temperature(...)``.
"""

from __future__ import annotations

from ..protocols import PROTOCOLS, check_protocol
from .bessel import log_bessel_iv
from .equilibrium import (
                  EQUILIBRIUM_KINDS,
                  Equilibrium,
                  adam_l2_equilibrium,
                  adamw_equilibrium,
                  protocol_equilibrium,
                  sgd_equilibrium,
                  steps_to_equilibrium,
)
from .gas import (
                  adiabatic_index,
                  direction_correlation_steps,
                  effective_pressure,
                  gas_constant,
                  gibbs,
                  heat_capacity_p,
                  heat_capacity_v,
                  helmholtz,
                  pressure_sphere,
                  pressure_sphere_discrete,
                  radius_discrete,
                  radius_from_volume,
                  radius_sde,
                  stationary_elr,
                  temperature,
                  total_entropy,
                  volume,
)
from .relations import (
                  CoefficientTarget,
                  adiabat,
                  adiabat_coordinates,
                  adiabat_invariant,
                  adiabat_lr,
                  isotherm,
                  isotherm_invariant,
                  isotherm_lr,
                  maxwell_coefficient_targets,
                  maxwell_prediction,
                  maxwell_ratio,
                  quadratic_features,
                  quadratic_gradient,
)
from .vmf import (
                  stationary_state,
                  uniform_sphere_entropy,
                  vmf_energy,
                  vmf_energy_small_T,
                  vmf_entropy,
                  vmf_entropy_small_T,
                  vmf_grad_sq,
                  vmf_heat_capacity,
                  vmf_log_normalizer,
                  vmf_mean_resultant,
)

__all__ = [
    "PROTOCOLS",
    "check_protocol",
    "gas_constant",
    "volume",
    "radius_from_volume",
    "temperature",
    "radius_sde",
    "radius_discrete",
    "pressure_sphere",
    "pressure_sphere_discrete",
    "effective_pressure",
    "stationary_elr",
    "direction_correlation_steps",
    "log_bessel_iv",
    "vmf_mean_resultant",
    "vmf_log_normalizer",
    "vmf_energy",
    "vmf_entropy",
    "uniform_sphere_entropy",
    "vmf_energy_small_T",
    "vmf_entropy_small_T",
    "vmf_grad_sq",
    "vmf_heat_capacity",
    "heat_capacity_v",
    "heat_capacity_p",
    "adiabatic_index",
    "total_entropy",
    "helmholtz",
    "gibbs",
    "stationary_state",
    "maxwell_prediction",
    "CoefficientTarget",
    "maxwell_coefficient_targets",
    "quadratic_features",
    "quadratic_gradient",
    "maxwell_ratio",
    "adiabat_invariant",
    "adiabat_coordinates",
    "adiabat",
    "adiabat_lr",
    "isotherm_invariant",
    "isotherm",
    "isotherm_lr",
    "Equilibrium",
    "EQUILIBRIUM_KINDS",
    "sgd_equilibrium",
    "adamw_equilibrium",
    "adam_l2_equilibrium",
    "protocol_equilibrium",
    "steps_to_equilibrium",
]
