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
