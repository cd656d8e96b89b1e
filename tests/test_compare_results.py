"""compare-results: two result folders, stage by stage."""

import shutil
import subprocess

import numpy as np

from hnn_surrogate.artifacts import GRADIENT_HORIZON, NETWORK_BENCHMARK
from hnn_surrogate.compare_results import compare_results


def _write(root, sensitivity=1.0, wall=2.0):
    GRADIENT_HORIZON.write(GRADIENT_HORIZON.build(
        {"sensitivity": np.full((1, 2, 3), sensitivity), "loss": np.array([1.0, 2.0]),
         "n_spikes": np.array([3, 4])},
        {"slope": [0.3], "tstop": [10.0, 20.0], "connection": ["a", "b", "c"]},
        {"scenario": "s", "condition": "default", "seed": 0, "loss": "l", "config_hash": "x",
         "git_commit": "g", "versions": "{}", "created": "now"}),
        root / "network" / "gradient_horizon.nc")
    NETWORK_BENCHMARK.write(NETWORK_BENCHMARK.build(
        {"wall_s": np.array([100.0, wall]), "cores": np.array([1, 1], np.int32),
         "speedup": np.array([1.0, 100.0 / wall]), "n_spikes": np.array([10, 12]),
         "surrogate_wall_s": np.array([wall])},
        {"run": ["neuron_1rank", "surrogate"]},
        {"tstop_ms": 10.0, "n_cells": 5, "scenario": "s", "device": "cpu", "git_commit": "g",
         "versions": "{}", "created": "now"}), root / "benchmarks" / "network.nc")


def test_equal_folders_timings_apart_and_the_first_difference(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a)
    _write(b, wall=3.0)                       # another machine: only the timings differ
    rows = {r.path: r for r in compare_results(a, b)}
    assert rows["network/gradient_horizon.nc"].verdict == "equal"
    assert rows["benchmarks/network.nc"].verdict == "timings"
    # the content hash stored at write time ignores timings too
    ha = GRADIENT_HORIZON.read(a / "network" / "gradient_horizon.nc").attrs["content_hash"]
    hb = GRADIENT_HORIZON.read(b / "network" / "gradient_horizon.nc").attrs["content_hash"]
    assert ha == hb
    assert (NETWORK_BENCHMARK.read(a / "benchmarks" / "network.nc").attrs["content_hash"]
            == NETWORK_BENCHMARK.read(b / "benchmarks" / "network.nc").attrs["content_hash"])
    _write(b, sensitivity=1.0 + 1e-9)
    rows = compare_results(a, b)
    assert rows[0].verdict == "differs" and "sensitivity" in rows[0].detail
    assert compare_results(a, b, rtol=1e-6)[0].verdict == "close"
    shutil.rmtree(b / "benchmarks")
    proc = subprocess.run(["hnn-surrogate", "compare-results", str(a), str(b)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert ("First difference, in pipeline order: stage 'network: gradient horizon', "
            "network/gradient_horizon.nc: differs") in proc.stdout
    assert "benchmarks/network.nc: only in A" in proc.stdout
    same = subprocess.run(["hnn-surrogate", "compare-results", str(a), str(a)],
                          capture_output=True, text=True, timeout=120)
    assert same.returncode == 0 and "are equal" in same.stdout
