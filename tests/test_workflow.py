"""The whole pipeline so far, through Snakemake, on the tiny config."""

import copy
import json
import re
import subprocess

import numpy as np
import pytest
import yaml

from hnn_surrogate.artifacts import (
    CELLS_BENCHMARK, FIT_BASELINE, FIT_CHECK, FIT_STEP_BENCHMARK, FIT_SUMMARY, FIT_TRAJECTORY,
    GRADIENT_HORIZON, HNN_SEARCH, LEARNING_CURVE, NETWORK_BENCHMARK, NETWORK_COMPARISON, NETWORK_RUN,
    SCALING_BATCH, SCALING_CUTOFF, SCALING_POINT, SCALING_SUMMARY, STEPS_CURVE,
    SURROGATE_BENCHMARK, SURROGATE_HISTORY, SURROGATE_METRICS, SURROGATE_PANELS,
)
from hnn_surrogate.datasets import open_cell_dataset
from hnn_surrogate.optimize.objective_config import best_index
from hnn_surrogate.surrogate.train import training_positions


def _teacher(repo, folder):
    """The shipped surrogates as the closed_loop regime's teacher, with a recorded
    cost (they predate the recording), in ``folder``."""
    import torch

    folder.mkdir()
    for i, path in enumerate(sorted((repo / "pretrained" / "default").glob("*.pt"))):
        blob = torch.load(path, weights_only=True)
        torch.save(dict(blob, data_neuron_jobs={"teacher_data/run0": 50.0},
                        train_cost_s=10.0 + i, data_merge_s=1.0), folder / path.name)


