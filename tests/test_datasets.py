import json

import numpy as np
import pytest

from hnn_surrogate.artifacts import CELL_SIMS, ArtifactError
from hnn_surrogate.datasets import assign_splits, merge_shards, open_cell_dataset
from hnn_surrogate.cells.shard import assemble

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _shard(tmp_path, regime, indices, cell_type="L2_basket", seed=1):
    rng = np.random.default_rng(indices[0])
    results = [dict(inputs=rng.random((4, 3), dtype=np.float32), v_soma=rng.random(4),
                    spike_count=np.zeros(4, np.int8), spike_time=np.array([0.5 * i]),
                    event_channel=np.array([i % 3]), event_time=np.array([1.0]),
                    event_weight=np.array([0.1])) for i in indices]
    ds = assemble(results, cell_type=cell_type, regime_name=regime, indices=indices,
                  tstop=2.0, dt=0.025, bin_ms=0.5, delay=0.1, seed=seed, params_hash="h")
    return CELL_SIMS.write(ds, tmp_path / f"{regime}_{indices[0]}_{cell_type}_{seed}.nc")


def test_merge_concatenates_offsets_ragged_and_splits(tmp_path):
    shards = [_shard(tmp_path, "a", [0, 1, 2]), _shard(tmp_path, "a", [3, 4]),
              _shard(tmp_path, "b", [0, 1, 2, 3, 4])]
    merged = merge_shards(shards, tmp_path / "m.nc", fractions=FRACTIONS, seed=5)
    back = open_cell_dataset(tmp_path / "m.nc")
    assert back.sizes["sim"] == 10
    np.testing.assert_array_equal(back["event_sim"].values, np.arange(10))
    np.testing.assert_array_equal(back["spike_sim"].values, np.arange(10))
    for regime in ("a", "b"):
        labels = back["split"].values[back["regime"].values == regime]
        assert sorted(labels) == ["test", "train", "train", "train", "val"]
    assert merged.attrs["split_fractions"] == "train=0.6,val=0.2,test=0.2"


def test_split_depends_on_seed_not_on_shard_layout():
    regimes = np.array(["a"] * 20 + ["b"] * 20)
    idx = np.r_[np.arange(20), np.arange(20)]
    one = assign_splits(regimes, idx, fractions=FRACTIONS, seed=3)
    shuffled = np.random.default_rng(0).permutation(40)
    two = assign_splits(regimes[shuffled], idx[shuffled], fractions=FRACTIONS, seed=3)
    np.testing.assert_array_equal(one[shuffled], two)
    assert not np.array_equal(one, assign_splits(regimes, idx, fractions=FRACTIONS, seed=4))


def test_merge_rejects_inconsistent_shards(tmp_path):
    a = _shard(tmp_path, "a", [0, 1])
    with pytest.raises(ArtifactError, match="appears in two shards"):
        merge_shards([a, a], tmp_path / "m.nc", fractions=FRACTIONS, seed=1)
    other_seed = _shard(tmp_path, "a", [2, 3], seed=2)
    with pytest.raises(ArtifactError, match="seed is 2"):
        merge_shards([a, other_seed], tmp_path / "m.nc", fractions=FRACTIONS, seed=1)
    with pytest.raises(ArtifactError, match="has no 'split'"):
        open_cell_dataset(a)
    assert not (tmp_path / "m.nc").exists()


def _costed(path, out, **attrs):
    ds = CELL_SIMS.read(path)
    ds.attrs.update(attrs)
    return CELL_SIMS.write(ds, out)


def test_merge_records_each_neuron_job_once_and_an_unknown_cost_as_unknown(tmp_path):
    from hnn_surrogate.datasets import neuron_jobs

    # two cell types' shards of one network run come from one job: one key
    run_a = _costed(_shard(tmp_path, "net", [0], "L2_basket"), tmp_path / "ra.nc",
                    wall_s=100.0, network_run=3)
    run_b = _costed(_shard(tmp_path, "net", [0], "L5_basket"), tmp_path / "rb.nc",
                    wall_s=100.0, network_run=3)
    lone = _costed(_shard(tmp_path, "a", [0, 1]), tmp_path / "lone.nc", wall_s=7.5,
                   first_sim=0)
    read = [CELL_SIMS.read(p) for p in (run_a, run_b, lone)]
    assert neuron_jobs(read) == {"h/run3": 100.0, "h/L2_basket/0": 7.5}
    merged = merge_shards([run_a, lone], tmp_path / "m.nc", fractions=FRACTIONS, seed=1)
    assert json.loads(merged.attrs["neuron_jobs"]) == {"h/run3": 100.0, "h/L2_basket/0": 7.5}
    # a shard from before shards recorded their wall clock: the cost is unknown
    old = merge_shards([_shard(tmp_path, "b", [0, 1]), lone], tmp_path / "o.nc",
                       fractions=FRACTIONS, seed=1)
    assert "neuron_jobs" not in old.attrs


def test_merge_cells_gives_freed_arrays_back_to_the_kernel_on_glibc():
    """``release_freed_memory`` (what ``merge-cells`` starts with), in child
    processes: after one 8 MB block freed, glibc serves the next ones from its
    heap, and 40 of them freed between small blocks that stay keep 320 MB
    resident; released, each is its own mmap and goes back to the kernel."""
    import platform
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/statm").exists():
        pytest.skip("resident memory is read from /proc (Linux)")

    def run(release):
        code = (
            "import numpy as np\n"
            "from hnn_surrogate.alloc import release_freed_memory\n"
            "def rss():\n"
            "    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20\n"
            f"ok = release_freed_memory() if {release} else None\n"
            "first = np.ones(1 << 20)\n"
            "del first\n"
            "before = rss()\n"
            "parts, kept = [], []\n"
            "for _ in range(40):\n"
            "    parts.append(np.ones(1 << 20))\n"
            "    kept.append(np.ones(1000))\n"
            "full = rss()\n"
            "del parts\n"
            "print(ok, round(full - before), round(rss() - before))\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=True).stdout.split()

    released = run(True)
    if platform.libc_ver()[0] != "glibc":
        assert released[0] == "False"
        return
    assert released[0] == "True"
    assert int(released[1]) >= 300 and int(released[2]) <= 20
    as_is = run(False)
    assert int(as_is[1]) >= 300 and int(as_is[2]) >= 300     # the case the setting is for
