"""The ``closed_loop`` regime: NEURON's answer to the input the surrogate network makes.

Trained on NEURON networks' input, the surrogates are close to NEURON cell by
cell (open loop), but in a network their own spikes become each other's input,
and a small error, repeated around the loop, moves the network to where no
training example lies (docs/measurements/network.md: the rhythm's peak goes
from NEURON's 6 Hz to 29-44 Hz). This regime puts training examples there
(dataset aggregation, as in imitation learning): a network drawn from
network_prior's prior (its own generator and drive seeds, ``regime_prior(...,
"closed_loop")``) is run with the given surrogates (the teacher); every cell's
input in that run (``network.replay.received_events``: the surrogates' spikes
through hnn-core's wiring, and the drives) is played to the lone cell in
NEURON; the cell's NEURON response is the target. So the data is where the
surrogate network goes, and its targets are what NEURON's cells do there.

One job per run: rank 0 runs the surrogate network and broadcasts its spikes;
every rank simulates the lone cells at positions ``rank, rank + R, ...`` of the
run's cell list (all types, gid order), so the shards are the same whatever
the number of ranks. Rank 0 writes one ``cell_sims`` shard per cell type, each
cell one simulation (``run`` = the run, split by run at the merge), with the
teacher's spike count per cell type beside NEURON's in the attributes, and the
teacher's own cost (its data's NEURON jobs and its training) as the shard's
``source_neuron_jobs`` where its checkpoints record it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from .network_prior import (CLOSED_LOOP, base_network, connection_types, draw_run,
                            prior_network)

log = logging.getLogger(__name__)


def file_sha256(path) -> str:
    """The hex sha256 of a file's bytes (a checkpoint's identity in the data's hash)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def teacher_cost(checkpoints, shas) -> dict | None:
    """What the teacher surrogates cost, as ``source_neuron_jobs`` entries: the NEURON
    jobs of their data (a union: a network run shared by cell types counts once),
    and per checkpoint its training and its data's merge
    (``teacher/<cell type>/<sha256>/train`` and ``.../merge``,
    ``datasets.TEACHER_JOB``). None when a checkpoint does not record its cost
    (made before checkpoints did): the data's cost is then unknown, not the
    NEURON part alone. ``shas``: each checkpoint's ``file_sha256``."""
    from ..datasets import TEACHER_JOB, TEACHER_MERGE
    from ..surrogate.checkpoint import recorded_cost

    jobs = {}
    for path, sha in zip(checkpoints, shas):
        cost = recorded_cost(path)
        if cost is None:
            return None
        data, merge_s, train_s = cost
        jobs.update(data)
        key = f"{TEACHER_JOB}{Path(path).stem}/{sha[:16]}"
        jobs[f"{key}/train"], jobs[f"{key}{TEACHER_MERGE}"] = train_s, merge_s
    return jobs


def load_teacher(checkpoints, *, wiring, shas=None) -> tuple[dict, list[str]]:
    """The teacher surrogates by cell type, checked against the network's
    ``wiring``: one per cell type, each of its bin and its cells' channels; and
    each file's sha256, taken as it is loaded (equal to ``shas``, the job's
    parameters, where given: a teacher replaced since the job was planned is
    refused). Every rank calls it before any run, so a bad checkpoint stops every
    rank with the same error (none waits for rank 0)."""
    from ..network.api import load_surrogates

    for path in checkpoints:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such teacher checkpoint")
    found = [file_sha256(p) for p in checkpoints]
    if shas is not None:
        if len(shas) != len(checkpoints):
            raise ValueError(f"{len(shas)} teacher sha256 for {len(checkpoints)} checkpoints")
        for path, want, got in zip(checkpoints, shas, found):
            if want != got:
                raise ValueError(f"teacher checkpoint {path}: sha256 {got[:16]}..., the job "
                                 f"was planned for {want[:16]}... (replaced since?)")
    cell_types, bin_ms = wiring.cell_types, wiring.bin_ms
    loaded = load_surrogates([str(p) for p in checkpoints])
    if set(loaded) != set(cell_types):
        raise ValueError(f"teacher checkpoints {', '.join(map(str, checkpoints))}: cell types "
                         f"{', '.join(sorted(loaded))}, the network has "
                         f"{', '.join(sorted(cell_types))}")
    for t, s in loaded.items():
        if not np.isclose(s.bin_ms, bin_ms):
            raise ValueError(f"teacher checkpoint of {t}: {s.bin_ms} ms bins, the cells "
                             f"stage's are {bin_ms} ms")
        if len(s.channels) != wiring.n_channels[t]:
            raise ValueError(f"teacher checkpoint of {t}: {len(s.channels)} input channels, "
                             f"hnn-core's cell has {wiring.n_channels[t]}")
    return loaded, found