def test_tiny_pipeline_end_to_end(repo, tmp_path):
    # the tiny config, and 3 closed_loop runs (their teacher relative to --directory)
    _teacher(repo, tmp_path / "teacher")
    tiny = _merged(yaml.safe_load((repo / "config" / "tiny.yaml").read_text()),
                   {"cells": {"network_prior": {"closed_loop": {"n_runs": 3,
                                                                "surrogates": "teacher"}}}})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    cmd = ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", str(repo / "profiles" / "default"),
           "--configfile", str(tmp_path / "tiny.yaml"), "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for cell_type, n_channels in [("L2_pyramidal", 30), ("L5_pyramidal", 34),
                                  ("L2_basket", 3), ("L5_basket", 3)]:
        ds = open_cell_dataset(tmp_path / "results" / "cells" / f"{cell_type}.nc")
        # 18 lone-cell simulations, and every cell of 3 prior runs, 3 alpha_start runs
        # and 3 closed_loop runs of the 2 x 2 network (4 pyramidal, 2 basket cells per type)
        per_run = 4 if cell_type.endswith("pyramidal") else 2
        assert ds.sizes["sim"] == 18 + 9 * per_run and ds.sizes["channel"] == n_channels
        run_regimes = ("replay", "network_prior", "alpha_start", "closed_loop")
        assert set(ds["regime"].values) == {"subthreshold", "suprathreshold", "network",
                                            *run_regimes}
        runs = ds["run"].values
        assert (runs[~np.isin(ds["regime"].values, run_regimes)] == -1).all()
        for regime in run_regimes:
            mine = ds["regime"].values == regime
            assert (runs[mine] >= 0).all()
            for r in np.unique(runs[mine]):
                assert len(set(ds["split"].values[mine & (runs == r)])) == 1, (regime, r)
            if regime != "replay":      # 3 runs: one in each split
                assert set(ds["split"].values[mine]) == {"train", "val", "test"}, regime
        # the teacher's cost is the closed_loop data's: its data's jobs, its 4 trainings
        jobs = json.loads(ds.attrs["neuron_jobs"])
        assert jobs["teacher_data/run0"] == 50.0
        assert sorted(v for k, v in jobs.items() if k.startswith("teacher/")
                      and k.endswith("/train")) == [10.0, 11.0, 12.0, 13.0]
        assert sorted(v for k, v in jobs.items() if k.startswith("teacher/")
                      and k.endswith("/merge")) == [1.0] * 4
        # replayed network input: three tiny-network runs, events in every simulation
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
        regimes = list(metrics["regime"].values.astype(str))
        if cell_type.endswith("pyramidal"):  # the held-out prior run's cells, summed
            assert np.isfinite(metrics["dipole_sum_r"].values[regimes.index("network_prior")])
            # lone cells, and a replay run's random subset of cells, are no run's sum
            for r in set(regimes) & {"subthreshold", "suprathreshold", "mixed", "network",
                                      "replay"}:
                assert np.isnan(metrics["dipole_sum_r"].values[regimes.index(r)]), r
        else:
            assert "dipole_sum_r" not in metrics
        panels = SURROGATE_PANELS.read(tmp_path / "results" / "evaluate" / "panels" / f"{cell_type}.nc")
        assert panels.sizes["n_inputs"] == 12
        assert (tmp_path / "results" / "evaluate" / "figures" / f"{cell_type}.png").exists()
    curve = LEARNING_CURVE.read(tmp_path / "results" / "learning_curve" / "L2_basket.nc")
    assert list(curve["fraction"].values) == [0.5, 1.0]
    # the simulations each model learnt from: half the units (whole runs), then all
    basket = open_cell_dataset(tmp_path / "results" / "cells" / "L2_basket.nc")
    n_full = int((basket["split"].values == "train").sum())
    assert list(curve["n_train"].values) == [training_positions(basket, 0.5, 7).size, n_full]
    assert curve.attrs["n_train_full"] == n_full
    # the steps curve trains on past train.epochs (2) to its last epoch (3)
    steps = STEPS_CURVE.read(tmp_path / "results" / "steps_curve" / "L2_basket.nc")
    assert list(steps["epoch"].values) == [1, 3]
    assert list(steps["steps"].values) == [3, 9]
    history = SURROGATE_HISTORY.read(
        tmp_path / "results" / "steps_curve" / "L2_basket" / "final_history.nc")
    assert list(history["epoch"].values) == [0, 1, 2]
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
        _check_comparison_table(cmp, tmp_path / "results" / "network" / scenario / "comparison.md")
        for cond in ("default", "l5_inhibition_up"):
            runs = tmp_path / "results" / "network" / scenario / cond
            neuron = NETWORK_RUN.read(runs / "neuron_0.nc")
            surr = NETWORK_RUN.read(runs / "surrogate_0.nc")
            assert neuron.attrs["n_ranks"] == 2 and neuron.sizes["spike"] > 0
            open_loop = NETWORK_RUN.read(runs / "open_loop_0.nc")
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
    # The optimize stage: a 2-step fit, its start and result in NEURON and with the
    # surrogates on the fit's seed and a fresh one, scored and ranked.
    point = tmp_path / "results" / "optimize" / "rhythm-beta_share-cells_and_noise-lr0.1"
    traj = FIT_TRAJECTORY.read(point / "trajectory.nc")
    assert traj.sizes["step"] == 3 and list(traj["seed"].values) == [0]
    assert traj.sizes["free"] == 15 + 4                # cell-to-cell types + the noise's
    assert np.isfinite(traj["grad"].values[:-1]).all() and (traj["grad"].values[0] != 0).any()
    assert ((traj["gain"].values >= 0.25) & (traj["gain"].values <= 4.0)).all()
    fitted = json.loads((point / "fitted.json").read_text())
    # the fitted gains are the step with the best mean objective, not the last
    best = best_index(traj["objective"].values)
    assert [g["gain"] for g in fitted] == pytest.approx(list(traj["gain"].values[best]))
    check = FIT_CHECK.read(point / "check.nc")
    assert list(check["seed"].values) == [0, 5] and list(check["fit_seed"].values) == [1, 0]
    assert np.isfinite(check["objective"].values).all()
    assert check["peak_beyond_band"].dtype == np.int8
    assert check["peak_beyond_band"].shape == check["peak_freq"].shape
    start = NETWORK_RUN.read(tmp_path / "results" / "optimize" / "starts" / "rhythm" / "neuron_5.nc")
    after = NETWORK_RUN.read(point / "neuron_fitted_5.nc")
    assert start.attrs["condition"] == "default" and after.attrs["condition"] == "fitted"
    assert (point / "fit.png").stat().st_size > 1e4
    summary = FIT_SUMMARY.read(tmp_path / "results" / "optimize" / "summary.nc")
    assert list(summary["rank"].values) == [1]
    assert summary["neuron_peak_beyond"].values[0] == check["peak_beyond_band"].sel(
        condition="fitted", simulator="neuron").values.sum()
    # hnn-core's Optimizer, each solver in NEURON within the fit's wall clock
    for solver in ("bayesian", "cobyla", "cma"):
        search = HNN_SEARCH.read(point / f"hnn_{solver}.nc")
        assert search["objective"].shape[0] >= 1 and np.isfinite(search["objective"]).all()
        np.testing.assert_allclose(search["gain"].values[0], 1.0)        # the start first
        assert json.loads((point / f"hnn_{solver}.json").read_text())[0]["gain"] > 0
    step = FIT_STEP_BENCHMARK.read(point / "step_benchmark.nc")
    import platform

    assert step.attrs["malloc"] == ("keep" if platform.libc_ver()[0] == "glibc" else "default")
    assert step["ratio"].values > 0 and step["step_rss_gb"].values >= step["forward_rss_gb"]
    assert "FIT_STEP_BENCHMARK" in (point / "step_benchmark.md").read_text()
    baseline = FIT_BASELINE.read(point / "baseline.nc")
    assert list(baseline["method"].values) == ["gradient", "bayesian", "cobyla", "cma"]
    assert np.isfinite(baseline["neuron_objective"].values).all()
    # counted as well: what the surrogates' data and training cost, and its pay-back
    assert baseline.attrs["surrogate_data_s"] > 0 and baseline.attrs["surrogate_train_s"] > 0
    assert baseline.attrs["break_even"] != "unknown"
    assert "FIT_BASELINE_COUNTED" in (point / "baseline.md").read_text()
    assert (point / "baseline.png").stat().st_size > 1e4
    # The scaling sweep: two sizes side by side, NEURON on the first only (the
    # second is above its max_cells), the cutoff's error on the 2 x 2 grid.
    small = SCALING_POINT.read(tmp_path / "results" / "scaling" / "mesh_2.nc")
    assert small.attrs["n_cells"] == 12 and list(small["status"].values) == ["ran"] * 4
    assert (small["n_spikes"].values >= 0).all() and np.isfinite(small["sim_s"].values).all()
    # the same drives and network in both surrogate runs: the same spikes
    assert small["n_spikes"].values[0] == small["n_spikes"].values[1]
    assert (small["peak_rss_gb"].values > 0).all()
    assert 0 < small["bound_fraction"].values[0] < 1
    larger = SCALING_POINT.read(tmp_path / "results" / "scaling" / "mesh_3.nc")
    assert larger.attrs["n_cells"] == 24
    assert list(larger["status"].values[2:]) == ["not run: above neuron.max_cells (12)"] * 2
    assert np.isnan(larger["wall_s"].values[2:]).all()
    scaling = SCALING_SUMMARY.read(tmp_path / "results" / "scaling" / "summary.nc")
    assert list(scaling["size"].values) == [12, 24]
    assert np.isfinite(scaling["time_exponent"].values[:2]).all()
    assert (tmp_path / "results" / "scaling" / "summary.png").stat().st_size > 1e4
    cutoff = SCALING_CUTOFF.read(tmp_path / "results" / "scaling" / "cutoff.nc")
    assert 0 < cutoff.attrs["synapses_cut"] < cutoff.attrs["synapses_dense"]
    # two networks stepped as one batch: each fires exactly its spikes alone
    batch = SCALING_BATCH.read(tmp_path / "results" / "scaling" / "batch.nc")
    assert list(batch["batch"].values) == [1, 2] and list(batch["identical"].values) == [1, 1]
    assert list(batch["spikes_batched"].values[1]) == list(batch["spikes_alone"].values)
    assert np.isfinite(batch["speedup"].values).all() and (batch["sim_s"].values > 0).all()
    # Nothing left to do on a second call.
    assert _dry_run(cmd) == {}
    # A change reruns exactly the jobs whose output depends on it.
    changes = [
        # a new seed: its runs in both simulators and the comparisons, nothing else
        ({"network": {"seeds": [0, 4]}},
         {"simulate_network_neuron": 4, "simulate_network_surrogate": 4,
          "simulate_network_open_loop": 4, "compare_network": 2, "all": 1}),
        # MPI ranks change no output
        ({"network": {"mpi_ranks": 1}, "cells": {"mpi_ranks": 1}}, {}),
        # the benchmark's length: its parameter file and the benchmark
        ({"network": {"benchmark_tstop": 60.0}},
         {"write_parameters": 1, "benchmark_network": 1, "all": 1}),
        ({"benchmark": {"network_repeats": 3}}, {"benchmark_network": 1, "all": 1}),
        # the transient: the comparisons only
        ({"network": {"transient_ms": 10.0}}, {"compare_network": 2, "all": 1}),
        # a fit's learning rate: that fit, its NEURON and surrogate checks, not the starts
        ({"optimize": {"grid": {"lr": [0.2]}}}, "fit_lr"),
        # the baseline's budget: its three searches and the comparison, not the fit
        ({"optimize": {"baseline": {"budget_factor": 0.2}}},
         {"search_hnn": 3, "compare_search": 1, "all": 1}),
        # one more scaling size: that size's job and the summary
        ({"scaling": {"meshes": [2, 3, 4]}},
         {"write_parameters": 1, "scaling_point": 1, "scaling_summary": 1, "all": 1}),
        # one more prior run: that run's job, nothing before it rerun
        ({"cells": {"network_prior": {"n_runs": 4}}}, "prior_run"),
        # one more alpha_start run: likewise, no network_prior run rerun
        ({"cells": {"network_prior": {"alpha_start": {"n_runs": 4}}}}, "alpha_start_run"),
        # one more closed_loop run: likewise
        ({"cells": {"network_prior": {"closed_loop": {"n_runs": 4}}}}, "closed_loop_run"),
        # the prior's noise: its runs and the closed_loop runs (drawn from it), not alpha_start's
        ({"cells": {"network_prior": {"poisson": {"rate_hz": [6.0, 40.0]}}}}, "prior_change"),
        # one regime's weights: its parameter file, its shards and all that follows
        ({"cells": {"regimes": {"network": {"weight": {
            "scale": "absolute", "excitatory": [0.0001, 0.006], "inhibitory": [0.001, 0.05]}}}}},
         None),
    ]
    for change, want in changes:
        cfg = _merged(tiny, change)
        path = tmp_path / "changed.yaml"
        path.write_text(yaml.safe_dump(cfg))
        jobs = _dry_run(cmd[:-4] + ["--configfile", str(path), "--cores", "2"])
        if want == "fit_lr":
            # the new point's fit, checks, searches, comparison and the step
            # benchmark (on the first grid point, now this one)
            assert jobs == {"write_parameters": 1, "fit_connectivity": 1,
                            "simulate_fit_neuron": 2, "simulate_fit_surrogate": 2,
                            "check_fit": 1, "summarize_fits": 1, "benchmark_fit_step": 1,
                            "search_hnn": 3, "compare_search": 1, "all": 1}, jobs
        elif want in ("prior_run", "alpha_start_run", "closed_loop_run"):
            rule = {"prior_run": "simulate_network_prior",
                    "alpha_start_run": "simulate_alpha_start",
                    "closed_loop_run": "simulate_closed_loop"}[want]
            assert jobs[rule] == 1 and jobs["merge_cells"] == 4, jobs
            assert not {"write_parameters", "simulate_cells", "simulate_network_prior",
                        "simulate_alpha_start", "simulate_closed_loop"} - {rule} & set(jobs), jobs
        elif want == "prior_change":
            assert jobs["simulate_network_prior"] == 3 and jobs["simulate_closed_loop"] == 3, jobs
            assert not {"simulate_alpha_start", "simulate_cells"} & set(jobs), jobs
        elif want is None:   # a regime's input: every stage downstream of its shards
            assert jobs["write_parameters"] == 1 and jobs["simulate_cells"] == 4, jobs
            assert "simulate_network_neuron" not in jobs and "calibrate_cell" not in jobs, jobs
        else:
            assert jobs == want, (change, jobs)
    import torch

    path = tmp_path / "teacher" / "L5_pyramidal.pt"
    # a new teacher: its closed_loop runs and what their data feeds, no NEURON network run
    torch.save(dict(torch.load(path, weights_only=True), train_cost_s=99.0), path)
    jobs = _dry_run(cmd)
    assert jobs["simulate_closed_loop"] == 3 and jobs["merge_cells"] == 4, jobs
    assert not {"simulate_network_prior", "simulate_alpha_start", "simulate_cells",
                "simulate_network_neuron"} & set(jobs), jobs


