"""The poster's single-cell panels, NEURON against the surrogate on the same inputs.

* temporal summation: peak EPSP against the number of synchronous subthreshold
  inputs, and against their spread in time;
* firing threshold: spike or not, against the weight of one input;
* action-potential shape: spike-triggered average voltage, peak and half-width;
* example traces from the held-out split.

Inputs go to hnn-core's 'proximal' AMPA synapses of the cell (the soma of a
basket cell) at weights relative to the calibrated single-event threshold.
Everything is stored in one ``surrogate_panels`` NetCDF; the figure is drawn
from that file alone (``figures.surrogate``).
"""

from __future__ import annotations

import numpy as np

from ..artifacts import SURROGATE_PANELS
from ..cells.channels import cell_template, channel_index
from ..cells.calibrate import read_reference
from ..cells.inputs import bin_events
from ..cells.simulate import simulate_cell
from ..datasets import open_cell_dataset
from ..provenance import provenance_attrs
from .checkpoint import load_checkpoint
from .evaluate import predict

T_EVENT = 20.0      # ms: when the test inputs arrive
TSTOP = 100.0       # ms: length of each panel simulation
N_SYNC = np.arange(1, 13)
SPREADS = np.array([0.0, 2.0, 5.0, 10.0, 20.0, 40.0])
N_SPREAD = 6
WEIGHT_FACTORS = np.geomspace(0.3, 3.0, 13)
SUB_FACTOR = 0.15   # synchronous inputs, each at 15 % of its threshold weight
AP_WINDOW = (-3.0, 8.0)


def proximal_ampa(cell_type) -> list[str]:
    """hnn-core synapse keys of the cell's proximal AMPA synapses."""
    sections = cell_template(cell_type).sect_loc["proximal"]
    return [f"{s}_ampa" for s in sections]


def _responses(loaded, cell_type, event_sets, delay, dt, bin_ms):
    """Peak depolarisation and spiking for NEURON and surrogate, one event set each."""
    idx = channel_index(cell_type)
    n_bins = int(round(TSTOP / bin_ms))
    control = simulate_cell(cell_type, event_channel=[], event_time=[], event_weight=[],
                            tstop=TSTOP, dt=dt, delay=delay)
    x = np.zeros((len(event_sets), n_bins, len(idx)), dtype=np.float32)
    peaks_n, fired_n = [], []
    for k, events in enumerate(event_sets):
        ch = np.array([idx[key] for key, _, _ in events])
        t = np.array([t for _, t, _ in events])
        w = np.array([w for _, _, w in events])
        run = simulate_cell(cell_type, event_channel=ch, event_time=t, event_weight=w,
                            tstop=TSTOP, dt=dt, delay=delay)
        peaks_n.append(float((run.v_soma - control.v_soma).max()))
        fired_n.append(float(run.spike_times.size > 0))
        x[k] = bin_events(ch, t + delay, w, n_channels=len(idx), n_bins=n_bins, bin_ms=bin_ms)
    y, _, p, spikes = predict(loaded, x)
    base = predict(loaded, np.zeros_like(x[:1]))[0][0, :, 0]
    peaks_s = (y[..., 0] - base).max(axis=1)
    after = slice(int(T_EVENT / bin_ms), None)  # the responses, not the start-up transient
    return (np.array(peaks_n), peaks_s, np.array(fired_n), spikes[:, after].max(axis=1),
            p[:, after].max(axis=1))


def _ap_shape(t, v, spike_times, lo, hi, step):
    """Spike-triggered average voltage on a grid of ``step`` ms, and its peak and half-width."""
    lags = np.arange(lo, hi + 1e-9, step)
    rows = []
    for k, times in enumerate(spike_times):
        for s in times:
            if s + lo >= t[0] and s + hi <= t[-1]:
                rows.append(np.interp(s + lags, t, v[k]))
    mean = np.mean(rows, axis=0) if rows else np.full(lags.size, np.nan)
    return lags, mean, len(rows)


def _peak_and_half_width(lags, v):
    if np.all(np.isnan(v)):
        return np.nan, np.nan
    base = v[0]
    peak = np.nanmax(v)
    half = base + 0.5 * (peak - base)
    above = lags[v >= half]
    return float(peak), float(above[-1] - above[0]) if above.size else np.nan


