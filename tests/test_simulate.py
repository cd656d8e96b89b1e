"""The NEURON side: hnn-core cells respond to single events as a neuron should."""

import numpy as np
import pytest

from hnn_surrogate.cells.channels import channel_index, channels
from hnn_surrogate.cells.simulate import simulate_cell

DT = 0.025
T_EVENT = 20.0


def _epsp(cell_type, events, delay=0.1, tstop=80.0):
    """Peak depolarisation (mV) above the same cell without input, and the run.

    The control run removes the slow drift of the cell from its initial voltage.
    """
    idx = channel_index(cell_type)
    ch = [idx[k] for k, _, _ in events]
    t = [t for _, t, _ in events]
    w = [w for _, _, w in events]
    run = simulate_cell(cell_type, event_channel=ch, event_time=t, event_weight=w,
                        tstop=tstop, dt=DT, delay=delay)
    control = simulate_cell(cell_type, event_channel=[], event_time=[], event_weight=[],
                            tstop=tstop, dt=DT, delay=delay)
    return (run.v_soma - control.v_soma).max(), run


@pytest.mark.parametrize("cell_type,key", [
    ("L5_pyramidal", "basal_2_ampa"),   # hnn-core's 'proximal' location
    ("L2_pyramidal", "apical_oblique_ampa"),
    ("L2_basket", "soma_ampa"),
])
def test_single_ampa_event_depolarises_monotonically(cell_type, key):
    weights = [2e-5, 5e-5, 1e-4, 2e-4]
    peaks = [_epsp(cell_type, [(key, T_EVENT, w)])[0] for w in weights]
    assert peaks[0] > 0.005
    assert np.all(np.diff(peaks) > 0), peaks


@pytest.mark.parametrize("cell_type,keys", [
    ("L5_pyramidal", ("basal_2_ampa", "basal_2_ampa")),     # same synapse
    ("L5_pyramidal", ("basal_2_ampa", "basal_3_ampa")),     # two proximal synapses
    ("L2_pyramidal", ("basal_2_ampa", "apical_oblique_ampa")),
])
def test_two_coincident_events_sum(cell_type, keys):
    w = 1e-4
    one = _epsp(cell_type, [(keys[0], T_EVENT, w)])[0]
    other = _epsp(cell_type, [(keys[1], T_EVENT, w)])[0]
    both, run = _epsp(cell_type, [(keys[0], T_EVENT, w), (keys[1], T_EVENT, w)])
    assert run.spike_times.size == 0
    # Small EPSPs sum nearly linearly: within 15 % of the sum of the parts.
    assert both == pytest.approx(one + other, rel=0.15)
    assert both > max(one, other) * 1.5


def test_delay_shifts_the_response():
    cell = "L5_pyramidal"
    control = simulate_cell(cell, event_channel=[], event_time=[], event_weight=[], tstop=80.0)
    peak, early = _epsp(cell, [("basal_2_ampa", T_EVENT, 1e-4)], delay=0.1)
    _, late = _epsp(cell, [("basal_2_ampa", T_EVENT, 1e-4)], delay=5.1)
    d_early, d_late = early.v_soma - control.v_soma, late.v_soma - control.v_soma
    shift, onset = int(round(5.0 / DT)), int(T_EVENT / DT)
    # Nothing moves before the event arrives (time + delay)...
    assert np.all(d_late[: onset + shift] == 0)
    assert np.all(d_early[:onset] == 0)
    # ...and then the late EPSP is the early one, 5 ms later (the cell drifts a
    # little from its initial state, hence 5 % of the peak).
    np.testing.assert_allclose(d_late[onset + shift: onset + shift + 800],
                               d_early[onset: onset + 800], atol=0.05 * peak)


def test_strong_input_fires_and_dipole_is_recorded():
    ch = channel_index("L5_pyramidal")["basal_2_ampa"]
    run = simulate_cell("L5_pyramidal", event_channel=[ch], event_time=[10.0],
                        event_weight=[0.05], tstop=50.0)
    assert run.spike_times.size >= 1
    assert 10.0 < run.spike_times[0] < 20.0
    assert run.dipole is not None and run.dipole.shape == run.v_soma.shape
    assert np.ptp(run.dipole) > 0
    basket = simulate_cell("L5_basket", event_channel=[], event_time=[], event_weight=[],
                           tstop=10.0)
    assert basket.dipole is None


def test_channels_follow_hnn_core():
    from hnn_core.cells_default import pyramidal

    cell = pyramidal("L5_pyramidal")
    keys = [f"{s}_{r}" for s, sec in cell.sections.items() for r in sec.syns]
    assert [c.key for c in channels("L5_pyramidal")] == keys
    assert len(channels("L2_basket")) == 3


def test_bad_events_are_rejected():
    with pytest.raises(ValueError, match="event_channel must index the 3 channels"):
        simulate_cell("L2_basket", event_channel=[5], event_time=[1.0], event_weight=[0.1],
                      tstop=5.0)
    with pytest.raises(ValueError, match="must have one shape"):
        simulate_cell("L2_basket", event_channel=[0, 1], event_time=[1.0], event_weight=[0.1],
                      tstop=5.0)
    with pytest.raises(ValueError, match="cell_type must be one of"):
        simulate_cell("L4_pyramidal", event_channel=[], event_time=[], event_weight=[],
                      tstop=5.0)
