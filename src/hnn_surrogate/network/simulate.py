"""Simulate an hnn-core network with the cell surrogates, a few time bins at a time.

All cells whose surrogates share layer sizes step as one batch
(``fused.network_groups``: every type's cells in slots of one size), so a bin
costs the same whatever happened before. A step spans K bins, K the shortest
synaptic delay in bins (at most ``MAX_BINS_PER_STEP``): a spike cannot reach
any cell within the step it fired in, so every input of the step is known
when it starts, and the surrogates take its K bins in one pass (the LSTM's
recurrence still bin by bin). Per step:

1. input = drive events arriving in its bins + synaptic events scheduled for them;
2. the surrogates step; a cell fires in a bin when its spike probability
   rises through the checkpoint's threshold (the rule the evaluation uses);
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

import contextlib
import logging
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from .. import DIPOLE_LAYER, PYRAMIDAL_TYPES
from ..config import schema_default
from ..surrogate.kernels import apply_kernels
from .events import NUMPY_DTYPES, EventQueue, RingQueue, ring_depth, step_index
from .fused import block_threads, network_groups
from .wiring import Wiring

log = logging.getLogger(__name__)

MAX_BINS_PER_STEP = 4
"""Most bins stepped at once (where the shortest synaptic delay allows):
beyond a few, the LSTM's bin-by-bin recurrence dominates and nothing is gained."""

SURROGATE_GRADIENT_SLOPE = schema_default("network", "surrogate_slope")
"""Slope of the sigmoid whose derivative stands in for the spike's (per logit unit):
the config key ``network.surrogate_slope`` (its schema default here).

A spike's gradient reaches the cells it drives, whose spikes carry it on: each
hop multiplies it by about the slope times the synapse's effect on the
target's logit, so too steep a slope makes the gradient explode with the
simulated time. The rule ``gradient_horizon`` measures that for every slope
of ``network.gradient_check.slopes`` on the benchmark network with the trained
surrogates (``results/network/gradient_horizon.{nc,md}``); the default is the
slope chosen from it."""


GRAD_STORAGE = ("exact", "float16")
"""How a run with gradients keeps what backpropagation needs (``SurrogateNetwork.run``)."""

HALF_MIN_ELEMENTS = 4096
"""Smaller saved tensors stay as they are (converting them would cost more than it saves)."""

UNPACKED_RECENT = 64
"""float32 copies of saved tensors that backpropagation keeps at hand (``_HalfSaved``),
at most ``UNPACKED_BYTES`` of them: in one step of the default fit (2 seeds of the
270-cell network, 1 s; measured before the LSTM cell became one node) 38,953
reads of float16 copies came from 11,102 bases (a TCN step's output is read as a
tap by the steps after it); keeping the latest 64 (at most 37 MB there) leaves
11,591 conversions, 16 leave 27,859."""

UNPACKED_BYTES = 64 * 2 ** 20
"""Most memory of those copies (a large network's tensors are larger, not more)."""


