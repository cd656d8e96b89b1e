"""Simulate an hnn-core network with the cell surrogates, one time bin at a time.

All cells of a type are one batch of the type's surrogate (``Surrogate.step``),
so a bin costs the same whatever happened before. Per bin and cell type:

1. input = drive events arriving in the bin + synaptic events scheduled for it;
2. the surrogate steps; a cell fires when its spike probability rises through
   the checkpoint's threshold (the rule the evaluation uses);
3. each spike is delivered, through the connection's synapses (section,
   receptor), to the bin it arrives in (``delay`` after the centre of the bin
   that fired), scaled by ``A_weight * gain`` of its connection.

Differentiable with respect to ``A_weight * gain`` of every connection (drives
included): weights enter as tensors, and a spike carries a surrogate gradient
(a sigmoid's derivative in the spike logit, around the threshold) back into the
cell that fired. Bins without a spike carry none, so the gradient is that of
the events that happened.

The dipole of a pyramidal cell is its head's dipole plus the spike-locked
kernel at its spikes (nAm); the layer dipoles are sums over cells, and
``to_hnn_dipole`` applies hnn-core's own post-processing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import DIPOLE_LAYER, PYRAMIDAL_TYPES
from ..surrogate.kernels import apply_kernels
from .fused import FusedStepper, can_fuse
from .wiring import Wiring

log = logging.getLogger(__name__)

SURROGATE_GRADIENT_SLOPE = 1.0
"""Slope of the sigmoid whose derivative stands in for the spike's (per logit unit)."""


@dataclass
class NetworkOutput:
    """A surrogate network run.

    Attributes
    ----------
    spike_times : array (n_spikes,), ms, bin centres
    spike_gids : array (n_spikes,)
    dipole : dict layer ("L2", "L5") -> tensor (n_bins,), nAm, raw (hnn-core's units
        before its baseline renormalisation), differentiable
    v_soma : dict cell type -> array (n_bins, n_cells), mV (recorded when asked)
    wall_s : float
    """

    spike_times: np.ndarray
    spike_gids: np.ndarray
    dipole: dict
    v_soma: dict
    wall_s: float
    bin_ms: float
    n_bins: int

    def layer_dipoles(self):
        """(L2, L5) raw layer dipoles as arrays (nAm; zeros for a layer without cells)."""
        zero = np.zeros(self.n_bins)
        return tuple(self.dipole[k].detach().numpy() if k in self.dipole else zero
                     for k in ("L2", "L5"))


