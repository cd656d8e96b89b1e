import numpy as np
import pytest

from hnn_surrogate.cells.channels import channels
from hnn_surrogate.cells.inputs import (
    Regime, bin_events, bin_spikes, bin_trace, draw_events, sim_rng,
)

REGIME = Regime(active_fraction=(0.2, 0.6), rate_hz=(5.0, 50.0), excitatory=(0.5, 2.0),
                inhibitory=(0.1, 1.0), scale="relative")


def _draw(index, regime=REGIME, cell="L5_pyramidal", seed=3, name="mixed"):
    ref = np.linspace(1e-3, 5e-3, len(channels(cell)))
    return draw_events(cell, regime, ref, tstop=500.0, rng=sim_rng(seed, cell, name, index)), ref


def test_same_seed_key_same_events_and_different_keys_differ():
    (a, _), (b, _) = _draw(4), _draw(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    (c, _) = _draw(5)
    (d, _) = _draw(4, name="network")
    (e, _) = _draw(4, seed=4)
    for other in (c, d, e):
        assert not (a[1].size == other[1].size and np.allclose(a[1], other[1]))


def test_draw_respects_the_regime():
    (ch, t, w), ref = _draw(0)
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 500.0
    rec = np.array([channels("L5_pyramidal")[c].receptor for c in ch])
    rel = w / ref[ch]
    exc = np.isin(rec, ["ampa", "nmda"])
    assert np.all((rel[exc] >= 0.5 - 1e-6) & (rel[exc] <= 2.0 + 1e-6))
    assert np.all((rel[~exc] >= 0.1 - 1e-6) & (rel[~exc] <= 1.0 + 1e-6))
    n_active = np.unique(ch).size
    assert 0.2 * 34 - 1 <= n_active <= 0.6 * 34 + 1
    absolute = Regime((1.0, 1.0), (10.0, 10.0), (2e-3, 2e-3), (5e-3, 5e-3), "absolute")
    (ch, t, w), _ = _draw(1, regime=absolute)
    assert np.unique(ch).size == 34
    assert np.all(np.isclose(w, 2e-3) | np.isclose(w, 5e-3))


def test_volleys_are_synchronous_groups_of_the_active_channels():
    import dataclasses

    tight = dataclasses.replace(REGIME, rate_hz=(10.0, 10.0), participation=(1.0, 1.0),
                                jitter_ms=(0.01, 0.01))
    (ch, t, w), ref = _draw(0, regime=tight, name="volleys")
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 500.0
    n_active = np.unique(ch).size
    # every volley: each active channel once, within a fraction of a ms
    groups = np.split(np.arange(t.size), np.flatnonzero(np.diff(t) > 1.0) + 1)
    assert 2 <= len(groups) <= 15                     # 10 Hz for 500 ms
    for g in groups:
        assert np.array_equal(np.sort(ch[g]), np.unique(ch)) and np.ptp(t[g]) < 0.2
    assert t.size == len(groups) * n_active
    rel = w / ref[ch]                                 # the regime's weights, as for Poisson
    exc = np.isin([channels("L5_pyramidal")[c].receptor for c in ch], ["ampa", "nmda"])
    assert np.all((rel[exc] >= 0.5 - 1e-6) & (rel[exc] <= 2.0 + 1e-6))
    # partial participation: fewer events per volley; seeded like every regime
    loose = dataclasses.replace(tight, participation=(0.3, 0.3), jitter_ms=(2.0, 2.0))
    (a, _), (b, _) = _draw(1, regime=loose, name="volleys"), _draw(1, regime=loose, name="volleys")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert 0 < a[1].size < 0.6 * 15 * np.unique(a[0]).size
    cfg = {"active_fraction": [0.2, 0.6], "rate_hz": [5.0, 50.0],
           "weight": {"scale": "relative", "excitatory": [0.5, 2.0], "inhibitory": [0.1, 1.0]}}
    assert Regime.from_config(cfg) == REGIME       # no volley key: Poisson, as before
    assert Regime.from_config(dict(cfg, volley={"participation": [1.0, 1.0], "jitter_ms": [
        0.01, 0.01]})).participation == (1.0, 1.0)


def test_bin_events_uses_arrival_times_and_sums_weights():
    binned = bin_events([0, 0, 1, 2, 1], [0.0, 0.49, 0.5, 9.99, 10.0], [1.0, 2.0, 3.0, 4.0, 5.0],
                        n_channels=3, n_bins=20, bin_ms=0.5)
    assert binned.shape == (20, 3) and binned.dtype == np.float32
    assert binned[0, 0] == 3.0           # two events in [0, 0.5)
    assert binned[1, 1] == 3.0           # 0.5 starts bin 1
    assert binned[19, 2] == 4.0          # 9.99 in the last bin
    assert binned.sum() == 10.0          # the event at 10.0 lies past the end


def test_bin_trace_and_spikes():
    trace = np.arange(41, dtype=float)   # t = 0..1 ms at dt 0.025
    np.testing.assert_allclose(bin_trace(trace, dt=0.025, n_bins=2, bin_ms=0.5), [9.5, 29.5])
    with pytest.raises(ValueError, match="whole multiple of dt"):
        bin_trace(trace, dt=0.025, n_bins=2, bin_ms=0.03)
    np.testing.assert_array_equal(bin_spikes([0.1, 0.2, 0.7, 5.0], n_bins=2, bin_ms=0.5), [2, 1])
