"""Shards: identical whatever the rank count or shard size; written atomically."""

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from hnn_surrogate.artifacts import CELL_SIMS, write_json
from hnn_surrogate.bench.cells import same_arrays
from hnn_surrogate.cells.calibrate import read_reference
from hnn_surrogate.cells.shard import simulate_shard
from hnn_surrogate.config import validate_config

CFG = validate_config({})
MIXED = CFG["cells"]["regimes"]["suprathreshold"]
KW = dict(tstop=60.0, dt=0.025, bin_ms=0.5, delay=0.1, seed=11)


def _cli_shard(calibration, out, ranks, cell_type, first=0, count=5):
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, "-m", "hnn_surrogate",
           "simulate-shard", "--cell-type", cell_type, "--regime", "suprathreshold",
           "--regime-file", str(write_json(MIXED, Path(out).with_suffix(".json"))),
           "--calibration", str(calibration),
           "--first", str(first), "--count", str(count), "--tstop", str(KW["tstop"]),
           "--bin-ms", "0.5", "--dt", str(KW["dt"]),
           "--delay", str(KW["delay"]), "--seed", str(KW["seed"]), "--store-fine", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return CELL_SIMS.read(out)


@pytest.mark.parametrize("cell_type", ["L5_pyramidal", "L2_basket"])
def test_one_and_two_mpi_ranks_give_identical_arrays(calibration, tmp_path, cell_type):
    cal = calibration(cell_type)
    one = _cli_shard(cal, tmp_path / "one.nc", 1, cell_type)
    two = _cli_shard(cal, tmp_path / "two.nc", 2, cell_type)
    assert one.attrs["mpi_ranks"] == 1 and two.attrs["mpi_ranks"] == 2
    assert same_arrays(one, two)
    assert one.sizes["sim"] == 5
    assert one["n_spikes"].sum() > 0  # suprathreshold input: the comparison covers spikes


def test_shard_size_does_not_change_the_numbers(calibration):
    ref = read_reference(calibration("L2_pyramidal"), "L2_pyramidal")
    common = dict(cell_type="L2_pyramidal", regime_name="suprathreshold", regime=MIXED,
                  reference=ref, store_fine=False, **KW)
    whole = simulate_shard(first=0, count=3, **common)
    head = simulate_shard(first=0, count=2, **common)
    tail = simulate_shard(first=2, count=1, **common)
    for var in ("inputs", "v_soma", "dipole", "spike_count"):
        np.testing.assert_array_equal(whole[var].values[:2], head[var].values)
        np.testing.assert_array_equal(whole[var].values[2:], tail[var].values)
    np.testing.assert_array_equal(whole["sim_index"].values, [0, 1, 2])


def test_shard_contents_are_consistent(calibration, tmp_path):
    ds = _cli_shard(calibration("L5_pyramidal"), tmp_path / "s.nc", 2, "L5_pyramidal", count=3)
    assert ds.attrs["cell_type"] == "L5_pyramidal"
    assert ds["inputs"].dims == ("sim", "time", "channel")
    assert ds.sizes["time"] == 120 and ds.sizes["time_fine"] == 2400
    assert ds["v_soma"].attrs["units"] == "mV" and ds["dipole"].attrs["units"] == "nAm"
    # The binned input is exactly the binned events (arrival = time + delay).
    for s in range(3):
        ev = ds["event_sim"].values == s
        b = np.floor((ds["event_time"].values[ev] + 0.1) / 0.5).astype(int)
        keep = b < 120
        dense = np.zeros((120, ds.sizes["channel"]))
        np.add.at(dense, (b[keep], ds["event_channel"].values[ev][keep]),
                  ds["event_weight"].values[ev][keep])
        np.testing.assert_allclose(ds["inputs"].values[s], dense, rtol=1e-6)
        assert ds["n_spikes"].values[s] == (ds["spike_sim"].values == s).sum()
        assert ds["spike_count"].values[s].sum() == ds["n_spikes"].values[s]
    # Binned voltage is the mean of the fine trace over each bin.
    np.testing.assert_allclose(ds["v_soma"].values[0],
                               ds["v_soma_fine"].values[0].reshape(120, 20).mean(1), rtol=1e-5)
