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


# The presynaptic times of one (channel, weight) group of a replayed L5 pyramidal
# cell on which NEURON aborted ("net_send td-t = -1.13687e-13"): every event a
# VecStim sends moves t by a rounded difference, and at the duplicated last time
# t had passed it by one rounding.
ABORTED_TIMES = [
    6.387731777617499, 19.162731777617093, 19.362731777617082, 20.912731777616994,
    22.41273177761691, 33.01273177761631, 33.2377317776163, 33.88773177761626,
    34.21273177761624, 34.26273177761624, 35.18773177761626, 37.31273177761674,
    38.18773177761694, 74.36273177762516, 82.11273177762692, 98.03773177763054,
    129.33773177763766, 138.21273177763138, 140.46273177762933, 151.6127317776192,
    156.93773177761435, 159.78773177761175, 172.46273177760023, 175.2377317775977,
    175.26273177759768, 177.0127317775961, 209.61273177756644, 220.5377317775565,
    235.91273177754252, 237.83773177754077, 248.38773177753117, 252.16273177752774,
    252.48773177752744, 266.31273177751484, 276.96273177750516, 281.4127317775011,
    281.56273177750097, 281.58773177750095, 283.23773177749945, 290.9627317774924,
    294.8377317774889, 316.31273177746937, 322.7877317774635, 340.1377317774477,
    365.16273177742494, 365.9877317774242, 386.1127317774059, 392.7127317773999,
    392.7127317773999,
]


def test_coincident_events_on_one_synapse_add_up():
    """Replayed network input holds one spike reaching a synapse through two connections
    (equal channel, weight and time): a lone VecStim makes NEURON abort on those, so they
    are split over NetCons. Both must arrive: hnn-core's synapses are linear in the
    weight, so two events of weight w act as one of 2 w."""
    idx = channel_index("L5_pyramidal")["apical_oblique_ampa"]
    w = 3e-4
    twice = simulate_cell("L5_pyramidal", event_channel=[idx] * len(ABORTED_TIMES),
                          event_time=ABORTED_TIMES, event_weight=[w] * len(ABORTED_TIMES),
                          tstop=420.0, dt=DT, delay=0.1)
    once = simulate_cell("L5_pyramidal", event_channel=[idx] * (len(ABORTED_TIMES) - 1),
                         event_time=ABORTED_TIMES[:-1],
                         event_weight=[w] * (len(ABORTED_TIMES) - 2) + [2 * w],
                         tstop=420.0, dt=DT, delay=0.1)
    t = int(392.8 / DT)
    assert once.v_soma[t:t + 200].max() > once.v_soma[t - 4] + 0.2
    np.testing.assert_allclose(twice.v_soma, once.v_soma, atol=1e-6)
