"""One HNN cell, alone, in NEURON: hnn-core's cell driven by given synaptic events.

The cell is hnn-core's own (``hnn_core.cells_default``), built the way hnn-core's
``NetworkBuilder`` builds it: same temperature (37 degC), same fixed step, the
dipole mechanism inserted along the apical trunk for pyramidal cells, spikes
detected at the soma with hnn-core's threshold (0 mV). Events are delivered the
way hnn-core delivers drives: a ``VecStim`` holds the presynaptic times and a
``NetCon`` with the synaptic delay and weight feeds the synapse, so an event
takes effect at ``time + delay``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import PYRAMIDAL_TYPES
from .._check import check_positive
from ..hnn_compat import cell_section, cell_synapse
from .channels import cell_template, channels, sections

CELSIUS = 37.0
"""Temperature (degC) of hnn-core's default network parameters."""
SPIKE_THRESHOLD = 0.0
"""Somatic spike threshold (mV) of hnn-core's default network parameters."""
FAM_TO_NAM = 1e-6
"""NEURON's dipole mechanism reports fAm; hnn-core converts to nAm with this."""

_NEURON_READY = False


def _neuron():
    """Load NEURON with hnn-core's compiled mechanisms (once per process)."""
    global _NEURON_READY
    from neuron import h

    if not _NEURON_READY:
        from hnn_core.network_builder import load_custom_mechanisms

        load_custom_mechanisms()
        h.load_file("stdrun.hoc")
        _NEURON_READY = True
    return h


@dataclass
class CellRun:
    """What one simulation recorded, on NEURON's time grid.

    Attributes
    ----------
    v_soma : array, shape (n_steps + 1,)
        Somatic voltage (mV) at t = 0, dt, ..., tstop.
    dipole : array, shape (n_steps + 1,) | None
        The cell's current dipole (nAm); None for basket cells.
    spike_times : array, shape (n_spikes,)
        Somatic spike times (ms), upward crossings of 0 mV.
    v_sections : array, shape (n_sections, n_steps + 1) | None
        With ``record_sections``: the voltage (mV) at the midpoint of every
        section, in the order of ``channels.sections(cell_type)``.
    """

    v_soma: np.ndarray
    dipole: np.ndarray | None
    spike_times: np.ndarray
    v_sections: np.ndarray | None = None


COINCIDENT_MS = 1e-6
"""Events of one (channel, weight) group closer than this share no VecStim."""


def _coincidence_rank(channel, weight, time):
    """Per event (sorted by channel, weight, time): how many events of its group lie
    within COINCIDENT_MS before it in an unbroken run: 0 for most events."""
    rank = np.zeros(time.size, dtype=np.int64)
    same = ((np.diff(channel) == 0) & (np.diff(weight) == 0)
            & (np.diff(time) < COINCIDENT_MS))
    for k in np.flatnonzero(same):
        rank[k + 1] = rank[k] + 1
    return rank