def _merged(base, change):
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _dry_run(cmd):
    """{rule: jobs} that a dry run of ``cmd`` would run ({} when nothing)."""
    proc = subprocess.run(cmd + ["-n"], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    if "Nothing to be done" in out:
        return {}
    stats = out.split("Job stats:", 1)[1].splitlines()
    jobs = {}
    for line in stats[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def _check_comparison_table(cmp, table_path):
    """The table's verdicts add up to its closing count, and its first row is the NetCDF's."""
    text = table_path.read_text()
    met = re.search(r"(\d+) of (\d+) targets met \(NEURON vs the surrogate", text)
    assert met, text
    # the "met" column (the 7th): "NEURON against itself" has its own, empty with one seed
    cells = [line.split("|")[1:-1] for line in text.splitlines()
             if line.startswith("| ") and " | target | " not in line]
    verdicts = [c[6].strip() for c in cells]
    yes, no = verdicts.count("yes"), verdicts.count("NO")
    assert (int(met.group(1)), int(met.group(2))) == (yes, yes + no) and yes + no == 18
    assert (cmp.attrs["targets_met"], cmp.attrs["targets_checked"]) == (yes, 18)
    # the tiny config's one seed: no NEURON against itself
    assert cmp.sizes["seed"] == 1 and cmp.attrs["neuron_self_met"] == -1
    assert all(c[9].strip() == "" for c in cells) and "NEURON against itself (" not in text
    neuron_rate = float(cmp["rate"].sel(condition="default", simulator="neuron",
                                        cell_type="L2_basket").mean())
    assert f"| default | rate L2_basket (Hz) | {neuron_rate:.2f} |" in text
