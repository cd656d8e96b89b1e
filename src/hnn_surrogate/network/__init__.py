"""Surrogate networks built from any ``hnn_core.Network``, and NEURON ground truth."""

from .api import load_surrogates, simulate_dipole, to_hnn_dipole
from .run import (NetworkResult, network_wiring, simulate_neuron, simulate_surrogate,
                  surrogate_network)

__all__ = ["NetworkResult", "load_surrogates", "network_wiring", "simulate_dipole",
           "simulate_neuron", "simulate_surrogate", "surrogate_network", "to_hnn_dipole"]
