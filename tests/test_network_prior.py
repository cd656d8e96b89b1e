"""The network_prior regime: drawn networks, every cell recorded in the run, whole runs held out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hnn_surrogate import CELL_TYPES, PYRAMIDAL_TYPES
from hnn_surrogate.artifacts import CELL_SIMS
from hnn_surrogate.cells import network_prior as npr
from hnn_surrogate.config import ConfigError, load_config, validate_config
from hnn_surrogate.datasets import assign_splits, merge_shards

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(scope="module")
def tiny(repo):
    cfg = load_config(repo / "config" / "tiny.yaml")
    spec = {k: cfg["network"][k] for k in ("model", "mesh_shape")}
    prior = {k: v for k, v in cfg["cells"]["network_prior"].items()
             if k not in ("n_runs", "mpi_ranks")}
    return cfg, spec, prior


def _types(spec):
    return npr.connection_types(npr.base_network(spec))


def test_a_run_is_drawn_from_its_seed_and_index_alone(tiny):
    cfg, spec, prior = tiny
    types = _types(spec)
    assert len(types) == len({t for t in types}) >= 10 and types == sorted(types)
    one = npr.draw_run(prior, seed=3, run=5, tstop=100.0, conn_types=types)
    assert one == npr.draw_run(prior, seed=3, run=5, tstop=100.0, conn_types=types)
    assert one != npr.draw_run(prior, seed=3, run=6, tstop=100.0, conn_types=types)
    assert one != npr.draw_run(prior, seed=4, run=5, tstop=100.0, conn_types=types)
    assert one["drive_seed"] == prior["seeds_from"] + 5
    lo, hi = prior["gain"]
    assert [(g["src"], g["target"], g["receptor"]) for g in one["gains"]] == types
    assert all(lo <= g["gain"] <= hi for g in one["gains"])
    # a drive's probability changes whether it is there, and nothing else
    always = dict(prior, evoked=dict(prior["evoked"], probability=1.0))
    never = dict(prior, evoked=dict(prior["evoked"], probability=0.0))
    a, b = (npr.draw_run(p, seed=3, run=5, tstop=100.0, conn_types=types) for p in (always, never))
    assert a["gains"] == b["gains"]
    assert [d for d in a["drives"] if d["type"] != "erp"] == b["drives"]
    assert any(d["type"] == "erp" for d in a["drives"])


def test_draws_cover_every_drive_kind_over_runs(tiny):
    cfg, spec, prior = tiny
    types = _types(spec)
    kinds = [tuple(sorted({d.get("name", d["type"]) for d in
                           npr.draw_run(prior, seed=3, run=r, tstop=100.0,
                                        conn_types=types)["drives"]})) for r in range(40)]
    seen = {k for ks in kinds for k in ks}
    assert seen == {"proximal_noise", "distal_noise", "erp", "alpha_prox"}
    # noise in every run but those of the alpha drive alone, which occur
    alone = [ks for ks in kinds if "proximal_noise" not in ks]
    assert alone and all("alpha_prox" in ks and "distal_noise" not in ks for ks in alone)


def test_the_alpha_drive_alone_changes_no_other_draw(tiny):
    cfg, spec, prior = tiny
    types = _types(spec)
    always, never = (dict(prior, alpha=dict(prior["alpha"], probability=1.0,
                                            alone_probability=p)) for p in (1.0, 0.0))
    for run in range(5):
        a, b = (npr.draw_run(p, seed=3, run=run, tstop=100.0, conn_types=types)
                for p in (always, never))
        assert a["gains"] == b["gains"]
        assert a["drives"] == [d for d in b["drives"] if d["type"] != "poisson"]
        assert {d["type"] for d in b["drives"]} >= {"poisson", "bursty"}


def test_alpha_start_runs_are_the_alpha_start_alone_and_change_no_prior_run(tiny):
    cfg, spec, _ = tiny
    section = cfg["cells"]["network_prior"]
    types = _types(spec)
    prior = npr.regime_prior(section)
    # network_prior's parameter file is what it was before alpha_start (and closed_loop)
    # existed
    assert prior == {k: v for k, v in section.items()
                     if k not in ("n_runs", "mpi_ranks", "alpha_start", "closed_loop")}
    start = npr.regime_prior(section, "alpha_start")
    assert start["regime"] == "alpha_start"
    a = section["alpha_start"]
    w_lo, w_hi = a["weight"]
    g_lo, g_hi = a["gain"]
    weights = []
    for run in range(12):
        one = npr.draw_run(start, seed=3, run=run, tstop=100.0, conn_types=types)
        assert one == npr.draw_run(start, seed=3, run=run, tstop=100.0, conn_types=types)
        # hnn-core's alpha drive alone: no noise, no ERP
        assert [d["name"] for d in one["drives"]] == ["alpha_prox"]
        w = one["drives"][0]["params"]["weights_ampa"]
        assert w["L2_pyramidal"] == w["L5_pyramidal"] and w_lo <= w["L5_pyramidal"] <= w_hi
        weights.append(w["L5_pyramidal"])
        assert all(g_lo <= g["gain"] <= g_hi for g in one["gains"])
        assert one["drive_seed"] == a["seeds_from"] + run
        # its own generator: not the network_prior run of the same index
        assert one["gains"] != npr.draw_run(prior, seed=3, run=run, tstop=100.0,
                                            conn_types=types)["gains"]
    assert np.ptp(np.log(weights)) > 0.5 * np.log(w_hi / w_lo)    # the range is drawn over
    # its parameter file holds only what its runs depend on: network_prior's noise
    # and ERP ranges leave it (and its runs) as they are, its burst rates do not
    other = dict(section, poisson={**section["poisson"], "rate_hz": [1.0, 2.0]},
                 evoked={**section["evoked"], "tstart": [5.0, 6.0]})
    assert npr.regime_prior(other, "alpha_start") == start
    faster = dict(section, alpha={**section["alpha"], "burst_rate_hz": [14.0, 16.0]})
    assert npr.regime_prior(faster, "alpha_start")["alpha"]["burst_rate_hz"] == [14.0, 16.0]
    with pytest.raises(ValueError, match="regime 'alpha': not one of network_prior, alpha_start, "
                                         "closed_loop"):
        npr.regime_prior(section, "alpha")


def test_config_refuses_alpha_start_seeds_in_use_names_and_ranges(repo):
    cfg = load_config(repo / "config" / "tiny.yaml")
    prior = cfg["cells"]["network_prior"]

    def with_start(**change):
        return dict(cfg, cells=dict(cfg["cells"], network_prior=dict(
            prior, alpha_start=dict(prior["alpha_start"], **change))))

    with pytest.raises(ConfigError, match=r"network_prior.alpha_start.seeds_from': runs' drive "
                                          r"seeds 10001..10003 include \[10001, 10002\] of "
                                          r"cells.network_prior runs' seeds"):
        validate_config(with_start(seeds_from=prior["seeds_from"] + 1))
    with pytest.raises(ConfigError, match=r"alpha_start.seeds_from.*of network.seeds"):
        validate_config(with_start(seeds_from=0))
    with pytest.raises(ConfigError, match="network_prior.alpha_start.weight': low 0.001 is above"):
        validate_config(with_start(weight=[1e-3, 1e-4]))
    with pytest.raises(ConfigError, match="network_prior.alpha_start.n_runs': 2 network runs"):
        validate_config(with_start(n_runs=2))
    taken = dict(cfg, cells=dict(cfg["cells"], regimes=dict(
        cfg["cells"]["regimes"], alpha_start=cfg["cells"]["regimes"]["network"])))
    with pytest.raises(ConfigError, match="'cells.regimes.alpha_start': the name is taken"):
        validate_config(taken)
    # a linear fit on its runs: a regime where it has runs, none where it is off
    fit = dict(cfg, train=dict(cfg["train"], linear_fit_regimes=["alpha_start"]))
    validate_config(fit)
    off = dict(fit, cells=dict(cfg["cells"], network_prior=dict(
        prior, alpha_start=dict(prior["alpha_start"], n_runs=0))))
    with pytest.raises(ConfigError, match="'train.linear_fit_regimes': 'alpha_start' is not a "
                                          "regime"):
        validate_config(off)


def test_config_refuses_seeds_in_use_and_inverted_ranges(repo):
    cfg = load_config(repo / "config" / "tiny.yaml")
    bad = dict(cfg, cells=dict(cfg["cells"], network_prior=dict(
        cfg["cells"]["network_prior"], seeds_from=0)))
    with pytest.raises(ConfigError, match="network_prior.seeds_from.*network.seeds"):
        validate_config(bad)
    bad = dict(cfg, cells=dict(cfg["cells"], network_prior=dict(
        cfg["cells"]["network_prior"], gain=[4.0, 0.25])))
    with pytest.raises(ConfigError, match="network_prior.gain': low 4.0 is above high"):
        validate_config(bad)


def test_splits_hold_out_whole_runs():
    regimes = np.array(["network_prior"] * 50 + ["mixed"] * 10)
    runs = np.r_[np.repeat(np.arange(10), 5), np.full(10, -1)]
    idx = np.r_[np.arange(50), np.arange(10)]
    labels = assign_splits(regimes, idx, fractions=FRACTIONS, seed=1, runs=runs)
    for r in range(10):
        assert len(set(labels[:50][runs[:50] == r])) == 1, f"run {r} is in two splits"
    assert sorted(set(labels[:50])) == ["test", "train", "val"]
    # lone-cell regimes split by simulation, exactly as before runs existed
    from hnn_surrogate.cells.inputs import name_code

    pos = np.arange(10)                               # the old algorithm, written out
    perm = np.random.default_rng([1, name_code("mixed"), name_code("split")]).permutation(10)
    old = np.empty(10, dtype=object)
    old[pos[perm]] = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    np.testing.assert_array_equal(labels[50:], old)


def test_prior_runs_end_to_end_on_two_ranks(repo, tiny, tmp_path):
    """Tiny config: three drawn runs through the CLI on 2 MPI ranks; every cell a
    simulation, its inputs those the wiring delivers, its spikes NEURON's; merged with
    whole runs in one split each."""
    import json

    cfg, spec, prior = tiny
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "prior.json").write_text(json.dumps(prior))
    c = cfg["cells"]
    shards = {t: [] for t in CELL_TYPES}
    for run in range(3):
        outs = {t: tmp_path / f"{t}_{run}.nc" for t in CELL_TYPES}
        subprocess.run(
            ["mpiexec", "-n", "2", "hnn-surrogate", "simulate-network-prior", "--spec",
             str(tmp_path / "spec.json"), "--prior", str(tmp_path / "prior.json"), "--run",
             str(run), "--tstop", str(c["tstop"]), "--dt", str(c["dt"]), "--bin-ms",
             str(c["bin_ms"]), "--delay", str(c["synaptic_delay"]), "--seed", str(cfg["seed"]),
             "--store-fine", "--out", *(f"{t}={p}" for t, p in outs.items())],
            check=True, capture_output=True)
        for t in CELL_TYPES:
            shards[t].append(outs[t])
    net = npr.base_network(spec)
    for t in CELL_TYPES:
        ds = CELL_SIMS.read(shards[t][0])
        n_cells = len(net.gid_ranges[t])
        assert ds.sizes["sim"] == n_cells and ds.attrs["network_run"] == 0
        assert (ds["run"].values == 0).all() and ("dipole" in ds) == (t in PYRAMIDAL_TYPES)
        assert ds.sizes["time"] == int(round(c["tstop"] / c["bin_ms"]))
        merged = merge_shards(shards[t], tmp_path / f"{t}.nc", fractions=FRACTIONS,
                              seed=cfg["seed"])
        split_of_run = {r: set(merged["split"].values[merged["run"].values == r])
                        for r in range(3)}
        assert all(len(s) == 1 for s in split_of_run.values()), split_of_run
        assert set().union(*split_of_run.values()) == {"train", "val", "test"}
    assert sum(CELL_SIMS.read(shards[t][0])["n_spikes"].values.sum() for t in CELL_TYPES) > 0


def test_recorded_cells_are_the_networks_and_fire_alone_as_in_it(repo, tiny):
    """In one process: a drawn run's per-cell dipoles sum to hnn-core's layer dipoles,
    every cell's soma voltage is recorded, and a pyramidal cell fed alone the input the
    shard says it received fires when the network run says it fired."""
    from hnn_surrogate.cells.shard import bin_sections
    from hnn_surrogate.cells.simulate import simulate_cell
    from hnn_surrogate.network.ground_truth import run_neuron

    cfg, spec, prior = tiny
    c = cfg["cells"]
    types = _types(spec)
    # run 1 of the tiny prior: one in which pyramidal cells fire
    draw = npr.draw_run(prior, seed=cfg["seed"], run=1, tstop=c["tstop"], conn_types=types)
    res = run_neuron(npr.prior_network(spec, draw), tstop=c["tstop"], dt=c["dt"],
                     record_cells=True)
    net = npr.base_network(spec)
    assert set(res["v_soma"]) == {g for t in CELL_TYPES for g in net.gid_ranges[t]}
    for t, layer in (("L2_pyramidal", "dipole_L2"), ("L5_pyramidal", "dipole_L5")):
        total = sum(res["cell_dipole"][g] for g in net.gid_ranges[t])
        np.testing.assert_allclose(total, res[layer], rtol=1e-9, atol=1e-15)
        assert np.abs(total).max() > 0
    ds = npr.simulate_prior_run(spec=spec, prior=prior, run=1, seed=cfg["seed"],
                                tstop=c["tstop"], dt=c["dt"], bin_ms=c["bin_ms"],
                                delay=c["synaptic_delay"], store_fine=True,
                                record_sections=True)
    checked = 0
    for t in PYRAMIDAL_TYPES:
        sims = ds[t]
        names = list(sims["recorded_section"].values.astype(str))
        for k, gid in enumerate(net.gid_ranges[t]):
            np.testing.assert_allclose(sims["v_soma_fine"].values[k],
                                       res["v_soma"][gid][:sims.sizes["time_fine"]],
                                       rtol=0, atol=1e-4)
            ev = sims["event_sim"].values == k
            alone = simulate_cell(t, event_channel=sims["event_channel"].values[ev],
                                  event_time=sims["event_time"].values[ev],
                                  event_weight=sims["event_weight"].values[ev],
                                  tstop=c["tstop"], dt=c["dt"], delay=c["synaptic_delay"],
                                  record_sections=True)
            want = sims["spike_time"].values[sims["spike_sim"].values == k]
            np.testing.assert_allclose(alone.spike_times, want, atol=0.05, err_msg=f"{t} {gid}")
            checked += want.size
            # the network's section voltages are the lone cell's, section by section
            lone = bin_sections(alone.v_sections, dt=c["dt"], n_bins=sims.sizes["time"],
                                bin_ms=c["bin_ms"])
            for j, name in enumerate(names):
                r = np.corrcoef(lone[:, j], sims["v_section"].values[k, :, j])[0, 1]
                assert r > 0.999, (t, gid, name, r)
    assert checked, "no pyramidal cell fired: the check would be empty"


def test_learning_curve_subsets_draw_whole_runs():
    from hnn_surrogate.surrogate.train import training_subset

    regimes = np.array(["network_prior"] * 40 + ["mixed"] * 20)
    runs = np.r_[np.repeat(np.arange(8), 5), np.full(20, -1)]
    keep = training_subset(regimes, runs, 0.5, seed=3)
    assert np.array_equal(keep, np.sort(keep))
    kept_runs = set(runs[keep[keep < 40]])
    for r in kept_runs:                               # a run is kept whole or not at all
        assert np.isin(np.flatnonzero(runs == r), keep).all()
    assert len(kept_runs) + int((keep >= 40).sum()) == 14      # half of 8 runs + 20 sims
    np.testing.assert_array_equal(keep, training_subset(regimes, runs, 0.5, seed=3))


def test_training_positions_are_the_subset_of_the_training_split():
    import xarray as xr

    from hnn_surrogate.surrogate.train import training_positions, training_subset

    split = np.array(["train", "val", "train", "test", "train", "train", "train", "val"])
    regime = np.array(["network_prior"] * 6 + ["mixed"] * 2)
    run = np.array([0, 1, 0, 2, 3, 3, -1, -1])
    ds = xr.Dataset({"split": ("sim", split), "regime": ("sim", regime), "run": ("sim", run)})
    assert list(training_positions(ds, 1.0, seed=3)) == [0, 2, 4, 5, 6]
    half = training_positions(ds, 0.5, seed=3)
    train = np.array([0, 2, 4, 5, 6])
    assert list(half) == list(train[training_subset(regime[train], run[train], 0.5, 3)])
    # three training units (run 0, run 3, the lone cell): two kept, each whole
    kept = set(half.tolist())
    units = [{0, 2}, {4, 5}, {6}]
    assert sum(u <= kept for u in units) == 2
    assert all(u <= kept or not u & kept for u in units)


def test_config_refuses_too_few_runs_for_every_split(repo):
    cfg = load_config(repo / "config" / "tiny.yaml")
    few = dict(cfg, cells=dict(cfg["cells"], network_prior=dict(
        cfg["cells"]["network_prior"], n_runs=2)))
    with pytest.raises(ConfigError, match="network_prior.n_runs': 2 network runs, split by "
                                          "cells.split, leave val and test empty"):
        validate_config(few)
    few = dict(cfg, cells=dict(cfg["cells"], replay=dict(cfg["cells"]["replay"], seeds=[1])))
    with pytest.raises(ConfigError, match="cells.replay.seeds': 1 network runs"):
        validate_config(few)


def test_closed_loop_runs_are_the_priors_networks_with_their_own_draws(tiny):
    cfg, spec, _ = tiny
    section = cfg["cells"]["network_prior"]
    types = _types(spec)
    prior = npr.regime_prior(section)
    # network_prior's parameter file is what it was before closed_loop existed
    assert "closed_loop" not in prior
    closed = npr.regime_prior(section, "closed_loop")
    assert closed == {**prior, "regime": "closed_loop",
                      "seeds_from": section["closed_loop"]["seeds_from"]}
    for run in range(4):
        one = npr.draw_run(closed, seed=3, run=run, tstop=100.0, conn_types=types)
        assert one["drive_seed"] == section["closed_loop"]["seeds_from"] + run
        assert one["gains"] != npr.draw_run(prior, seed=3, run=run, tstop=100.0,
                                            conn_types=types)["gains"]
    # which surrogates run the networks is the job's input, not the prior's
    other = dict(section, closed_loop=dict(section["closed_loop"], surrogates="elsewhere"))
    assert npr.regime_prior(other, "closed_loop") == closed


def _with_closed_loop(cfg, **change):
    prior = cfg["cells"]["network_prior"]
    return dict(cfg, cells=dict(cfg["cells"], network_prior=dict(
        prior, closed_loop=dict(prior["closed_loop"], **change))))


def test_config_refuses_closed_loop_seeds_in_use_and_a_teacher_it_cannot_run(repo, tmp_path,
                                                                              monkeypatch):
    cfg = load_config(repo / "config" / "tiny.yaml")
    prior = cfg["cells"]["network_prior"]
    monkeypatch.chdir(repo)                  # the teacher folder is taken from here
    validate_config(_with_closed_loop(cfg, n_runs=3, surrogates="pretrained/default"))
    # off, its teacher is not looked at
    validate_config(_with_closed_loop(cfg, n_runs=0, surrogates=str(tmp_path / "none")))
    for change, match in (
            (dict(seeds_from=prior["seeds_from"] + 1),
             r"closed_loop.seeds_from': runs' drive seeds 10001..10003 include \[10001, 10002\] "
             r"of cells.network_prior runs' seeds"),
            (dict(seeds_from=prior["alpha_start"]["seeds_from"]),
             r"closed_loop.seeds_from'.*of cells.network_prior.alpha_start runs' seeds"),
            (dict(seeds_from=0), r"closed_loop.seeds_from'.*of network.seeds"),
            (dict(surrogates=str(tmp_path / "none")),
             r"closed_loop.surrogates'.*is not a folder"),
            (dict(surrogates="results/train"), r"closed_loop.surrogates'.*is results/train, what "
                                               r"this data trains"),
            (dict(n_runs=2), r"network_prior.closed_loop.n_runs': 2 network runs")):
        n_runs = change.pop("n_runs", 3)
        with pytest.raises(ConfigError, match=match):
            validate_config(_with_closed_loop(cfg, n_runs=n_runs, **dict(
                dict(surrogates="pretrained/default"), **change)))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "L2_basket.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"closed_loop.surrogates'.*half lacks L2_pyramidal.pt"):
        validate_config(_with_closed_loop(cfg, n_runs=3, surrogates=str(tmp_path / "half")))
    # the teacher's files: each its type's checkpoint, of the cells stage's bin
    import shutil

    import torch

    bad = tmp_path / "bad"
    shutil.copytree(repo / "pretrained" / "default", bad)
    shutil.copy(bad / "L2_basket.pt", bad / "L5_basket.pt")
    (bad / "L2_basket.pt").write_bytes(b"not a checkpoint")
    blob = torch.load(bad / "L5_pyramidal.pt", weights_only=True)
    torch.save(dict(blob, bin_ms=1.0), bad / "L5_pyramidal.pt")
    with pytest.raises(ConfigError) as err:
        validate_config(_with_closed_loop(cfg, n_runs=3, surrogates=str(bad)))
    text = str(err.value)
    assert "L2_basket.pt: not a readable checkpoint" in text
    assert "L5_pyramidal.pt has 1.0 ms bins, cells.bin_ms is 0.5" in text
    assert "L5_basket.pt is not a L5_basket surrogate ('L2_basket')" in text
    # nor anything the pipeline writes (results/ of the working directory)
    shutil.copytree(repo / "pretrained" / "default", tmp_path / "results" / "old")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"closed_loop.surrogates'.*is in results/, which this "
                                          r"pipeline writes"):
        validate_config(_with_closed_loop(cfg, n_runs=3, surrogates="results/old"))
    taken = dict(cfg, cells=dict(cfg["cells"], regimes=dict(
        cfg["cells"]["regimes"], closed_loop=cfg["cells"]["regimes"]["network"])))
    with pytest.raises(ConfigError, match="'cells.regimes.closed_loop': the name is taken"):
        validate_config(taken)


def test_closed_loop_run_gives_lone_neuron_cells_the_surrogate_networks_input(repo, tiny,
                                                                               tmp_path):
    """Tiny config, untrained teacher surrogates: every cell of the run is a simulation;
    its input is exactly what the surrogate network's own spikes and the drives deliver
    through the wiring; its targets are NEURON's lone cell on that input; 2 MPI ranks
    (the CLI) give the 1-rank run's data; the teacher's cost is carried where recorded."""
    import json

    import torch
    from network_helpers import untrained_surrogates

    from hnn_surrogate.cells.closed_loop import file_sha256, simulate_closed_loop_run
    from hnn_surrogate.cells.simulate import simulate_cell
    from hnn_surrogate.datasets import neuron_jobs
    from hnn_surrogate.network.replay import received_events
    from hnn_surrogate.network.run import network_wiring, simulate_surrogate

    cfg, spec, _ = tiny
    c = cfg["cells"]
    section = cfg["cells"]["network_prior"]
    prior = npr.regime_prior(section, "closed_loop")
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    paths = []
    for t, s in untrained_surrogates(seed=4).items():
        paths.append(teacher / f"{t}.pt")
        torch.save(s.blob, paths[-1])
    sim = dict(spec=spec, prior=prior, run=1, checkpoints=paths, seed=cfg["seed"],
               tstop=c["tstop"], dt=c["dt"], bin_ms=c["bin_ms"], delay=c["synaptic_delay"],
               store_fine=False)
    one = simulate_closed_loop_run(**sim)
    # the teacher's run, redone here: its spikes and what they deliver
    draw = npr.draw_run(prior, seed=cfg["seed"], run=1, tstop=c["tstop"],
                        conn_types=_types(spec))
    res = simulate_surrogate(npr.prior_network(spec, draw), tstop=c["tstop"],
                             surrogates=[str(p) for p in paths], bin_ms=c["bin_ms"])
    assert res.spike_times.size > 0, "the teacher is silent: the check would be empty"
    wiring = network_wiring(npr.prior_network(spec, draw), tstop=c["tstop"], bin_ms=c["bin_ms"])
    net = npr.base_network(spec)
    fired = 0
    for t in CELL_TYPES:
        ds = one[t]
        gids = list(net.gid_ranges[t])
        assert ds.sizes["sim"] == len(gids) and (ds["run"].values == 1).all()
        assert set(ds["regime"].values) == {"closed_loop"}
        assert ds.attrs["teacher_spikes"] == int(np.isin(res.spike_gids, gids).sum())
        assert ds.attrs["neuron_spikes"] == int(ds["n_spikes"].values.sum())
        assert "source_neuron_jobs" not in ds.attrs      # untrained: no recorded cost
        for k, gid in enumerate(gids):
            # in arrival order, event by event: channel, presynaptic time, weight
            ch, arrival, w = received_events(wiring, gid, res.spike_times, res.spike_gids)
            ev = ds["event_sim"].values == k
            np.testing.assert_array_equal(ds["event_channel"].values[ev], ch)
            np.testing.assert_allclose(ds["event_time"].values[ev],
                                       np.maximum(arrival - c["synaptic_delay"], 0))
            np.testing.assert_array_equal(ds["event_weight"].values[ev], w.astype(np.float32))
        # the target is NEURON's lone cell on that input
        k = int(np.argmax(ds["n_spikes"].values))
        ev = ds["event_sim"].values == k
        alone = simulate_cell(t, event_channel=ds["event_channel"].values[ev],
                              event_time=ds["event_time"].values[ev],
                              event_weight=ds["event_weight"].values[ev], tstop=c["tstop"],
                              dt=c["dt"], delay=c["synaptic_delay"])
        np.testing.assert_allclose(alone.spike_times,
                                   ds["spike_time"].values[ds["spike_sim"].values == k])
        fired += alone.spike_times.size
    assert fired, "no lone cell fired: the regime's targets would be flat"
    assert neuron_jobs([one["L2_pyramidal"]]) is None

    # a teacher that records its cost: the shards carry it (union of its data's jobs,
    # each checkpoint's training); 2 ranks through the CLI, the same data
    jobs = {"abc/run0": 10.0, "abc/run1": 12.0}
    for i, p in enumerate(paths):
        blob = torch.load(p, weights_only=True)
        torch.save(dict(blob, data_neuron_jobs=jobs, train_cost_s=100.0 + i,
                        data_merge_s=1.0), p)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "prior.json").write_text(json.dumps(prior))
    outs = {t: tmp_path / f"{t}.nc" for t in CELL_TYPES}
    subprocess.run(
        ["mpiexec", "-n", "2", "hnn-surrogate", "simulate-closed-loop", "--spec",
         str(tmp_path / "spec.json"), "--prior", str(tmp_path / "prior.json"), "--run", "1",
         "--checkpoints", *map(str, paths), "--tstop", str(c["tstop"]), "--dt", str(c["dt"]),
         "--bin-ms", str(c["bin_ms"]), "--delay", str(c["synaptic_delay"]), "--seed",
         str(cfg["seed"]), "--teacher-sha256", *(file_sha256(p) for p in paths),
         "--out", *(f"{t}={p}" for t, p in outs.items())],
        check=True, capture_output=True)
    for t in CELL_TYPES:
        two = CELL_SIMS.read(outs[t])
        assert two.attrs["mpi_ranks"] == 2
        for name in one[t].data_vars:
            np.testing.assert_array_equal(two[name].values, one[t][name].values, err_msg=name)
    cost = neuron_jobs([CELL_SIMS.read(p) for p in outs.values()])
    trained = sorted(v for k, v in cost.items() if k.startswith("teacher/")
                     and k.endswith("/train"))
    merged = [v for k, v in cost.items() if k.startswith("teacher/") and k.endswith("/merge")]
    assert trained == [100.0, 101.0, 102.0, 103.0] and merged == [1.0] * 4
    assert cost["abc/run0"] == 10.0 and cost["abc/run1"] == 12.0
    assert len(cost) == 2 + 8 + 1      # the data's jobs, 4 trainings and merges, this run
    # a prior of another regime is refused before anything runs
    with pytest.raises(ValueError, match="a closed_loop run needs"):
        simulate_closed_loop_run(**dict(sim, prior=npr.regime_prior(section)))
    # so is a teacher replaced since the job was planned (another sha256)
    planned = [file_sha256(p) for p in paths]
    with pytest.raises(ValueError, match=r"L5_pyramidal.pt: sha256 .* was planned for 0{16}"):
        simulate_closed_loop_run(**dict(sim, teacher_sha256=planned[:1] + ["0" * 64]
                                        + planned[2:]))
    # the teacher network failing on rank 0 stops every rank (none waits for its
    # spikes): 2 real MPI ranks, the failure forced in rank 0's teacher run
    script = tmp_path / "fail.py"
    script.write_text(
        "import json, sys\n"
        "import hnn_surrogate.network.run as run\n"
        "from hnn_surrogate.cells.closed_loop import simulate_closed_loop_run\n"
        "def boom(*a, **k):\n"
        "    raise MemoryError('teacher out of memory')\n"
        "run.simulate_surrogate = boom\n"
        "sim = json.loads(open(sys.argv[1]).read())\n"
        "from mpi4py import MPI\n"
        "try:\n"
        "    simulate_closed_loop_run(**sim)\n"
        "except Exception as err:\n"
        "    with open(f'{sys.argv[1]}.{MPI.COMM_WORLD.Get_rank()}', 'w') as f:\n"
        "        f.write(f'STOPPED {err!r}')\n")
    (tmp_path / "sim.json").write_text(json.dumps(dict(sim, checkpoints=list(map(str, paths)))))
    done = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script),
                           str(tmp_path / "sim.json")], capture_output=True, text=True,
                          timeout=300)
    stopped = [(tmp_path / f"sim.json.{rank}").read_text()
               for rank in (0, 1) if (tmp_path / f"sim.json.{rank}").is_file()]
    assert stopped == [
        "STOPPED MemoryError('teacher out of memory')",
        "STOPPED RuntimeError(\"run 1: the teacher network failed on rank 0: "
        "MemoryError('teacher out of memory')\")"], done.stdout + done.stderr
