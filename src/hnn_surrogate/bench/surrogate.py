"""Single-cell throughput: surrogate against NEURON on the same core, same inputs.

For each cell type, NEURON simulates one held-out simulation's events (the
exact events the dataset stores); the surrogate steps the same simulation's
binned inputs, tiled to a batch of B cells, through its streaming ``step``
(constant cost per bin, what a network simulator pays). Both run in this one
process with torch limited to one thread, side by side. Throughput is in
simulated cell-milliseconds per wall second.

The surrogate is timed in float32 and in bfloat16 (inference only; CPUs with
AVX512-BF16 or AMX run its matrix products several times faster). The cost of
bfloat16 is measured in the same run: the voltage-head difference (mV RMS)
and the share of float32 spikes that bfloat16 places in the same bin, over
the held-out simulations stepped from t = 0.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch

from ..artifacts import SURROGATE_BENCHMARK
from ..cells.simulate import simulate_cell
from ..datasets import open_cell_dataset
from ..provenance import provenance_attrs
from ..surrogate.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def neuron_throughput(ds, sim: int, tstop: float) -> float:
    """Cell-ms per second of NEURON on the events of simulation ``sim`` (first ``tstop`` ms)."""
    ev = (ds["event_sim"].values == sim) & (ds["event_time"].values < tstop)
    kw = dict(event_channel=ds["event_channel"].values[ev], event_time=ds["event_time"].values[ev],
              event_weight=ds["event_weight"].values[ev], dt=float(ds.attrs["dt_ms"]),
              delay=float(ds.attrs["synaptic_delay_ms"]))
    simulate_cell(ds.attrs["cell_type"], tstop=5.0, **kw)  # warm-up: mechanisms, tables
    t0 = time.perf_counter()
    simulate_cell(ds.attrs["cell_type"], tstop=tstop, **kw)
    return tstop / (time.perf_counter() - t0)


@torch.inference_mode()
def surrogate_throughput(loaded, x_uS: np.ndarray, batch: int, n_bins: int, device,
                         dtype=torch.float32) -> float:
    """Cell-ms per second of streaming ``step`` for ``batch`` cells over ``n_bins`` bins."""
    model = copy.deepcopy(loaded.model).to(device=device, dtype=dtype)
    reps = int(np.ceil(batch / len(x_uS)))
    x = loaded.norm.inputs(np.tile(x_uS[:, :n_bins], (reps, 1, 1))[:batch]).to(device, dtype)
    state = model.init_state(batch, device=device, dtype=dtype)
    for t in range(min(5, n_bins)):  # warm-up
        _, _, state = model.step(x[:, t], state)
    state = model.init_state(batch, device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for t in range(n_bins):
        _, _, state = model.step(x[:, t], state)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * n_bins * loaded.bin_ms / (time.perf_counter() - t0)


@torch.inference_mode()
def bf16_agreement(loaded, x_uS: np.ndarray, device):
    """(voltage-head RMS difference in mV, share of float32 spikes in the same bin) of bfloat16."""
    from ..surrogate.evaluate import spike_edges

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = copy.deepcopy(loaded.model).to(device=device, dtype=dtype)
        x = loaded.norm.inputs(x_uS).to(device, dtype)
        state = model.init_state(len(x), device=device, dtype=dtype)
        ys, ps = [], []
        for t in range(x.shape[1]):
            y, logit, state = model.step(x[:, t], state)
            ys.append(y.float().cpu())
            ps.append(torch.sigmoid(logit.float()).cpu())
        v = loaded.norm.physical(torch.stack(ys, 1))[..., 0]
        out[dtype] = (v, spike_edges(torch.stack(ps, 1).numpy(), loaded.spike_threshold))
    (v32, s32), (v16, s16) = out[torch.float32], out[torch.bfloat16]
    same = (s32 & s16).sum() / max(s32.sum(), 1)
    return float(np.sqrt(np.mean((v32 - v16) ** 2))), float(same)


def run_surrogate_benchmark(*, checkpoints, datasets, out, table=None, batches=(1, 64, 4096),
                            n_bins=200, neuron_tstop=1000.0, device="cpu"):
    """Measure and write a ``surrogate_benchmark`` NetCDF; return the table text."""
    torch.set_num_threads(1)
    dev = torch.device(device)
    cell_types, neuron, surr, agree = [], [], [], []
    dtypes = (torch.float32, torch.bfloat16)
    for ckpt, path in zip(checkpoints, datasets):
        ds = open_cell_dataset(path)
        loaded = load_checkpoint(ckpt, dataset=ds, source=str(path))
        test = np.flatnonzero(ds["split"].values == "test")
        sim = int(test[0])
        cell_types.append(loaded.cell_type)
        neuron.append(neuron_throughput(ds, sim, min(neuron_tstop, float(ds.attrs["tstop_ms"]))))
        x = ds["inputs"].values[test]
        surr.append([[surrogate_throughput(loaded, x, b, min(n_bins, x.shape[1]), dev, dt)
                      for b in batches] for dt in dtypes])
        agree.append(bf16_agreement(loaded, x, dev))
        log.info("%s: NEURON %.0f cell-ms/s; surrogate float32 %s; bfloat16 %s", loaded.cell_type,
                 neuron[-1], surr[-1][0], surr[-1][1])
    neuron, surr = np.array(neuron), np.array(surr)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU, 1 thread"
    attrs = provenance_attrs()
    attrs.update(device=name, n_bins=n_bins, neuron_tstop_ms=neuron_tstop)
    result = SURROGATE_BENCHMARK.build(
        {"neuron_ms_per_s": neuron, "surrogate_ms_per_s": surr,
         "speedup": surr / neuron[:, None, None],
         "bf16_v_rms_diff": np.array([a[0] for a in agree]),
         "bf16_spike_agreement": np.array([a[1] for a in agree])},
        {"cell_type": np.array(cell_types, dtype=object),
         "dtype": np.array([str(d).removeprefix("torch.") for d in dtypes], dtype=object),
         "batch": np.array(batches, dtype=np.int32)}, attrs)
    SURROGATE_BENCHMARK.publish(result, out, format_table(result), table)
    return result


def format_table(ds) -> str:
    batches = [int(b) for b in ds["batch"].values]
    lines = [f"Single-cell throughput (simulated cell-ms per wall second), surrogate on "
             f"{ds.attrs['device']} vs NEURON on one core",
             "",
             "| cell type | dtype | NEURON | " + " | ".join(f"surrogate B={b}" for b in batches)
             + " | " + " | ".join(f"speed-up B={b}" for b in batches) + " |",
             "|---" * (3 + 2 * len(batches)) + "|"]
    for i, ct in enumerate(ds["cell_type"].values):
        for j, dt in enumerate(ds["dtype"].values):
            s = ds["surrogate_ms_per_s"].values[i, j]
            lines.append(f"| {ct} | {dt} | {ds['neuron_ms_per_s'].values[i]:.0f} | "
                         + " | ".join(f"{v:.0f}" for v in s) + " | "
                         + " | ".join(f"{v:.1f}x" for v in ds["speedup"].values[i, j]) + " |")
    lines += ["", "bfloat16 against float32 on the held-out simulations: "
              + "; ".join(f"{ct} voltage head {ds['bf16_v_rms_diff'].values[i]:.3f} mV RMS, "
                          f"{100 * ds['bf16_spike_agreement'].values[i]:.1f} % of spikes in the same bin"
                          for i, ct in enumerate(ds["cell_type"].values))]
    return "\n".join(lines)
