"""PNG figures: the isotropic model's checks, a sweep's analysis, a training run's curves."""

from __future__ import annotations

from .isotropic import (
                        FIGURES,
                        make_figures,
                        plot_adiabats,
                        plot_energy_entropy,
                        plot_entropy_hyperparams,
                        plot_maxwell,
                        plot_overview,
                        plot_potentials,
                        plot_radius,
)

__all__ = ["FIGURES", "make_figures", "plot_adiabats", "plot_energy_entropy", "plot_entropy_hyperparams",
           "plot_maxwell", "plot_overview", "plot_potentials", "plot_radius"]
