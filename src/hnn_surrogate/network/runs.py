"""One network run per (scenario, condition, seed, simulator), stored as ``network_run`` NetCDF.

Both simulators write the same schema on the same time grid (bin centres of the
surrogates' bin): NEURON's dipole is averaged over each bin before hnn-core's
baseline renormalisation, the surrogates' is already per bin. The processed
dipole is hnn-core's ``Dipole.smooth(window)`` then ``Dipole.scale(factor)``.
"""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import NETWORK_RUN
from ..provenance import config_hash, provenance_attrs
from .api import to_hnn_dipole
from .run import simulate_neuron, simulate_surrogate
from .spec import build_network, scenario_tstop

log = logging.getLogger(__name__)

LAYERS = ("agg", "L2", "L5")


def run_dataset(result, net, *, spec, scenario, condition, seed):
    """A ``network_run`` Dataset from a ``run.NetworkResult`` of ``net``."""
    dpl = to_hnn_dipole(result.times, result.dipole_l2, result.dipole_l5, net)
    proc = dpl.copy()
    post = spec["postproc"]
    if post["smooth_ms"] > 0:
        proc.smooth(window_len=post["smooth_ms"])
    proc.scale(post["scale"])
    types = [t for t in net.gid_ranges if t in net.cell_types]
    attrs = provenance_attrs(seed=int(seed))
    attrs.update(simulator=result.simulator, scenario=scenario, condition=condition,
                 tstop_ms=float(scenario_tstop(spec, scenario)), bin_ms=float(spec["bin_ms"]),
                 wall_s=float(result.wall_s), n_ranks=int(result.n_ranks),
                 config_hash=config_hash(spec))
    return NETWORK_RUN.build(
        {
            "gid_start": np.array([net.gid_ranges[t][0] for t in types], np.int64),
            "n_cells": np.array([len(net.gid_ranges[t]) for t in types], np.int64),
            "dipole": np.stack([dpl.data[k] for k in LAYERS]),
            "dipole_processed": np.stack([proc.data[k] for k in LAYERS]),
            "spike_time": np.asarray(result.spike_times, np.float64),
            "spike_gid": np.asarray(result.spike_gids, np.int64),
        },
        {"time": result.times, "layer": list(LAYERS), "cell_type": types},
        attrs,
    )


def run_surrogate_network(spec, *, scenario, condition, seed, checkpoints, out=None, threads=1,
                          replay=None, replay_types=None):
    """Simulate one network run with the surrogates; write it to ``out`` if given.

    ``checkpoints``: what ``api.load_surrogates`` takes (paths, a folder, a dict).
    ``replay``: a NEURON ``network_run`` of the same (scenario, condition, seed);
    its spikes are delivered instead of the surrogates' own (open loop);
    ``replay_types``: only these types' (the others deliver their own; None: all).
    """
    spikes = None
    if replay is not None:
        ref = NETWORK_RUN.read(replay)
        for key, want in (("scenario", scenario), ("condition", condition), ("seed", seed)):
            if str(ref.attrs[key]) != str(want):
                raise ValueError(f"{replay}: {key} {ref.attrs[key]!r}, this run's is {want!r}")
        spikes = (ref["spike_time"].values, ref["spike_gid"].values)
    net = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    res = simulate_surrogate(net, tstop=scenario_tstop(spec, scenario), surrogates=checkpoints,
                             bin_ms=spec["bin_ms"], replay=spikes, replay_types=replay_types,
                             threads=threads,
                             progress_every=int(round(100 / spec["bin_ms"])))
    ds = run_dataset(res, net, spec=spec, scenario=scenario, condition=condition, seed=seed)
    if replay_types is not None:
        ds.attrs["replay_types"] = " ".join(replay_types)    # the other types' own spikes
    if out is not None:
        NETWORK_RUN.write(ds, out)
    log.info("%s %s/%s seed %d: %d spikes in %.1f s (wiring %.2f s, simulation %.1f s)%s",
             res.simulator, scenario, condition, seed, res.spike_times.size, res.wall_s,
             res.setup_s, res.wall_s - res.setup_s, f" -> {out}" if out else "")
    return ds


def run_neuron_network(spec, *, scenario, condition, seed, out=None):
    """Simulate one network run in NEURON (call on every MPI rank); rank 0 returns it
    (and writes it to ``out`` if given)."""
    net = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    res = simulate_neuron(net, tstop=scenario_tstop(spec, scenario), dt=spec["dt"],
                          bin_ms=spec["bin_ms"])
    if res is None:
        return None
    ds = run_dataset(res, net, spec=spec, scenario=scenario, condition=condition, seed=seed)
    if out is not None:
        NETWORK_RUN.write(ds, out)
    log.info("NEURON %s/%s seed %d on %d ranks: %d spikes in %.1f s%s", scenario, condition,
             seed, res.n_ranks, res.spike_times.size, res.wall_s, f" -> {out}" if out else "")
    return ds
