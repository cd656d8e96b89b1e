"""The two input-event queues of the network simulator give the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnn_surrogate.network.events import EventQueue, RingQueue, ring_depth

KB, N_IN, CELLS = 2, 3, 5                       # bins per step, channels, (slot, cell) rows
SIZE = CELLS * KB * N_IN


def queues(depth=4, dtype=torch.float32):
    inv = torch.linspace(0.5, 2.0, SIZE, dtype=dtype)
    return EventQueue(SIZE, KB, N_IN, inv, dtype), RingQueue(SIZE, KB, N_IN, inv, dtype, depth)


def events(rng, n, first_bin, last_bin):
    bins = rng.integers(first_bin, last_bin, n)
    idx = rng.integers(0, CELLS * N_IN, n)
    # values of mixed magnitude, so that the order of addition shows in float64
    vals = rng.choice([1e-3, 0.1, 1.0, 3e4], n) * rng.random(n)
    return bins, idx, vals


@pytest.mark.parametrize("dtype,depth", [(torch.float32, 4), (torch.float64, 4),
                                         (torch.float32, 2), (torch.float32, 1)])
def test_ring_queue_gives_the_event_queue_inputs_bit_for_bit(dtype, depth):
    """Drive events far beyond the ring at the start, then events 1-3 steps
    ahead during the run (as spikes deliver them; beyond a ring shallower than
    that, they wait in its list): equal inputs every step, in the same order
    of float64 additions."""
    rng = np.random.default_rng(0)
    a, b = queues(depth=depth, dtype=dtype)
    n_steps = 30
    for _ in range(2):                          # drives of two cell types
        drive = events(rng, 400, 0, n_steps * KB)
        a.add(*drive)
        b.add(*drive)
    assert b.later                              # some drive events wait beyond the ring
    taken = []
    for step in range(n_steps):
        xa, xb = a.take(step), b.take(step)
        assert xa.dtype == xb.dtype == dtype
        assert torch.equal(xa, xb), step
        taken.append(xa)
        # this step's spikes: events 1 to 3 steps (depth - 1) ahead
        lo = (step + 1) * KB
        if lo < n_steps * KB:
            syn = events(rng, 20, lo, min(lo + 3 * KB, n_steps * KB))
            a.add(*syn)
            b.add(*syn)
    assert sum(int((x != 0).sum()) for x in taken) > SIZE


def test_event_queue_keeps_gradients():
    a, _ = queues()
    w = torch.tensor([0.5, 2.0], requires_grad=True)
    a.add(np.array([3, 0]), np.array([1, 4]), w * 3.0)
    (a.take(0).sum() + 10 * a.take(1).sum()).backward()
    inv = torch.linspace(0.5, 2.0, SIZE)
    # (row, channel) = divmod(idx, N_IN); a step's input is (row, bin, channel):
    # bin 3 = step 1, bin 1, at row 0, channel 1; bin 0 = step 0, bin 0, at row 1, channel 1
    assert w.grad[0] == pytest.approx(30.0 * float(inv[(0 * KB + 1) * N_IN + 1]))
    assert w.grad[1] == pytest.approx(3.0 * float(inv[(1 * KB + 0) * N_IN + 1]))


def test_ring_queue_refuses_out_of_order_use():
    _, b = queues()
    with pytest.raises(ValueError, match="step 1 taken, step 0 is next"):
        b.take(1)
    b.take(0)
    with pytest.raises(ValueError, match="an event for step 0, already taken"):
        b.add(np.array([1]), np.array([0]), np.array([1.0]))


def test_ring_depth_covers_the_longest_delay_within_its_memory():
    assert ring_depth(1000, longest_steps=10) == 11
    assert ring_depth(1000, longest_steps=10, max_bytes=8 * 1000 * 5) == 5
    assert ring_depth(1000, longest_steps=0) == 2
