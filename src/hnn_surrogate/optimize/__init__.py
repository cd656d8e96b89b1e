"""Connectivity fits by gradient descent through the surrogate network.

``params``: free parameters (gains per connection type) in an unconstrained
space mapped to a bounded range; ``objectives``: differentiable functions of
the simulated dipole.

Nothing is imported here: the command line imports ``optimize.commands`` for
every command, and a NEURON job should not pay for loading torch.
"""