def simulate_cell(
    cell_type: str,
    *,
    event_channel: np.ndarray,
    event_time: np.ndarray,
    event_weight: np.ndarray,
    tstop: float,
    dt: float = 0.025,
    delay: float = 0.1,
    record_sections: bool = False,
) -> CellRun:
    """Simulate one hnn-core cell driven by synaptic events.

    Parameters
    ----------
    cell_type : str
        One of ``hnn_surrogate.CELL_TYPES``.
    event_channel : array of int, shape (n_events,)
        Index into ``channels(cell_type)`` of each event's synapse.
    event_time : array of float, shape (n_events,)
        Presynaptic event times (ms); each takes effect at ``time + delay``.
    event_weight : array of float, shape (n_events,)
        Synaptic weight of each event (uS, the peak conductance of hnn-core's
        Exp2Syn NetCon weight).
    tstop : float
        Simulated time (ms).
    dt : float
        Fixed integration step (ms); hnn-core's default is 0.025.
    delay : float
        Synaptic delay (ms) of every NetCon, as in hnn-core drives.
    record_sections : bool
        Also record every section's midpoint voltage (hnn-core's
        ``record_vsec="all"``), for the section-voltage targets.

    Returns
    -------
    CellRun
        Voltage, dipole and spike times on the grid t = k * dt, k = 0..tstop/dt.
    """
    check_positive("tstop", tstop)
    check_positive("dt", dt)
    check_positive("delay", delay, allow_zero=True)
    event_channel = np.asarray(event_channel, dtype=np.int64)
    event_time = np.asarray(event_time, dtype=np.float64)
    event_weight = np.asarray(event_weight, dtype=np.float64)
    if not (event_channel.shape == event_time.shape == event_weight.shape):
        raise ValueError(
            "event_channel, event_time and event_weight must have one shape; got "
            f"{event_channel.shape}, {event_time.shape}, {event_weight.shape}"
        )
    chans = channels(cell_type)
    if event_channel.size and (event_channel.min() < 0 or event_channel.max() >= len(chans)):
        raise ValueError(
            f"event_channel must index the {len(chans)} channels of {cell_type}"
        )
    if np.any(event_weight < 0):
        raise ValueError("event_weight must be >= 0 (the receptor sets the sign)")

    h = _neuron()
    h.celsius = CELSIUS
    h.dt = dt
    h.tstop = tstop
    h.cvode_active(0)

    cell = cell_template(cell_type)
    sec_apical = "apical_trunk" if cell_type in PYRAMIDAL_TYPES else None
    cell.build(sec_name_apical=sec_apical)

    # One VecStim + NetCon per (channel, weight, copy) group: NetCon weights are
    # per connection, as in hnn-core where each source has its own NetCon. A
    # VecStim aborts NEURON on two (near-)equal times (net_send with a negative
    # delay after rounding), which replayed network input has: one spike reaching
    # a synapse through two connections. Events within COINCIDENT_MS of the one
    # before them in a (channel, weight) group go to copy 1, 2, ... of the group:
    # the same events, delivered by more NetCons.
    keepalive = []
    order = np.lexsort((event_time, event_weight, event_channel))
    ch_sorted, w_sorted, t_sorted = (
        event_channel[order], event_weight[order], event_time[order]
    )
    if order.size:
        copy = _coincidence_rank(ch_sorted, w_sorted, t_sorted)
        order = np.lexsort((t_sorted, copy, w_sorted, ch_sorted))
        ch_sorted, w_sorted, t_sorted, copy = (a[order] for a in
                                               (ch_sorted, w_sorted, t_sorted, copy))
        breaks = np.flatnonzero((np.diff(ch_sorted) != 0) | (np.diff(w_sorted) != 0)
                                | (np.diff(copy) != 0)) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, order.size]):
            syn = cell_synapse(cell, chans[ch_sorted[lo]].key)
            times = h.Vector(t_sorted[lo:hi])
            stim = h.VecStim()
            stim.play(times)
            nc = h.NetCon(stim, syn)
            nc.weight[0] = w_sorted[lo]
            nc.delay = delay
            keepalive.append((times, stim, nc))

    soma_v = h.Vector().record(cell_section(cell, "soma")(0.5)._ref_v)
    spikes = h.Vector()
    spike_nc = cell.setup_source_netcon(threshold=SPIKE_THRESHOLD)
    spike_nc.record(spikes)
    sec_recs = ([h.Vector().record(cell_section(cell, name)(0.5)._ref_v)
                 for name in sections(cell_type)] if record_sections else [])

    h.finitialize()
    h.continuerun(tstop)

    n = int(round(tstop / dt)) + 1
    v = np.array(soma_v.as_numpy()[:n], dtype=np.float64)
    dipole = None
    if sec_apical is not None:
        dipole = np.array(cell.dipole.as_numpy()[:n], dtype=np.float64) * FAM_TO_NAM
    v_sections = (np.array([r.as_numpy()[:n] for r in sec_recs], dtype=np.float64)
                  if record_sections else None)
    out = CellRun(v_soma=v, dipole=dipole, spike_times=np.array(spikes.as_numpy()),
                  v_sections=v_sections)
    # Drop every NEURON object of this cell before the next simulation.
    del keepalive, spike_nc, soma_v, spikes, cell, sec_recs
    return out
