"""Per-cell-type datasets: shards merged, split into train/val/test by simulation or
by network run."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import xarray as xr

from .artifacts import CELL_SIMS, ArtifactError
from .cells.inputs import name_code
from .provenance import provenance_attrs

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SAME_ATTRS = ("cell_type", "dt_ms", "bin_ms", "tstop_ms", "synaptic_delay_ms", "seed")


def split_counts(n_units: int, fractions) -> tuple[int, int, int]:
    """(train, val, test) units of a regime with ``n_units`` split by ``fractions``."""
    fr = np.asarray([fractions[s] for s in SPLITS], dtype=float)
    n_val = int(round(fr[1] / fr.sum() * n_units))
    n_test = int(round(fr[2] / fr.sum() * n_units))
    return n_units - n_val - n_test, n_val, n_test


def split_units(regimes, sim_index, runs) -> list:
    """The unit each simulation is split with, as (regime, unit): its network run
    where ``runs >= 0`` (all cells of a run go to one split), else its own
    ``sim_index``."""
    runs = np.asarray(runs)
    unit = np.where(runs >= 0, runs, np.asarray(sim_index))
    return list(zip(np.asarray(regimes).astype(str).tolist(), unit.tolist()))


def assign_splits(regimes, sim_index, *, fractions, seed, runs=None):
    """Split label of each simulation, stratified by regime, seeded.

    The units split are simulations, or whole network runs: a simulation with
    ``runs >= 0`` is a cell of that network run (replay and network_prior
    regimes), and all cells of a run go to one split, so held-out data holds
    out whole runs. Within each regime the units are ordered (by run, or by
    ``sim_index``), permuted by a generator seeded with (seed, regime) and cut
    by ``fractions`` (train, val, test): a unit's split depends only on the seed,
    its regime, its index and how many units the regime has.

    Returns
    -------
    array of str, shape (n_sims,)
    """
    regimes = np.asarray(regimes).astype(str)
    sim_index = np.asarray(sim_index)
    runs = np.full(regimes.size, -1) if runs is None else np.asarray(runs)
    unit = np.array([u for _, u in split_units(regimes, sim_index, runs)], dtype=np.int64)
    labels = np.empty(regimes.size, dtype=object)
    for regime in np.unique(regimes):
        pos = np.flatnonzero(regimes == regime)
        if len(set((runs[pos] >= 0).tolist())) > 1:
            raise ArtifactError(f"regime {regime!r} mixes network-run cells and lone cells")
        units, which = np.unique(unit[pos], return_inverse=True)
        perm = np.random.default_rng([seed, name_code(regime), name_code("split")]).permutation(units.size)
        n_train, n_val, n_test = split_counts(units.size, fractions)
        cuts = np.empty(units.size, dtype=object)
        cuts[perm] = np.repeat(np.array(SPLITS, dtype=object), [n_train, n_val, n_test])
        labels[pos] = cuts[which]
    return labels


TEACHER_JOB = "teacher/"
"""Prefix of a job that is the training of a closed_loop regime's teacher
surrogate (``teacher/<cell type>/<sha256>/train``) or its data's merge
(``.../merge``), among the NEURON jobs its data lists: a cost of the data that
is not a NEURON run."""
TEACHER_MERGE = "/merge"
"""Suffix of a teacher's job that is its data's merge (data, not training)."""


def neuron_jobs(shards) -> dict | None:
    """What the shards cost in NEURON: {job: wall clock (s)}, one entry per job.

    A job is keyed by the shard's config hash and its network run (every cell
    type's shard of one network run comes from one job, so the key is shared
    and a union over cell types counts the run once) or, for lone cells, its
    cell type and first simulation. A replay shard adds the NEURON network
    runs it replays, a closed_loop shard what its teacher surrogates cost
    (``source_neuron_jobs``), each once. None where a shard does not record its
    wall clock, or a replay or closed_loop shard its sources (made before they
    did, or a teacher that does not record its cost), or a lone-cell shard its
    first simulation: the cost is then unknown, not zero.
    """
    jobs = {}
    for ds in shards:
        a = ds.attrs
        sourced = bool({"replay", "closed_loop"} & set(ds["regime"].values.astype(str).tolist()))
        if ("wall_s" not in a or (sourced and "source_neuron_jobs" not in a)
                or ("network_run" not in a and "first_sim" not in a)):
            return None
        key = (f"{a['config_hash']}/run{a['network_run']}" if "network_run" in a
               else f"{a['config_hash']}/{a['cell_type']}/{a['first_sim']}")
        jobs[key] = round(float(a["wall_s"]), 3)
        if "source_neuron_jobs" in a:
            jobs.update({k: round(float(v), 3)
                         for k, v in json.loads(str(a["source_neuron_jobs"])).items()})
    return jobs


def merge_shards(shard_paths, out, *, fractions, seed):
    """Merge ``cell_sims`` shards of one cell type into one dataset with a split.

    Every shard must agree on cell type, time grid, channels and seed, and no
    (regime, sim_index) may appear twice; otherwise ArtifactError names the file.
    """
    if not shard_paths:
        raise ArtifactError("merge_shards: no shard files given")
    t0 = time.perf_counter()
    shards = [CELL_SIMS.read(p) for p in shard_paths]
    first = shards[0]
    for path, ds in zip(shard_paths[1:], shards[1:]):
        for attr in _SAME_ATTRS:
            if ds.attrs[attr] != first.attrs[attr]:
                raise ArtifactError(
                    f"{path}: {attr} is {ds.attrs[attr]}, but {shard_paths[0]} has "
                    f"{first.attrs[attr]}"
                )
        if not np.array_equal(ds["channel"].values, first["channel"].values):
            raise ArtifactError(f"{path}: channels differ from {shard_paths[0]}")
        if set(ds.data_vars) != set(first.data_vars):
            raise ArtifactError(
                f"{path}: holds {sorted(set(ds.data_vars) ^ set(first.data_vars))} where "
                f"{shard_paths[0]} does not, or lacks them (one cells.store_fine and "
                f"cells.record_sections for every shard)")
    keys = [(r, i) for ds in shards for r, i in zip(ds["regime"].values, ds["sim_index"].values)]
    if len(set(keys)) != len(keys):
        raise ArtifactError("merge_shards: a (regime, sim_index) appears in two shards")

    jobs = neuron_jobs(shards)           # before the loop below empties the shards
    ragged = {"event": "event_sim", "spike": "spike_sim"}
    offsets = np.cumsum([0] + [ds.sizes["sim"] for ds in shards[:-1]])
    coords = {c: first[c].values for c in first.coords}
    data = {}
    # one variable at a time, each shard's copy dropped once it is joined: the
    # peak is the data once plus one variable, not twice the data (a 90-run
    # pyramidal merge held 16.8 GB and two side by side ran out of memory;
    # ``merge-cells`` also gives the freed parts back: alloc.release_freed_memory)
    for v in list(first.data_vars):
        if first[v].dims[:1] == ("sim",):
            data[v] = np.concatenate([ds[v].values for ds in shards])
        elif first[v].ndim == 1 and first[v].dims[0] in ragged:
            shift = ragged[first[v].dims[0]] == v
            data[v] = np.concatenate([ds[v].values + (off if shift else 0)
                                      for ds, off in zip(shards, offsets)]).astype(first[v].dtype)
        else:
            continue
        for ds in shards:
            del ds[v]
    data["split"] = assign_splits(data["regime"], data["sim_index"], fractions=fractions, seed=seed,
                                  runs=data["run"])
    attrs = {k: first.attrs[k] for k in _SAME_ATTRS}
    attrs.update(provenance_attrs(seed=first.attrs["seed"]))
    attrs["config_hash"] = ",".join(sorted({str(ds.attrs["config_hash"]) for ds in shards}))
    attrs["split_fractions"] = ",".join(f"{s}={fractions[s]}" for s in SPLITS)
    if jobs is not None:
        attrs["neuron_jobs"] = json.dumps(jobs, sort_keys=True)
    attrs["merge_wall_s"] = time.perf_counter() - t0   # reading and splitting; not the write
    merged = CELL_SIMS.build(data, coords, attrs)
    CELL_SIMS.write(merged, out)
    counts = {s: int((data["split"] == s).sum()) for s in SPLITS}
    log.info("wrote %s: %d simulations %s", out, merged.sizes["sim"], counts)
    return merged


def open_cell_dataset(path) -> xr.Dataset:
    """Read a merged per-cell-type dataset (validated; must carry a split)."""
    ds = CELL_SIMS.read(path)
    if "split" not in ds:
        raise ArtifactError(f"{path}: has no 'split' variable; is it a shard, not a merged dataset?")
    return ds
