"""The network benchmark: one network run, hnn-core in NEURON against the surrogates.

Side by side in one run on the same machine: the surrogates in this process
on one core (torch with 1 thread), then NEURON on 1 MPI rank and on 2 (each
its own ``mpiexec`` program running ``hnn-surrogate network-neuron``), then
the surrogates again; their median run counts. Wall
times cover building the network in the simulator and simulating it: for
NEURON hnn-core's ``NetworkBuilder`` and run, for the surrogates the wiring
(every connection and drive event) and run.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..artifacts import NETWORK_BENCHMARK, NETWORK_RUN
from ..provenance import provenance_attrs
from ..network.runs import run_surrogate_network

log = logging.getLogger(__name__)


def run_network_benchmark(spec, *, scenario, checkpoints, out, seed, repeats, table=None,
                          mpiexec="mpiexec", ranks=(1, 2)):
    """Time the surrogate network ``repeats`` times (the first half before the
    NEURON runs, the rest after, each building its network anew) and NEURON once
    per entry of ``ranks``; the surrogate's median counts (a load passing on a
    shared machine moves a 2 s run much more than a 3 min one). Every repeat
    must give the same spikes."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: at least 1")
    runs, walls, cores, spikes = [], [], [], []
    sur_walls, sur = [], None
    with tempfile.TemporaryDirectory() as tmp:

        def surrogate(n):
            nonlocal sur
            for _ in range(n):
                ds = run_surrogate_network(spec, scenario=scenario, condition="default", seed=seed,
                                           checkpoints=checkpoints,
                                           out=Path(tmp) / "surrogate.nc", threads=1)
                if sur is not None and not (
                        np.array_equal(ds["spike_gid"].values, sur["spike_gid"].values)
                        and np.array_equal(ds["spike_time"].values, sur["spike_time"].values)):
                    raise RuntimeError("the surrogate network gave other spikes when repeated")
                sur = ds
                sur_walls.append(float(ds.attrs["wall_s"]))
                log.info("surrogate run %d/%d: %.2f s", len(sur_walls), repeats, sur_walls[-1])

        # the surrogates first, on the machine as NEURON will find it (not in
        # the wake of the MPI jobs), and again after NEURON
        surrogate(-(-repeats // 2))
        n_cells = int(sur["n_cells"].sum())
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        for n in ranks:
            path = Path(tmp) / f"neuron_{n}.nc"
            cmd = [*mpiexec.split(), "-n", str(n), sys.executable, "-m", "hnn_surrogate",
                   "network-neuron", "--spec", str(spec_file), "--scenario", scenario,
                   "--condition", "default", "--seed", str(seed), "--out", str(path)]
            log.info("NEURON on %d rank(s): %s", n, " ".join(cmd))
            subprocess.run(cmd, check=True)
            ds = NETWORK_RUN.read(path)
            runs.append(f"neuron_{n}rank{'s' if n > 1 else ''}")
            walls.append(float(ds.attrs["wall_s"]))
            cores.append(n)
            spikes.append(ds.sizes["spike"])
        surrogate(repeats // 2)
        runs.append("surrogate")
        walls.append(float(np.median(sur_walls)))
        cores.append(1)
        spikes.append(sur.sizes["spike"])
    walls = np.array(walls)
    speedup = walls[0] / walls
    attrs = provenance_attrs(seed=int(seed))
    attrs.update(tstop_ms=float(spec["scenarios"][scenario]["tstop"]), n_cells=n_cells,
                 scenario=scenario, device="cpu, 1 thread")
    res = NETWORK_BENCHMARK.build(
        {"wall_s": walls, "cores": np.array(cores, np.int32), "speedup": speedup,
         "n_spikes": np.array(spikes, np.int64), "surrogate_wall_s": np.array(sur_walls)},
        {"run": runs}, attrs)
    lines = [f"Network benchmark: {n_cells} cells, {attrs['tstop_ms']:.0f} ms, "
             f"scenario {scenario}", "",
             "| run | cores | wall (s) | spikes | speed-up vs NEURON 1 rank |",
             "|---|---|---|---|---|"]
    for r, c, w, s, x in zip(runs, cores, walls, spikes, speedup):
        lines.append(f"| {r} | {c} | {w:.2f} | {s} | {x:.1f}x |")
    lines += ["", f"surrogate: median of {len(sur_walls)} runs, "
                  + ", ".join(f"{w:.2f}" for w in sur_walls) + " s (half before NEURON's, "
                  "half after)",
              "", f"surrogate vs NEURON on one core: {speedup[-1]:.1f}x faster "
                  f"(vs NEURON on 2 ranks: {walls[1] / walls[-1]:.1f}x; target >= 100x)"]
    return NETWORK_BENCHMARK.publish(res, out, "\n".join(lines), table)
