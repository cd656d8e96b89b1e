"""What every surrogate cell of an ``hnn_core.Network`` receives: drive events and synapses.

Everything is read from the network object with hnn-core's own rules, so the
surrogates see exactly the events NEURON sees:

* cells, gids and positions: ``net.gid_ranges``, ``net.pos_dict``;
* connections: every entry of ``net.connectivity`` (default, added or edited),
  its ``gid_pairs`` (hnn-core has already drawn the probability with its
  ``conn_seed``), its location (a group such as ``proximal`` expands to the
  target cell's ``sect_loc`` sections, as ``NetworkBuilder`` does), receptor,
  and ``A_weight * gain``; weight and delay of each pair from hnn-core's
  ``_get_gaussian_connection`` (distance rule with ``lamtha``);
* drives: the event times of ``net.external_drives[...]["events"]`` that
  hnn-core's ``_instantiate_drives`` drew with each drive's ``event_seed``.

A connection ``c`` between presynaptic gid ``i`` and a synapse of cell ``j``
contributes ``scale[c] * g_ij`` uS per presynaptic event, where
``scale[c] = A_weight * gain`` and ``g_ij`` the Gaussian distance factor;
``scale`` is kept apart so a simulator can differentiate with respect to it.
Events count in the time bin of their arrival (presynaptic time + delay), the
convention of the cells stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import CELL_TYPES
from ..cells.channels import cell_template, channel_index


class NetworkError(ValueError):
    """An hnn-core network the surrogates cannot simulate (named culprit)."""


@dataclass
class Connection:
    """One entry of ``net.connectivity``: its label and ``A_weight * gain``."""

    src_type: str
    target_type: str
    loc: str
    receptor: str
    scale: float          # uS: A_weight * gain

    @property
    def label(self) -> str:
        return f"{self.src_type}->{self.target_type} {self.loc} {self.receptor}"


@dataclass
class Synapses:
    """Cell-to-cell synapses onto one target type, indexed by presynaptic gid (CSR).

    Entries of presynaptic gid ``g`` are ``ptr[g]:ptr[g + 1]``; each targets
    input ``row = target_cell * n_channels + channel`` after ``delay_bins`` bins,
    with unit weight ``g_ij`` (uS per uS of ``scale``) of connection ``conn``.
    """

    ptr: np.ndarray          # (n_gids + 1,) int64
    row: np.ndarray          # (n_entries,) int32
    delay_bins: np.ndarray   # (n_entries,) int32, >= 1
    unit_weight: np.ndarray  # (n_entries,) float64
    conn: np.ndarray         # (n_entries,) int32
    delay: np.ndarray        # (n_entries,) float64, ms: hnn-core's exact delay
    # int32 where it holds: a 100,000-cell network has about 10^8 entries


@dataclass
class DriveEvents:
    """Drive events onto one target type, each already placed in its arrival bin."""

    bin: np.ndarray          # (n_events,) int64
    row: np.ndarray          # (n_events,) int64
    unit_weight: np.ndarray  # (n_events,) float64
    conn: np.ndarray         # (n_events,) int64
    time: np.ndarray         # (n_events,) float64, ms: exact arrival time


@dataclass
class Wiring:
    """Everything a surrogate network needs from an ``hnn_core.Network``."""

    cell_types: list[str]                 # in gid order
    gid_ranges: dict[str, range]          # cells and drives, hnn-core's gids
    n_channels: dict[str, int]
    connections: list[Connection]
    synapses: dict[str, Synapses]         # by target type
    drives: dict[str, DriveEvents]        # by target type
    n_bins: int
    bin_ms: float
    tstop: float
    n_drive_events: dict[str, int] = field(default_factory=dict)  # delivered (arrival < tstop)
    min_delay_clamped: int = 0            # entries whose delay was under one bin
    n_copies: int = 1                     # networks side by side (``batch.batch_wirings``)

    @property
    def n_gids(self) -> int:
        return max(r.stop for r in self.gid_ranges.values())

    def n_cells(self, cell_type: str) -> int:
        return len(self.gid_ranges[cell_type])


def _target_sections(cell, loc: str) -> list[str]:
    """Sections a connection at ``loc`` targets, as ``NetworkBuilder._connect_celltypes``."""
    if loc in cell.sect_loc:
        return list(cell.sect_loc[loc])
    return [loc]


def check_network(net) -> None:
    """Raise NetworkError if ``net`` holds something the surrogates do not model."""
    for cell_type in net.cell_types:
        if cell_type not in CELL_TYPES:
            raise NetworkError(f"network cell type {cell_type!r} has no surrogate "
                               f"(known: {', '.join(CELL_TYPES)})")
    if net.external_biases:
        raise NetworkError(f"tonic biases {sorted(net.external_biases)} are not modelled by "
                           "the surrogates (they were trained on synaptic input only)")
    if getattr(net, "rec_arrays", None):
        raise NetworkError("extracellular recording arrays are not modelled by the surrogates")


def synapse_entries(pairs, cells, g, delay, conn, channels, n_channels, n_bins, bin_ms):
    """The synapse entries of one cell-to-cell connection, and how many had their
    delay raised to one bin.

    ``pairs`` (n, 2): presynaptic and target gids, in hnn-core's order;
    ``cells`` each pair's target cell index within its type; ``g``, ``delay``
    hnn-core's unit weight and delay (ms) of each pair; ``channels`` the
    target's input channels of the connection's synapses. Returns a tuple of
    arrays (src gid, row, delay bins, unit weight, connection, delay ms), one
    entry per (pair, synapse), pairs in order, synapses within.
    """
    # a spike in bin k is placed at the bin's centre: it arrives in
    # bin floor(k + 0.5 + delay / bin_ms); later than tstop: never delivered
    d = np.floor(0.5 + delay / bin_ms).astype(np.int64)
    keep = d < n_bins
    pairs, cells, d, g, delay = pairs[keep], cells[keep], d[keep], g[keep], delay[keep]
    k = len(channels)
    clamped = int((d < 1).sum()) * k     # cannot act within the bin that fired
    d = np.maximum(d, 1)
    rows = (cells[:, None] * n_channels + np.asarray(channels, np.int64)[None, :]).ravel()
    return ((np.repeat(pairs[:, 0], k), rows.astype(np.int32), np.repeat(d.astype(np.int32), k),
             np.repeat(g, k), np.full(rows.size, conn, np.int32), np.repeat(delay, k)), clamped)


def synapses_csr(parts, n_gids) -> Synapses:
    """``Synapses`` from a list of ``synapse_entries`` (in connection order):
    sorted by presynaptic gid, then delay (stable: ties keep their order)."""
    if not parts:
        return Synapses(np.zeros(n_gids + 1, np.int64), *(np.zeros(0, np.int32),) * 2,
                        np.zeros(0), np.zeros(0, np.int32), np.zeros(0))
    src = np.concatenate([p[0] for p in parts])
    d = np.concatenate([p[2] for p in parts])
    order = np.lexsort((d, src))
    ptr = np.searchsorted(src[order], np.arange(n_gids + 1)).astype(np.int64)
    del src
    d = d[order]
    # one array at a time: its parts joined, reordered, the parts let go
    row, g, conn, delay = (np.concatenate([p[i] for p in parts])[order] for i in (1, 3, 4, 5))
    return Synapses(ptr, row, d, g.astype(np.float64), conn, delay.astype(np.float64))


def build_wiring(net, *, tstop: float, bin_ms: float, trial_idx: int = 0) -> Wiring:
    """Read cells, connections and drive events of ``net`` (drives must be instantiated).

    Drive events are those of ``trial_idx`` in ``net.external_drives[...]["events"]``;
    call ``hnn_compat.instantiate_drives(net, tstop, n_trials)`` first
    (``network.run.network_wiring`` does).
    """
    from ..hnn_compat import gaussian_connection

    check_network(net)
    n_bins = int(round(tstop / bin_ms))
    cell_types = [t for t in net.gid_ranges if t in net.cell_types]
    chan_idx = {t: channel_index(t) for t in cell_types}
    templates = {t: net.cell_types[t]["cell_object"] for t in cell_types}
    for t in cell_types:
        if templates[t].to_dict() != cell_template(t).to_dict():
            raise NetworkError(f"{t} in this network differs from hnn-core's default {t} cell "
                               "(morphology, channels or synapses), which the surrogate learned")
    gid_type = {}
    for name, rng in net.gid_ranges.items():
        for g in rng:
            gid_type[g] = name
    drive_events = {}
    for name, drive in net.external_drives.items():
        events = drive.get("events") or []
        if len(events) <= trial_idx:
            raise NetworkError(f"drive {name!r} has no events for trial {trial_idx}: "
                               "instantiate the drives first")
        drive_events[name] = events[trial_idx]

    connections = []
    syn_parts = {t: [] for t in cell_types}     # synapse_entries of each connection
    drv_parts = {t: [] for t in cell_types}     # (bin, row, g, conn, arrival)
    clamped = 0
    for c, conn in enumerate(net.connectivity):
        src_type, tgt_type = conn["src_type"], conn["target_type"]
        if tgt_type not in cell_types:
            raise NetworkError(f"connection {c} targets {tgt_type!r}, not a cell type")
        nc = conn["nc_dict"]
        connections.append(Connection(src_type, tgt_type, conn["loc"], conn["receptor"],
                                      float(nc["A_weight"] * nc["gain"])))
        unit = dict(nc, A_weight=1.0)
        n_ch = len(chan_idx[tgt_type])
        channels_here = []
        for sec in _target_sections(templates[tgt_type], conn["loc"]):
            key = f"{sec}_{conn['receptor']}"
            if key not in chan_idx[tgt_type]:
                raise NetworkError(f"connection {c} ({connections[-1].label}): {tgt_type} has "
                                   f"no synapse {key!r}")
            channels_here.append(chan_idx[tgt_type][key])
        src_pos = net.pos_dict[src_type]
        tgt_pos = net.pos_dict[tgt_type]
        src0, tgt0 = net.gid_ranges[src_type][0], net.gid_ranges[tgt_type][0]
        is_drive = src_type in net.external_drives
        pairs = np.array([(s, t) for s, tgts in conn["gid_pairs"].items() for t in tgts],
                         dtype=np.int64).reshape(-1, 2)
        if not pairs.size:
            continue
        # hnn-core's own distance rule, on every pair at once (it is elementwise)
        sp = np.asarray(src_pos, dtype=float)[pairs[:, 0] - src0]
        tp = np.asarray(tgt_pos, dtype=float)[pairs[:, 1] - tgt0]
        g_all, delay_all = gaussian_connection((sp[:, 0], sp[:, 1]), (tp[:, 0], tp[:, 1]),
                                               unit, net)
        g_all = np.broadcast_to(np.asarray(g_all, dtype=float), (len(pairs),))
        delay_all = np.broadcast_to(np.asarray(delay_all, dtype=float), (len(pairs),))
        cells = pairs[:, 1] - tgt0
        if is_drive:
            for (src_gid, _), cell, g, delay in zip(pairs, cells, g_all, delay_all):
                times = np.asarray(drive_events[src_type][src_gid - src0], dtype=float)
                arrival = times + delay
                b = np.floor(arrival / bin_ms).astype(np.int64)
                ok = (b >= 0) & (b < n_bins)
                b, arrival = b[ok], arrival[ok]
                for ch in channels_here:
                    drv_parts[tgt_type].append((b, np.full(b.size, cell * n_ch + ch), g, c,
                                                arrival))
        else:
            entries, n_clamped = synapse_entries(pairs, cells, g_all, delay_all, c,
                                                 channels_here, n_ch, n_bins, bin_ms)
            clamped += n_clamped
            syn_parts[tgt_type].append(entries)

    n_gids = max(r.stop for r in net.gid_ranges.values())
    synapses, drives, n_events = {}, {}, {}
    for t in cell_types:
        synapses[t] = synapses_csr(syn_parts[t], n_gids)
        dp = drv_parts[t]
        if dp:
            drives[t] = DriveEvents(
                np.concatenate([p[0] for p in dp]), np.concatenate([p[1] for p in dp]),
                np.concatenate([np.full(p[0].size, p[2]) for p in dp]),
                np.concatenate([np.full(p[0].size, p[3], np.int64) for p in dp]),
                np.concatenate([p[4] for p in dp]))
        else:
            drives[t] = DriveEvents(*(np.zeros(0, np.int64),) * 2, np.zeros(0),
                                    np.zeros(0, np.int64), np.zeros(0))
        n_events[t] = int(drives[t].bin.size)
    return Wiring(cell_types=cell_types, gid_ranges=dict(net.gid_ranges),
                  n_channels={t: len(chan_idx[t]) for t in cell_types}, connections=connections,
                  synapses=synapses, drives=drives, n_bins=n_bins, bin_ms=float(bin_ms),
                  tstop=float(tstop), n_drive_events=n_events, min_delay_clamped=clamped)
