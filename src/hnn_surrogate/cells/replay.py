"""The ``replay`` regime: lone cells fed the input cells received in NEURON networks.

The random regimes never deliver what a network does: synchronous, recurrent
bursts of excitation and inhibition locked to the population rhythm. Under that
input the surrogates trained on them misfire (issue 4's open loop). This regime
takes its input from NEURON runs of hnn-core networks (the config's network
scenarios and conditions, at drive seeds kept apart from the comparison's):
``network.replay.write_received_events`` lists every event each cell received,
and simulation ``i`` replays to a lone cell the input of one network cell.

Which cell: run ``i % n_runs`` (runs in the order given), and position
``i // n_runs`` of a seeded permutation of that run's cells of the type,
``default_rng([seed, crc32(cell type), crc32("replay"), run])``. So no cell's
input is used twice, and simulation ``i`` is the same whatever shard or rank
runs it. Replayed alone, a cell fires as it did in the network (within
0.05 ms, tests/test_network.py).
"""

from __future__ import annotations

import numpy as np

from ..artifacts import REPLAY_EVENTS
from .inputs import name_code

REGIME = "replay"


def presynaptic(channel, arrival, weight, delay: float):
    """Events that arrive at ``arrival`` (ms) as a lone cell's input: (channel int32,
    presynaptic time = arrival - ``delay`` (the cells stage's synaptic delay, which
    the cell's NetCons add back), at least 0, float64, weight float32), in time order."""
    time = np.maximum(np.asarray(arrival, dtype=np.float64) - float(delay), 0.0)
    order = np.argsort(time, kind="stable")
    return (np.asarray(channel)[order].astype(np.int32), time[order],
            np.asarray(weight)[order].astype(np.float32))


class ReplayInputs:
    """Input of each simulation of the replay regime of one cell type.

    Parameters
    ----------
    paths : list of paths
        ``replay_events`` files, one per network run, in config order.
    cell_type : str
    seed : int
        The global seed.
    delay : float
        The cells stage's synaptic delay (ms): presynaptic time = arrival - delay.
    """

    def __init__(self, paths, cell_type: str, seed: int, delay: float):
        self.paths = [str(p) for p in paths]
        if not self.paths:
            raise ValueError("the replay regime needs at least one replay_events file")
        self.cell_type, self.delay = cell_type, float(delay)
        self.runs, self.order, self.offsets = [], [], []
        for r, path in enumerate(self.paths):
            ds = REPLAY_EVENTS.read(path)
            cells = np.flatnonzero(ds["cell_type"].values.astype(str) == cell_type)
            if not cells.size:
                raise ValueError(f"{path}: the network has no {cell_type} cell")
            # The writer lists each cell's events together, in cell order: a cell's
            # events are one slice, found from the per-cell counts.
            offsets = np.r_[0, np.cumsum(ds["n_events"].values)]
            if not np.array_equal(ds["event_cell"].values,
                                  np.repeat(np.arange(ds.sizes["cell"]), np.diff(offsets))):
                raise ValueError(f"{path}: events are not grouped by cell as n_events says")
            rng = np.random.default_rng([seed, name_code(cell_type), name_code(REGIME), r])
            self.runs.append(ds)
            self.order.append(rng.permutation(cells))
            self.offsets.append(offsets)

    @property
    def capacity(self) -> int:
        """Most simulations this set of runs can give without reusing a cell."""
        return len(self.runs) * min(len(o) for o in self.order)

    def _locate(self, index: int) -> tuple[int, int]:
        """(run, position on the run's cell list) of simulation ``index``."""
        r, k = index % len(self.runs), index // len(self.runs)
        if k >= len(self.order[r]):
            raise ValueError(
                f"replay simulation {index} of {self.cell_type}: run {self.paths[r]} has only "
                f"{len(self.order[r])} {self.cell_type} cells; lower cells.replay.n_sims or add "
                f"network runs (cells.replay.seeds, scenarios or conditions)")
        return r, int(self.order[r][k])

    def run_of(self, index: int) -> int:
        """Position (in the given runs) of the network run simulation ``index`` replays."""
        return self._locate(index)[0]

    def neuron_jobs(self) -> dict | None:
        """{job: wall clock (s)} of the NEURON network runs replayed; None when a
        file does not record it (made before events files did)."""
        attrs = [ds.attrs for ds in self.runs]
        if any("source_wall_s" not in a for a in attrs):
            return None
        return {str(a["source_job"]): float(a["source_wall_s"]) for a in attrs}

    def source(self, index: int) -> tuple[str, int]:
        """(run file, gid) whose input simulation ``index`` replays."""
        r, cell = self._locate(index)
        return self.paths[r], int(self.runs[r]["gid"].values[cell])

    def events(self, index: int, tstop: float):
        """(channel int32, presynaptic time float64, weight float32) of simulation ``index``."""
        r, cell = self._locate(index)
        ds, mine = self.runs[r], slice(*self.offsets[r][cell:cell + 2])
        arrival = ds["event_arrival"].values[mine]
        keep = arrival < tstop
        return presynaptic(ds["event_channel"].values[mine][keep], arrival[keep],
                           ds["event_weight"].values[mine][keep], self.delay)
