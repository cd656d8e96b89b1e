"""The exact synaptic input one cell received in a network run, to replay to it alone.

Given a network's wiring and the spikes of a run (NEURON's), every event that
reached cell ``gid`` is listed with its synapse channel, its arrival time
(presynaptic time + hnn-core's delay, unbinned) and its weight (uS). Played to
the lone cell in NEURON (``cells.simulate.simulate_cell``), it gives the cell's
network behaviour without the network: a check that the surrogates' wiring is
NEURON's (tests/test_network.py), and training data drawn from what a network
really delivers.
"""

from __future__ import annotations

import numpy as np

from .wiring import Wiring


def cell_type_of(wiring: Wiring, gid: int) -> str:
    for t in wiring.cell_types:
        if gid in wiring.gid_ranges[t]:
            return t
    raise ValueError(f"gid {gid} is not a cell of this network")


def received_events(wiring: Wiring, gid: int, spike_times, spike_gids, scale=None):
    """(channel, arrival time ms, weight uS) arrays of every event cell ``gid`` received.

    ``scale``: ``A_weight * gain`` per connection (defaults to the network's).
    Events are sorted by arrival time; arrivals at or after ``tstop`` are left out.
    """
    t = cell_type_of(wiring, gid)
    cell = gid - wiring.gid_ranges[t][0]
    n_ch = wiring.n_channels[t]
    scale = np.array([c.scale for c in wiring.connections]) if scale is None else np.asarray(scale)
    d = wiring.drives[t]
    mine = d.row // n_ch == cell
    channel = [d.row[mine] % n_ch]
    arrival = [d.time[mine]]
    weight = [scale[d.conn[mine]] * d.unit_weight[mine]]
    syn = wiring.synapses[t]
    spike_times, spike_gids = np.asarray(spike_times, float), np.asarray(spike_gids, int)
    for src in np.unique(spike_gids):
        lo, hi = syn.ptr[src], syn.ptr[src + 1]
        entries = np.arange(lo, hi)[syn.row[lo:hi] // n_ch == cell]
        if not entries.size:
            continue
        times = spike_times[spike_gids == src]
        channel.append(np.tile(syn.row[entries] % n_ch, times.size))
        arrival.append((times[:, None] + syn.delay[entries][None, :]).ravel())
        weight.append(np.tile(scale[syn.conn[entries]] * syn.unit_weight[entries], times.size))
    channel, arrival, weight = (np.concatenate(a) for a in (channel, arrival, weight))
    keep = arrival < wiring.tstop
    order = np.argsort(arrival[keep], kind="stable")
    return channel[keep][order], arrival[keep][order], weight[keep][order]


def write_received_events(spec: dict, *, scenario: str, condition: str, seed: int, run_path,
                          out):
    """Every cell's received events in the NEURON run ``run_path`` -> ``replay_events`` file.

    The network is rebuilt from ``spec`` exactly as the run built it (same
    connections, gid pairs and drive seeds), so the events are the ones NEURON
    delivered. This is the input of the cells stage's ``replay`` regime.
    """
    import logging

    from ..artifacts import NETWORK_RUN, REPLAY_EVENTS
    from ..provenance import provenance_attrs
    from .run import network_wiring
    from .spec import build_network, scenario_tstop

    run = NETWORK_RUN.read(run_path)
    for key, want in (("simulator", "neuron"), ("scenario", scenario),
                      ("condition", condition), ("seed", seed)):
        if str(run.attrs[key]) != str(want):
            raise ValueError(f"{run_path}: {key} is {run.attrs[key]!r}, expected {want!r}")
    tstop = scenario_tstop(spec, scenario)
    if not np.isclose(float(run.attrs["tstop_ms"]), tstop):
        raise ValueError(f"{run_path}: tstop {run.attrs['tstop_ms']} ms, the spec says {tstop}")
    net = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    wiring = network_wiring(net, tstop=tstop, bin_ms=spec["bin_ms"])
    st, sg = run["spike_time"].values, run["spike_gid"].values
    gids = [g for t in wiring.cell_types for g in wiring.gid_ranges[t]]
    parts = [received_events(wiring, g, st, sg) for g in gids]
    n_events = np.array([p[0].size for p in parts], dtype=np.int64)
    ds = REPLAY_EVENTS.build(
        {
            "gid": np.array(gids, dtype=np.int64),
            "cell_type": np.array([cell_type_of(wiring, g) for g in gids], dtype=object),
            "n_events": n_events,
            "event_cell": np.repeat(np.arange(len(gids)), n_events).astype(np.int32),
            "event_channel": np.concatenate([p[0] for p in parts]).astype(np.int16),
            "event_arrival": np.concatenate([p[1] for p in parts]).astype(np.float64),
            "event_weight": np.concatenate([p[2] for p in parts]).astype(np.float32),
        },
        {},
        {**provenance_attrs(seed=seed), "scenario": scenario, "condition": condition,
         "tstop_ms": tstop, "run_file": str(run_path),
         # what the NEURON run cost, so the data replayed from it can count it
         **({"source_job": (f"network/{run.attrs['config_hash']}/{scenario}/{condition}/"
                            f"{seed}"),
             "source_wall_s": float(run.attrs["wall_s"])} if "wall_s" in run.attrs else {})},
    )
    REPLAY_EVENTS.write(ds, out)
    logging.getLogger(__name__).info(
        "%s: %d cells, %d events (%.0f per cell)", out, len(gids), n_events.sum(),
        n_events.mean())
    return ds
