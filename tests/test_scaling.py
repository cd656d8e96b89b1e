"""Network scaling: hnn-core's drives drawn at any size, sparse wiring with
hnn-core's rules (equal to hnn-core's own wiring where hnn-core can build it),
the arithmetic count, the memory refusal, NEURON's time limit."""

import sys

import numpy as np
import pytest
import torch

from hnn_surrogate import hnn_compat
from hnn_surrogate.bench.scaling import ScalingError, _run_within, check_point
from hnn_surrogate.config import load_config
from hnn_surrogate.network.sparse import (Cutoff, build_sparse_network, count_entries,
                                          rule_pairs, sparse_wiring)
from hnn_surrogate.network.spec import build_network
from hnn_surrogate.network.wiring import NetworkError, build_wiring

TSTOP, BIN = 200.0, 0.5


@pytest.fixture(scope="module")
def spec():
    cfg = load_config("config/config.yaml")
    return dict(cfg["network"], bin_ms=cfg["cells"]["bin_ms"], mesh_shape=[5, 5])


def _equal(a, b):
    """Every connection, synapse entry and drive event of two wirings equal, exactly."""
    assert [c.label for c in a.connections] == [c.label for c in b.connections]
    assert [c.scale for c in a.connections] == [c.scale for c in b.connections]
    for t in a.cell_types:
        for f in ("ptr", "row", "delay_bins", "unit_weight", "conn", "delay"):
            np.testing.assert_array_equal(getattr(a.synapses[t], f), getattr(b.synapses[t], f),
                                          err_msg=f"{t} synapses {f}")
        for f in ("bin", "row", "unit_weight", "conn", "time"):
            np.testing.assert_array_equal(getattr(a.drives[t], f), getattr(b.drives[t], f),
                                          err_msg=f"{t} drives {f}")


def test_drive_events_equal_hnn_cores_own():
    """hnn_compat.instantiate_drives (linear in size) draws hnn-core's events:
    cell-specific Poisson, the ERP's evoked drives, a bursty drive shared by cells."""
    import hnn_core
    from hnn_core.network_models import add_erp_drives_to_jones_model

    net = hnn_core.neymotin_2020_model(mesh_shape=(4, 4))
    add_erp_drives_to_jones_model(net)
    net.add_poisson_drive("noise", rate_constant=10.0, location="proximal", event_seed=3,
                          weights_ampa={"L2_pyramidal": 0.004, "L5_basket": 0.002})
    net.add_bursty_drive("alpha", tstart=50.0, burst_rate=10, burst_std=20, numspikes=2,
                         spike_isi=10, n_drive_cells=10, location="distal", event_seed=5,
                         weights_ampa={"L2_pyramidal": 1e-3}, cell_specific=False)
    theirs, ours = net.copy(), net.copy()
    for drive in theirs.external_drives.values():      # as simulate_dipole does first
        if drive["dynamics"].get("tstop", 0) is None:
            drive["dynamics"]["tstop"] = 300.0
    theirs._instantiate_drives(n_trials=2, tstop=300.0)
    hnn_compat.instantiate_drives(ours, 300.0, 2)
    for name, drive in theirs.external_drives.items():
        a, b = drive["events"], ours.external_drives[name]["events"]
        assert len(a) == len(b) == 2
        for trial_a, trial_b in zip(a, b):
            assert len(trial_a) == len(trial_b) > 0, name
            for x, y in zip(trial_a, trial_b):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("condition", ["default", "l5_inhibition_up"])
def test_sparse_wiring_without_cutoff_is_hnn_cores_dense_wiring(spec, condition):
    dense = build_network(spec, scenario="rhythm", condition=condition, seed=1)
    hnn_compat.instantiate_drives(dense, TSTOP)
    net, rules = build_sparse_network(spec, scenario="rhythm", condition=condition, seed=1,
                                      mesh=5, cutoff=Cutoff())
    hnn_compat.instantiate_drives(net, TSTOP)
    assert not any(c["src_type"] in net.cell_types for c in net.connectivity)
    _equal(build_wiring(dense, tstop=TSTOP, bin_ms=BIN),
           sparse_wiring(net, rules, Cutoff(), tstop=TSTOP, bin_ms=BIN))


