"""One network run per (scenario, condition, seed, simulator), stored as ``network_run`` NetCDF.

Both simulators write the same schema on the same time grid (bin centres of the
surrogates' bin): NEURON's dipole is averaged over each bin before hnn-core's
baseline renormalisation, the surrogates' is already per bin. The processed
dipole is hnn-core's ``Dipole.smooth(window)`` then ``Dipole.scale(factor)``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..artifacts import NETWORK_RUN
from ..provenance import config_hash, provenance_attrs
from .api import bin_centres, load_surrogates, prepare_drives, to_hnn_dipole
from .spec import build_network, scenario_tstop

log = logging.getLogger(__name__)

LAYERS = ("agg", "L2", "L5")


def run_dataset(net, *, spec, simulator, scenario, condition, seed, times, l2, l5,
                spike_times, spike_gids, wall_s, n_ranks):
    """A ``network_run`` Dataset from layer dipoles (raw, nAm, per bin) and spikes."""
    dpl = to_hnn_dipole(times, l2, l5, net)
    proc = dpl.copy()
    post = spec["postproc"]
    if post["smooth_ms"] > 0:
        proc.smooth(window_len=post["smooth_ms"])
    proc.scale(post["scale"])
    types = [t for t in net.gid_ranges if t in net.cell_types]
    attrs = provenance_attrs(seed=int(seed))
    attrs.update(simulator=simulator, scenario=scenario, condition=condition,
                 tstop_ms=float(scenario_tstop(spec, scenario)), bin_ms=float(spec["bin_ms"]),
                 wall_s=float(wall_s), n_ranks=int(n_ranks), config_hash=config_hash(spec))
    return NETWORK_RUN.build(
        {
            "gid_start": np.array([net.gid_ranges[t][0] for t in types], np.int64),
            "n_cells": np.array([len(net.gid_ranges[t]) for t in types], np.int64),
            "dipole": np.stack([dpl.data[k] for k in LAYERS]),
            "dipole_processed": np.stack([proc.data[k] for k in LAYERS]),
            "spike_time": np.asarray(spike_times, np.float64),
            "spike_gid": np.asarray(spike_gids, np.int64),
        },
        {"time": times, "layer": list(LAYERS), "cell_type": types},
        attrs,
    )


def run_surrogate_network(spec, *, scenario, condition, seed, checkpoints, out, threads=1,
                          replay=None):
    """Simulate one network run with the surrogates and write it to ``out``.

    ``replay``: a NEURON ``network_run`` of the same (scenario, condition, seed);
    its spikes are delivered instead of the surrogates' own (open loop).
    """
    import torch

    from ..surrogate.checkpoint import load_checkpoint
    from .simulate import SurrogateNetwork
    from .wiring import build_wiring

    torch.set_num_threads(int(threads))
    loaded = load_surrogates({s.cell_type: s for s in map(load_checkpoint, checkpoints)})
    net = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    tstop = scenario_tstop(spec, scenario)
    prepare_drives(net, tstop)
    # timed like NEURON's run (hnn-core's NetworkBuilder + simulation): the
    # wiring (every connection and drive event) + simulation
    start = time.perf_counter()
    wiring = build_wiring(net, tstop=tstop, bin_ms=spec["bin_ms"])
    spikes = None
    if replay is not None:
        ref = NETWORK_RUN.read(replay)
        for key, want in (("scenario", scenario), ("condition", condition), ("seed", seed)):
            if str(ref.attrs[key]) != str(want):
                raise ValueError(f"{replay}: {key} {ref.attrs[key]!r}, this run's is {want!r}")
        spikes = (ref["spike_time"].values, ref["spike_gid"].values)
    res = SurrogateNetwork(wiring, loaded).run(progress_every=int(round(100 / spec["bin_ms"])),
                                               replay=spikes)
    wall = time.perf_counter() - start
    l2, l5 = res.layer_dipoles()
    ds = run_dataset(net, spec=spec,
                     simulator="surrogate" if replay is None else "open_loop", scenario=scenario,
                     condition=condition, seed=seed, times=bin_centres(res.n_bins, res.bin_ms),
                     l2=l2, l5=l5,
                     spike_times=res.spike_times, spike_gids=res.spike_gids,
                     wall_s=wall, n_ranks=1)
    NETWORK_RUN.write(ds, out)
    log.info("%s %s/%s seed %d: %d spikes in %.1f s (wiring %.2f s, simulation %.1f s) -> %s",
             ds.attrs["simulator"], scenario, condition, seed, res.spike_times.size, wall,
             wall - res.wall_s, res.wall_s, out)
    return ds


def run_neuron_network(spec, *, scenario, condition, seed, out):
    """Simulate one network run in NEURON (call on every MPI rank); rank 0 writes ``out``."""
    from ..cells.inputs import bin_trace
    from .ground_truth import run_neuron

    net = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    tstop = scenario_tstop(spec, scenario)
    res = run_neuron(net, tstop=tstop, dt=spec["dt"])
    if res is None:
        return None
    bin_ms = spec["bin_ms"]
    n_bins = int(round(tstop / bin_ms))
    times = bin_centres(n_bins, bin_ms)
    l2, l5 = (bin_trace(res[f"dipole_{k}"], dt=spec["dt"], n_bins=n_bins, bin_ms=bin_ms)
              for k in ("L2", "L5"))
    ds = run_dataset(net, spec=spec, simulator="neuron", scenario=scenario, condition=condition,
                     seed=seed, times=times, l2=l2, l5=l5, spike_times=res["spike_times"],
                     spike_gids=res["spike_gids"], wall_s=res["wall_s"],
                     n_ranks=res["n_ranks"])
    NETWORK_RUN.write(ds, out)
    log.info("NEURON %s/%s seed %d on %d ranks: %d spikes in %.1f s -> %s", scenario, condition,
             seed, res["n_ranks"], res["spike_times"].size, res["wall_s"], out)
    return ds