class _HalfSaved:
    """saved_tensors_hooks that keep large float32 tensors in float16, once per
    base tensor: autograd often saves several views of one tensor (the LSTM's
    gates are four chunks of one sigmoid output, which is saved too); each view
    is kept as (the base's float16 copy, its offset, shape and strides), so a
    base is converted once. A base is known by identity through a weak
    reference, never by address (a freed tensor's memory is reused), and its
    copy is made again if the base has changed in place since."""

    def __init__(self):
        self.bases = {}
        # backpropagation reads a base's views in nodes close together (a TCN
        # step's output as the taps of the next steps): the latest
        # ``UNPACKED_RECENT`` float32 copies are kept, so that each base is
        # converted back about once instead of once per read
        self.recent, self.unpacked, self.unpacked_bytes = UNPACKED_RECENT, OrderedDict(), 0

    def pack(self, t: torch.Tensor):
        if t.dtype != torch.float32 or t.numel() < HALF_MIN_ELEMENTS:
            return (None, t)
        base = t if t._base is None else t._base
        hit = self.bases.get(id(base))
        if hit is None or hit[0]() is not base or hit[3] != base._version:
            half = base.to(torch.float16)
            if half.stride() != base.stride():      # a layout as_strided cannot map back
                return (None, t.to(torch.float16), t.dtype)
            hit = (weakref.ref(base), half, base.storage_offset(), base._version)
            self.bases[id(base)] = hit
        _, half, offset, _ = hit
        return (half, t.storage_offset() - offset, tuple(t.shape), t.stride())

    def unpack(self, packed):
        if packed[0] is None:
            return packed[1].to(torch.float32) if len(packed) == 3 else packed[1]
        half, offset, shape, stride = packed
        hit = self.unpacked.get(id(half))
        if hit is not None and hit[0] is half:      # the same copy (never a reused id)
            self.unpacked.move_to_end(id(half))
            full = hit[1]
        else:
            full = half.to(torch.float32)
            size = full.numel() * full.element_size()
            if self.recent and size <= UNPACKED_BYTES:
                self.unpacked[id(half)] = (half, full)
                self.unpacked_bytes += size
                while (len(self.unpacked) > self.recent
                       or self.unpacked_bytes > UNPACKED_BYTES):
                    _, (_, old) = self.unpacked.popitem(last=False)
                    self.unpacked_bytes -= old.numel() * old.element_size()
        return torch.as_strided(full, shape, stride, half.storage_offset() + offset)


def half_saved_tensors():
    """Context in which autograd keeps every large float32 tensor it saves for
    backpropagation in float16 (the models' activations: sigmoid outputs, GELU
    inputs, LSTM cell states), each base tensor once (``_HalfSaved``); float64
    (event sums, dipoles) and integer tensors stay exact."""
    hooks = _HalfSaved()
    return torch.autograd.graph.saved_tensors_hooks(hooks.pack, hooks.unpack)


