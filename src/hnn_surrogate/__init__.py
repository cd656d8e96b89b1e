"""hnn-surrogate: deep-network surrogates of HNN's biophysically detailed cells.

Stages (one subpackage or module each): ``cells`` (NEURON single-cell
simulations), ``datasets`` (merge and split), ``artifacts`` (NetCDF schemas),
``config`` (validation), ``bench`` (benchmarks).
"""

__version__ = "0.1.0"

CELL_TYPES = ("L2_pyramidal", "L5_pyramidal", "L2_basket", "L5_basket")
"""hnn-core's names of the four HNN cell types."""

PYRAMIDAL_TYPES = ("L2_pyramidal", "L5_pyramidal")
"""Cell types with a current dipole (hnn-core measures the dipole of these)."""

DIPOLE_LAYER = {"L2_pyramidal": "L2", "L5_pyramidal": "L5"}
"""hnn-core's dipole layer of each pyramidal cell type."""
