"""Surrogate networks built from any ``hnn_core.Network``, and NEURON ground truth."""

from .api import load_surrogates, simulate_dipole, to_hnn_dipole

__all__ = ["load_surrogates", "simulate_dipole", "to_hnn_dipole"]
