"""Input events waiting for the step they arrive in, one queue per group of cells.

The network simulator steps K bins at a time; a group's input for one step is
a flat (slot, cell, bin, channel) vector. Events (drive and synaptic, uS) are
added with their arrival bin and their index into the group's (slot, cell,
channel) input, and taken out, summed and normalised, when their step comes.

Two queues with the same arithmetic (every input element is the float64 sum
of its events in the order they were added, then cast to the model's dtype
and multiplied by the input normalisation):

- ``EventQueue`` keeps tensors, so the values carry gradients (a spike's
  surrogate gradient, the connection weights);
- ``RingQueue`` is numpy, for runs without gradients: the next steps' inputs
  are rows of a ring buffer that events are added into as they are
  scheduled, at a fraction of the per-call cost of torch on small arrays.
"""

from __future__ import annotations

import numpy as np
import torch

NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
"""Model dtypes whose input the numpy queue can produce (numpy has no bfloat16)."""


def step_index(bins, idx, bins_per_step, n_in):
    """(step of each event, its index into that step's (slot, cell, bin, channel) input)."""
    steps, offset = np.divmod(bins, bins_per_step)
    return steps, (idx // n_in * bins_per_step + offset) * n_in + idx % n_in


def _chunks_by_step(steps, flat, vals, out):
    """Append the events, sorted by ``steps``, to ``out``: step -> [(flat, vals)]."""
    cuts = np.flatnonzero(steps[1:] != steps[:-1]) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), steps.size]):
        out.setdefault(int(steps[lo]), []).append((flat[lo:hi], vals[lo:hi]))


class _Queue:
    def add(self, bins, idx, vals):
        """Events arriving in ``bins`` at input ``idx`` (slot, cell, channel), ``vals`` uS."""
        self.add_steps(*step_index(bins, idx, self.bins_per_step, self.n_in), vals)


class EventQueue(_Queue):
    """Events as chunks per step; values may be tensors with gradients.

    ``size``: elements of a step's input; ``inv_scale``: (size,) tensor, the
    normalisation per element (zero on padded channels); ``dtype`` the model's.
    """

    def __init__(self, size, bins_per_step, n_in, inv_scale, dtype):
        self.size, self.bins_per_step, self.n_in = size, bins_per_step, n_in
        self.inv_scale, self.dtype = inv_scale, dtype
        self.pending = {}

    def add_steps(self, steps, flat, vals):
        """Events already placed: their ``steps`` and index into the step's
        (slot, cell, bin, channel) input ``flat``; ``vals`` uS (numpy, or a
        tensor that may carry gradients)."""
        order = np.argsort(steps, kind="stable")
        if isinstance(vals, torch.Tensor):
            vals = vals.to(torch.float64)
            if not vals.requires_grad:
                vals = vals.numpy()
        vals = vals[order] if isinstance(vals, np.ndarray) else vals[torch.from_numpy(order)]
        _chunks_by_step(steps[order], flat[order], vals, self.pending)

    def take(self, step):
        """The normalised input of ``step``, flat (slot, cell, bin, channel)."""
        x = torch.zeros(self.size, dtype=torch.float64)
        chunks = self.pending.pop(step, None)
        if chunks:
            idx = torch.from_numpy(np.concatenate([c[0] for c in chunks]))
            vals = [c[1] for c in chunks]
            vals = (torch.from_numpy(np.concatenate(vals)) if isinstance(vals[0], np.ndarray)
                    else torch.cat(vals))
            x = x.index_add(0, idx, vals)
        return x.to(self.dtype) * self.inv_scale


RING_BYTES = 64 * 2 ** 20
"""Most memory of a ``RingQueue``'s ring (float64 rows of one step's input)."""


def ring_depth(size, longest_steps, max_bytes=None):
    """Rows of a ring for inputs of ``size`` elements: enough for events up to
    ``longest_steps`` ahead of the step taken (the longest synaptic delay),
    within ``max_bytes`` (default ``RING_BYTES``), at least 2."""
    max_bytes = RING_BYTES if max_bytes is None else max_bytes
    return int(max(2, min(longest_steps + 1, max_bytes // (8 * size))))


class RingQueue(_Queue):
    """Events summed as they come into a ring of the next ``depth`` steps' inputs.

    Steps are taken in order from 0. An event for a step beyond the ring
    (drive events, scheduled at the start; synaptic events of delays longer
    than the ring) waits in a list until that step's row is free, and is
    summed into it then, before any event added later: the same order of
    additions as ``EventQueue``. Any ``depth`` of at least 1 gives the same
    inputs; a ring covering the longest synaptic delay keeps every synaptic
    event out of the (slower) list. ``ring_depth`` chooses one.
    """

    def __init__(self, size, bins_per_step, n_in, inv_scale, dtype, depth):
        self.size, self.bins_per_step, self.n_in = size, bins_per_step, n_in
        self.np_dtype = NUMPY_DTYPES[dtype]
        self.inv_scale = inv_scale.numpy()
        self.depth = int(depth)
        self.ring = np.zeros((self.depth, size))
        self.flat_ring = self.ring.reshape(-1)
        self.later = {}
        self.next = 0                   # the next step to be taken

    def add_steps(self, steps, flat, vals):
        """Events already placed: their ``steps`` and index into the step's
        (slot, cell, bin, channel) input ``flat``; ``vals`` uS (numpy, or a
        tensor without gradients)."""
        if isinstance(vals, torch.Tensor):
            vals = vals.numpy()
        if steps.size and steps.min() < self.next:
            raise ValueError(f"an event for step {int(steps.min())}, already taken")
        near = steps < self.next + self.depth
        if near.all():
            np.add.at(self.flat_ring, steps % self.depth * self.size + flat, vals)
            return
        np.add.at(self.flat_ring, steps[near] % self.depth * self.size + flat[near], vals[near])
        far = np.flatnonzero(~near)
        order = far[np.argsort(steps[far], kind="stable")]
        _chunks_by_step(steps[order], flat[order], vals[order], self.later)

    def take(self, step):
        """The normalised input of ``step`` (the next one), flat (slot, cell, bin, channel)."""
        if step != self.next:
            raise ValueError(f"step {step} taken, step {self.next} is next")
        row = self.ring[step % self.depth]
        x = torch.from_numpy(row.astype(self.np_dtype) * self.inv_scale)
        row[:] = 0.0
        self.next += 1
        # the freed row is now the ring's last step: what waited for it first
        for flat, vals in self.later.pop(step + self.depth, ()):
            np.add.at(row, flat, vals)
        return x
