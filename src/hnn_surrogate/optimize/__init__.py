"""Connectivity fits by gradient descent through the surrogate network.

``params``: free parameters (gains per connection type) in an unconstrained
space mapped to a bounded range; ``objectives``: differentiable functions of
the simulated dipole.
"""

from .objectives import OBJECTIVES, band_power, evaluate_objective, spectrum
from .params import FreeGains

__all__ = ["OBJECTIVES", "FreeGains", "band_power", "evaluate_objective", "spectrum"]