def test_sparse_wiring_within_a_cutoff_is_hnn_cores_wiring_of_those_pairs(spec):
    """Within the cutoff, the numpy wiring equals hnn-core's own wiring of the
    network connected through its add_connection (what NEURON runs), and it
    holds exactly hnn-core's dense entries whose pair lies within the radius."""
    cut = Cutoff(lamtha_multiple=1.0, max_um=2.5)
    net, rules = build_sparse_network(spec, scenario="rhythm", condition="l5_inhibition_up",
                                      seed=2, mesh=5, cutoff=cut)
    connected, _ = build_sparse_network(spec, scenario="rhythm", condition="l5_inhibition_up",
                                        seed=2, mesh=5, cutoff=cut, connect=True)
    for n in (net, connected):
        hnn_compat.instantiate_drives(n, TSTOP)
    ours = sparse_wiring(net, rules, cut, tstop=TSTOP, bin_ms=BIN)
    _equal(build_wiring(connected, tstop=TSTOP, bin_ms=BIN), ours)

    dense = build_network(spec, scenario="rhythm", condition="l5_inhibition_up", seed=2)
    hnn_compat.instantiate_drives(dense, TSTOP)
    full = build_wiring(dense, tstop=TSTOP, bin_ms=BIN)
    pos = {t: np.asarray(net.pos_dict[t])[:, :2] for t in net.cell_types}
    n_kept = n_cut = 0
    for t in full.cell_types:
        syn, mine = full.synapses[t], ours.synapses[t]
        src = np.repeat(np.arange(full.n_gids), np.diff(syn.ptr))
        radius = np.array([cut.radius(r["nc_dict"]["lamtha"], 1.0) for r in rules])[syn.conn]
        src_type = [full.connections[c].src_type for c in syn.conn]
        sp = np.array([pos[s][g - net.gid_ranges[s][0]] for s, g in zip(src_type, src)])
        tp = pos[t][syn.row // full.n_channels[t]]
        within = np.hypot(*(tp - sp).T) <= radius
        kept = set(zip(src[within], syn.row[within], syn.conn[within], syn.unit_weight[within]))
        mine_src = np.repeat(np.arange(ours.n_gids), np.diff(mine.ptr))
        assert kept == set(zip(mine_src, mine.row, mine.conn, mine.unit_weight)), t
        n_kept, n_cut = n_kept + within.sum(), n_cut + (~within).sum()
    assert n_kept > 0 and n_cut > 0           # the cutoff cut something, and kept something


def test_synapse_count_bounds_the_wiring(spec):
    cut = Cutoff(2.0, 3.0)
    net, rules = build_sparse_network(spec, scenario="rhythm", condition="default", seed=0,
                                      mesh=8, cutoff=cut)
    hnn_compat.instantiate_drives(net, TSTOP)
    built = sum(s.row.size for s in sparse_wiring(net, rules, cut, tstop=TSTOP,
                                                  bin_ms=BIN).synapses.values())
    counted = count_entries(net, rules, cut)
    # the count also holds autapses and pairs whose delay outlasts the run
    assert built <= counted <= 1.1 * built
    # pairs come in hnn-core's order: by source gid, then target gid
    pairs = rule_pairs(net, rules[0], cut)
    assert np.all(np.diff(pairs[:, 0] * 10**6 + pairs[:, 1]) > 0)


def test_connection_probability_below_one_is_refused(spec):
    from hnn_surrogate.network.sparse import connection_rules

    net = build_network(spec, scenario="rhythm", condition="default", seed=0)
    net.add_connection("L2_basket", "L5_basket", "soma", "gabaa", 0.01, 1.0, lamtha=20.0,
                       probability=0.5, conn_seed=3)
    with pytest.raises(NetworkError, match="probability 0.5"):
        connection_rules(net)


def test_a_size_over_the_memory_limit_is_refused_naming_size_and_limit(spec):
    point = {"mesh": 30, "tstop": 100.0, "scenario": "rhythm", "seed": 0,
             "cutoff": {"lamtha_multiple": 2.0, "max_um": 8.0}}
    size = check_point(spec, point, memory_limit_gb=100.0)
    assert size["n_cells"] == 2 * 900 + 2 * 300 and size["n_entries"] > 0
    with pytest.raises(ScalingError, match=r"mesh 30 \(2400 cells.*memory_limit_gb = 1.0"):
        check_point(spec, point, memory_limit_gb=1.0)


def test_flops_per_cell_bin_counts_every_matrix_product_of_a_step():
    """Against torch's own FLOP counter on one fused step of two models (which
    does not see in-place products: a convolution's taps after its first, and
    without gradients the LSTM's recurrent product, are ``baddbmm_``, added here)."""
    from torch.utils.flop_counter import FlopCounterMode

    from hnn_surrogate.network.fused import FusedStepper, flops_per_cell_bin
    from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

    torch.manual_seed(0)
    models = [Surrogate(SurrogateConfig(n_channels=n, n_targets=k, hidden=8, kernel_size=3,
                                        dilations=(1, 2), lstm_hidden=16)).eval()
              for n, k in ((5, 2), (3, 1))]
    batch, bins = 6, 2
    stepper = FusedStepper(models, batch, slots=[(0, 0, batch), (1, 0, batch)], bins=bins)
    x = torch.randn(2, batch, bins, stepper.n_in)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        stepper.step(x, stepper.init_state())
    in_place = (2 * 8 * 8 * (3 - 1) * 2           # 2 H H (kernel - 1) per block, 2 blocks
                + 2 * 16 * 4 * 16)                # 2 H_lstm 4 H_lstm, the recurrent product
    assert (counter.get_total_flops() + in_place * 2 * batch * bins
            == flops_per_cell_bin(stepper) * 2 * batch * bins)


def test_a_neuron_run_over_the_time_limit_is_stopped_with_its_children():
    assert _run_within([sys.executable, "-c", "pass"], None, 30)
    cmd = [sys.executable, "-c",
           "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
           "'import time; time.sleep(60)']); time.sleep(60)"]
    start = __import__("time").perf_counter()
    assert not _run_within(cmd, None, 2)
    assert __import__("time").perf_counter() - start < 20


def test_a_fused_step_in_blocks_of_cells_equals_the_whole(monkeypatch):
    """Past CELL_BLOCK cells over all slots the cells go through the layers a block at
    a time (CELL_BLOCK / slots per slot), each block with its own state: the same
    outputs, step after step."""
    from hnn_surrogate.network import fused
    from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

    torch.manual_seed(1)
    models = [Surrogate(SurrogateConfig(n_channels=n, n_targets=k, hidden=8, kernel_size=3,
                                        dilations=(1, 2, 4), lstm_hidden=16,
                                        linear_taus=(2.0, 8.0))).eval()
              for n, k in ((5, 2), (3, 1))]
    batch, slots = 23, [(0, 0, 23), (1, 0, 23)]
    whole = fused.FusedStepper(models, batch, slots=slots, bins=2)
    s_whole = whole.init_state()
    monkeypatch.setattr(fused, "CELL_BLOCK", 15)    # 2 slots: at most 7 a block, 4 blocks
    blocked = fused.FusedStepper(models, batch, slots=slots, bins=2)
    s_blocked = blocked.init_state()
    assert blocked.block == 7 and [b["h"].shape[1] for b in s_blocked["blocks"]] == [6, 6, 6, 5]
    assert "blocks" not in s_whole
    with torch.no_grad():
        for _ in range(20):
            x = torch.randn(2, batch, 2, whole.n_in)
            z_whole, s_whole = whole.step(x, s_whole)
            z_blocked, s_blocked = blocked.step(x, s_blocked)
            torch.testing.assert_close(z_blocked, z_whole, rtol=1e-5, atol=1e-6)


def test_blocks_differ_by_at_most_one_cell_and_few_blocks_keep_torchs_threads(monkeypatch):
    """A slot's cells are cut into the fewest blocks of at most ``block``, of sizes
    that differ by at most one; block threads are used only where there are at
    least as many blocks as torch threads (fewer: torch's threads use the cores)."""
    from hnn_surrogate.network import fused
    from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

    model = Surrogate(SurrogateConfig(n_channels=3, hidden=4, kernel_size=2, dilations=(1,),
                                      lstm_hidden=4)).eval()
    monkeypatch.setattr(fused, "CELL_BLOCK", 3)
    for batch, sizes in ((10, [3, 3, 2, 2]), (9, [3, 3, 3]), (3, [3]), (4, [2, 2])):
        stepper = fused.FusedStepper([model], batch)
        assert stepper.block_sizes == sizes and stepper.n_blocks == len(sizes)
        state = stepper.init_state()
        got = ([b["h"].shape[1] for b in state["blocks"]] if "blocks" in state
               else [state["h"].shape[1]])
        assert got == sizes
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for batch, pooled in ((3, False), (4, True), (10, True)):
            with fused.block_threads([fused.FusedStepper([model], batch)], grad=False) as pool:
                assert (pool is not None) == pooled, batch
                assert torch.get_num_threads() == (1 if pooled else 2)
        with fused.block_threads([fused.FusedStepper([model], 10)], grad=True) as pool:
            assert pool is None
    finally:
        torch.set_num_threads(before)
