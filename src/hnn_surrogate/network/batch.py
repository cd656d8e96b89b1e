"""Several independent networks stepped as one: drive seeds, trials or sweep points.

``batch_wirings`` joins the wirings of networks that share cell types, channels,
connections and time grid (drive seeds or weights may differ) into one
``Wiring``: each cell type's cells are the copies' cells one copy after the
other, every gid is renumbered so, and every synapse stays within its copy.
The surrogates then step all copies' cells together (the per-bin cost of a
network B times as large, with the fixed per-step overhead paid once), and a
spike reaches only the cells of its own copy, so each copy is exactly the
network it was built from.

The connections are the copies' connections one copy after the other:
``scale`` of the joined wiring holds ``B * n_connections`` entries, so every
copy can have its own weights (sweep points), or share them (drive seeds:
``BatchedNetwork.run`` repeats a shared ``(n_connections,)`` scale, and
gradients of all copies sum onto it).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from .simulate import NetworkOutput, SurrogateNetwork
from .wiring import DriveEvents, Synapses, Wiring


def _gid_maps(w: Wiring, n_copies: int):
    """(new gid of each old gid per copy (B, n_gids); the joined gid_ranges)."""
    ranges, new, start = {}, np.empty((n_copies, w.n_gids), np.int64), 0
    for name, rng in sorted(w.gid_ranges.items(), key=lambda kv: kv[1].start):
        n = len(rng)
        ranges[name] = range(start, start + n_copies * n)
        for b in range(n_copies):
            new[b, rng.start:rng.stop] = start + b * n + np.arange(n)
        start += n_copies * n
    return new, ranges


def check_batchable(wirings) -> None:
    """Raise ValueError naming the first copy that cannot join copy 0."""
    w0 = wirings[0]
    labels = [c.label for c in w0.connections]
    for i, w in enumerate(wirings[1:], 1):
        for what, a, b in (("cell types", w.cell_types, w0.cell_types),
                           ("cells per type", {t: w.n_cells(t) for t in w.cell_types},
                            {t: w0.n_cells(t) for t in w0.cell_types}),
                           ("gid ranges", {k: (r.start, r.stop) for k, r in w.gid_ranges.items()},
                            {k: (r.start, r.stop) for k, r in w0.gid_ranges.items()}),
                           ("channels", w.n_channels, w0.n_channels),
                           ("connections", [c.label for c in w.connections], labels),
                           ("time bins", (w.n_bins, w.bin_ms), (w0.n_bins, w0.bin_ms))):
            if a != b:
                raise ValueError(f"network {i} of the batch differs from network 0 in its "
                                 f"{what}: {a} against {b}")


def batch_wirings(wirings) -> Wiring:
    """One ``Wiring`` of all ``wirings`` side by side (see the module docstring)."""
    wirings = list(wirings)
    if not wirings:
        raise ValueError("a batch needs at least one network")
    check_batchable(wirings)
    w0, n_copies = wirings[0], len(wirings)
    new_gid, ranges = _gid_maps(w0, n_copies)
    n_conn = len(w0.connections)
    synapses, drives = {}, {}
    for t in w0.cell_types:
        rows_per_copy = w0.n_cells(t) * w0.n_channels[t]
        src, row, d, g, conn, delay = [], [], [], [], [], []
        for b, w in enumerate(wirings):
            s = w.synapses[t]
            src.append(new_gid[b][np.repeat(np.arange(w.n_gids), np.diff(s.ptr))])
            row.append(s.row + np.int32(b * rows_per_copy))
            d.append(s.delay_bins)
            g.append(s.unit_weight)
            conn.append(s.conn + np.int32(b * n_conn))
            delay.append(s.delay)
        src, d = np.concatenate(src), np.concatenate(d)
        order = np.lexsort((d, src))
        ptr = np.searchsorted(src[order], np.arange(n_copies * w0.n_gids + 1)).astype(np.int64)
        synapses[t] = Synapses(ptr, np.concatenate(row)[order].astype(np.int32), d[order],
                               np.concatenate(g)[order], np.concatenate(conn)[order],
                               np.concatenate(delay)[order])
        dv = [w.drives[t] for w in wirings]
        drives[t] = DriveEvents(np.concatenate([e.bin for e in dv]),
                                np.concatenate([e.row + b * rows_per_copy
                                                for b, e in enumerate(dv)]),
                                np.concatenate([e.unit_weight for e in dv]),
                                np.concatenate([e.conn + b * n_conn for b, e in enumerate(dv)]),
                                np.concatenate([e.time for e in dv]))
    return Wiring(cell_types=list(w0.cell_types), gid_ranges=ranges,
                  n_channels=dict(w0.n_channels),
                  connections=[c for w in wirings for c in w.connections],
                  synapses=synapses, drives=drives, n_bins=w0.n_bins, bin_ms=w0.bin_ms,
                  tstop=w0.tstop,
                  n_drive_events={t: sum(w.n_drive_events.get(t, 0) for w in wirings)
                                  for t in w0.cell_types},
                  min_delay_clamped=sum(w.min_delay_clamped for w in wirings),
                  n_copies=n_copies)


class BatchedNetwork:
    """Networks of the same shape, bound to the same surrogates, stepped as one.

    ``run`` returns one ``NetworkOutput`` per network, each what a
    ``SurrogateNetwork`` of that network alone returns (its own gids, spikes,
    dipoles and voltages); their ``wall_s`` and ``timings`` are the batch's.
    """

    def __init__(self, wirings, surrogates: dict, **kwargs):
        wirings = list(wirings)
        self.wirings = wirings
        self.n_copies = len(wirings)
        self.joined = batch_wirings(wirings)
        self.network = SurrogateNetwork(self.joined, surrogates, **kwargs)
        self.n_connections = len(wirings[0].connections)
        new_gid, _ = _gid_maps(wirings[0], self.n_copies)
        n = self.joined.n_gids
        self._copy_of = np.empty(n, np.int64)
        self._old_gid = np.empty(n, np.int64)
        for b in range(self.n_copies):
            self._copy_of[new_gid[b]] = b
            self._old_gid[new_gid[b]] = np.arange(wirings[0].n_gids)

    @property
    def scale(self) -> torch.Tensor:
        """(n_copies, n_connections): each network's own ``A_weight * gain``."""
        return self.network.scale.view(self.n_copies, self.n_connections)

    def run(self, scale: torch.Tensor | None = None, **kwargs) -> list[NetworkOutput]:
        """Run every network; ``scale`` (n_connections,) shared by all, or
        (n_copies, n_connections) one row per network; keyword arguments as
        ``SurrogateNetwork.run`` (``replay`` is not taken: one per network)."""
        if "replay" in kwargs:
            raise TypeError("a batched run takes no replay")
        if scale is not None:
            if scale.dim() == 1:
                if scale.shape[0] != self.n_connections:
                    raise ValueError(f"scale has {scale.shape[0]} entries, the networks "
                                     f"{self.n_connections} connections")
                scale = scale.repeat(self.n_copies)
            elif tuple(scale.shape) == (self.n_copies, self.n_connections):
                scale = scale.reshape(-1)
            else:
                raise ValueError(f"scale of shape {tuple(scale.shape)}: expected "
                                 f"({self.n_connections},) or "
                                 f"({self.n_copies}, {self.n_connections})")
        out = self.network.run(scale, **kwargs)
        return self.split(out)

    def split(self, out: NetworkOutput) -> list[NetworkOutput]:
        """Per network: the joined run's spikes, dipoles and voltages of its cells."""
        t0 = time.perf_counter()
        copy = self._copy_of[out.spike_gids]
        gids = self._old_gid[out.spike_gids]
        w0 = self.wirings[0]
        res = []
        for b in range(self.n_copies):
            sel = copy == b
            v = {t: a.reshape(a.shape[0], self.n_copies, w0.n_cells(t))[:, b]
                 for t, a in out.v_soma.items()}
            one = self.n_copies == 1            # a lone network's outputs have no copy axis
            res.append(replace(out, spike_times=out.spike_times[sel], spike_gids=gids[sel],
                               dipole={k: d if one else d[b] for k, d in out.dipole.items()},
                               v_soma=v, spike_count={k: c if one else c[b]
                                                      for k, c in out.spike_count.items()}))
        for r in res:
            r.wall_s = out.wall_s + time.perf_counter() - t0
        return res
