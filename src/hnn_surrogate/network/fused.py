"""Every cell type's surrogate stepped one bin at a time, types fused where they can be.

A network bin steps four small models (one per cell type) on 35-100 cells
each; at that size the cost is the number of operations as much as their
arithmetic. Models that share their layer sizes (hidden, kernel, dilations,
LSTM size) form a group: each type's cells are cut into slots of one size
(35 for HNN's 35 + 100 + 35 + 100 cells), the weights stacked per slot, and
every layer becomes one ``bmm`` over (slot, cell), input channels padded with
zero weights. A group's inputs and outputs are single tensors, (slot, cell,
channel), so the network simulator builds and reads them with a few
operations per bin, not per type. Same outputs as each model's own ``step``
(tests/test_network.py).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.nn import functional as F



def layer_sizes(model) -> tuple:
    """What two models must share to be fused: every layer size but inputs and heads,
    the linear path's time constants, whether they start at rest and whether they
    read conductances (input kernels: each model its channels' own)."""
    c = model.config
    return (c.hidden, c.kernel_size, tuple(c.dilations), tuple(c.linear_taus), c.rest_start,
            bool(c.input_rise), c.lstm_hidden, c.lstm_layers)


def can_fuse(models) -> bool:
    """True when the models differ only in input channels and output heads."""
    keys = {layer_sizes(m) for m in models}
    return len(keys) == 1 and next(iter(keys))[-1] == 1


def sub_batch(n_cells) -> int:
    """Cells per slot that pads the fewest, no fewer than the smallest type's
    (small slots make small, slow matrix products): types of 35 and 100
    cells -> 35 (1 + 3 slots of 35: 5 padded cells, not 65 as with slots of 100)."""
    best = None
    for b in range(min(n_cells), max(n_cells) + 1):
        rows = b * sum(-(-n // b) for n in n_cells)
        if best is None or rows <= best[0]:
            best = (rows, b)
    return best[1]


def network_groups(models, n_cells, dtype=torch.float32, fuse=True, bins=1) -> list:
    """Steppers for every model, as few as possible.

    Models that share ``layer_sizes`` are fused into one ``FusedStepper``:
    each type's cells are cut into slots of one size (``sub_batch``), so types
    of different sizes fill one (slot, cell) batch with few padded cells. With
    ``fuse=False`` every model steps through its own ``step`` (``AloneStepper``).

    Every stepper has ``slots``: (type index into ``models``, first cell,
    cells) per slot, a type's slots consecutive and in cell order, and steps
    ``bins`` bins at a time.
    """
    groups = {}
    for i, m in enumerate(models):
        key = layer_sizes(m) if fuse and can_fuse([m]) else i
        groups.setdefault(key, []).append(i)
    out = []
    for idx in groups.values():
        if not (fuse and can_fuse([models[idx[0]]])):
            i = idx[0]
            out.append(AloneStepper(models[i], n_cells[i], dtype, slots=[(i, 0, n_cells[i])],
                                    bins=bins))
            continue
        b = sub_batch([n_cells[i] for i in idx])
        slots = [(i, first, min(b, n_cells[i] - first))
                 for i in idx for first in range(0, n_cells[i], b)]
        out.append(FusedStepper([models[i] for i, _, _ in slots], b, dtype, slots=slots,
                                bins=bins))
    return out


CELL_BLOCK = 2048
"""Most cells a fused step takes through its layers at once, summed over its
slots (``FusedStepper.block``: this over the number of slots, cells per slot):
beyond about this, a layer's activations (slots x cells x bins x channels)
leave the cache and the products and the LSTM's gates slow down. Measured on
one fused step, untrained models of the pyramidal surrogates' size, 1 thread,
2 bins per step, the block sizes in turn in one process (median of 5 rounds):
8 slots of 12,610 cells (the 100,492-cell network's layout): 504 ms a step at
8,192 cells a block (1,024 per slot, the old rule), 586 at 4,096, 313 at
2,048, 322 at 1,024, 349 at 512; 2 slots of 16,384 and 8 of 2,160: within
5 % from 1,024 to 2,048."""


@contextlib.contextmanager
def block_threads(parts, grad: bool):
    """Threads that step a run's blocks of cells side by side (``FusedStepper.step``'s
    ``pool``), one per torch thread, each block's operators on one thread
    (torch's own threads set to 1 for the run, restored after it): the blocks of a
    large network are independent, where one block's products are too small for
    several threads. None (nothing changed) when torch has one thread, no stepper
    has as many blocks as torch has threads, or gradients are recorded. Measured, 8 slots of
    12,610 cells (the 100,492-cell layout), 2 cores: 342 ms a step on one
    thread; 390 on 2 torch threads; 187 on 2 block threads."""
    threads = torch.get_num_threads()
    blocks = max((p.n_blocks for p in parts if isinstance(p, FusedStepper)), default=1)
    # fewer blocks than threads: torch's own threads keep every core busy instead
    if grad or threads < 2 or blocks < threads:
        yield None
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="fused-blocks") as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


def flops_per_cell_bin(stepper) -> int:
    """Floating-point operations per cell and bin of a ``FusedStepper``'s matrix
    products (2 per multiply-add; padded input channels included, as they are
    computed; the elementwise GELU, LSTM gates and biases, a few percent, left out)."""
    mats = [stepper.w_in, *(w for ws in stepper.w_blocks for w in ws), stepper.w_ih,
            stepper.w_hh, stepper.w_head]
    if stepper.n_taus:
        mats.append(stepper.w_lin)
    return int(sum(2 * m.shape[-2] * m.shape[-1] for m in mats))


def _lstm_cell_doubled(gates, c2, inplace=False):
    """One step of PyTorch's LSTM cell, in few operations, with the g gate's
    pre-activation and the cell state doubled: ``gates`` (..., 4 H) in the
    order i, f, g, o holding (i, f, 2 g, o); ``c2`` = 2 c. Returns (h, 2 c_new).

    With tanh(x) = 2 sigmoid(2 x) - 1, one sigmoid over all gates gives
    i, f, o and g2 = sigmoid(2 g); then 2 c_new = f 2c + 4 i g2 - 2 i and
    h = o tanh(c_new) = 2 o sigmoid(2 c_new) - o: five elementwise operations
    after the sigmoid instead of nine (equal to PyTorch's LSTM within float32
    rounding; tests/test_network.py). In bfloat16, torch's tanh, as
    ``lstm_cell`` (for its precision). ``inplace`` (float32 and float64): the
    sigmoid overwrites ``gates`` (no gradients: autograd would see the bins'
    gates, views of one tensor, change under it).
    """
    if gates.dtype not in (torch.float32, torch.float64):
        i, f, g2x, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * (c2 / 2) + torch.sigmoid(i) * torch.tanh(g2x / 2)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new * 2
    if torch.is_grad_enabled() and (gates.requires_grad or c2.requires_grad):
        return _LSTMCellDoubled.apply(gates, c2)
    i, f, g2, o = (gates.sigmoid_() if inplace else torch.sigmoid(gates)).chunk(4, dim=-1)
    return _lstm_tail(i, f, g2, o, c2)[:2]


def _lstm_tail(i, f, g2, o, c2):
    """(h, 2 c_new, sigmoid(2 c_new)) from the gates after their sigmoid and 2 c
    (``_lstm_cell_doubled``)."""
    c2 = torch.add(torch.addcmul(f * c2, i, g2, value=4.0), i, alpha=-2.0)
    sc = torch.sigmoid(c2)
    return torch.addcmul(-o, o, sc, value=2.0), c2, sc


class _LSTMCellDoubled(torch.autograd.Function):
    """``_lstm_cell_doubled`` as one node of the autograd graph, its backward
    written out (first order only): a run with gradients steps the cell once
    per bin and cell slot, and as nine nodes it paid the engine's cost per node
    and four reads of the saved gates. Saves what the nine nodes saved: the
    gates after their sigmoid, 2 c and sigmoid(2 c_new). Its gradient equals
    autograd's of the nine (tests/test_network.py)."""

    @staticmethod
    def forward(ctx, gates, c2):
        s = torch.sigmoid(gates)
        h, c2_new, sc = _lstm_tail(*s.chunk(4, dim=-1), c2)
        ctx.save_for_backward(s, c2, sc)
        return h, c2_new

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh, dc2_new):
        s, c2, sc = ctx.saved_tensors
        i, f, g2, o = s.chunk(4, dim=-1)
        # h = o (2 sc - 1), sc = sigmoid(c2_new), c2_new = f c2 + 4 i g2 - 2 i
        # (the engine passes zeros for an output without a gradient: never None)
        d = torch.addcmul(dc2_new, dh, 2.0 * o * sc * (1.0 - sc))
        ds = torch.cat([d * (4.0 * g2 - 2.0), d * c2, d * (4.0 * i), dh * (2.0 * sc - 1.0)],
                       dim=-1)
        return ds * s * (1.0 - s), d * f


class FusedStepper:
    """``step`` of several ``Surrogate`` models with equal layer sizes, B cells each.

    ``models`` may repeat a model (one entry per slot of cells). Inputs are
    (T, B, K, C) with T slots, K bins and C the largest input count (a model's
    extra channels are zero weights); outputs are (T, B, K, O) with each
    model's targets first and its spike logit always in the last column (``O - 1``).
    ``slots``: what each slot holds, (type, first cell, cells) (``network_groups``);
    ``bins``: K, bins per ``step``.
    """

    def __init__(self, models, n_cells: int, dtype=torch.float32, slots=None, bins: int = 1):
        self.n_slots, self.batch, self.slots, self.bins = len(models), int(n_cells), slots, bins
        self.n_in = max(m.config.n_channels for m in models)
        self.n_out = max(m.config.n_targets for m in models) + 1
        cfg = models[0].config
        self.hidden, self.lstm_hidden, self.kernel = cfg.hidden, cfg.lstm_hidden, cfg.kernel_size
        self.pads = [b.pad for b in models[0].blocks]
        self.dilations = [b.dilation for b in models[0].blocks]
        self.tap_plans = [self._tap_plan(p, d) for p, d in zip(self.pads, self.dilations)]
        self.dtype = dtype

        def head(m, p):
            # targets, zero rows up to the widest model, then the spike logit
            gap = self.n_out - 1 - m.config.n_targets
            return torch.cat([p[:-1], p.new_zeros((gap, *p.shape[1:])), p[-1:]])

        with torch.no_grad():
            # weights as (slot, in, out) for bmm(x (slot, cell, in), w)
            # with input kernels the rows are the events' then the conductances', each
            # padded to the widest input
            self.kernels = bool(cfg.input_rise)
            parts = 2 if self.kernels else 1
            self.w_in = torch.stack([
                torch.cat([F.pad(w, (0, self.n_in - m.config.n_channels)) for w in
                           m.inp.weight.squeeze(-1).chunk(parts, dim=1)], dim=1).T
                for m in models]).to(dtype)
            if self.kernels:
                # per slot (T, 1, C): a padded channel's conductance stays 0 (scale 0)
                def per_slot(name):
                    return torch.stack([F.pad(getattr(m.kernels, name),
                                              (0, self.n_in - m.config.n_channels))
                                        for m in models]).unsqueeze(1).to(dtype)

                self.k_rise, self.k_decay, self.k_scale = (
                    per_slot(n) for n in ("d_rise", "d_decay", "scale"))
            self.b_in = torch.stack([m.inp.bias for m in models]).unsqueeze(1).to(dtype)
            # per block: one (slot, C, C_out) weight per tap, oldest first
            self.w_blocks = [[torch.stack([m.blocks[i].conv.weight[:, :, j].T for m in models])
                              .to(dtype).contiguous() for j in range(self.kernel)]
                             for i in range(len(self.pads))]
            self.b_blocks = [torch.stack([m.blocks[i].conv.bias for m in models]).unsqueeze(1)
                             .to(dtype) for i in range(len(self.pads))]
            # LSTM gate rows i, f, g, o; the g rows doubled for ``_lstm_cell_doubled``
            g = torch.ones(4 * self.lstm_hidden, 1)
            g[2 * self.lstm_hidden:3 * self.lstm_hidden] = 2.0
            self.w_ih = torch.stack([(m.lstm.weight_ih_l0 * g).T for m in models]).to(dtype)
            self.w_hh = torch.stack([(m.lstm.weight_hh_l0 * g).T for m in models]).to(dtype)
            self.b_lstm = torch.stack([(m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0) * g[:, 0]
                                       for m in models]).unsqueeze(1).to(dtype)
            # the head as (slot, out, in): its product is taken transposed, the few
            # outputs as rows (``_step_cells``)
            self.w_head = torch.stack([head(m, m.head.weight) for m in models]).to(dtype)
            self.b_head = torch.stack([head(m, m.head.bias) for m in models]).unsqueeze(2).to(dtype)
            # the linear path: traces (slot, cell, channel * tau) of the widest input,
            # a model's extra channels zero weights; its bias joins the head's
            self.n_taus = len(cfg.linear_taus)
            if self.n_taus:
                self.decay = models[0].linear.decay.to(dtype)

                def lin(m):
                    w = m.linear.readout.weight.view(-1, m.config.n_channels, self.n_taus)
                    w = F.pad(w, (0, 0, 0, self.n_in - m.config.n_channels)).flatten(1)
                    return head(m, w).T

                self.w_lin = torch.stack([lin(m) for m in models]).to(dtype)
                self.b_head = self.b_head + torch.stack(
                    [head(m, m.linear.readout.bias) for m in models]).unsqueeze(2).to(dtype)
            # the state at t = 0 per slot (``Surrogate.init_state``): zeros, or at rest
            self.rest_start = cfg.rest_start
            if self.rest_start:
                rest = [m.rest_inputs() for m in models]
                self.rest_bufs = [torch.stack([r[i] for r in rest]).unsqueeze(1).to(dtype)
                                  for i in range(len(self.pads))]          # (T, 1, H) each
                self.h0 = torch.stack([m.h0[0] for m in models]).unsqueeze(1).to(dtype)
                self.c0 = torch.stack([m.c0[0] for m in models]).unsqueeze(1).to(dtype)

    def init_state(self) -> dict:
        if self.n_blocks > 1:               # one state per block of cells (``step``)
            return {"blocks": [self._init_state(b) for b in self.block_sizes]}
        return self._init_state(self.batch)

    @property
    def block(self) -> int:
        """Most cells per slot a step takes through the layers at once (``CELL_BLOCK``
        over the slots, at least one); ``init_state`` cuts a slot's cells into
        the fewest blocks of at most this (``block_sizes``)."""
        return max(1, CELL_BLOCK // self.n_slots)

    @property
    def n_blocks(self) -> int:
        """Blocks of cells a step takes one after the other (or side by side)."""
        return -(-self.batch // self.block)

    @property
    def block_sizes(self) -> list[int]:
        """Cells per slot of each block, in cell order: ``n_blocks`` sizes that
        differ by at most one (10 cells in blocks of at most 3: 3, 3, 2, 2)."""
        n = self.n_blocks
        return [self.batch // n + (i < self.batch % n) for i in range(n)]

    def _init_state(self, batch) -> dict:
        # per block: the last -(-pad // K) steps of its input, oldest first, (T, B * K, H) each
        # the LSTM's cell state is kept doubled (``_lstm_cell_doubled``)
        if self.rest_start:
            past = [r.expand(-1, batch * self.bins, -1).contiguous() for r in self.rest_bufs]
            h_l = self.h0.expand(-1, batch, -1).contiguous()
            c2 = 2 * self.c0.expand(-1, batch, -1).contiguous()
        else:
            zero = torch.zeros(self.n_slots, batch * self.bins, self.hidden, dtype=self.dtype)
            past = [zero] * len(self.pads)
            h_l = c2 = torch.zeros(self.n_slots, batch, self.lstm_hidden, dtype=self.dtype)
        state = {"bufs": [(b,) * -(-p // self.bins) for b, p in zip(past, self.pads)],
                 "h": h_l, "c2": c2}
        if self.n_taus:
            state["u"] = torch.zeros(self.n_slots, batch, self.n_in, self.n_taus,
                                     dtype=self.dtype)
        if self.kernels:                 # the input kernels' two traces (T, B, C) each
            state["ka"] = state["kb"] = torch.zeros(self.n_slots, batch, self.n_in,
                                                    dtype=self.dtype)
        return state

    def _tap_plan(self, pad, dil):
        """Where a block's taps are: per tap, oldest first, (step, bin) of its
        first bin among the block's kept steps and this one (``init_state``)."""
        kept = -(-pad // self.bins) + 1
        skip = kept * self.bins - (self.kernel - 1) * dil - self.bins   # bins before tap 0
        return [divmod(skip + i * dil, self.bins) for i in range(self.kernel)]

    def step(self, x, state, pool=None):
        """K consecutive bins. x: (T, B, K, C) normalised inputs; returns z (T, B, K, O)
        and the new state (``_step_cells``). Past ``block`` cells per slot, the
        cells go through every layer a block at a time, so that a layer's
        activations stay in cache (each block keeps its own state); with a
        ``pool`` (``concurrent.futures`` threads: torch releases the GIL in its
        operators) the blocks are stepped side by side: the numbers of the
        serial loop on one thread (tested)."""
        if "blocks" not in state:
            return self._step_cells(x, state)
        first = np.cumsum([0] + [st["h"].shape[1] for st in state["blocks"]])

        def one(k):
            # grad mode is per thread: a pool's threads start with it on (a pool
            # only exists without gradients, ``block_threads``)
            with torch.set_grad_enabled(pool is None and torch.is_grad_enabled()):
                return self._step_cells(x[:, first[k]:first[k + 1]], state["blocks"][k])

        done = (pool.map(one, range(len(state["blocks"]))) if pool is not None
                else map(one, range(len(state["blocks"]))))
        zs, new = zip(*done)
        return torch.cat(zs, dim=1), {"blocks": list(new)}

    def _step_cells(self, x, state):
        """K consecutive bins. x: (T, B, K, C) normalised inputs.

        Returns z (T, B, K, O) and the new state. The TCN, the LSTM's input
        products and the heads take the K bins in one operation each (a bin's
        inputs must not depend on the outputs of the others: the network
        simulator steps K bins at once only where every synaptic delay is at
        least K bins); the LSTM's recurrence goes bin by bin.
        """
        n_slots, batch, k_bins = x.shape[:3]
        if k_bins != self.bins:             # the history is kept in steps of self.bins bins
            raise ValueError(f"this stepper takes {self.bins} bins per step, got {k_bins}")
        rows = (n_slots, batch * k_bins, -1)             # (T, B, K, .) as bmm rows (T, B * K, .)
        bins4 = (n_slots, batch, k_bins, -1)
        new = {}
        x_in = x
        if self.kernels:                 # conductances bin by bin, beside the events
            a, b, gs = state["ka"], state["kb"], []
            for j in range(k_bins):
                a = a * self.k_rise + x[:, :, j]
                b = b * self.k_decay + x[:, :, j]
                gs.append((b - a) * self.k_scale)
            new.update(ka=a, kb=b)
            x_in = torch.cat([x, torch.stack(gs, dim=2)], dim=-1)      # (T, B, K, 2 C)
        h = torch.baddbmm(self.b_in, x_in.reshape(rows), self.w_in)   # (T, B * K, H)
        bufs = []
        for ws, b, buf, plan in zip(self.w_blocks, self.b_blocks, state["bufs"],
                                    self.tap_plans):
            steps = buf + (h,)
            y = b
            # the causal convolution: a product per tap, summed (a tap's K bins
            # are one step's tensor where the dilation is a multiple of K, else
            # they span two steps)
            for w, (first, r) in zip(ws, plan):
                tap = steps[first] if r == 0 else torch.cat(
                    [steps[first].view(bins4)[:, :, r:],
                     steps[first + 1].view(bins4)[:, :, :r]], dim=2).view(rows)
                y = torch.baddbmm(y, tap, w) if y is b else y.baddbmm_(tap, w)
            h = h + F.gelu(y)                                            # (T, B * K, H)
            bufs.append(steps[1:])
        # the LSTM's input products bins first, (T, K, B, 4 H_lstm): each bin's gates
        # one contiguous block, which the recurrent product adds to in place
        # (bins last, a bin's slice was strided and copied; with the sigmoid in
        # place too, the fastest step at the 100,492-cell layout, 1 thread, fell from
        # 495-547 to 417-465 ms; README)
        h_kb = h.view(bins4).transpose(1, 2).reshape(n_slots, k_bins * batch, -1)
        gates_x = torch.baddbmm(self.b_lstm, h_kb, self.w_ih).view(n_slots, k_bins, batch, -1)
        inplace = not torch.is_grad_enabled()
        h_l, c2, hs = state["h"], state["c2"], []
        for j in range(k_bins):
            g = (gates_x[:, j].baddbmm_(h_l, self.w_hh) if inplace
                 else torch.baddbmm(gates_x[:, j], h_l, self.w_hh))
            h_l, c2 = _lstm_cell_doubled(g, c2, inplace=inplace)
            hs.append(h_l)                                            # (T, B, H_lstm)
        h_all = torch.stack(hs, dim=1).view(n_slots, k_bins * batch, -1)  # (T, K * B, H_lstm)
        # the head transposed, (T, O, H) @ (T, H, K * B): with its 2-3 outputs as the
        # columns of the product it ran 3.7x slower (8 slots of 512 rows, 1 thread)
        z = torch.baddbmm(self.b_head, self.w_head, h_all.transpose(1, 2))   # (T, O, K * B)
        z = z.view(n_slots, -1, k_bins, batch).permute(0, 3, 2, 1).contiguous().view(rows)
        new.update(bufs=bufs, h=h_l, c2=c2)
        if self.n_taus:
            u, us = state["u"], []
            for j in range(k_bins):                    # traces (T, B, C, K_tau), bin by bin
                u = u * self.decay + x[:, :, j, :, None]
                us.append(u)
            new["u"] = u
            z = z.baddbmm_(torch.stack(us, dim=2).view(n_slots, batch * k_bins, -1), self.w_lin)
        return z.view(n_slots, batch, k_bins, -1), new


class AloneStepper:
    """One model's own ``step``, bin by bin, behind ``FusedStepper``'s interface (T = 1)."""

    def __init__(self, model, n_cells: int, dtype=torch.float32, slots=None, bins: int = 1):
        self.model, self.batch, self.dtype, self.slots = model, int(n_cells), dtype, slots
        self.bins = bins
        self.n_slots, self.n_in = 1, model.config.n_channels
        self.n_out = model.config.n_targets + 1

    def init_state(self):
        return self.model.init_state(self.batch, dtype=self.dtype)

    def step(self, x, state, pool=None):
        # ``pool`` unused: one model's cells are one block
        zs = []
        for j in range(x.shape[2]):                                     # x: (1, B, K, C)
            y, logit, state = self.model.step(x[0, :, j], state)       # (B, n_targets), (B,)
            zs.append(torch.cat([y, logit.unsqueeze(1)], dim=1))
        return torch.stack(zs, dim=1).unsqueeze(0), state              # (1, B, K, O)
