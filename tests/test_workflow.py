"""The whole pipeline so far, through Snakemake, on the tiny config."""

import subprocess

import numpy as np
import pytest

from hnn_surrogate.artifacts import (
    CELLS_BENCHMARK, GRADIENT_HORIZON, LEARNING_CURVE, NETWORK_BENCHMARK, NETWORK_COMPARISON,
    NETWORK_RUN, SURROGATE_BENCHMARK, SURROGATE_METRICS, SURROGATE_PANELS,
)
from hnn_surrogate.datasets import open_cell_dataset


def test_tiny_pipeline_end_to_end(repo, tmp_path):
    cmd = ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", str(repo / "profiles" / "default"),
           "--configfile", str(repo / "config" / "tiny.yaml"), "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for cell_type, n_channels in [("L2_pyramidal", 30), ("L5_pyramidal", 34),
                                  ("L2_basket", 3), ("L5_basket", 3)]:
        ds = open_cell_dataset(tmp_path / "results" / "cells" / f"{cell_type}.nc")
        assert ds.sizes["sim"] == 18 and ds.sizes["channel"] == n_channels
        assert set(ds["regime"].values) == {"subthreshold", "suprathreshold", "network",
                                            "replay"}
        # replayed network input: two tiny-network runs, events in every simulation
        replay = ds.isel(sim=ds["regime"].values == "replay")
        assert (replay["inputs"].values.sum(axis=(1, 2)) > 0).all()
        assert set(ds["split"].values) == {"train", "val", "test"}
        assert ("dipole" in ds) == cell_type.endswith("pyramidal")
        assert ds.attrs["seed"] == 7 and len(ds.attrs["config_hash"]) >= 16
        assert (tmp_path / "results" / "cells" / "figures" / f"{cell_type}.png").stat().st_size > 1e4
        assert (tmp_path / "logs" / "merge_cells" / f"{cell_type}.log").exists()
        assert (tmp_path / "results" / "train" / f"{cell_type}.pt").exists()
        metrics = SURROGATE_METRICS.read(tmp_path / "results" / "evaluate" / f"{cell_type}.nc")
        assert metrics.attrs["split"] == "test"
        panels = SURROGATE_PANELS.read(tmp_path / "results" / "evaluate" / "panels" / f"{cell_type}.nc")
        assert panels.sizes["n_inputs"] == 12
        assert (tmp_path / "results" / "evaluate" / "figures" / f"{cell_type}.png").exists()
    curve = LEARNING_CURVE.read(tmp_path / "results" / "learning_curve" / "L2_basket.nc")
    assert list(curve["fraction"].values) == [0.5, 1.0]
    surrogate = SURROGATE_BENCHMARK.read(tmp_path / "results" / "benchmarks" / "surrogate.nc")
    assert list(surrogate["batch"].values) == [1, 8]
    assert list(surrogate["dtype"].values) == ["float32", "bfloat16"]
    assert np.all(surrogate["speedup"].values > 0)
    assert np.all((surrogate["bf16_spike_agreement"].values >= 0)
                  & (surrogate["bf16_spike_agreement"].values <= 1))
    bench = CELLS_BENCHMARK.read(tmp_path / "results" / "benchmarks" / "cells.nc")
    assert np.all(bench["identical"].values == 1)
    assert np.all(bench["ms_per_s_per_core"].values > 0)
    assert "MPI efficiency" in (tmp_path / "results" / "benchmarks" / "cells.md").read_text()
    # The network stage: both simulators, both conditions, both scenarios.
    for scenario in ("rhythm", "evoked"):
        cmp = NETWORK_COMPARISON.read(tmp_path / "results" / "network" / scenario / "comparison.nc")
        assert list(cmp["condition"].values) == ["default", "l5_inhibition_up"]
        assert np.isfinite(cmp["rate"].values).all()
        assert (tmp_path / "results" / "network" / scenario / "comparison.png").stat().st_size > 1e4
        assert "targets met" in (tmp_path / "results" / "network" / scenario / "comparison.md").read_text()
        for cond in ("default", "l5_inhibition_up"):
            neuron = NETWORK_RUN.read(tmp_path / "results" / "network" / scenario / cond / "neuron_0.nc")
            surr = NETWORK_RUN.read(tmp_path / "results" / "network" / scenario / cond / "surrogate_0.nc")
            assert neuron.attrs["n_ranks"] == 2 and neuron.sizes["spike"] > 0
            open_loop = NETWORK_RUN.read(tmp_path / "results" / "network" / scenario / cond / "open_loop_0.nc")
            assert open_loop.attrs["simulator"] == "open_loop"
            np.testing.assert_array_equal(neuron["time"].values, surr["time"].values)
    net_bench = NETWORK_BENCHMARK.read(tmp_path / "results" / "benchmarks" / "network.nc")
    assert list(net_bench["run"].values) == ["neuron_1rank", "neuron_2ranks", "surrogate"]
    assert np.all(net_bench["wall_s"].values > 0)
    # tiny config: 2 surrogate runs (one before NEURON, one after); their median counts
    sur_walls = net_bench["surrogate_wall_s"].values
    assert sur_walls.size == 2 and np.all(sur_walls > 0)
    assert net_bench["wall_s"].values[-1] == pytest.approx(np.median(sur_walls))
    grad = GRADIENT_HORIZON.read(tmp_path / "results" / "network" / "gradient_horizon.nc")
    assert list(grad["tstop"].values) == [20.0, 50.0] and list(grad["slope"].values) == [0.0, 0.3]
    assert np.isfinite(grad["sensitivity"].values).all()
    # Nothing left to do on a second call.
    again = subprocess.run(cmd + ["-n"], capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
