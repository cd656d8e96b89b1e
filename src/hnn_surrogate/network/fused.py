"""All cell types' surrogates stepped together: one batched matmul per layer, not one per type.

A network bin steps four small models (one per cell type) on 35-100 cells
each; at that size the cost is the number of operations, not their
arithmetic. When the models share their layer sizes (hidden, kernel,
dilations, LSTM size), their weights are stacked along a leading type axis
and every layer becomes one ``bmm`` over (type, cell): cells padded to the
largest type, input channels padded with zero weights. Same outputs as each
model's own ``step`` (tests/test_network.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def can_fuse(models) -> bool:
    """True when the models differ only in input channels and output heads."""
    keys = {(m.config.hidden, m.config.kernel_size, tuple(m.config.dilations),
             m.config.lstm_hidden, m.config.lstm_layers) for m in models}
    return len(keys) == 1 and next(iter(keys))[-1] == 1


class FusedStepper:
    """``step`` of several ``Surrogate`` models at once.

    Parameters
    ----------
    models : list of Surrogate (``can_fuse``)
    n_cells : list of int, cells per model
    """

    def __init__(self, models, n_cells, dtype=torch.float32):
        self.n_cells = list(n_cells)
        self.n_in = [m.config.n_channels for m in models]
        self.n_out = [m.config.n_targets + 1 for m in models]
        self.batch = max(self.n_cells)
        c_max, o_max = max(self.n_in), max(self.n_out)
        cfg = models[0].config
        self.hidden, self.lstm_hidden = cfg.hidden, cfg.lstm_hidden
        self.pads = [b.pad for b in models[0].blocks]
        self.dilations = [b.dilation for b in models[0].blocks]
        self.dtype = dtype
        with torch.no_grad():
            # weights as (type, in, out) for bmm(x (type, cell, in), w)
            self.w_in = torch.stack([F.pad(m.inp.weight.squeeze(-1), (0, c_max - m.config.n_channels)).T
                                     for m in models]).to(dtype)
            self.b_in = torch.stack([m.inp.bias for m in models]).unsqueeze(1).to(dtype)
            self.w_blocks, self.b_blocks = [], []
            for i in range(len(self.pads)):
                ws, bs = [], []
                for m in models:
                    conv = m.blocks[i].conv
                    # (C_out, C, k) -> (C_out, k, C) -> (C_out, k * C): taps oldest first
                    ws.append(conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1).T)
                    bs.append(conv.bias)
                self.w_blocks.append(torch.stack(ws).to(dtype))
                self.b_blocks.append(torch.stack(bs).unsqueeze(1).to(dtype))
            self.w_ih = torch.stack([m.lstm.weight_ih_l0.T for m in models]).to(dtype)
            self.w_hh = torch.stack([m.lstm.weight_hh_l0.T for m in models]).to(dtype)
            self.b_lstm = torch.stack([m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0
                                       for m in models]).unsqueeze(1).to(dtype)
            self.w_head = torch.stack([F.pad(m.head.weight, (0, 0, 0, o_max - n)).T
                                       for m, n in zip(models, self.n_out)]).to(dtype)
            self.b_head = torch.stack([F.pad(m.head.bias, (0, o_max - n))
                                       for m, n in zip(models, self.n_out)]).unsqueeze(1).to(dtype)
        self.c_max = c_max

    def init_state(self) -> dict:
        t = len(self.n_cells)
        zero = torch.zeros(t, self.batch, self.hidden, dtype=self.dtype)
        zero_l = torch.zeros(t, self.batch, self.lstm_hidden, dtype=self.dtype)
        return {"bufs": [(zero,) * p for p in self.pads], "h": zero_l, "c": zero_l}

    def step(self, xs, state):
        """xs: list of (n_cells_i, n_in_i) normalised inputs.

        Returns a list of (y (n_cells_i, n_targets_i), logit (n_cells_i,)) and the new state.
        """
        x = torch.stack([F.pad(x.to(self.dtype), (0, self.c_max - x.shape[1],
                                                  0, self.batch - x.shape[0])) for x in xs])
        h = torch.baddbmm(self.b_in, x, self.w_in)                     # (T, B, H)
        bufs = []
        for w, b, buf, dil in zip(self.w_blocks, self.b_blocks, state["bufs"], self.dilations):
            window = buf + (h,)
            taps = torch.cat(window[::dil], dim=2)                     # (T, B, k * H)
            h = h + F.gelu(torch.baddbmm(b, taps, w))
            bufs.append(window[1:])
        gates = torch.baddbmm(self.b_lstm, h, self.w_ih) + torch.bmm(state["h"], self.w_hh)
        i, f, g, o = gates.chunk(4, dim=2)
        c_new = torch.sigmoid(f) * state["c"] + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)                   # (T, B, H_lstm)
        z = torch.baddbmm(self.b_head, h_new, self.w_head)             # (T, B, O_max)
        outs = [(z[k, :n, :o - 1], z[k, :n, o - 1])
                for k, (n, o) in enumerate(zip(self.n_cells, self.n_out))]
        return outs, {"bufs": bufs, "h": h_new, "c": c_new}
