"""The cells stage: single HNN cells simulated alone in NEURON.

``channels``  the (section, receptor) input channels of each cell type
``inputs``    seeded Poisson input drawn per simulation, and its binning
``simulate``  one cell, one simulation, in NEURON through hnn-core
``shard``     a shard of simulations, MPI-parallel, written as NetCDF
"""