def simulate_closed_loop_run(*, spec: dict, prior: dict, run: int, checkpoints, seed: int,
                             tstop: float, dt: float, bin_ms: float, delay: float,
                             store_fine: bool, record_sections: bool = False,
                             outs: dict | None = None, teacher_sha256=None, comm=None):
    """Run ``run`` of the closed_loop regime (call on every MPI rank).

    ``prior``: ``regime_prior(section, "closed_loop")``; ``checkpoints``: the
    teacher surrogates' files, one per cell type of the network
    (``teacher_sha256``: their sha256, checked before any run). Rank 0 writes
    one ``cell_sims`` shard per cell type (``outs``: {cell type: path}) and
    returns {cell type: Dataset}; the other ranks return None.
    """
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    import torch

    from ..artifacts import CELL_SIMS
    from ..network.replay import received_events
    from ..network.run import network_wiring, simulate_surrogate
    from ..provenance import config_hash
    from .replay import presynaptic
    from .shard import assemble, gather_in_order, run_one
    from .simulate import simulate_cell

    if prior.get("regime") != CLOSED_LOOP:
        raise ValueError(f"prior of regime {prior.get('regime')!r}: a closed_loop run needs "
                         f"regime_prior(..., {CLOSED_LOOP!r})")
    rank, size = comm.Get_rank(), comm.Get_size()
    checkpoints = [str(p) for p in checkpoints]
    draw = draw_run(prior, seed=seed, run=run, tstop=tstop,
                    conn_types=connection_types(base_network(spec)))
    wiring = network_wiring(prior_network(spec, draw), tstop=tstop, bin_ms=bin_ms)
    if wiring.min_delay_clamped:
        # the surrogates deliver such a spike a bin later than NEURON would
        raise ValueError(f"run {run}: {wiring.min_delay_clamped} synapses' delays are under "
                         f"half a bin ({bin_ms} ms): the teacher's input would differ from "
                         "the replayed one")
    teacher, shas = load_teacher(checkpoints, wiring=wiring, shas=teacher_sha256)
    t0 = time.perf_counter()
    spikes, failed = None, None
    if rank == 0:
        threads = torch.get_num_threads()
        try:
            res = simulate_surrogate(prior_network(spec, draw), tstop=tstop, surrogates=teacher,
                                     bin_ms=bin_ms, threads=1)
            spikes = (np.asarray(res.spike_times, float), np.asarray(res.spike_gids, np.int64))
            log.info("run %d: surrogate network %.1f s, %d spikes; drives %s", run,
                     res.wall_s, spikes[0].size, [d["type"] for d in draw["drives"]])
        except Exception as err:  # every rank stops, none waits for rank 0's spikes
            failed = err
        finally:
            torch.set_num_threads(threads)
    spikes, message = comm.bcast((spikes, None if failed is None else repr(failed)), root=0)
    if failed is not None:
        raise failed
    if message is not None:
        raise RuntimeError(f"run {run}: the teacher network failed on rank 0: {message}")
    st, sg = spikes
    surrogate_s = time.perf_counter() - t0
    cells = [(t, g) for t in wiring.cell_types for g in wiring.gid_ranges[t]]
    mine = list(range(len(cells)))[rank::size]
    # NEURON and hnn-core's mechanisms loaded, each type's rate tables filled,
    # outside the timing
    for t in wiring.cell_types:
        simulate_cell(t, event_channel=[], event_time=[], event_weight=[], tstop=bin_ms, dt=dt,
                      delay=delay)
    comm.Barrier()
    t1 = time.perf_counter()
    results = []
    for k, i in enumerate(mine, 1):
        cell_type, gid = cells[i]
        events = presynaptic(*received_events(wiring, gid, st, sg), delay)
        results.append(run_one(cell_type, events, tstop=tstop, dt=dt, bin_ms=bin_ms,
                               delay=delay, store_fine=store_fine,
                               record_sections=record_sections))
        if rank == 0 and (k % 25 == 0 or k == len(mine)):
            log.info("run %d rank 0 of %d: %d/%d lone cells, %.2f s each", run, size, k,
                     len(mine), (time.perf_counter() - t1) / k)
    ordered = gather_in_order(comm, results, len(cells))
    if ordered is None:
        return None
    wall = surrogate_s + (time.perf_counter() - t1)
    sources = teacher_cost(checkpoints, shas)
    params = dict(regime=CLOSED_LOOP, spec=spec, prior=prior, run=run, tstop=tstop, dt=dt,
                  bin_ms=bin_ms, delay=delay, seed=seed, teacher=sorted(shas))
    if record_sections:
        params["record_sections"] = True
    written = {}
    for cell_type in wiring.cell_types:
        gids = list(wiring.gid_ranges[cell_type])
        part = [ordered[i] for i, (t, _) in enumerate(cells) if t == cell_type]
        teacher_spikes = int(np.isin(sg, gids).sum())
        neuron_spikes = int(sum(r["spike_time"].size for r in part))
        first = run * len(gids)
        ds = assemble(part, cell_type=cell_type, regime_name=CLOSED_LOOP,
                      indices=range(first, first + len(gids)), tstop=tstop, dt=dt,
                      bin_ms=bin_ms, delay=delay, seed=seed, params_hash=config_hash(params),
                      runs=np.full(len(gids), run),
                      extra_attrs={"mpi_ranks": size, "wall_s": wall, "network_run": run,
                                   "drive_seed": draw["drive_seed"],
                                   "drives": ",".join(d["type"] for d in draw["drives"]),
                                   "teacher_spikes": teacher_spikes,
                                   "neuron_spikes": neuron_spikes,
                                   **({} if sources is None else
                                      {"source_neuron_jobs": json.dumps(sources,
                                                                        sort_keys=True)})})
        if outs is not None:
            CELL_SIMS.write(ds, outs[cell_type])
        written[cell_type] = ds
        rate = 1000.0 / tstop / len(gids)
        log.info("run %d: %d %s cells, NEURON %.2f Hz, teacher %.2f Hz on the same input",
                 run, len(gids), cell_type, neuron_spikes * rate, teacher_spikes * rate)
    return written
