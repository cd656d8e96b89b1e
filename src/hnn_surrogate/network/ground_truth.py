"""NEURON ground truth: an hnn-core network simulated by hnn-core itself, under MPI.

Run by every rank of ``mpiexec -n R hnn-surrogate network-neuron ...``. Each
rank builds the same network from the spec, NEURON's ParallelContext spreads
its gids round-robin (hnn-core's ``NetworkBuilder``), and hnn-core's own
``_simulate_single_trial`` builds, runs and gathers the trial; rank 0 keeps the
result.

Why not hnn-core's ``MPIBackend``: it kills every process named ``nrniv`` on
the machine when it exits and stops a child that prints nothing for 60 s, so
two network jobs on one node would kill each other. Here each job is its own
MPI program; nothing outside it is touched.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _mpi_library() -> str | None:
    """The versioned ``libmpi.so.12`` of a PyPI mpich wheel, when that is the MPI in use."""
    for lib in (Path(sys.prefix) / "lib" / "libmpi.so.12",):
        if lib.is_file():
            return str(lib)
    return None


def init_neuron_mpi():
    """Load NEURON with MPI when run under mpiexec; return (h, rank, n_ranks).

    NEURON's dynamic MPI loader cannot open the PyPI mpich wheel's unversioned
    ``libmpi.so`` (a linker script): point ``MPI_LIB_NRN_PATH`` at the versioned
    library unless the site has set it (a cluster's MPI module).
    """
    from mpi4py import MPI  # noqa: F401  (initialises MPI before NEURON)

    if "MPI_LIB_NRN_PATH" not in os.environ and (lib := _mpi_library()):
        os.environ["MPI_LIB_NRN_PATH"] = lib
    from neuron import h

    if MPI.COMM_WORLD.Get_size() > 1:
        h.nrnmpi_init()
    pc = h.ParallelContext()
    rank, n_ranks = int(pc.id()), int(pc.nhost())
    if n_ranks != MPI.COMM_WORLD.Get_size():
        raise RuntimeError(f"NEURON sees {n_ranks} MPI ranks, mpi4py "
                           f"{MPI.COMM_WORLD.Get_size()}: set MPI_LIB_NRN_PATH to the MPI "
                           "library NEURON should load")
    return h, rank, n_ranks


def run_neuron(net, *, tstop: float, dt: float, trial_idx: int = 0,
               record_cells: bool = False, record_sections: bool = False) -> dict | None:
    """Simulate one trial of ``net`` in NEURON on all ranks; rank 0 returns the data.

    Returns (rank 0) a dict: ``times`` (ms, NEURON's grid), ``dipole_L2``,
    ``dipole_L5`` (raw sums, nAm, before hnn-core's baseline renormalisation),
    ``spike_times``, ``spike_gids``, ``wall_s`` (build + run), ``build_s`` (of which
    hnn-core's ``NetworkBuilder``, on rank 0), ``n_ranks``; with
    ``record_cells`` also ``v_soma`` {gid: mV} and ``cell_dipole`` {gid: nAm}
    (pyramidal cells), on NEURON's grid; with ``record_sections`` (and
    ``record_cells``) also ``v_section`` {gid: {section: mV}}, every section's
    midpoint.
    """
    import numpy as np

    from .. import DIPOLE_LAYER
    from ..cells.simulate import FAM_TO_NAM
    from ..hnn_compat import instantiate_drives, simulate_trial

    h, rank, n_ranks = init_neuron_mpi()
    instantiate_drives(net, tstop, trial_idx + 1)
    pc = h.ParallelContext()
    pc.barrier()
    start = time.perf_counter()
    timings = {}
    data = simulate_trial(net, tstop=tstop, dt=dt, trial_idx=trial_idx,
                          record_cells=record_cells, record_sections=record_sections,
                          timings=timings)
    pc.barrier()
    wall = time.perf_counter() - start
    if rank != 0:
        return None
    dpl = np.asarray(data["dpl_data"])               # (n_times, 1 + n_dipole_types): fAm
    names = [n for n, d in net.cell_types.items() if d["cell_metadata"].get("measure_dipole")]
    layers = {"L2": np.zeros(dpl.shape[0]), "L5": np.zeros(dpl.shape[0])}
    for i, name in enumerate(names):
        layers[DIPOLE_LAYER[name]] = dpl[:, i + 1] * FAM_TO_NAM
    # hnn-core records the drives' artificial cells too: keep the cells' spikes
    times = np.asarray(data["spike_times"], dtype=np.float64)
    gids = np.asarray(data["spike_gids"], dtype=np.int64)
    cells = np.zeros(gids.size, dtype=bool)
    for name in net.cell_types:
        rng = net.gid_ranges[name]
        cells |= (gids >= rng.start) & (gids < rng.stop)
    times, gids = times[cells], gids[cells]
    order = np.lexsort((gids, times))
    out = {
        "times": np.asarray(data["times"]),
        "dipole_L2": layers["L2"],
        "dipole_L5": layers["L5"],
        "spike_times": times[order],
        "spike_gids": gids[order],
        "wall_s": wall,
        "build_s": float(timings.get("build_s", float("nan"))),
        "n_ranks": n_ranks,
    }
    if record_cells:
        out["v_soma"] = {int(g): np.asarray(v["soma"], dtype=np.float64)
                         for g, v in data["vsec"].items()}
        out["cell_dipole"] = {int(g): np.asarray(d, dtype=np.float64) * FAM_TO_NAM
                              for g, d in data["cell_dipole"].items()}
        if record_sections:
            out["v_section"] = {int(g): {s: np.asarray(v[s], dtype=np.float64) for s in v}
                                for g, v in data["vsec"].items()}
    return out
