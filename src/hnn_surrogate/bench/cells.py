"""NEURON single-cell throughput per cell type, and the MPI speed-up of a shard.

For each cell type the same shard (same seeds, same input) runs once with 1
MPI rank and once with 2, through the same launcher a cluster would use. The
time measured is the shard's simulation phase, from a barrier after NEURON is
loaded to the gather on rank 0 (the ``wall_s`` attribute of the shard), so
interpreter start-up does not count. The two outputs must hold identical arrays.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..artifacts import CELL_SIMS, CELLS_BENCHMARK, write_json
from ..provenance import provenance_attrs

log = logging.getLogger(__name__)
RANKS = (1, 2)


def same_arrays(a, b) -> bool:
    """True when two cell_sims datasets hold identical variables (attrs aside)."""
    if set(a.variables) != set(b.variables):
        return False
    return all(np.array_equal(a[v].values, b[v].values) for v in a.variables)


def run_cells_benchmark(*, cell_types, calibrations, regime_name, regime, n_sims, tstop,
                        dt, bin_ms, delay, seed, mpiexec="mpiexec", out, table=None):
    """Run the benchmark, write ``out`` (NetCDF) and return the printed table."""
    wall = np.zeros((len(cell_types), len(RANKS)))
    identical = np.zeros(len(cell_types), dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="bench_cells_") as tmp:
        regime_file = write_json(regime, Path(tmp) / "regime.json")
        for i, (cell_type, cal) in enumerate(zip(cell_types, calibrations)):
            shards = []
            for j, ranks in enumerate(RANKS):
                path = Path(tmp) / f"{cell_type}_{ranks}.nc"
                cmd = [*shlex.split(mpiexec), "-n", str(ranks), sys.executable, "-m",
                       "hnn_surrogate", "simulate-shard", "--cell-type", cell_type,
                       "--regime", regime_name, "--regime-file", str(regime_file),
                       "--calibration", str(cal), "--first", "0", "--count", str(n_sims),
                       "--tstop", str(tstop), "--dt", str(dt), "--bin-ms", str(bin_ms),
                       "--delay", str(delay), "--seed", str(seed), "--out", str(path)]
                log.info("%s, %d rank(s): %s", cell_type, ranks, shlex.join(cmd))
                subprocess.run(cmd, check=True)
                shards.append(CELL_SIMS.read(path))
                wall[i, j] = float(shards[-1].attrs["wall_s"])
            identical[i] = same_arrays(*shards)
    ranks = np.array(RANKS, dtype=np.int32)
    rate = n_sims * tstop / wall / ranks[None, :]
    speedup = wall[:, 0] / wall[:, 1]
    attrs = provenance_attrs(seed=seed)
    attrs.update(tstop_ms=tstop, n_sims=n_sims, regime=regime_name, mpiexec=mpiexec)
    ds = CELLS_BENCHMARK.build(
        {"wall_s": wall, "ms_per_s_per_core": rate, "speedup": speedup,
         "efficiency": speedup / 2, "identical": identical},
        {"cell_type": np.array(cell_types, dtype=object), "ranks": ranks},
        attrs,
    )
    return CELLS_BENCHMARK.publish(ds, out, format_table(ds), table)


def format_table(ds) -> str:
    """Markdown table of a cells_benchmark dataset."""
    lines = [
        f"NEURON single-cell throughput, {ds.attrs['n_sims']} x {ds.attrs['tstop_ms']:g} ms "
        f"per cell type ({ds.attrs['regime']} regime)",
        "",
        "| cell type | 1 rank: sim ms / s / core | 2 ranks: sim ms / s / core "
        "| speed-up 1 -> 2 ranks | MPI efficiency | identical arrays |",
        "|---|---|---|---|---|---|",
    ]
    for i, ct in enumerate(ds["cell_type"].values):
        r = ds["ms_per_s_per_core"].values[i]
        lines.append(
            f"| {ct} | {r[0]:.0f} | {r[1]:.0f} | {ds['speedup'].values[i]:.2f}x "
            f"| {100 * ds['efficiency'].values[i]:.0f} % "
            f"| {'yes' if ds['identical'].values[i] else 'NO'} |"
        )
    return "\n".join(lines)
