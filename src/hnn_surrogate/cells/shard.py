"""A shard of single-cell simulations, spread over MPI ranks, written as NetCDF.

Rank ``r`` of ``R`` runs the simulations at positions ``r, r + R, ...`` of the
shard; rank 0 gathers them in shard order and writes one ``cell_sims`` file.
Each simulation's input comes from its own seeded generator (see ``inputs``),
so the file is identical whatever the number of ranks.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np

from ..artifacts import CELL_SIMS
from ..provenance import config_hash, provenance_attrs
from .channels import channels, sections
from .inputs import Regime, bin_events, bin_spikes, bin_trace, draw_events, sim_rng
from .replay import ReplayInputs
from .simulate import simulate_cell

log = logging.getLogger(__name__)


def bin_sections(v_sections, *, dt, n_bins, bin_ms) -> np.ndarray:
    """(n_sections, n_steps + 1) at NEURON's dt -> (n_bins, n_sections), each bin's mean."""
    return np.stack([bin_trace(v, dt=dt, n_bins=n_bins, bin_ms=bin_ms) for v in v_sections],
                    axis=-1)


def run_one(cell_type, events, *, tstop, dt, bin_ms, delay, store_fine, record_sections=False):
    """Simulate one input ``events = (channel, presynaptic time, weight)``; a dict of arrays."""
    ch, t, w = events
    run = simulate_cell(cell_type, event_channel=ch, event_time=t, event_weight=w,
                        tstop=tstop, dt=dt, delay=delay, record_sections=record_sections)
    n_bins = int(round(tstop / bin_ms))
    out = {
        "inputs": bin_events(ch, t + delay, w, n_channels=len(channels(cell_type)),
                             n_bins=n_bins, bin_ms=bin_ms),
        "v_soma": bin_trace(run.v_soma, dt=dt, n_bins=n_bins, bin_ms=bin_ms),
        "spike_count": bin_spikes(run.spike_times, n_bins=n_bins, bin_ms=bin_ms),
        "spike_time": run.spike_times,
        "event_channel": ch, "event_time": t, "event_weight": w,
    }
    if run.dipole is not None:
        out["dipole"] = bin_trace(run.dipole, dt=dt, n_bins=n_bins, bin_ms=bin_ms)
    if record_sections:
        out["v_section"] = bin_sections(run.v_sections, dt=dt, n_bins=n_bins, bin_ms=bin_ms)
    if store_fine:
        n_fine = int(round(tstop / dt))
        out["v_soma_fine"] = run.v_soma[:n_fine]
        if run.dipole is not None:
            out["dipole_fine"] = run.dipole[:n_fine]
    return out


def gather_in_order(comm, results: list, n: int) -> list | None:
    """On rank 0, every rank's ``results`` back in order (rank ``r`` of ``R`` held
    positions ``r, r + R, ...`` of ``n``); None on the other ranks."""
    gathered = comm.gather(results, root=0)
    if comm.Get_rank() != 0:
        return None
    ordered = [None] * n
    for r, part in enumerate(gathered):
        ordered[r::comm.Get_size()] = part
    return ordered


def assemble(results, *, cell_type, regime_name, indices, tstop, dt, bin_ms, delay, seed,
             params_hash, runs=None, extra_attrs=None):
    """Stack per-simulation results (in shard order) into a ``cell_sims`` Dataset.

    ``runs``: the network run of each simulation (None: -1, lone-cell input)."""
    chans = channels(cell_type)
    n_bins = int(round(tstop / bin_ms))
    stack = {k: np.stack([r[k] for r in results]) for k in
             ("inputs", "v_soma", "spike_count", "dipole", "v_soma_fine", "dipole_fine",
              "v_section")
             if results and k in results[0]}
    data = {
        "inputs": stack["inputs"].astype(np.float32),
        "v_soma": stack["v_soma"].astype(np.float32),
        "spike_count": stack["spike_count"].astype(np.int8),
        "n_spikes": np.array([r["spike_time"].size for r in results], dtype=np.int32),
        "regime": np.array([regime_name] * len(results), dtype=object),
        "sim_index": np.asarray(indices, dtype=np.int64),
        "run": (np.full(len(results), -1, dtype=np.int64) if runs is None
                else np.asarray(runs, dtype=np.int64)),
    }
    for k in ("dipole", "v_soma_fine", "dipole_fine", "v_section"):
        if k in stack:
            data[k] = stack[k].astype(np.float32)

    def ragged(key, dtype):
        return np.concatenate([np.asarray(r[key]) for r in results]).astype(dtype)

    sim_of = lambda key: np.repeat(np.arange(len(results)),  # noqa: E731
                                   [np.asarray(r[key]).size for r in results])
    data.update(
        event_sim=sim_of("event_time").astype(np.int32),
        event_channel=ragged("event_channel", np.int16),
        event_time=ragged("event_time", np.float64),
        event_weight=ragged("event_weight", np.float32),
        spike_sim=sim_of("spike_time").astype(np.int32),
        spike_time=ragged("spike_time", np.float64),
    )
    coords = {
        "time": np.arange(n_bins) * bin_ms,
        "channel": np.array([c.key for c in chans], dtype=object),
        "section": np.array([c.section for c in chans], dtype=object),
        "receptor": np.array([c.receptor for c in chans], dtype=object),
    }
    if "v_section" in data:
        coords["recorded_section"] = np.array(sections(cell_type), dtype=object)
    if "v_soma_fine" in data:
        coords["time_fine"] = np.arange(data["v_soma_fine"].shape[1]) * dt
    attrs = provenance_attrs(seed=seed)
    attrs.update(cell_type=cell_type, dt_ms=dt, bin_ms=bin_ms, tstop_ms=tstop,
                 synaptic_delay_ms=delay, config_hash=params_hash, **(extra_attrs or {}))
    return CELL_SIMS.build(data, coords, attrs)


def simulate_shard(*, cell_type, regime_name, regime: dict | None = None, reference=None,
                   replay=None, first, count, tstop, dt, bin_ms, delay, seed, store_fine,
                   record_sections=False, out=None, comm=None):
    """Simulate ``count`` simulations from ``first`` of one regime, MPI-parallel.

    Parameters
    ----------
    regime : dict | None
        The validated ``cells.regimes.<regime_name>`` config section (random input).
    reference : array, shape (n_channels,)
        Reference weights (uS) from the cell type's calibration (random input).
    replay : list of paths | None
        Instead of ``regime``: the ``replay_events`` files of the replay regime
        (``cells.replay``).
    tstop, dt, bin_ms, delay : float
        Simulated time, NEURON step, surrogate bin width, synaptic delay (ms).
    record_sections : bool
        Also store every section's midpoint voltage per bin (``v_section``).
    out : path | None
        Where rank 0 writes the shard (atomically); None to only return it.
    comm : mpi4py communicator | None
        Defaults to ``MPI.COMM_WORLD``.

    Returns
    -------
    xarray.Dataset on rank 0, None on the other ranks.
    """
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    indices = list(range(first, first + count))
    mine = indices[rank::size]
    params = dict(cell_type=cell_type, regime=regime_name, tstop=tstop, dt=dt, bin_ms=bin_ms,
                  delay=delay, seed=seed)
    if record_sections:  # off: the hash of the data without sections, as before
        params["record_sections"] = True
    if replay is not None:
        # Every rank opens the runs and checks the whole shard before simulating.
        inputs = ReplayInputs(replay, cell_type, seed, delay)
        for index in indices:
            inputs.source(index)
        params["replay"] = [str(p) for p in replay]

        def events(index):
            return inputs.events(index, tstop)

        runs = [inputs.run_of(index) for index in indices]
        sources = inputs.neuron_jobs()
        extra = {} if sources is None else {"source_neuron_jobs": json.dumps(sources,
                                                                             sort_keys=True)}
    else:
        reg = Regime.from_config(regime)
        reference = np.asarray(reference)
        params.update(regime_params=regime, reference=[float(x) for x in reference])

        def events(index):
            rng = sim_rng(seed, cell_type, regime_name, index)
            return draw_events(cell_type, reg, reference, tstop=tstop, rng=rng)

        runs, extra = None, {}
    # Load NEURON and hnn-core's mechanisms and fill the channels' rate tables
    # with one short run outside the timed loop, so every rank starts warm.
    simulate_cell(cell_type, event_channel=[], event_time=[], event_weight=[],
                  tstop=bin_ms, dt=dt, delay=delay)
    comm.Barrier()
    t0 = time.perf_counter()
    results = []
    for k, index in enumerate(mine, 1):
        results.append(run_one(cell_type, events(index), tstop=tstop, dt=dt, bin_ms=bin_ms,
                               delay=delay, store_fine=store_fine,
                               record_sections=record_sections))
        if rank == 0:
            el = time.perf_counter() - t0
            log.info("%s/%s rank 0 of %d: %d/%d simulations, %.2f s each",
                     cell_type, regime_name, size, k, len(mine), el / k)
    ordered = gather_in_order(comm, results, len(indices))
    wall = time.perf_counter() - t0
    if ordered is None:
        return None
    ds = assemble(ordered, cell_type=cell_type, regime_name=regime_name, indices=indices,
                  tstop=tstop, dt=dt, bin_ms=bin_ms, delay=delay, seed=seed,
                  params_hash=config_hash(params), runs=runs,
                  extra_attrs={"mpi_ranks": size, "first_sim": first, "wall_s": wall, **extra})
    if out is not None:
        CELL_SIMS.write(ds, out)
        log.info("wrote %s (%d simulations, %.1f s)", out, count, time.perf_counter() - t0)
    return ds