class SurrogateNetwork:
    """An hnn-core network's wiring bound to one loaded surrogate per cell type."""

    def __init__(self, wiring: Wiring, surrogates: dict, *, dtype=torch.float32,
                 fuse: bool = True):
        self.wiring = wiring
        self.fuse = fuse
        self.dtype = dtype
        for t in wiring.cell_types:
            if t not in surrogates:
                raise KeyError(f"no surrogate for cell type {t!r}")
            s = surrogates[t]
            if s.cell_type != t:
                raise ValueError(f"the surrogate given for {t} is a {s.cell_type} surrogate")
            if not np.isclose(s.bin_ms, wiring.bin_ms):
                raise ValueError(f"{t} surrogate has bin {s.bin_ms} ms, network {wiring.bin_ms} ms")
            if len(s.channels) != wiring.n_channels[t]:
                raise ValueError(f"{t} surrogate has {len(s.channels)} channels, "
                                 f"hnn-core's cell {wiring.n_channels[t]}")
        self.surrogates = {t: surrogates[t] for t in wiring.cell_types}
        self.scale = torch.tensor([c.scale for c in wiring.connections], dtype=torch.float64)

    def _drive_input(self, t: str, scale: torch.Tensor) -> torch.Tensor:
        """(n_bins, n_cells * n_channels) uS of drive events onto type ``t``."""
        w = self.wiring
        d = w.drives[t]
        n_rows = w.n_cells(t) * w.n_channels[t]
        flat = torch.zeros(w.n_bins * n_rows, dtype=torch.float64)
        if d.bin.size:
            vals = scale[torch.from_numpy(d.conn)] * torch.from_numpy(d.unit_weight)
            flat = flat.index_add(0, torch.from_numpy(d.bin * n_rows + d.row), vals)
        return flat.view(w.n_bins, n_rows)

    def run(self, scale: torch.Tensor | None = None, *, record_v: bool = False,
            progress_every: int = 0, replay=None) -> NetworkOutput:
        """Simulate ``wiring.tstop`` ms.

        Parameters
        ----------
        scale : tensor (n_connections,), optional
            ``A_weight * gain`` (uS) per connection of ``net.connectivity``;
            defaults to the network's. Gradients flow back to it.
        record_v : bool
            Keep every cell's soma voltage head (mV) per bin.
        progress_every : int
            Log a progress line every this many bins (0: never).
        replay : (spike_times, spike_gids), optional
            Open loop: deliver these spikes (e.g. NEURON's, ms) instead of the
            surrogates' own, so every cell sees the network input NEURON's cells
            saw; the surrogates' spikes are still returned. Separates single-cell
            error from its amplification through the network.
        """
        scale = self.scale if scale is None else scale
        grad = torch.is_grad_enabled() and scale.requires_grad
        ctx = torch.enable_grad() if grad else torch.no_grad()
        start = time.perf_counter()
        with ctx:
            return self._run(scale, record_v, progress_every, start, replay)

    def _replay_spikes(self, replay):
        """bin -> {cell type: spike vector} of replayed spikes."""
        w = self.wiring
        times, gids = (np.asarray(a) for a in replay)
        out = {}
        for t_ms, g in zip(times, gids):
            t = next((t for t in w.cell_types if g in w.gid_ranges[t]), None)
            if t is None:
                continue
            k = int(np.floor(t_ms / w.bin_ms))
            if 0 <= k < w.n_bins:
                vec = out.setdefault(k, {c: torch.zeros(w.n_cells(c), dtype=self.dtype)
                                         for c in w.cell_types})[t]
                vec[g - w.gid_ranges[t][0]] = 1.0
        return out

    def _run(self, scale, record_v, progress_every, start, replay=None):
        w = self.wiring
        types = w.cell_types
        n_bins = w.n_bins
        offs = {t: w.gid_ranges[t][0] for t in types}
        drive = {t: self._drive_input(t, scale) for t in types}
        inv_scale = {t: torch.from_numpy(1.0 / self.surrogates[t].norm.input_scale)
                     .to(self.dtype).repeat(w.n_cells(t)) for t in types}
        logit_thr = {t: float(np.log(s.spike_threshold / (1 - s.spike_threshold)))
                     for t, s in self.surrogates.items()}
        pending = {t: {} for t in types}       # arrival bin -> list of (rows, values)
        prev_above = {t: torch.zeros(w.n_cells(t), dtype=torch.bool) for t in types}
        heads = {t: [] for t in types}
        spikes = {t: [] for t in types}
        fired_bins, fired_gids = [], []
        models = [self.surrogates[t].model for t in types]
        fused = (FusedStepper(models, [w.n_cells(t) for t in types], dtype=self.dtype)
                 if self.fuse and can_fuse(models) else None)
        fstate = fused.init_state() if fused else None
        state = {} if fused else {
            t: self.surrogates[t].model.init_state(w.n_cells(t), dtype=self.dtype) for t in types}
        replay_bins = self._replay_spikes(replay) if replay is not None else None
        for k in range(n_bins):
            xs = []
            for t in types:
                x = drive[t][k]
                chunks = pending[t].pop(k, None)
                if chunks:
                    rows = torch.from_numpy(np.concatenate([c[0] for c in chunks]))
                    vals = torch.cat([c[1] for c in chunks])
                    x = x.index_add(0, rows, vals)
                xs.append((x.to(self.dtype) * inv_scale[t]).view(w.n_cells(t), w.n_channels[t]))
            if fused:
                outs, fstate = fused.step(xs, fstate)
            else:
                outs = []
                for t, x in zip(types, xs):
                    y, logit, state[t] = self.surrogates[t].model.step(x, state[t])
                    outs.append((y, logit))
            s_now = {}
            for t, (y, logit) in zip(types, outs):
                z = logit - logit_thr[t]
                above = z > 0
                fire = above & ~prev_above[t]
                prev_above[t] = above
                s = fire.to(self.dtype)
                if s.requires_grad or z.requires_grad:
                    sg = torch.sigmoid(SURROGATE_GRADIENT_SLOPE * z) * fire
                    s = s + (sg - sg.detach())       # value: exactly the spike; gradient: sg'
                heads[t].append(y)
                spikes[t].append(s)
                s_now[t] = s
                idx = torch.nonzero(fire).flatten().numpy()
                if idx.size:
                    fired_bins.append(np.full(idx.size, k))
                    fired_gids.append(idx + offs[t])
            if replay_bins is not None:
                if k in replay_bins:
                    self._deliver(k, replay_bins[k], scale, pending)
            elif fired_gids and fired_bins[-1][0] == k:
                self._deliver(k, s_now, scale, pending)
            if progress_every and (k + 1) % progress_every == 0:
                n_sp = sum(a.size for a in fired_gids)
                log.info("bin %d/%d (%.0f ms simulated), %d spikes, %.1f s", k + 1, n_bins,
                         (k + 1) * w.bin_ms, n_sp, time.perf_counter() - start)
        return self._collect(heads, spikes, fired_bins, fired_gids, record_v, start)

    def _deliver(self, k, s_now, scale, pending):
        """Schedule the synaptic events of the spikes of bin ``k``."""
        w = self.wiring
        gids, vals_src = [], []
        for t, s in s_now.items():
            idx = torch.nonzero(s.detach()).flatten()
            if idx.numel():
                gids.append(idx.numpy() + w.gid_ranges[t][0])
                vals_src.append(s[idx])
        if not gids:
            return
        gids = np.concatenate(gids)
        s_val = torch.cat(vals_src).to(torch.float64)
        for t in w.cell_types:
            syn = w.synapses[t]
            starts, stops = syn.ptr[gids], syn.ptr[gids + 1]
            counts = stops - starts
            if not counts.sum():
                continue
            entry = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
            which = np.repeat(np.arange(gids.size), counts)
            arrival = k + syn.delay_bins[entry]
            keep = arrival < w.n_bins
            entry, which, arrival = entry[keep], which[keep], arrival[keep]
            order = np.argsort(arrival, kind="stable")
            entry, which, arrival = entry[order], which[order], arrival[order]
            vals = (scale[torch.from_numpy(syn.conn[entry])]
                    * torch.from_numpy(syn.unit_weight[entry])
                    * s_val[torch.from_numpy(which)])
            bins, first = np.unique(arrival, return_index=True)
            bounds = list(first[1:]) + [arrival.size]
            rows = syn.row[entry]
            for b, lo, hi in zip(bins, first, bounds):
                pending[t].setdefault(int(b), []).append((rows[lo:hi], vals[lo:hi]))

    def _collect(self, heads, spikes, fired_bins, fired_gids, record_v, start):
        w = self.wiring
        dipole, v_soma = {}, {}
        for t in w.cell_types:
            s = self.surrogates[t]
            y = torch.stack(heads[t])                     # (n_bins, n_cells, n_targets)
            sp = torch.stack(spikes[t]).to(torch.float64)  # (n_bins, n_cells)
            mean = torch.from_numpy(s.norm.target_mean)
            std = torch.from_numpy(s.norm.target_std)
            phys = y.to(torch.float64) * std + mean
            if record_v:
                v_soma[t] = phys[..., 0].detach().numpy()
            if t in PYRAMIDAL_TYPES:
                k = torch.from_numpy(s.norm.spike_kernels[1:2])
                dip = phys[..., 1] + apply_kernels(sp.T, k)[..., 0].T   # (n_bins, n_cells)
                dipole[DIPOLE_LAYER[t]] = dip.sum(dim=1)
        if fired_bins:
            b = np.concatenate(fired_bins)
            g = np.concatenate(fired_gids)
        else:
            b, g = np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.lexsort((g, b))
        return NetworkOutput(spike_times=(b[order] + 0.5) * w.bin_ms, spike_gids=g[order],
                             dipole=dipole, v_soma=v_soma, wall_s=time.perf_counter() - start,
                             bin_ms=w.bin_ms, n_bins=w.n_bins)