def compute_panels(checkpoint, dataset, calibration, out, *, n_examples=2):
    """Simulate the panels in NEURON and the surrogate; write a ``surrogate_panels`` file."""
    ds = open_cell_dataset(dataset)
    loaded = load_checkpoint(checkpoint, dataset=ds, source=str(dataset))
    cell_type = loaded.cell_type
    dt, bin_ms = float(ds.attrs["dt_ms"]), loaded.bin_ms
    delay = float(ds.attrs["synaptic_delay_ms"])
    ref = read_reference(calibration, cell_type)
    idx = channel_index(cell_type)
    keys = proximal_ampa(cell_type)
    w_of = {k: float(ref[idx[k]]) for k in keys}

    sync = [[(keys[j % len(keys)], T_EVENT, SUB_FACTOR * w_of[keys[j % len(keys)]])
             for j in range(n)] for n in N_SYNC]
    spread = [[(keys[j % len(keys)], T_EVENT + s * j / max(N_SPREAD - 1, 1),
                SUB_FACTOR * w_of[keys[j % len(keys)]]) for j in range(N_SPREAD)] for s in SPREADS]
    thresh = [[(keys[0], T_EVENT, f * w_of[keys[0]])] for f in WEIGHT_FACTORS]
    sync_r = _responses(loaded, cell_type, sync, delay, dt, bin_ms)
    spread_r = _responses(loaded, cell_type, spread, delay, dt, bin_ms)
    thr_r = _responses(loaded, cell_type, thresh, delay, dt, bin_ms)

    test = np.flatnonzero(ds["split"].values == "test")
    sub = ds.isel(sim=test)
    y, _, p, spikes = predict(loaded, sub["inputs"].values)
    true_sp = [ds["spike_time"].values[ds["spike_sim"].values == k] for k in test]
    pred_sp = [(np.flatnonzero(s) + 0.5) * bin_ms for s in spikes]
    if "v_soma_fine" in sub:
        t_fine, v_fine = sub["time_fine"].values, sub["v_soma_fine"].values
    else:
        t_fine, v_fine = sub["time"].values + bin_ms / 2, sub["v_soma"].values
    lags, ap_n, n_ap_n = _ap_shape(t_fine, v_fine, true_sp, *AP_WINDOW, dt)
    t_bins = sub["time"].values + bin_ms / 2
    lags_s, ap_s, n_ap_s = _ap_shape(t_bins, y[..., 0], pred_sp, *AP_WINDOW, bin_ms)
    ap_s = np.interp(lags, lags_s, ap_s)
    # Examples: the first test simulation without spikes and the first with.
    n_sp = sub["n_spikes"].values
    picks = [int(np.argmax(n_sp == 0)) if (n_sp == 0).any() else 0,
             int(np.argmax(n_sp > 0)) if (n_sp > 0).any() else 0][:n_examples]
    data = {
        "sync_peak_neuron": sync_r[0], "sync_peak_surrogate": sync_r[1],
        "spread_peak_neuron": spread_r[0], "spread_peak_surrogate": spread_r[1],
        "threshold_fired_neuron": thr_r[2], "threshold_fired_surrogate": thr_r[3],
        "threshold_p_surrogate": thr_r[4],
        "ap_neuron": ap_n, "ap_surrogate": ap_s,
        "example_v_neuron": sub["v_soma"].values[picks].astype(np.float64),
        "example_v_surrogate": y[picks, :, 0],
    }
    if "dipole" in loaded.targets:
        data["example_dipole_neuron"] = sub["dipole"].values[picks].astype(np.float64)
        data["example_dipole_surrogate"] = y[picks, :, 1]
    pk_n, hw_n = _peak_and_half_width(lags, ap_n)
    pk_s, hw_s = _peak_and_half_width(lags, ap_s)
    attrs = provenance_attrs()
    attrs.update(cell_type=cell_type, inputs="proximal AMPA: " + ", ".join(keys),
                 sub_factor=SUB_FACTOR, event_time_ms=T_EVENT, n_spread=N_SPREAD,
                 ap_peak_neuron_mv=pk_n, ap_peak_surrogate_mv=pk_s,
                 ap_half_width_neuron_ms=hw_n, ap_half_width_surrogate_ms=hw_s,
                 n_ap_neuron=n_ap_n, n_ap_surrogate=n_ap_s,
                 example_sims=",".join(str(int(sub["sim_index"].values[k])) + ":"
                                       + str(sub["regime"].values[k]) for k in picks))
    coords = {"n_inputs": N_SYNC.astype(np.int32), "spread": SPREADS,
              "weight_factor": WEIGHT_FACTORS, "ap_lag": lags,
              "example": np.arange(len(picks), dtype=np.int32), "time": sub["time"].values}
    panels = SURROGATE_PANELS.build(data, coords, attrs)
    SURROGATE_PANELS.write(panels, out)
    return panels
