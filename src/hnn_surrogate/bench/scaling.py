"""Network scaling: the surrogates against NEURON, side by side, from 270 cells up.

One job per size (``scaling_point``): hnn-core's default model on a
``mesh`` x ``mesh`` grid, its connections wired within the cutoff
(``network.sparse``), the same drives (hnn-core's, same seeds) and duration in
every simulator. Each run is its own process, so its peak resident memory is
its own (``getrusage``; NEURON's summed over its MPI ranks):

* the surrogates on 1 and on 2 torch threads (``scaling-run``);
* NEURON (hnn-core's ``NetworkBuilder`` and run) on 1 and 2 MPI ranks, for
  sizes up to ``neuron.max_cells`` and within ``neuron.time_limit_s``;
  anything else is marked "not run" with the reason, never extrapolated.

Each run reports set-up (building the network), warm-up (the surrogates'
delivery tables, before the first step) and simulation apart, spikes, rates
and the dipole spectrum (a real simulation, not a timing loop), and, for the
surrogates, how close the arithmetic gets to the machine: floating-point
operations per cell and bin of the matrix products (``fused.flops_per_cell_bin``)
over the simulation time, against the float32 matrix-product peak measured
in the same process at the same threads.

Before anything is built, the size's memory is estimated from its synapse
count (counted, not built) and refused when over ``memory_limit_gb``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import CELL_TYPES
from ..artifacts import SCALING_CUTOFF, SCALING_POINT, SCALING_SUMMARY, atomic_output
from ..provenance import provenance_attrs

log = logging.getLogger(__name__)

SURROGATE_RUNS = ("surrogate_1thread", "surrogate_2threads")
NEURON_RUNS = ("neuron_1rank", "neuron_2ranks")
RUNS = SURROGATE_RUNS + NEURON_RUNS

# Memory of a surrogate run: bytes per synapse entry (the wiring, its
# sorting, the delivery tables), per cell and bin (outputs kept for the
# dipole and spikes), per cell (state, drives) and a fixed part (python,
# torch, hnn-core). Calibrated on the 100,492-cell network, 200 ms, 125
# million entries: 16.1 GiB peak resident measured, 16.2 GiB estimated.
BYTES_PER_ENTRY = 110.0
BYTES_PER_CELL_BIN = 40.0
BYTES_PER_CELL = 10e3
BYTES_FIXED = 1.0e9


class ScalingError(ValueError):
    """A size this machine or config cannot run (named)."""


def estimate_gb(n_entries: int, n_cells: int, n_bins: int) -> float:
    """Estimated peak resident memory (GiB) of a surrogate run."""
    return (BYTES_PER_ENTRY * n_entries + BYTES_PER_CELL_BIN * n_cells * n_bins
            + BYTES_PER_CELL * n_cells + BYTES_FIXED) / 2**30


def cpu_name() -> str:
    """The CPU's model name and the cores this process may use (the device of every run)."""
    name = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def peak_rss_gb() -> float:
    """This process's peak resident memory (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 7) -> float:
    """Best float32 matrix-product rate of torch at ``threads`` (GFLOP/s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9


def _spectrum(dipole: np.ndarray, bin_ms: float, transient_ms: float):
    """(freq Hz, power nAm^2/Hz, peak Hz in 1-100 Hz) of a dipole after the
    transient: the fits' periodogram (``optimize.objectives.spectrum``), per Hz."""
    from ..optimize.objectives import spectrum

    x = np.asarray(dipole, float)
    n = x.size - int(round(transient_ms / bin_ms))
    f, p = (a.numpy() for a in spectrum(x, bin_ms=bin_ms, transient_ms=transient_ms))
    p = p / (1000.0 / bin_ms * n)
    band = (f >= 1.0) & (f <= 100.0)
    peak = float(f[band][np.argmax(p[band])]) if band.any() else float("nan")
    return f, p, peak


def _rates(spike_gids, gid_ranges, tstop_ms):
    gids = np.asarray(spike_gids)
    return {t: float(((gids >= r.start) & (gids < r.stop)).sum() / len(r) / (tstop_ms / 1e3))
            for t, r in gid_ranges.items() if t in CELL_TYPES}


def _import_builders():
    """Import what builds a network (hnn-core and ours) before a run's clock starts,
    in both simulators alike: set-up is building the network, not loading Python
    modules (about 1.2 s of the surrogates' 1.5 s set-up at 270 cells was hnn-core's
    first import)."""
    import hnn_core  # noqa: F401  (imported lazily by the modules below)

    from .. import hnn_compat  # noqa: F401
    from ..network import sparse  # noqa: F401


def _network(spec, point, connect):
    from ..hnn_compat import instantiate_drives
    from ..network.sparse import Cutoff, build_sparse_network

    cutoff = Cutoff.from_config(point["cutoff"])
    net, rules = build_sparse_network(spec, scenario=point["scenario"], condition="default",
                                      seed=point["seed"], mesh=point["mesh"], cutoff=cutoff,
                                      connect=connect, tstop=point["tstop"])
    instantiate_drives(net, point["tstop"])
    return net, rules, cutoff


def surrogate_run(spec, point, checkpoints, threads) -> dict:
    """One surrogate run of the point (in this process, ``threads`` torch threads)."""
    import torch

    from ..network.api import load_surrogates
    from ..network.simulate import SurrogateNetwork
    from ..network.sparse import sparse_wiring

    torch.set_num_threads(int(threads))
    _import_builders()
    # the bound: the higher of the peak before and after the run (on this shared
    # machine it ranged 70-103 GFLOP/s within minutes; a low reading flatters the share)
    peak_before = matmul_peak_gflops(threads)
    start = time.perf_counter()
    net, rules, cutoff = _network(spec, point, connect=False)
    wiring = sparse_wiring(net, rules, cutoff, tstop=point["tstop"], bin_ms=spec["bin_ms"])
    surrogates = load_surrogates(checkpoints, list(net.cell_types))
    sim = SurrogateNetwork(wiring, surrogates)
    setup = time.perf_counter() - start
    log.info("surrogate, %d thread(s): %d cells, %d synapse entries, set up in %.1f s",
             threads, sum(wiring.n_cells(t) for t in wiring.cell_types),
             sum(s.row.size for s in wiring.synapses.values()), setup)
    out = sim.run(progress_every=max(1, wiring.n_bins // 10))
    t = out.timings
    flops = sim.flops_per_bin()
    n_cells = sum(wiring.n_cells(c) for c in wiring.cell_types)
    sim_s = out.wall_s - t["prepare"]
    l2, l5 = out.layer_dipoles()
    peak = max(peak_before, matmul_peak_gflops(threads))
    gflops = flops * wiring.n_bins / sim_s / 1e9      # over the whole simulation
    return {"setup_s": setup, "warmup_s": t["prepare"], "sim_s": sim_s,
            "wall_s": setup + out.wall_s, "model_s": t["model"], "deliver_s": t["deliver"],
            "spike_gids": out.spike_gids.tolist(), "dipole": (l2 + l5).tolist(),
            "gid_ranges": {k: [r.start, r.stop] for k, r in wiring.gid_ranges.items()},
            "n_cells": n_cells, "n_synapses": int(sum(s.row.size
                                                      for s in wiring.synapses.values())),
            "flops_per_cell_bin": flops / n_cells, "gflops": gflops,
            "matmul_peak_gflops": peak, "peak_rss_gb": peak_rss_gb()}


def neuron_run(spec, point) -> dict | None:
    """One NEURON run of the point (call on every MPI rank; rank 0 returns it)."""
    from mpi4py import MPI

    import hnn_core.network_builder  # noqa: F401  (NEURON itself, as a module)

    from ..network.run import simulate_neuron

    _import_builders()
    start = time.perf_counter()
    net, _, _ = _network(spec, point, connect=True)
    build = time.perf_counter() - start
    res = simulate_neuron(net, tstop=point["tstop"], dt=spec["dt"], bin_ms=spec["bin_ms"])
    rss = MPI.COMM_WORLD.allreduce(peak_rss_gb(), op=MPI.SUM)
    if res is None:
        return None
    setup = build + res.setup_s
    return {"setup_s": setup, "warmup_s": float("nan"), "sim_s": res.wall_s - res.setup_s,
            "wall_s": build + res.wall_s, "model_s": float("nan"), "deliver_s": float("nan"),
            "spike_gids": np.asarray(res.spike_gids).tolist(),
            "dipole": (res.dipole_l2 + res.dipole_l5).tolist(),
            "gid_ranges": {k: [r.start, r.stop] for k, r in net.gid_ranges.items()},
            "n_cells": sum(len(net.gid_ranges[t]) for t in net.cell_types),
            "gflops": float("nan"), "matmul_peak_gflops": float("nan"), "peak_rss_gb": rss}


def run_scaling_run(spec_file, point_file, simulator, out, checkpoints=None, threads=1):
    """The ``scaling-run`` command: one run, its result as JSON (rank 0)."""
    from ..artifacts import read_json

    spec, point = read_json(spec_file, "network spec"), read_json(point_file, "scaling point")
    res = (surrogate_run(spec, point, checkpoints, threads) if simulator == "surrogate"
           else neuron_run(spec, point))
    if res is not None:
        with atomic_output(out) as tmp:
            Path(tmp).write_text(json.dumps(res))


def check_point(spec, point, memory_limit_gb) -> dict:
    """Count the size's synapses and refuse it when its memory estimate is over the limit."""
    from ..network.sparse import Cutoff, build_sparse_network, count_entries

    cutoff = Cutoff.from_config(point["cutoff"])
    net, rules = build_sparse_network(spec, scenario=point["scenario"], condition="default",
                                      seed=point["seed"], mesh=point["mesh"], cutoff=cutoff)
    n_cells = sum(len(net.gid_ranges[t]) for t in net.cell_types)
    n_entries = count_entries(net, rules, cutoff, point["tstop"])
    n_bins = int(round(point["tstop"] / spec["bin_ms"]))
    gb = estimate_gb(n_entries, n_cells, n_bins)
    if gb > memory_limit_gb:
        raise ScalingError(
            f"scaling size mesh {point['mesh']} ({n_cells} cells, {n_entries} synapse entries "
            f"within the cutoff): about {gb:.1f} GiB, over scaling.memory_limit_gb = "
            f"{memory_limit_gb}")
    return {"n_cells": n_cells, "n_entries": n_entries, "estimate_gb": gb}


def run_scaling_point(spec, point, *, checkpoints, out, table=None, memory_limit_gb,
                      neuron_max_cells, neuron_time_limit_s, mpiexec="mpiexec",
                      threads=(1, 2), ranks=(1, 2)):
    """Every run of one size, side by side; write ``scaling_point`` NetCDF."""
    size = check_point(spec, point, memory_limit_gb)
    log.info("mesh %d: %d cells, %d synapse entries (at most), about %.1f GiB",
             point["mesh"], size["n_cells"], size["n_entries"], size["estimate_gb"])
    results, status = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, point_file = Path(tmp) / "spec.json", Path(tmp) / "point.json"
        spec_file.write_text(json.dumps(spec))
        point_file.write_text(json.dumps(point))
        base = [sys.executable, "-m", "hnn_surrogate", "scaling-run", "--spec", str(spec_file),
                "--point", str(point_file)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        for name, n in zip(SURROGATE_RUNS, threads):
            path = Path(tmp) / f"{name}.json"
            subprocess.run([*base, "--simulator", "surrogate", "--threads", str(n),
                            "--checkpoints", *map(str, checkpoints), "--out", str(path)],
                           check=True, env=dict(env, OMP_NUM_THREADS=str(n)))
            results[name], status[name] = json.loads(path.read_text()), "ran"
        for name, n in zip(NEURON_RUNS, ranks):
            if size["n_cells"] > neuron_max_cells:
                status[name] = f"not run: above neuron.max_cells ({neuron_max_cells})"
                continue
            path = Path(tmp) / f"{name}.json"
            cmd = [*mpiexec.split(), "-n", str(n), *base, "--simulator", "neuron",
                   "--out", str(path)]
            log.info("NEURON on %d rank(s), limit %d s", n, neuron_time_limit_s)
            if not _run_within(cmd, env, neuron_time_limit_s):
                status[name] = f"not run: time limit ({neuron_time_limit_s} s)"
                continue
            results[name], status[name] = json.loads(path.read_text()), "ran"
    return write_point(spec, point, size, results, status, out, table)


def _run_within(cmd, env, limit_s) -> bool:
    """Run ``cmd`` (an MPI program) in its own process group; False, with the
    whole group killed, when it has not finished within ``limit_s``."""
    import signal

    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)
    return True


def write_point(spec, point, size, results, status, out, table):
    bin_ms, tstop = spec["bin_ms"], point["tstop"]
    transient = min(point["transient_ms"], tstop / 2)
    nan = float("nan")
    freq = _spectrum(np.zeros(int(round(tstop / bin_ms))), bin_ms, transient)[0]
    cols = {k: [] for k in ("wall_s", "setup_s", "warmup_s", "sim_s", "sim_s_per_s",
                            "peak_rss_gb", "n_spikes", "rate_hz", "peak_hz", "psd", "model_s",
                            "deliver_s", "gflops", "bound_fraction", "matmul_peak_gflops",
                            "cores")}
    flops = nan
    for name in RUNS:
        r = results.get(name)
        cols["cores"].append(int(name.split("_")[1][0]))
        if r is None:
            for k in cols:
                if k == "cores":
                    continue
                cols[k].append(np.full(len(CELL_TYPES), nan) if k == "rate_hz"
                               else np.full(freq.size, nan) if k == "psd"
                               else -1 if k == "n_spikes" else nan)
            continue
        ranges = {k: range(*v) for k, v in r["gid_ranges"].items()}
        rates = _rates(r["spike_gids"], ranges, tstop)
        _, psd, peak = _spectrum(np.asarray(r["dipole"]), bin_ms, transient)
        flops = r.get("flops_per_cell_bin", flops)
        for k in ("wall_s", "setup_s", "warmup_s", "sim_s", "peak_rss_gb", "model_s",
                  "deliver_s", "gflops", "matmul_peak_gflops"):
            cols[k].append(float(r[k]))
        cols["sim_s_per_s"].append(r["sim_s"] / (tstop / 1e3))
        cols["n_spikes"].append(len(r["spike_gids"]))
        cols["rate_hz"].append([rates[t] for t in CELL_TYPES])
        cols["peak_hz"].append(peak)
        cols["psd"].append(psd)
        cols["bound_fraction"].append(r["gflops"] / r["matmul_peak_gflops"])
    attrs = provenance_attrs(seed=int(point["seed"]))
    attrs.update(mesh=int(point["mesh"]), n_cells=int(size["n_cells"]),
                 n_synapses=int(results[SURROGATE_RUNS[0]]["n_synapses"]),
                 tstop_ms=float(tstop), scenario=point["scenario"],
                 cutoff=json.dumps(point["cutoff"]), flops_per_cell_bin=float(flops),
                 device=cpu_name())
    data = {k: np.asarray(v, np.int32 if k == "cores" else np.int64 if k == "n_spikes"
                          else np.float64) for k, v in cols.items()}
    data["status"] = np.array([status[n] for n in RUNS])
    ds = SCALING_POINT.build(data, {"run": list(RUNS), "cell_type": list(CELL_TYPES),
                                    "freq": freq}, attrs)
    lines = [f"Network scaling, mesh {point['mesh']}: {size['n_cells']} cells, "
             f"{attrs['n_synapses']} synapse entries, {tstop:.0f} ms ({point['scenario']})", "",
             "| run | status | set-up (s) | warm-up (s) | simulation (s) | per simulated s | "
             "peak memory (GiB) | spikes | dipole peak (Hz) | share of matmul peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, name in enumerate(RUNS):
        if name not in results:
            lines.append(f"| {name} | {status[name]} | | | | | | | | |")
            continue
        lines.append(
            f"| {name} | ran | {data['setup_s'][i]:.1f} | {data['warmup_s'][i]:.2f} | "
            f"{data['sim_s'][i]:.1f} | {data['sim_s_per_s'][i]:.1f} | "
            f"{data['peak_rss_gb'][i]:.2f} | {data['n_spikes'][i]} | {data['peak_hz'][i]:.1f} | "
            + ("" if math.isnan(data['bound_fraction'][i])
               else f"{data['bound_fraction'][i]:.2f}") + " |")
    sur = results[SURROGATE_RUNS[0]]
    n_bins = int(round(tstop / bin_ms))
    lines += ["", f"surrogate, 1 thread: {sur['flops_per_cell_bin']:.0f} FLOP per cell and bin, "
                  f"{sur['gflops']:.1f} GFLOP/s over its simulation against a matrix-product "
                  f"peak of {sur['matmul_peak_gflops']:.1f} (the model steps alone: "
                  f"{sur['flops_per_cell_bin'] * sur['n_cells'] * n_bins / sur['model_s'] / 1e9:.1f}"
                  "); of its simulation "
                  f"{sur['model_s']:.1f} s stepping, {sur['deliver_s']:.1f} s delivering spikes"]
    if NEURON_RUNS[0] in results:
        lines.append(f"speed-up vs NEURON on one core: "
                     f"{data['wall_s'][2] / data['wall_s'][0]:.1f}x (1 thread), "
                     f"{data['wall_s'][2] / data['wall_s'][1]:.1f}x (2 threads)")
    return SCALING_POINT.publish(ds, out, "\n".join(lines), table)


def _exponent(x, y):
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(x, float)[ok]), np.log(y[ok]), 1)[0])


def crossover(size, neuron_wall, surrogate_wall) -> float:
    """Cells at which the surrogate's wall time falls below NEURON's, log-log
    interpolated between the sizes where the order flips: NaN where both did not
    run at two sizes or it never flips; 0 when the surrogate is ahead at every size."""
    ok = np.isfinite(neuron_wall) & np.isfinite(surrogate_wall)
    x, ratio = np.log(size[ok].astype(float)), np.log(neuron_wall[ok] / surrogate_wall[ok])
    if not ratio.size:
        return float("nan")
    if ratio[0] > 0:
        return 0.0
    for i in range(ratio.size - 1):
        if ratio[i] <= 0 < ratio[i + 1]:
            return float(np.exp(x[i] - ratio[i] * (x[i + 1] - x[i]) / (ratio[i + 1] - ratio[i])))
    return float("nan")


def summarize_scaling(paths, *, out, table=None, figure=None):
    """Every size's ``scaling_point`` into one ``scaling_summary`` (+ table, figure)."""
    points = sorted((SCALING_POINT.read(p) for p in paths), key=lambda d: d.attrs["n_cells"])
    if not points:
        raise ValueError("scaling-summary: no scaling_point files given")
    size = np.array([int(d.attrs["n_cells"]) for d in points], np.int64)
    get = lambda k: np.stack([d[k].values for d in points])  # noqa: E731
    wall, rss, sim = get("wall_s"), get("peak_rss_gb"), get("sim_s_per_s")
    runs = range(len(RUNS))
    data = {"mesh": np.array([int(d.attrs["mesh"]) for d in points], np.int64),
            "n_synapses": np.array([int(d.attrs["n_synapses"]) for d in points], np.int64),
            "status": get("status").astype(str), "wall_s": wall, "sim_s_per_s": sim,
            "peak_rss_gb": rss, "n_spikes": get("n_spikes"), "speedup": wall[:, [2]] / wall,
            "sim_speedup": sim[:, [2]] / sim, "bound_fraction": get("bound_fraction"),
            "time_exponent": np.array([_exponent(size, sim[:, j]) for j in runs]),
            "wall_exponent": np.array([_exponent(size, wall[:, j]) for j in runs]),
            "memory_exponent": np.array([_exponent(size, rss[:, j]) for j in runs])}
    first = points[0].attrs
    cross = crossover(size, wall[:, 2], wall[:, 0])
    attrs = provenance_attrs()
    attrs.update(tstop_ms=float(first["tstop_ms"]), scenario=first["scenario"],
                 cutoff=first["cutoff"], device=first["device"], crossover_cells=cross)
    ds = SCALING_SUMMARY.build(data, {"size": size, "run": list(RUNS)}, attrs)
    fmt = lambda v, f="{:.1f}": f.format(v) if math.isfinite(v) else "not run"  # noqa: E731
    lines = [f"Network scaling, {first['tstop_ms']:.0f} ms of {first['scenario']}, cutoff "
             f"{first['cutoff']}; wall = set-up + warm-up + simulation", "",
             "| cells | synapses | " + " | ".join(f"{r} wall (s)" for r in RUNS)
             + " | speed-up vs NEURON 1 rank, wall / simulation (1 thread) "
               "| s per simulated s (1 thread) | peak memory (GiB, 1 thread) "
               "| share of matmul peak (1 thread) |",
             "|---|---|" + "---|" * len(RUNS) + "---|---|---|---|"]
    for i, n in enumerate(size):
        sp = (f"{data['speedup'][i, 0]:.0f}x / {data['sim_speedup'][i, 0]:.0f}x"
              if math.isfinite(data["speedup"][i, 0]) else "-")
        lines.append(f"| {n} | {data['n_synapses'][i]} | "
                     + " | ".join(fmt(wall[i, j]) for j in runs)
                     + f" | {sp} | {sim[i, 0]:.1f} | {rss[i, 0]:.2f} | "
                       f"{data['bound_fraction'][i, 0]:.2f} |")
    lines += ["", "fitted growth exponents against cells (simulation time, wall time, memory): "
              + "; ".join(f"{r} {data['time_exponent'][j]:.2f}, {data['wall_exponent'][j]:.2f}, "
                          f"{data['memory_exponent'][j]:.2f}" for j, r in enumerate(RUNS)),
              "crossover (surrogate on 1 thread faster than NEURON on 1 rank, wall time): "
              + ("at every size" if cross == 0 else
                 f"at about {cross:.0f} cells" if math.isfinite(cross) else "not within the sweep")]
    if figure is not None:
        plot_scaling(ds, figure)
    return SCALING_SUMMARY.publish(ds, out, "\n".join(lines), table)


def plot_scaling(ds, path):
    """The poster's figure: wall time, simulation time per simulated second and
    peak memory against network size, log-log, every simulator; fitted growth
    exponents in the legends, the crossover and the largest NEURON run marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = ds["size"].values
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    styles = {"surrogate_1thread": ("C0", "o-"), "surrogate_2threads": ("C0", "s--"),
              "neuron_1rank": ("C3", "o-"), "neuron_2ranks": ("C3", "s--")}
    panels = ((axes[0], "wall_s", "wall_exponent", "wall time: set-up + simulation (s)"),
              (axes[1], "sim_s_per_s", "time_exponent", "simulation (s per simulated s)"),
              (axes[2], "peak_rss_gb", "memory_exponent", "peak resident memory (GiB)"))
    for j, run in enumerate(ds["run"].values):
        color, style = styles[str(run)]
        for ax, var, exp, _ in panels:
            y = ds[var].values[:, j]
            ok = np.isfinite(y)
            if ok.any():
                ax.plot(size[ok], y[ok], style, color=color,
                        label=f"{run} (exponent {float(ds[exp].values[j]):.2f})")
    ran = np.isfinite(ds["wall_s"].values[:, 2])
    cross = float(ds.attrs["crossover_cells"])
    for ax, _, _, label in panels:
        if ran.any() and not ran.all():
            ax.axvline(size[ran].max(), color="0.6", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("network size (cells)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.2)
    if math.isfinite(cross) and cross > 0:
        axes[0].axvline(cross, color="k", ls="--", lw=1)
        axes[0].annotate(f"crossover ~{cross:.0f} cells", (cross, axes[0].get_ylim()[1]),
                         va="top", fontsize=8)
    for ax, *_ in panels:
        ax.legend(fontsize=7)
    fig.suptitle(f"{ds.attrs['tstop_ms']:.0f} ms of the {ds.attrs['scenario']} scenario, the "
                 "same drives in every simulator (dotted: largest NEURON run)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def run_cutoff_check(spec, *, scenario, seeds, cutoff_cfg, checkpoints, tstop, transient_ms,
                     out, table=None):
    """The cutoff's error on the config's own mesh: the surrogate network with
    hnn-core's dense wiring against the same network wired within the cutoff,
    same seeds: rates per type, smoothed dipole correlation, spectral peak."""
    from ..network.api import load_surrogates, to_hnn_dipole
    from ..network.run import bin_centres, network_wiring
    from ..network.simulate import SurrogateNetwork
    from ..network.sparse import Cutoff, build_sparse_network, sparse_wiring
    from ..network.spec import build_network
    from ..hnn_compat import instantiate_drives

    cutoff = Cutoff.from_config(cutoff_cfg)
    mesh = int(spec["mesh_shape"][0])
    bin_ms = spec["bin_ms"]
    loaded = load_surrogates(checkpoints)
    k0 = int(round(transient_ms / bin_ms))
    rates, r, r_pert, peaks, psds, n_syn = [], [], [], [], [], {}
    for seed in seeds:
        dense = build_network(spec, scenario=scenario, condition="default", seed=seed)
        wd = network_wiring(dense, tstop=tstop, bin_ms=bin_ms)
        net, rules = build_sparse_network(spec, scenario=scenario, condition="default",
                                          seed=seed, mesh=mesh, cutoff=cutoff)
        instantiate_drives(net, tstop)
        wc = sparse_wiring(net, rules, cutoff, tstop=tstop, bin_ms=bin_ms)
        n_syn = {"dense": sum(s.row.size for s in wd.synapses.values()),
                 "cut": sum(s.row.size for s in wc.synapses.values())}
        runs = []
        for w, n, bump in ((wd, dense, 0.0), (wc, net, 0.0), (wd, dense, 1e-3)):
            sim = SurrogateNetwork(w, loaded)
            scale = sim.scale.clone()
            scale[0] *= 1.0 + bump
            o = sim.run(scale)
            l2, l5 = o.layer_dipoles()
            dpl = to_hnn_dipole(bin_centres(o.n_bins, bin_ms), l2, l5, n)
            dpl.smooth(window_len=spec["postproc"]["smooth_ms"])
            rate = _rates(o.spike_gids[o.spike_times >= transient_ms], w.gid_ranges,
                          tstop - transient_ms)
            freq, psd, peak = _spectrum(l2 + l5, bin_ms, transient_ms)
            runs.append(([rate[t] for t in CELL_TYPES], dpl.data["agg"][k0:], peak, psd))
        rates.append([x[0] for x in runs])
        r.append(float(np.corrcoef(runs[0][1], runs[1][1])[0, 1]))
        r_pert.append(float(np.corrcoef(runs[0][1], runs[2][1])[0, 1]))
        peaks.append([x[2] for x in runs])
        psds.append([x[3] for x in runs])
    rates, peaks, psds = np.array(rates), np.array(peaks), np.array(psds)
    band = (freq >= 1.0) & (freq <= 100.0)
    log_psd = np.log(psds.mean(axis=0)[:, band])
    psd_r = float(np.corrcoef(log_psd[0], log_psd[1])[0, 1])
    attrs = provenance_attrs()
    attrs.update(mesh=mesh, tstop_ms=float(tstop), scenario=scenario,
                 cutoff=json.dumps(cutoff_cfg), synapses_dense=int(n_syn["dense"]),
                 synapses_cut=int(n_syn["cut"]))
    ds = SCALING_CUTOFF.build(
        {"rate_dense": rates[:, 0], "rate_cut": rates[:, 1], "rate_perturbed": rates[:, 2],
         "dipole_r": np.array(r), "dipole_r_perturbed": np.array(r_pert), "psd_r": psd_r,
         "peak_dense_hz": peaks[:, 0], "peak_cut_hz": peaks[:, 1]},
        {"seed": np.asarray(seeds, np.int64), "cell_type": list(CELL_TYPES)}, attrs)
    mean = rates.mean(axis=0)                              # (run, cell type)
    rel = (mean[1:] - mean[0]) / np.where(mean[0] > 0, mean[0], np.nan)
    lines = [f"Cutoff {cutoff_cfg} on the {mesh}x{mesh} network, surrogates, {tstop:.0f} ms of "
             f"{scenario}, seeds {list(seeds)}: {n_syn['cut']} of {n_syn['dense']} synapse "
             "entries kept. Beside it, the dense network with one connection's weight "
             "changed by 0.1 % (the network's own sensitivity).", "",
             "| cell type | rate, dense (Hz) | cutoff | difference | 0.1 % weight change "
             "| difference |", "|---|---|---|---|---|---|"]
    lines += [f"| {t} | {mean[0, i]:.2f} | {mean[1, i]:.2f} | {100 * rel[0, i]:+.1f} % "
              f"| {mean[2, i]:.2f} | {100 * rel[1, i]:+.1f} % |" for i, t in enumerate(CELL_TYPES)]
    lines += ["", f"same-seed smoothed dipole r vs dense: cutoff {np.mean(r):.3f} (min "
                  f"{np.min(r):.3f}), 0.1 % weight change {np.mean(r_pert):.3f} (min "
                  f"{np.min(r_pert):.3f})",
              f"seed-mean log spectrum r (1-100 Hz), cutoff vs dense: {psd_r:.3f}; spectral "
              f"peak {peaks[:, 0].mean():.1f} vs {peaks[:, 1].mean():.1f} Hz",
              "targets: rates within 5 %, smoothed dipole r >= 0.95"]
    return SCALING_CUTOFF.publish(ds, out, "\n".join(lines), table)


def run_batch_throughput(spec, *, scenario, seed, sizes, checkpoints, tstop, threads, out,
                         table=None, figure=None):
    """Throughput against batch size: the config's network (hnn-core's dense
    wiring) with drive seeds ``seed, seed + 1, ...``, each simulated alone and
    then ``B`` at a time as one batch (``network.batch``), same process, same
    threads: simulation time, throughput (simulated network-seconds per
    second), speed-up over running the batch's networks one after the other,
    and whether every network of the batch fired exactly its spikes alone."""
    import torch

    from ..artifacts import SCALING_BATCH
    from ..network.api import load_surrogates
    from ..network.batch import BatchedNetwork
    from ..network.run import network_wiring
    from ..network.simulate import SurrogateNetwork
    from ..network.spec import build_network

    sizes = sorted(int(b) for b in sizes)
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes {sizes}: at least one, each at least 1")
    torch.set_num_threads(int(threads))
    loaded = load_surrogates(checkpoints)
    seeds = [int(seed) + i for i in range(sizes[-1])]
    wirings = []
    for s in seeds:
        net = build_network(spec, scenario=scenario, condition="default", seed=s)
        wirings.append(network_wiring(net, tstop=tstop, bin_ms=spec["bin_ms"]))
    n_cells = sum(wirings[0].n_cells(t) for t in wirings[0].cell_types)
    log.info("%d networks of %d cells, %.0f ms each; batches %s, %d thread(s)", len(seeds),
             n_cells, tstop, sizes, threads)
    peak_before = matmul_peak_gflops(threads)
    with torch.no_grad():
        SurrogateNetwork(wirings[0], loaded).run()               # warm-up of torch itself

        def run_alone():
            outs = [SurrogateNetwork(w, loaded).run() for w in wirings]
            return outs, [sum(o.timings[k] for k in ("model", "deliver", "collect"))
                          for o in outs]

        alone, first = run_alone()
        rec = {k: [] for k in ("sim_s", "prepare_s", "rss", "spikes", "identical", "gflops")}
        for b in sizes:
            batch = BatchedNetwork(wirings[:b], loaded)
            outs = batch.run()
            t = outs[0].timings
            rec["prepare_s"].append(t["prepare"])
            rec["sim_s"].append(sum(t[k] for k in ("model", "deliver", "collect")))
            rec["gflops"].append(batch.network.flops_per_bin() * batch.joined.n_bins
                                 / rec["sim_s"][-1] / 1e9)
            rec["rss"].append(peak_rss_gb())
            rec["spikes"].append([o.spike_times.size for o in outs] + [-1] * (len(seeds) - b))
            rec["identical"].append(int(all(
                np.array_equal(o.spike_gids, a.spike_gids)
                and np.array_equal(o.spike_times, a.spike_times)
                for o, a in zip(outs, alone))))
            log.info("batch of %d: %.2f s (%.2f s warm-up), %.2f GiB peak", b, rec["sim_s"][-1],
                     t["prepare"], rec["rss"][-1])
        # each network alone before and after the batches, the faster counts
        _, second = run_alone()
    alone_s = np.minimum(first, second)
    peak = max(peak_before, matmul_peak_gflops(threads))
    bound = np.array(rec["gflops"]) / peak
    for s, a, o in zip(seeds, alone_s, alone):
        log.info("seed %d alone: %.2f s, %d spikes", s, a, o.spike_times.size)
    sim_s = np.array(rec["sim_s"])
    b = np.array(sizes)
    throughput = b * tstop / 1e3 / sim_s
    speedup = np.array([alone_s[:k].sum() for k in sizes]) / sim_s
    attrs = provenance_attrs()
    attrs.update(mesh=int(spec["mesh_shape"][0]), n_cells=int(n_cells), tstop_ms=float(tstop),
                 scenario=scenario, threads=int(threads), device=cpu_name(),
                 matmul_peak_gflops=float(peak))
    ds = SCALING_BATCH.build(
        {"sim_s": sim_s, "prepare_s": np.array(rec["prepare_s"]), "alone_sim_s": alone_s,
         "throughput": throughput, "speedup": speedup, "peak_rss_gb": np.array(rec["rss"]),
         "spikes_batched": np.array(rec["spikes"], np.int64),
         "spikes_alone": np.array([a.spike_times.size for a in alone], np.int64),
         "identical": np.array(rec["identical"], np.int64), "bound_fraction": bound},
        {"batch": b.astype(np.int64), "seed": np.asarray(seeds, np.int64)}, attrs)
    lines = [f"Batched networks: {n_cells}-cell network ({scenario}, {tstop:.0f} ms), drive "
             f"seeds {seeds[0]}-{seeds[-1]}, {threads} thread(s), {cpu_name()}. Simulation time "
             "(set-up and warm-up apart); alone: the batch's networks one after the other.", "",
             "| networks | batch (s) | alone, summed (s) | speed-up | network-s per s "
             f"| share of the {peak:.0f} GFLOP/s matmul peak | warm-up (s) | peak GiB "
             "| spikes as alone |", "|---|---|---|---|---|---|---|---|---|"]
    for i, k in enumerate(sizes):
        lines.append(f"| {k} | {sim_s[i]:.2f} | {alone_s[:k].sum():.2f} | {speedup[i]:.2f}x | "
                     f"{throughput[i]:.3f} | {bound[i]:.2f} | {rec['prepare_s'][i]:.2f} | "
                     f"{rec['rss'][i]:.2f} | {'yes' if rec['identical'][i] else 'no'} |")
    lines += ["", f"SCALING_BATCH batch {sizes[-1]}: {speedup[-1]:.2f}x the throughput of one "
                  f"network at a time ({throughput[-1]:.3f} vs {throughput[0] / speedup[0]:.3f} "
                  "network-s per s)"]
    text = SCALING_BATCH.publish(ds, out, "\n".join(lines), table)
    if figure is not None:
        plot_batch(ds, figure)
    return text


def plot_batch(ds, path):
    """Throughput and speed-up against batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = ds["batch"].values
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].plot(b, ds["throughput"].values, "o-")
    axes[0].set(xscale="log", xlabel="networks per batch", ylabel="simulated network-s per s",
                title=f"{ds.attrs['n_cells']}-cell networks")
    axes[1].plot(b, ds["speedup"].values, "o-")
    axes[1].plot(b, b, ":", color="0.5", label="ideal")
    axes[1].set(xscale="log", yscale="log", xlabel="networks per batch",
                ylabel="speed-up over one at a time")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
