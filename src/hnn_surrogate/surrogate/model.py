"""A causal TCN followed by an LSTM and output heads: one model per cell type.

Inputs are the weighted-event channels of the cells stage (normalised), one
vector per time bin; outputs per bin are the normalised soma voltage, the
normalised dipole (pyramidal cells) and a spike logit (probability of a spike
in the bin). Everything is causal: the output of bin t depends on bins <= t.

Two ways to run it, equal within float tolerance:

* ``forward(x)``: a whole sequence at once, for training;
* ``init_state(batch)`` then ``step(x_t, state)``: one bin at a time, carrying the
  causal-convolution buffers and the LSTM state, at constant cost per bin, for
  network simulation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..config import schema_default


_DEFAULT = schema_default("train")


@dataclass
class SurrogateConfig:
    """Sizes of a surrogate. Defaults are the config schema's (``train`` section;
    chosen by measurement, README)."""

    n_channels: int                       # input channels: (section, receptor) synapses
    n_targets: int = 1                    # 1: soma voltage; 2: soma voltage and dipole
    # of which the last are section voltages (train.section_weight; dense supervision)
    n_sections: int = 0
    hidden: int = _DEFAULT["hidden"]      # TCN channels
    kernel_size: int = _DEFAULT["kernel_size"]  # taps per causal convolution
    dilations: tuple[int, ...] = field(default=tuple(_DEFAULT["dilations"]))
    lstm_hidden: int = _DEFAULT["lstm_hidden"]  # LSTM state size
    lstm_layers: int = 1
    # time constants (bins) of the linear path; () for none (train.linear_taus_ms)
    linear_taus: tuple[float, ...] = ()
    # start at rest (train.rest_start): the TCN's history is each layer's
    # activation under no input, the LSTM's state learned; False: zeros
    rest_start: bool = False
    # per input channel, its receptor's rise and decay time (bins) (train.input_kernels):
    # the TCN also sees each channel's conductance, not only its events; () for none
    input_rise: tuple[float, ...] = ()
    input_decay: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        d["linear_taus"] = [float(t) for t in self.linear_taus]
        if not self.n_sections:      # as before section targets existed (resume fingerprints)
            del d["n_sections"]
        if self.input_rise:
            d["input_rise"] = [float(t) for t in self.input_rise]
            d["input_decay"] = [float(t) for t in self.input_decay]
        else:                        # as before input kernels existed
            del d["input_rise"], d["input_decay"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SurrogateConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        d["linear_taus"] = tuple(d.get("linear_taus", ()))
        d["rest_start"] = bool(d.get("rest_start", False))
        d["n_sections"] = int(d.get("n_sections", 0))
        d["input_rise"] = tuple(d.get("input_rise", ()))
        d["input_decay"] = tuple(d.get("input_decay", ()))
        return cls(**d)

    @property
    def receptive_field(self) -> int:
        """Bins of input the TCN sees (before the LSTM's unbounded memory)."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)


def lstm_cell(gates: torch.Tensor, c: torch.Tensor):
    """One step of PyTorch's LSTM cell from its pre-activations.

    gates: (..., 4 H) in PyTorch's order i, f, g, o; c: (..., H) the cell state.
    Returns (h, c) of the step. In float32/64, tanh is computed as
    2 sigmoid(2 x) - 1 (equal within 2e-7; one contiguous sigmoid over all
    gates instead of three strided ones plus two tanh, 3-4x faster on a CPU).
    """
    if gates.dtype not in (torch.float32, torch.float64):     # bfloat16: keep tanh's precision
        i, f, g, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
    scale = torch.ones(gates.shape[-1], dtype=gates.dtype, device=gates.device)
    scale[2 * (gates.shape[-1] // 4):3 * (gates.shape[-1] // 4)] = 2.0
    gates = gates * scale
    i, f, g2, o = torch.sigmoid(gates).chunk(4, dim=-1)          # g2 = sigmoid(2 g)
    c_new = f * c + i * (g2 * 2 - 1)
    return o * (torch.sigmoid(c_new * 2) * 2 - 1), c_new


class CausalBlock(nn.Module):
    """Residual block: h + GELU(dilated causal conv(h))."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.pad = (kernel_size - 1) * dilation
        self.dilation = dilation

    def forward(self, h: torch.Tensor, rest: torch.Tensor | None = None) -> torch.Tensor:
        # h: (N, C, L) -> left-pad so output t sees inputs <= t; with zeros, or
        # with ``rest`` (C,), this block's input before t = 0
        if rest is None:
            return h + F.gelu(self.conv(F.pad(h, (self.pad, 0))))
        past = rest.to(h.dtype)[None, :, None].expand(h.shape[0], -1, self.pad)
        return h + F.gelu(self.conv(torch.cat([past, h], dim=2)))

    def rest(self, h: torch.Tensor) -> torch.Tensor:
        """The block's output (C,) when its input has been ``h`` (C,) for ever."""
        return h + F.gelu(self.conv.weight.sum(dim=-1) @ h + self.conv.bias)

    def step(self, h_t: torch.Tensor, buf: tuple):
        """One bin.

        h_t: (N, C). buf: the previous ``pad`` inputs of this block, oldest first,
        a tuple of (N, C) tensors (a tuple, not one tensor that is shifted in
        place: appending costs O(1) per bin and keeps autograd intact).
        Returns (out (N, C), new buf).
        """
        window = buf + (h_t,)
        taps = torch.cat(window[:: self.dilation], dim=1)      # (N, kernel_size * C), oldest first
        # conv weight (C_out, C, k) -> (C_out, k, C) -> (C_out, k * C) to match the taps
        w = self.conv.weight.permute(0, 2, 1).reshape(self.conv.out_channels, -1)
        y = F.linear(taps, w, self.conv.bias)                  # (N, C_out)
        return h_t + F.gelu(y), window[1:]


class LinearPath(nn.Module):
    """A linear filter of the inputs beside the TCN-LSTM: what a cell's response
    to its inputs has that is linear, so the deep part learns only the rest.

    Each input channel passes through exponential filters exp(-t / tau_k)
    (``taus`` in bins; a synaptic trace per time constant: PSP-like kernels
    are sums of such exponentials), and a linear readout maps the traces to
    every head output (targets and spike logit). Streaming keeps the traces,
    (N, C * K): u <- decay * u + x, O(C K) per bin.
    """

    def __init__(self, n_channels: int, taus, n_out: int):
        super().__init__()
        self.n_taus = len(taus)
        self.register_buffer("decay", torch.exp(-1.0 / torch.tensor(taus, dtype=torch.float32)))
        self.readout = nn.Linear(n_channels * self.n_taus, n_out)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    def traces(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, L, C * K): the filtered inputs from zero state (exact, by FFT)."""
        n, length, c = x.shape
        lag = torch.arange(length, device=x.device, dtype=x.dtype)
        kernel = self.decay.to(x.dtype)[:, None] ** lag[None, :]      # (K, L)
        size = 2 * length
        fx = torch.fft.rfft(x, n=size, dim=1)                           # (N, F, C)
        fk = torch.fft.rfft(kernel, n=size, dim=1)                      # (K, F)
        u = torch.fft.irfft(fx[..., None] * fk.T[None, :, None, :], n=size, dim=1)
        return u[:, :length].reshape(n, length, c * self.n_taus)

    def step(self, x_t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One bin: the new traces (N, C * K) from inputs x_t (N, C) and traces u."""
        n, c = x_t.shape
        return (u.view(n, c, self.n_taus) * self.decay.to(u.dtype)
                + x_t.unsqueeze(-1)).view(n, c * self.n_taus)


class InputKernels(nn.Module):
    """Each input channel's events through its receptor's synaptic kernel: the
    conductance time course hnn-core's Exp2Syn gives an event, exp(-t / decay) -
    exp(-t / rise), scaled to a peak of 1, so a channel's conductance is in the
    units of its (normalised) event weights. Bin by bin: two traces per channel,
    a <- a exp(-1 / rise) + x, b <- b exp(-1 / decay) + x, g = (b - a) / peak.
    """

    def __init__(self, rise, decay):
        super().__init__()
        rise = torch.tensor(rise, dtype=torch.float64)
        decay = torch.tensor(decay, dtype=torch.float64)
        if rise.shape != decay.shape or not bool((decay > rise).all() and (rise > 0).all()):
            raise ValueError("input kernels: one rise and one longer decay time (> 0) a channel")
        lag = torch.arange(0, int(20 * float(decay.max())) + 2, dtype=torch.float64)
        peak = (torch.exp(-lag[:, None] / decay) - torch.exp(-lag[:, None] / rise)).amax(0)
        self.register_buffer("d_rise", torch.exp(-1 / rise).float())
        self.register_buffer("d_decay", torch.exp(-1 / decay).float())
        self.register_buffer("scale", (1 / peak).float())

    def traces(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, C) events -> (N, L, C) conductances from zero state (exact, by FFT)."""
        length = x.shape[1]
        lag = torch.arange(length, device=x.device, dtype=x.dtype)[:, None]
        kernel = (self.d_decay.to(x.dtype) ** lag - self.d_rise.to(x.dtype) ** lag) \
            * self.scale.to(x.dtype)                                   # (L, C)
        size = 2 * length
        g = torch.fft.irfft(torch.fft.rfft(x, n=size, dim=1) * torch.fft.rfft(kernel, n=size, dim=0),
                            n=size, dim=1)
        return g[:, :length]

    def step(self, x_t: torch.Tensor, ab: torch.Tensor):
        """One bin: (conductance (N, C), new traces (N, 2, C)) from x_t (N, C), traces ab."""
        a = ab[:, 0] * self.d_rise.to(ab.dtype) + x_t
        b = ab[:, 1] * self.d_decay.to(ab.dtype) + x_t
        return (b - a) * self.scale.to(ab.dtype), torch.stack([a, b], dim=1)


class Surrogate(nn.Module):
    """TCN-LSTM surrogate of one HNN cell type (with a linear path where configured)."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.config = config
        c = config
        self.kernels = InputKernels(c.input_rise, c.input_decay) if c.input_rise else None
        # the input projection reads the events and, with kernels, the conductances
        self.inp = nn.Conv1d(c.n_channels * (2 if self.kernels is not None else 1), c.hidden, 1)
        self.blocks = nn.ModuleList(CausalBlock(c.hidden, c.kernel_size, d) for d in c.dilations)
        self.lstm = nn.LSTM(c.hidden, c.lstm_hidden, num_layers=c.lstm_layers, batch_first=True)
        self.head = nn.Linear(c.lstm_hidden, c.n_targets + 1)  # targets + spike logit
        self.linear = (LinearPath(c.n_channels, c.linear_taus, c.n_targets + 1)
                       if c.linear_taus else None)
        # dropout on the TCN's output and the LSTM's, in training only (train.dropout:
        # a training setting, not part of the model; streaming and evaluation never see it)
        self.dropout = 0.0
        if c.rest_start:
            # the LSTM's (h, c) at t = 0, learned from the data (every simulation starts at rest)
            self.h0 = nn.Parameter(torch.zeros(c.lstm_layers, c.lstm_hidden))
            self.c0 = nn.Parameter(torch.zeros(c.lstm_layers, c.lstm_hidden))

    def rest_inputs(self) -> list[torch.Tensor]:
        """Each TCN block's input (hidden,) under no input (a cell at rest), from the
        weights (differentiable); the history a ``rest_start`` model's blocks start from."""
        h, out = self.inp.bias, []
        for block in self.blocks:
            out.append(h)
            h = block.rest(h)
        return out

    def forward(self, x: torch.Tensor):
        """Whole sequences.

        Parameters
        ----------
        x : tensor, shape (N, L, n_channels)
            Normalised inputs.

        Returns
        -------
        y : tensor, shape (N, L, n_targets)
            Normalised targets.
        spike_logit : tensor, shape (N, L)
        """
        x_in = x if self.kernels is None else torch.cat([x, self.kernels.traces(x)], dim=-1)
        h = self.inp(x_in.transpose(1, 2))       # (N, L, C_in) -> (N, C_in, L) -> (N, H, L)
        p = self.dropout if self.training else 0.0

        def drop(t):   # at 0 not even called: no random numbers drawn, training as before
            return F.dropout(t, p) if p else t

        if self.config.rest_start:
            for block, rest in zip(self.blocks, self.rest_inputs()):
                h = block(h, rest)               # (N, H, L)
            n = x.shape[0]
            start = (self.h0[:, None].expand(-1, n, -1).contiguous().to(h.dtype),
                     self.c0[:, None].expand(-1, n, -1).contiguous().to(h.dtype))
            out, _ = self.lstm(drop(h).transpose(1, 2), start)
        else:
            for block in self.blocks:
                h = block(h)                     # (N, H, L)
            # (N, H, L) -> (N, L, H) -> (N, L, H_lstm)
            out, _ = self.lstm(drop(h).transpose(1, 2))
        z = self.head(drop(out))                  # (N, L, n_targets + 1)
        if self.linear is not None:
            z = z + self.linear.readout(self.linear.traces(x))
        return z[..., :-1], z[..., -1]

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> dict:
        """The state at t = 0 for ``batch`` cells: conv buffers and LSTM (h, c);
        zeros, or the rest state (``rest_start``)."""
        c = self.config
        if device is None:
            device = self.inp.weight.device
        if c.rest_start:
            bufs = [(r.to(device, dtype).expand(batch, -1).contiguous(),) * b.pad
                    for b, r in zip(self.blocks, self.rest_inputs())]
            state = {"bufs": bufs,
                     "h": tuple(h.to(device, dtype).expand(batch, -1).contiguous() for h in self.h0),
                     "c": tuple(v.to(device, dtype).expand(batch, -1).contiguous() for v in self.c0)}
        else:
            zero = torch.zeros(batch, c.hidden, device=device, dtype=dtype)
            zero_l = torch.zeros(batch, c.lstm_hidden, device=device, dtype=dtype)
            state = {"bufs": [(zero,) * b.pad for b in self.blocks],
                     "h": (zero_l,) * c.lstm_layers, "c": (zero_l,) * c.lstm_layers}
        if self.linear is not None:
            state["u"] = torch.zeros(batch, c.n_channels * len(c.linear_taus), device=device,
                                     dtype=dtype)
        if self.kernels is not None:
            state["ab"] = torch.zeros(batch, 2, c.n_channels, device=device, dtype=dtype)
        return state

    def step(self, x_t: torch.Tensor, state: dict):
        """One bin for a batch of cells.

        Parameters
        ----------
        x_t : tensor, shape (N, n_channels)
        state : dict from ``init_state`` or the previous ``step``

        Returns
        -------
        y_t : tensor, shape (N, n_targets)
        spike_logit_t : tensor, shape (N,)
        state : dict, the new state (the old one is not modified)

        Differentiable: gradients flow through the state from bin to bin.
        """
        x_in = x_t
        if self.kernels is not None:
            g_t, ab = self.kernels.step(x_t, state["ab"])
            x_in = torch.cat([x_t, g_t], dim=1)
        h = F.linear(x_in, self.inp.weight.squeeze(-1), self.inp.bias)  # (N, H)
        bufs = []
        for block, buf in zip(self.blocks, state["bufs"]):
            h, buf = block.step(h, buf)
            bufs.append(buf)
        # The LSTM cell written out (PyTorch's gate order i, f, g, o): one step of
        # nn.LSTM, without its per-call overhead.
        hs, cs = [], []
        for layer in range(self.config.lstm_layers):
            gates = (F.linear(h, getattr(self.lstm, f"weight_ih_l{layer}"),
                              getattr(self.lstm, f"bias_ih_l{layer}"))
                     + F.linear(state["h"][layer], getattr(self.lstm, f"weight_hh_l{layer}"),
                                getattr(self.lstm, f"bias_hh_l{layer}")))  # (N, 4 H_lstm)
            h, c_new = lstm_cell(gates, state["c"][layer])            # (N, H_lstm) each
            hs.append(h)
            cs.append(c_new)
        z = self.head(h)                                     # (N, n_targets + 1)
        new = {"bufs": bufs, "h": tuple(hs), "c": tuple(cs)}
        if self.kernels is not None:
            new["ab"] = ab
        if self.linear is not None:
            new["u"] = self.linear.step(x_t, state["u"])
            z = z + self.linear.readout(new["u"])
        return z[:, :-1], z[:, -1], new