@dataclass
class NetworkOutput:
    """A surrogate network run.

    Attributes
    ----------
    spike_times : array (n_spikes,), ms, bin centres
    spike_gids : array (n_spikes,)
    dipole : dict layer ("L2", "L5") -> tensor (n_bins,), nAm, raw (hnn-core's units
        before its baseline renormalisation), differentiable; (n_copies, n_bins)
        for a wiring of several networks (``batch.BatchedNetwork`` splits it)
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
    spike_count: dict = None
    """cell type -> tensor (n_bins,): spikes of the type's cells per bin;
    (n_copies, n_bins) for a wiring of several networks
    (``batch.BatchedNetwork`` splits it). In a run with gradients its
    gradient is that of the summed ``sigmoid(slope * (logit - threshold))`` of
    every cell and bin, fired or not (straight through: the value is the
    spikes'), so that a rate penalty can move a silent network towards firing;
    the spikes delivered to other cells and the dipole keep the spike's own
    surrogate gradient, which exists only where a cell fired."""
    timings: dict = None
    """Where ``wall_s`` went (s): ``prepare`` (groups, queues, delivery tables,
    before the first step), ``model`` (each step's input out of the queues,
    the surrogates' step and spike detection), ``deliver`` (queueing synaptic
    events), ``collect`` (outputs)."""

    def layer_dipoles(self):
        """(L2, L5) raw layer dipoles as arrays (nAm; zeros for a layer without cells)."""
        zero = np.zeros(self.n_bins)
        return tuple(self.dipole[k].detach().numpy() if k in self.dipole else zero
                     for k in ("L2", "L5"))


class SurrogateNetwork:
    """An hnn-core network's wiring bound to one loaded surrogate per cell type."""

    def __init__(self, wiring: Wiring, surrogates: dict, *, dtype=torch.float32,
                 fuse: bool = True, bins_per_step: int | None = None):
        self.wiring = wiring
        self.fuse = fuse
        self.dtype = dtype
        # a spike cannot reach a cell within the step it fired in: a step may
        # span as many bins as the shortest synaptic delay
        shortest = min((int(wiring.synapses[t].delay_bins.min()) for t in wiring.cell_types
                        if wiring.synapses[t].delay_bins.size), default=None)
        if bins_per_step is None:
            bins_per_step = max(1, min(MAX_BINS_PER_STEP,
                                       MAX_BINS_PER_STEP if shortest is None else shortest))
        if bins_per_step < 1 or (shortest is not None and bins_per_step > shortest):
            raise ValueError(f"bins_per_step={bins_per_step}: must be from 1 to the shortest "
                             f"synaptic delay, {shortest} bins")
        self.bins_per_step = int(bins_per_step)
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

    def run(self, scale: torch.Tensor | None = None, *, record_v: bool = False,
            progress_every: int = 0, replay=None, replay_types=None,
            surrogate_slope: float = SURROGATE_GRADIENT_SLOPE,
            grad_storage: str = "exact") -> NetworkOutput:
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
        replay_types : list of str, optional
            With ``replay``: the cell types whose spikes are replayed; the
            others deliver their own (a partial open loop, to find which type's
            spikes the loop amplifies). None: every type. Runs without gradients.
        surrogate_slope : float
            Slope of the spike's surrogate gradient (``SURROGATE_GRADIENT_SLOPE``);
            changes gradients only, never spikes or outputs.
        grad_storage : str
            ``exact``: what backpropagation needs is kept as computed; ``float16``:
            the model's float32 activations are kept in half precision
            (``half_saved_tensors``: about half the memory of a run with
            gradients; the gradient approximate, the run itself unchanged).
        """
        scale = self.scale if scale is None else scale
        grad = torch.is_grad_enabled() and scale.requires_grad
        if grad_storage not in GRAD_STORAGE:
            raise ValueError(f"grad_storage {grad_storage!r}: one of {', '.join(GRAD_STORAGE)}")
        if replay_types is not None:
            if isinstance(replay_types, str):
                raise TypeError(f"replay_types {replay_types!r}: a list of cell types, not a string")
            unknown = sorted(set(replay_types) - set(self.wiring.cell_types))
            if replay is None or grad or unknown:
                raise ValueError("replay_types: " + (f"unknown cell types {unknown}" if unknown
                                 else "needs replay" if replay is None
                                 else "a partial open loop runs without gradients"))
        ctx = torch.enable_grad() if grad else torch.no_grad()
        saved = (half_saved_tensors() if grad and grad_storage == "float16"
                 else contextlib.nullcontext())
        start = time.perf_counter()
        with ctx, saved:
            return self._run(scale, record_v, progress_every, start, replay, surrogate_slope,
                             replay_types)

    def flops_per_bin(self) -> int:
        """Floating-point operations of the matrix products of one bin of every
        cell, padding included (``fused.flops_per_cell_bin`` per fused slot): the
        arithmetic the run's share of the machine's matrix-product peak counts."""
        from .fused import flops_per_cell_bin

        w = self.wiring
        parts = network_groups([self.surrogates[t].model for t in w.cell_types],
                               [w.n_cells(t) for t in w.cell_types], dtype=self.dtype,
                               fuse=self.fuse, bins=self.bins_per_step)
        return int(sum(flops_per_cell_bin(p) * p.n_slots * p.batch for p in parts
                       if hasattr(p, "w_in")))

    def _replay_spikes(self, replay, types=None):
        """bin -> sorted unique gids (of modelled cells of ``types``; None: all) of
        the replayed spikes in it."""
        w = self.wiring
        times, gids = (np.asarray(a) for a in replay)
        cells = np.concatenate([np.zeros(0, np.int64)] + [
            np.asarray(w.gid_ranges[t]) for t in w.cell_types if types is None or t in types])
        bins = np.floor(times / w.bin_ms).astype(np.int64)
        keep = np.isin(gids, cells) & (bins >= 0) & (bins < w.n_bins)
        out = {}
        for k, g in zip(bins[keep], gids[keep]):
            out.setdefault(int(k), set()).add(int(g))
        return {k: np.array(sorted(g), dtype=np.int64) for k, g in out.items()}

    def _layout(self, parts):
        """Where each type sits in its group's flat input (slot, cell, channel).

        Returns {type: (group, the type's slots, flat index of each of its
        input rows ``cell * n_channels + channel``)}.
        """
        w = self.wiring
        out = {}
        for gi, part in enumerate(parts):
            for si, (ti, first, count) in enumerate(part.slots):
                t = w.cell_types[ti]
                cells = np.arange(count)[:, None]
                chans = np.arange(w.n_channels[t])[None, :]
                flat = ((si * part.batch + cells) * part.n_in + chans).ravel()
                _, slots, flats = out.setdefault(t, (gi, [], []))
                slots.append(si)
                flats.append(flat)
        return {t: (gi, slots, np.concatenate(flats)) for t, (gi, slots, flats) in out.items()}

    def _run(self, scale, record_v, progress_every, start, replay, slope, replay_types=None):
        w = self.wiring
        types = w.cell_types
        kb = self.bins_per_step
        n_steps = -(-w.n_bins // kb)
        parts = network_groups([self.surrogates[t].model for t in types],
                               [w.n_cells(t) for t in types], dtype=self.dtype, fuse=self.fuse,
                               bins=kb)
        layout = self._layout(parts)
        # per group: the input normalisation (zero on padded channels),
        # spike-logit thresholds (slot, cell, 1; +inf on padded cells: they
        # never fire), the gid of each (slot, cell) (-1 for padding), and the
        # queue of input events (drive events added now, synaptic ones as cells fire)
        inv_scale = [torch.zeros(p.n_slots * p.batch, kb, p.n_in, dtype=self.dtype)
                     for p in parts]
        logit_thr = [torch.full((p.n_slots, p.batch, 1), float("inf"), dtype=self.dtype)
                     for p in parts]
        gid_of = [np.full((p.n_slots, p.batch), -1, np.int64) for p in parts]
        for t in types:
            gi, _, flat = layout[t]
            s = self.surrogates[t]
            rows = flat[::w.n_channels[t]] // parts[gi].n_in     # (slot, cell) of each cell, flat
            inv_scale[gi][rows, :, :w.n_channels[t]] = torch.from_numpy(
                1.0 / s.norm.input_scale).to(self.dtype)
            logit_thr[gi].view(-1)[rows] = float(np.log(s.spike_threshold / (1 - s.spike_threshold)))
            gid_of[gi].reshape(-1)[rows] = np.arange(w.n_cells(t)) + w.gid_ranges[t][0]
        grad = torch.is_grad_enabled()
        queues = [self._queue(p, inv.view(-1), grad) for p, inv in zip(parts, inv_scale)]
        for t in types:
            gi, _, flat = layout[t]
            d = w.drives[t]
            if d.bin.size:
                queues[gi].add(d.bin, flat[d.row],
                               scale[torch.from_numpy(d.conn)] * torch.from_numpy(d.unit_weight))
        thr = [v.float().numpy() for v in logit_thr]        # exact for every float dtype
        state = [p.init_state() for p in parts]
        prev_above = [np.zeros((p.n_slots, p.batch, 1), dtype=bool) for p in parts]
        outs = [[] for _ in parts]              # per step: (slot, cell, bin) model outputs
        spikes = [[] for _ in parts]            # per step: (slot, cell, bin) spikes, numpy
        fired_bins, fired_gids = [], []
        replay_bins = self._replay_spikes(replay, replay_types) if replay is not None else None
        own = None                              # gids whose own spikes a partial replay delivers
        if replay_types is not None:
            own = np.zeros(int(max(max(w.gid_ranges[t]) for t in w.cell_types)) + 1, bool)
            for t in set(w.cell_types) - set(replay_types):
                own[np.asarray(w.gid_ranges[t])] = True
        outgoing = self._outgoing(layout, [p.n_in for p in parts], scale)
        clock = time.perf_counter
        timings = {"prepare": clock() - start, "model": 0.0, "deliver": 0.0}
        # a large network's blocks of cells side by side on torch's threads
        with block_threads(parts, grad) as pool:
            for step in range(n_steps):
                k0 = step * kb
                now_bins, now_gids, now_vals = [], [], []
                t_model = clock()
                for gi, part in enumerate(parts):
                    x = queues[gi].take(step)
                    z, state[gi] = part.step(x.view(part.n_slots, part.batch, kb, part.n_in),
                                             state[gi], pool)              # (slot, cell, bin, O)
                    # a cell fires when its spike probability rises through the
                    # threshold: logit > threshold, the same as (logit - threshold) > 0
                    above = z[..., -1].detach().float().numpy() > thr[gi]  # (slot, cell, bin)
                    fire = above.copy()
                    fire[..., :1] &= ~prev_above[gi]
                    fire[..., 1:] &= ~above[..., :-1]
                    prev_above[gi] = above[..., -1:]
                    outs[gi].append(z)
                    spikes[gi].append(fire)
                    nz = np.nonzero(fire)
                    if grad and nz[0].size:
                        # the spikes delivered now: value exactly 1, gradient the
                        # sigmoid's at the fired bins' logits (the run's other
                        # outputs take theirs from every bin at once, ``_collect``)
                        fire_t = torch.from_numpy(fire)
                        zs = z[..., -1][fire_t] - logit_thr[gi].expand_as(fire_t)[fire_t]
                        sg = torch.sigmoid(slope * zs)
                        now_vals.append(1.0 + (sg - sg.detach()))
                    if nz[0].size:
                        now_gids.append(gid_of[gi][nz[0], nz[1]])
                        now_bins.append(k0 + nz[2])
                t_deliver = clock()
                timings["model"] += t_deliver - t_model
                if now_gids:
                    g, b = np.concatenate(now_gids), np.concatenate(now_bins)
                    keep = b < w.n_bins                 # the last step may run past tstop
                    fired_bins.append(b[keep])
                    fired_gids.append(g[keep])
                if replay_bins is not None:
                    ks = [k for k in range(k0, k0 + kb) if k in replay_bins]
                    rb = [np.full(replay_bins[k].size, k, np.int64) for k in ks]
                    rg = [replay_bins[k] for k in ks]
                    if own is not None and now_gids:      # the types not replayed: their own
                        rb.append(b[own[g]])
                        rg.append(g[own[g]])
                    if rb:
                        rb, rg = np.concatenate(rb), np.concatenate(rg)
                        order = np.lexsort((rg, rb))
                        self._deliver(rb[order], rg[order], None, queues, outgoing)
                elif now_gids:
                    order = np.lexsort((g, b))
                    vals = (torch.cat(now_vals).to(torch.float64)[torch.from_numpy(order)]
                            if grad else None)
                    self._deliver(b[order], g[order], vals, queues, outgoing)
                timings["deliver"] += clock() - t_deliver
                if progress_every and (k0 + kb) // progress_every > k0 // progress_every:
                    n_sp = sum(a.size for a in fired_gids)
                    log.info("bin %d/%d (%.0f ms simulated), %d spikes, %.1f s", k0 + kb,
                             w.n_bins, (k0 + kb) * w.bin_ms, n_sp, time.perf_counter() - start)
        t_collect = clock()
        res = self._collect(parts, layout, outs, spikes, fired_bins, fired_gids, record_v, start,
                            (logit_thr, slope) if grad else None)
        timings["collect"] = clock() - t_collect
        res.timings = timings
        return res

    def _queue(self, part, inv_scale, grad):
        """The input event queue of a group: numpy where no gradient is wanted
        and numpy has the model's dtype (the same numbers, less time per step)."""
        size = part.n_slots * part.batch * part.bins * part.n_in
        if grad or self.dtype not in NUMPY_DTYPES:
            return EventQueue(size, part.bins, part.n_in, inv_scale, self.dtype)
        # the latest arrival of a synaptic event, in steps after the step that fired it
        longest = max((int(self.wiring.synapses[t].delay_bins.max())
                       for t in self.wiring.cell_types if self.wiring.synapses[t].delay_bins.size),
                      default=0)
        depth = ring_depth(size, (part.bins - 1 + longest) // part.bins + 1)
        return RingQueue(size, part.bins, part.n_in, inv_scale, self.dtype, depth)

    def _outgoing(self, layout, n_in, scale):
        """Every synapse, onto any type, by presynaptic gid (CSR): where it lands
        (group and flat input index), its weight (uS: ``scale`` of its
        connection times its unit weight) and delay (bins). ``n_in``: input
        channels of each group."""
        w = self.wiring
        n_gids, n_groups = w.n_gids, len(n_in)
        pre, parts = [], []
        for t in w.cell_types:
            syn = w.synapses[t]
            gi, _, flat = layout[t]
            pre.append(np.repeat(np.arange(n_gids, dtype=np.int32), np.diff(syn.ptr)))
            parts.append((np.full(syn.row.size, gi, np.int8), flat[syn.row].astype(np.int32),
                          syn.conn, syn.unit_weight, syn.delay_bins))
        pre = np.concatenate(pre)
        order = np.argsort(pre, kind="stable")      # by gid; within a gid, type then entry
        ptr = np.concatenate([[0], np.cumsum(np.bincount(pre, minlength=n_gids))]).astype(np.int64)
        del pre
        # one array at a time, in the smallest dtype that holds it (a 100,000-cell
        # network has about 10^8 entries): group, delay and the placements fit int32
        group = np.concatenate([a[0] for a in parts]).astype(np.int8)[order]
        delay = np.concatenate([a[4] for a in parts]).astype(np.int32)[order]
        idx = np.concatenate([a[1] for a in parts])[order]
        conn = torch.from_numpy(np.concatenate([a[2] for a in parts])[order].astype(np.int64))
        unit = torch.from_numpy(np.concatenate([a[3] for a in parts])[order])
        del order, parts
        weight = scale[conn] * unit
        del conn, unit
        out = {"ptr": ptr, "key_group": group, "idx": idx, "weight": weight,
               "weight_np": None, "delay": delay, "n_groups": n_groups, "n_in": n_in}
        if not weight.requires_grad:
            # numpy (indexing it costs a fraction of a tensor's), and each
            # synapse's event placed in advance for a spike in each bin j of a
            # step: steps ahead of the spike's step, index into that step's input
            kb = self.bins_per_step
            ahead, in_step = np.zeros((2, kb, idx.size), np.int32)
            for gi in range(n_groups):
                sel = np.flatnonzero(group == gi)
                for j in range(kb):
                    ahead[j, sel], in_step[j, sel] = step_index(j + delay[sel], idx[sel], kb,
                                                                n_in[gi])
            out.update(weight_np=weight.numpy(), ahead=ahead, in_step=in_step, idx=None)
        return out

    def _deliver(self, bins, gids, s_val, queues, out):
        """Add the synaptic events of spikes to the groups' ``queues``: the bins
        they fired in, all in one step, and their presynaptic ``gids`` (sorted
        by bin, then gid), ``s_val`` the spikes (1, with their surrogate
        gradient; None: 1 without one); ``out`` from ``_outgoing``."""
        starts = out["ptr"][gids]
        counts = out["ptr"][gids + 1] - starts
        total = int(counts.sum())
        if not total:
            return
        # the CSR entries of every gid, in order, without a Python loop
        entry = np.arange(total) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        which = np.repeat(np.arange(gids.size), counts)
        arrival = bins[which] + out["delay"][entry]
        if arrival.max() >= self.wiring.n_bins:
            keep = arrival < self.wiring.n_bins
            entry, which, arrival = entry[keep], which[keep], arrival[keep]
        group = out["key_group"][entry]
        groups = np.flatnonzero(np.bincount(group, minlength=out["n_groups"]))
        if s_val is None and out["weight_np"] is not None:
            # placed in advance (``_outgoing``): the spike's step plus steps ahead
            step, j = np.divmod(bins[which], self.bins_per_step)
            ahead = step + out["ahead"][j, entry]
            in_step = out["in_step"][j, entry]
            vals = out["weight_np"][entry]
            for gi in groups:
                sel = slice(None) if groups.size == 1 else np.flatnonzero(group == gi)
                queues[gi].add_steps(ahead[sel], in_step[sel], vals[sel])
            return
        if s_val is None:
            vals = out["weight"][torch.from_numpy(entry)]
        else:
            vals = out["weight"][torch.from_numpy(entry)] * s_val[torch.from_numpy(which)]
        for gi in groups:
            sel = np.flatnonzero(group == gi)
            queues[gi].add(arrival[sel], out["idx"][entry[sel]], vals[torch.from_numpy(sel)])

    def _collect(self, parts, layout, outs, spikes, fired_bins, fired_gids, record_v, start,
                 spike_grad=None):
        """The run's outputs from its steps'. ``spike_grad``: (spike-logit thresholds per
        group, the surrogate slope) in a run with gradients: every bin's
        ``near = sigmoid(slope * (logit - threshold))``, computed here for the whole
        run at once (a few operations, not a few per step), gives the spikes their
        surrogate gradient (``near`` where a cell fired) and the counts theirs
        (``near`` everywhere)."""
        w = self.wiring
        n_bins = w.n_bins
        # per step (T, B, K, ...) -> (steps, K, T, B, ...) -> (n_bins, T, B, ...) per group
        z_all = [torch.stack(o).permute(0, 3, 1, 2, 4).flatten(0, 1)[:n_bins] for o in outs]
        s_all = [torch.from_numpy(np.stack(s)).to(self.dtype).permute(0, 3, 1, 2)
                 .flatten(0, 1)[:n_bins] for s in spikes]                # (n_bins, T, B)
        near_all = None
        if spike_grad is not None:
            logit_thr, slope = spike_grad
            # in float64: autograd keeps it exact under float16 storage, where a
            # silent cell's near (1e-8 and less) would round to zero
            near_all = [torch.sigmoid(slope * (z[..., -1].double() - thr[..., 0].double()))
                        for z, thr in zip(z_all, logit_thr)]
            # value: exactly the spikes; gradient: the sigmoid's where a cell fired
            fired = [near * s.double() for s, near in zip(s_all, near_all)]
            s_all = [s + (f - f.detach()) for s, f in zip(s_all, fired)]
        dipole, v_soma, counts = {}, {}, {}
        for t in w.cell_types:
            s = self.surrogates[t]
            gi, slots, _ = layout[t]
            n = w.n_cells(t)
            # the type's slots, consecutive and in cell order: (n_bins, slots * B, ...)[:, :n]
            z = z_all[gi][:, slots[0]:slots[-1] + 1].flatten(1, 2)[:, :n]
            y = z[..., :s.model.config.n_targets]                   # (n_bins, n_cells, n_targets)
            sp = s_all[gi][:, slots[0]:slots[-1] + 1].flatten(1, 2)[:, :n]
            per_copy = sp.reshape(n_bins, w.n_copies, -1).sum(dim=2, dtype=torch.float64).T
            if near_all is not None:
                # the count's value stays the spikes'; its gradient is that of
                # every bin's sigmoid(slope * (logit - threshold)), so a rate
                # has a gradient where its cells are still silent
                near = near_all[gi][:, slots[0]:slots[-1] + 1].flatten(1, 2)[:, :n]
                near = near.reshape(n_bins, w.n_copies, -1).sum(dim=2, dtype=torch.float64).T
                per_copy = per_copy.detach() + (near - near.detach())
            counts[t] = per_copy[0] if w.n_copies == 1 else per_copy
            phys = s.norm.physical_tensor(y)
            if record_v:
                v_soma[t] = phys[..., 0].detach().numpy()
            if t in PYRAMIDAL_TYPES:
                k = torch.from_numpy(s.norm.spike_kernels[1:2])
                # per network of a batch (cells in copy order; one copy: the
                # whole network): the kernel is linear, so the summed spike
                # train is convolved once
                c = w.n_copies
                n_spikes = sp.reshape(n_bins, c, -1).sum(dim=2, dtype=torch.float64).T
                layer = (phys[..., 1].reshape(n_bins, c, -1).sum(dim=2).T
                         + apply_kernels(n_spikes, k)[..., 0])              # (c, n_bins)
                dipole[DIPOLE_LAYER[t]] = layer[0] if c == 1 else layer
        if fired_bins:
            b = np.concatenate(fired_bins)
            g = np.concatenate(fired_gids)
        else:
            b, g = np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.lexsort((g, b))
        return NetworkOutput(spike_times=(b[order] + 0.5) * w.bin_ms, spike_gids=g[order],
                             dipole=dipole, v_soma=v_soma, wall_s=time.perf_counter() - start,
                             bin_ms=w.bin_ms, n_bins=w.n_bins, spike_count=counts)
