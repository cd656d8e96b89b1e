"""The surrogate network against hnn-core: wiring, delays, event counts, gradients, MPI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from hnn_surrogate import CELL_TYPES
from hnn_surrogate.artifacts import NETWORK_RUN
from hnn_surrogate.cells.channels import channel_index
from hnn_surrogate.hnn_compat import instantiate_drives
from hnn_surrogate.network.events import RingQueue
from hnn_surrogate.network.simulate import MAX_BINS_PER_STEP, SurrogateNetwork
from hnn_surrogate.network.wiring import NetworkError, build_wiring

from network_helpers import BIN_MS, TSTOP, tiny_net, tiny_spec, untrained_surrogates  # noqa: F401


def _neuron_netcons(net):
    """Build ``net`` in NEURON with hnn-core's NetworkBuilder; run it; return its NetCons.

    Runs in a child process (one NEURON network per process). Returns, per NetCon,
    (source gid, target type, receptor, weight, delay), and NEURON's spikes.
    """
    code = r"""
import json, pickle, sys
import numpy as np
from neuron import h
from hnn_core.network_builder import NetworkBuilder, _long_name
net = pickle.load(open(sys.argv[1], 'rb'))
tstop = float(sys.argv[2])
nb = NetworkBuilder(net)
h.load_file('stdrun.hoc')
h.tstop = tstop
h.dt = 0.025
h.celsius = net._params['celsius']
from hnn_core import network_builder as nbm
nbm._PC.set_maxstep(10)
h.finitialize()
nbm._PC.psolve(tstop)
rows = []
for name, ncs in nb.ncs.items():
    tgt = _long_name(name.split('_')[1])
    for nc in ncs:
        receptor = name.split('_')[-1]
        rows.append([int(nc.srcgid()), tgt, receptor, float(nc.weight[0]), float(nc.delay)])
json.dump({'rows': rows, 'spike_times': list(nb._spike_times), 'spike_gids': list(nb._spike_gids)},
          open(sys.argv[3], 'w'))
"""
    return code


@pytest.fixture(scope="module")
def neuron_build(tmp_path_factory):
    import pickle

    folder = tmp_path_factory.mktemp("netcons")
    net = tiny_net()
    (folder / "net.pkl").write_bytes(pickle.dumps(net))
    (folder / "child.py").write_text(_neuron_netcons(net))
    subprocess.run([sys.executable, str(folder / "child.py"), str(folder / "net.pkl"), str(TSTOP),
                    str(folder / "out.json")], check=True, capture_output=True)
    return net, json.loads((folder / "out.json").read_text())


def test_synapses_and_delays_match_neurons_netcons(neuron_build):
    net, built = neuron_build
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    drive_gids = {g for name in net.external_drives for g in net.gid_ranges[name]}
    # NEURON's cell-to-cell NetCons: per (target type, source gid, delay bin) summed weight
    want = {}
    for src, tgt, receptor, weight, delay in built["rows"]:
        if src in drive_gids:
            continue
        d = max(1, int(np.floor(0.5 + delay / BIN_MS)))
        key = (tgt, src, d)
        want[key] = want.get(key, 0.0) + weight
    got = {}
    for t, syn in wiring.synapses.items():
        for src in range(wiring.n_gids):
            for e in range(syn.ptr[src], syn.ptr[src + 1]):
                key = (t, src, int(syn.delay_bins[e]))
                w = wiring.connections[syn.conn[e]].scale * syn.unit_weight[e]
                got[key] = got.get(key, 0.0) + w
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_drive_events_received_equal_neurons(neuron_build):
    """Every drive event NEURON delivers before tstop (its NetCons, its recorded drive
    spikes) is in the surrogate's input, with the same weight, per target type."""
    net, built = neuron_build
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    times = np.array(built["spike_times"])
    gids = np.array(built["spike_gids"]).astype(int)
    drive_gids = {g for name in net.external_drives for g in net.gid_ranges[name]}
    count, weight = {t: 0 for t in CELL_TYPES}, {t: 0.0 for t in CELL_TYPES}
    for src, tgt, receptor, w, delay in built["rows"]:
        if src not in drive_gids:
            continue
        n = int(np.sum(times[gids == src] + delay < TSTOP))
        count[tgt] += n
        weight[tgt] += n * w
    assert sum(count.values()) > 50
    for t in CELL_TYPES:
        d = wiring.drives[t]
        assert wiring.n_drive_events[t] == count[t], t
        w = sum(wiring.connections[c].scale * u for c, u in zip(d.conn, d.unit_weight))
        assert w == pytest.approx(weight[t], rel=1e-9), t


@pytest.mark.parametrize("delay", [1.0, 3.0, 5.2])
def test_delays_shift_spike_arrival(delay):
    from hnn_core import neymotin_2020_model

    net = neymotin_2020_model(mesh_shape=(2, 2))
    net.clear_connectivity()
    net.add_connection("L2_basket", "L2_pyramidal", loc="soma", receptor="gabaa", weight=0.05,
                       delay=delay, lamtha=1e9)
    instantiate_drives(net, TSTOP)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    from hnn_surrogate.network.fused import network_groups

    kb = sim.bins_per_step                  # the shortest delay, at most MAX_BINS_PER_STEP
    assert kb == min(int(round(delay / BIN_MS)), MAX_BINS_PER_STEP)
    parts = network_groups([sim.surrogates[t].model for t in wiring.cell_types],
                           [wiring.n_cells(t) for t in wiring.cell_types], bins=kb)
    layout = sim._layout(parts)
    # a queue of each kind per group, the normalisation 1 so inputs read in uS
    queues = {kind: [sim._queue(p, torch.ones(p.n_slots * p.batch * kb * p.n_in), grad)
                     for p in parts] for kind, grad in (("tensors", True), ("numpy", False))}
    assert all(isinstance(q, RingQueue) for q in queues["numpy"])
    k = 10
    gid = wiring.gid_ranges["L2_basket"][1]
    outgoing = sim._outgoing(layout, [p.n_in for p in parts], sim.scale)
    for qs in queues.values():
        sim._deliver(np.array([k]), np.array([gid]), None, qs, outgoing)
    # the spike of bin k (at its centre) arrives `delay` later, at the soma GABA-A
    # input of every L2 pyramidal cell and nowhere else: in the step of that bin,
    # at the bin's place in the step's (slot, cell, bin, channel) input
    expected = int(np.floor((k + 0.5) + delay / BIN_MS))
    group, _, flat = layout["L2_pyramidal"]
    soma = channel_index("L2_pyramidal")["soma_gabaa"]
    n_ch, n_in = wiring.n_channels["L2_pyramidal"], parts[group].n_in
    cells = flat[[c * n_ch + soma for c in range(wiring.n_cells("L2_pyramidal"))]]
    want = (cells // n_in * kb + expected % kb) * n_in + cells % n_in
    for kind, qs in queues.items():
        for step in range(expected // kb + 2):
            for gi, q in enumerate(qs):
                x = q.take(step).numpy()
                if step == expected // kb and gi == group:
                    np.testing.assert_array_equal(np.flatnonzero(x), np.sort(want), err_msg=kind)
                    np.testing.assert_allclose(x[want], 0.05, err_msg=kind)        # uS
                else:
                    assert not x.any(), (kind, step, gi)


def test_network_with_unmodelled_parts_is_refused():
    from hnn_core import neymotin_2020_model

    net = neymotin_2020_model(mesh_shape=(2, 2))
    net.add_tonic_bias(amplitude={"L2_pyramidal": 1.0})
    with pytest.raises(NetworkError, match="tonic biases"):
        build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    from hnn_core import law_2021_model

    with pytest.raises(NetworkError, match="L2_pyramidal in this network differs"):
        build_wiring(law_2021_model(mesh_shape=(2, 2)), tstop=TSTOP, bin_ms=BIN_MS)


def test_surrogate_network_is_differentiable_in_the_weights():
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    with torch.no_grad():
        ref = sim.run()
    scale = sim.scale.clone().requires_grad_(True)
    out = sim.run(scale)
    np.testing.assert_array_equal(out.spike_gids, ref.spike_gids)
    np.testing.assert_array_equal(out.spike_times, ref.spike_times)
    assert ref.spike_times.size > 0
    loss = (out.dipole["L5"] ** 2).sum() + (out.dipole["L2"] ** 2).sum()
    loss.backward()
    assert torch.isfinite(scale.grad).all()
    drive_conns = [i for i, c in enumerate(wiring.connections) if c.src_type == "noise"]
    assert (scale.grad[drive_conns] != 0).any()
    # the surrogate slope shapes the gradient, never the run
    scale2 = sim.scale.clone().requires_grad_(True)
    steep = sim.run(scale2, surrogate_slope=3.0)
    np.testing.assert_array_equal(steep.spike_times, out.spike_times)
    for layer in ("L2", "L5"):
        torch.testing.assert_close(steep.dipole[layer], out.dipole[layer])
    ((steep.dipole["L5"] ** 2).sum() + (steep.dipole["L2"] ** 2).sum()).backward()
    assert not torch.allclose(scale2.grad, scale.grad)


def test_a_ring_shallower_than_the_delays_gives_the_same_run(monkeypatch):
    """Without gradients the input events go through a ring of the next steps'
    inputs; events beyond it wait in a list. A ring of 2 steps (every delay
    of more than a step waits) gives the run of the full ring."""
    from hnn_surrogate.network import events

    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    with torch.no_grad():
        full = sim.run()
        monkeypatch.setattr(events, "RING_BYTES", 1)
        shallow = sim.run()
    assert full.spike_times.size > 0
    np.testing.assert_array_equal(shallow.spike_gids, full.spike_gids)
    np.testing.assert_array_equal(shallow.spike_times, full.spike_times)
    for layer in ("L2", "L5"):
        torch.testing.assert_close(shallow.dipole[layer], full.dipole[layer], rtol=0, atol=0)


def test_simulate_dipole_is_hnn_cores_signature(tmp_path):
    from hnn_core.dipole import Dipole

    from hnn_surrogate.network import simulate_dipole

    net = tiny_net()
    dpls = simulate_dipole(net, tstop=TSTOP, surrogates=untrained_surrogates(), verbose=False)
    assert len(dpls) == 1 and isinstance(dpls[0], Dipole)
    assert set(dpls[0].data) == {"agg", "L2", "L5"}
    assert dpls[0].times.size == int(TSTOP / BIN_MS)
    gids = np.array(net.cell_response.spike_gids[0])
    assert gids.size and gids.max() < 14


def test_neuron_network_gives_the_same_spikes_on_1_and_2_ranks(repo, tmp_path):
    tiny_spec(repo, tmp_path)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}.nc"
        subprocess.run(["mpiexec", "-n", str(n), "hnn-surrogate", "network-neuron", "--spec",
                        str(tmp_path / "spec.json"), "--scenario", "rhythm", "--condition",
                        "default", "--seed", "0", "--out", str(out)], check=True,
                       capture_output=True)
        runs[n] = NETWORK_RUN.read(out)
        assert runs[n].attrs["n_ranks"] == n
    assert runs[1].sizes["spike"] > 0
    np.testing.assert_array_equal(runs[1]["spike_gid"].values, runs[2]["spike_gid"].values)
    np.testing.assert_allclose(runs[1]["spike_time"].values, runs[2]["spike_time"].values)
    np.testing.assert_allclose(runs[1]["dipole"].values, runs[2]["dipole"].values, rtol=1e-9,
                               atol=1e-12)


def test_cells_are_cut_into_slots_that_pad_little():
    from hnn_surrogate.network.fused import sub_batch

    assert sub_batch([35, 100, 35, 100]) == 35      # HNN's default: 8 slots, 280 rows
    assert sub_batch([2, 4, 2, 4]) == 2             # the tiny network: no padding
    assert sub_batch([100, 35, 100]) == 35          # 7 slots, 245 rows (10 padded)
    assert sub_batch([7]) == 7


@pytest.mark.parametrize("sizes, n_groups, mesh, taus, rest", [
    (None, 1, (2, 2), (), False),                            # all four types, 2-cell slots
    ({"L2_basket": (4, 4), "L5_basket": (4, 4)}, 2, (2, 2), (), False),  # smaller basket models
    ({"L2_basket": (4, 4), "L5_pyramidal": (6, 8)}, 3, (2, 2), (), False),
    (None, 1, (10, 10), (), False),  # HNN's 270 cells: 35-cell slots, the last pyramidal padded
    (None, 1, (2, 2), (2.0, 20.0), False),                   # with a linear path
    (None, 1, (2, 2), (2.0,), True),                         # started at rest
    (None, 1, (2, 2), (), "kernels"),                        # reading conductances
])
def test_fused_step_equals_each_models_own_step(sizes, n_groups, mesh, taus, rest):
    """Types are fused where they share layer sizes, their cells cut into equal
    slots; whatever the grouping, the network runs (spikes, voltages,
    gradients) as with every model stepping alone."""
    from hnn_surrogate.network.fused import network_groups

    net = tiny_net(rate=80.0, mesh=mesh)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    kernels = rest == "kernels"
    surrogates = untrained_surrogates(sizes=sizes, taus=taus, rest=rest is True, kernels=kernels)
    models = [surrogates[t].model for t in wiring.cell_types]
    assert all((m.kernels is not None) == kernels for m in models)
    assert len(network_groups(models, [wiring.n_cells(t) for t in wiring.cell_types])) == n_groups
    with torch.no_grad():
        fused = SurrogateNetwork(wiring, surrogates, fuse=True).run(record_v=True)
        alone = SurrogateNetwork(wiring, surrogates, fuse=False).run(record_v=True)
    np.testing.assert_array_equal(fused.spike_gids, alone.spike_gids)
    np.testing.assert_array_equal(fused.spike_times, alone.spike_times)
    for t in wiring.cell_types:
        np.testing.assert_allclose(fused.v_soma[t], alone.v_soma[t], atol=1e-4)
    assert fused.spike_times.size > 0
    grads = []
    for fuse in (True, False):
        sim = SurrogateNetwork(wiring, surrogates, fuse=fuse)
        scale = sim.scale.clone().requires_grad_(True)
        sim.run(scale).dipole["L5"].sum().backward()
        grads.append(scale.grad)
    # gradients span 12 orders of magnitude: float32 rounding, relative to the largest
    big = float(grads[1].abs().max())
    assert big > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-6 * big)


@pytest.mark.parametrize("bins, taus, rest, kernels", [
    (1, (), False, False), (2, (), False, False), (3, (), False, False), (4, (), False, False),
    (2, (1.5, 8.0), False, False), (1, (), True, False), (3, (1.5,), True, False),
    (1, (), False, True), (3, (1.5,), True, True), (1, (1.5,), False, False)])
def test_fused_stepper_takes_k_bins_as_each_model_takes_one(bins, taus, rest, kernels):
    """K bins per step (taps of one step, or spanning two, whatever the dilation;
    a linear path's traces; a start at rest; each model's own input kernels) give
    each model's own bin-by-bin outputs."""
    from hnn_surrogate.network.fused import FusedStepper
    from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

    torch.manual_seed(0)
    models = [Surrogate(SurrogateConfig(
        n_channels=c, n_targets=n, hidden=6, kernel_size=k, dilations=(1, 2, 3), lstm_hidden=5,
        linear_taus=taus, rest_start=rest,
        input_rise=tuple(np.linspace(1.0, 2.0, c)) if kernels else (),
        input_decay=tuple(np.linspace(10.0, 40.0 - c, c)) if kernels else ()))
              for c, n, k in ((4, 1, 3), (7, 2, 3))]
    for m in models:
        if taus:
            torch.nn.init.normal_(m.linear.readout.weight)
        if rest:
            torch.nn.init.normal_(m.h0)
            torch.nn.init.normal_(m.c0)
    n_cells, n_bins = 3, 12
    stepper = FusedStepper(models, n_cells, bins=bins)
    x = torch.randn(len(models), n_cells, n_bins, stepper.n_in)
    with torch.no_grad():
        state, z = stepper.init_state(), []
        for k0 in range(0, n_bins, bins):
            out, state = stepper.step(x[:, :, k0:k0 + bins], state)
            z.append(out)
        z = torch.cat(z, dim=2)                                      # (T, B, n_bins, O)
        for i, m in enumerate(models):
            st = m.init_state(n_cells)
            for k in range(n_bins):
                y, logit, st = m.step(x[i, :, k, :m.config.n_channels], st)
                torch.testing.assert_close(z[i, :, k, :m.config.n_targets], y,
                                           rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(z[i, :, k, -1], logit, rtol=1e-5, atol=1e-5)


def test_steps_of_several_bins_give_the_network_of_single_bins():
    """The simulator steps as many bins at once as the shortest delay allows;
    spikes, voltages and gradients are those of stepping bin by bin."""
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    surrogates = untrained_surrogates()
    auto = SurrogateNetwork(wiring, surrogates)
    assert auto.bins_per_step == 2                  # HNN's shortest delay: 1 ms, 2 bins
    with pytest.raises(ValueError, match="bins_per_step=3: must be from 1 to the shortest"):
        SurrogateNetwork(wiring, surrogates, bins_per_step=3)
    runs, grads = [], []
    for kb in (2, 1):
        sim = SurrogateNetwork(wiring, surrogates, bins_per_step=kb)
        scale = sim.scale.clone().requires_grad_(True)
        out = sim.run(scale, record_v=True)
        (out.dipole["L5"].sum() + out.dipole["L2"].sum()).backward()
        runs.append(out)
        grads.append(scale.grad)
    assert runs[0].spike_times.size > 0
    np.testing.assert_array_equal(runs[0].spike_gids, runs[1].spike_gids)
    np.testing.assert_array_equal(runs[0].spike_times, runs[1].spike_times)
    for t in wiring.cell_types:
        np.testing.assert_allclose(runs[0].v_soma[t], runs[1].v_soma[t], atol=1e-4)
    big = float(grads[1].abs().max())
    assert big > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-6 * big)


def test_blocks_stepped_side_by_side_on_two_threads_give_the_serial_run(monkeypatch):
    """A network whose slots hold several blocks of cells steps them on one thread
    per torch thread (each block's operators on one): the same spikes and voltages
    as stepping them one after the other on one thread; torch's thread count is
    restored after the run, and a run with gradients keeps the serial loop."""
    from hnn_surrogate.network import fused

    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    monkeypatch.setattr(fused, "CELL_BLOCK", 2)          # blocks of one cell per slot
    used = []
    real = fused.block_threads

    @__import__("contextlib").contextmanager
    def spy(parts, grad):
        with real(parts, grad) as pool:
            used.append((pool is not None, torch.get_num_threads()))
            yield pool

    monkeypatch.setattr("hnn_surrogate.network.simulate.block_threads", spy)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(sim.run(record_v=True))
            assert torch.get_num_threads() == threads
        scale = sim.scale.clone().requires_grad_(True)
        sim.run(scale)
    finally:
        torch.set_num_threads(before)
    assert used == [(False, 1), (True, 1), (False, 2)]
    assert runs[0].spike_times.size > 0
    np.testing.assert_array_equal(runs[0].spike_gids, runs[1].spike_gids)
    np.testing.assert_array_equal(runs[0].spike_times, runs[1].spike_times)
    for t in wiring.cell_types:
        np.testing.assert_array_equal(runs[0].v_soma[t], runs[1].v_soma[t])


def test_open_loop_replaying_the_networks_own_spikes_is_the_closed_loop():
    """Replayed spikes are delivered as the network's own would be: replaying a
    run's own spikes gives that run back (spikes and dipoles)."""
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    with torch.no_grad():
        closed = sim.run()
        opened = sim.run(replay=(closed.spike_times, closed.spike_gids))
        silent = sim.run(replay=(np.zeros(0), np.zeros(0, np.int64)))
    assert closed.spike_times.size > 0
    np.testing.assert_array_equal(opened.spike_gids, closed.spike_gids)
    np.testing.assert_array_equal(opened.spike_times, closed.spike_times)
    for layer in ("L2", "L5"):
        torch.testing.assert_close(opened.dipole[layer], closed.dipole[layer])
    assert not np.array_equal(silent.spike_times, closed.spike_times)   # the replay matters


def test_partial_open_loop_replays_some_types_and_delivers_the_others_own_spikes():
    """``replay_types``: the listed types' spikes come from the replay, the
    others' from the network itself. Replaying a run's own spikes for any subset
    gives the run back; replaying nothing for a subset leaves the other types'
    own spikes in the loop (not the all-silent open loop); bad uses are refused."""
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates())
    types = list(wiring.cell_types)
    none = (np.zeros(0), np.zeros(0, np.int64))
    with torch.no_grad():
        closed = sim.run()
        silent = sim.run(replay=none)
        for subset in ([], types[:1], types[1:], types):
            part = sim.run(replay=(closed.spike_times, closed.spike_gids), replay_types=subset)
            np.testing.assert_array_equal(part.spike_gids, closed.spike_gids)
            np.testing.assert_array_equal(part.spike_times, closed.spike_times)
        own_all = sim.run(replay=none, replay_types=[])
        np.testing.assert_array_equal(own_all.spike_times, closed.spike_times)
        np.testing.assert_array_equal(
            sim.run(replay=none, replay_types=types).spike_times, silent.spike_times)
    assert closed.spike_times.size > 0 and not np.array_equal(silent.spike_times,
                                                              closed.spike_times)
    with pytest.raises(ValueError, match="unknown cell types"):
        sim.run(replay=none, replay_types=["L4_pyramidal"])
    with pytest.raises(ValueError, match="needs replay"):
        sim.run(replay_types=types)
    with pytest.raises(ValueError, match="without gradients"):
        sim.run(sim.scale.clone().requires_grad_(True), replay=none, replay_types=types)


def test_gradient_horizon_measures_every_connection_per_slope_and_time(repo, tmp_path):
    from hnn_surrogate.artifacts import GRADIENT_HORIZON
    from hnn_surrogate.network.gradients import gradient_horizon

    spec = tiny_spec(repo, tmp_path)
    surrogates = untrained_surrogates()
    with pytest.raises(ValueError, match="slopes must be >= 0"):
        gradient_horizon(spec, scenario="rhythm", checkpoints=surrogates, tstops=[10.0],
                         slopes=[-1.0], seed=0, out=tmp_path / "bad.nc")
    gradient_horizon(spec, scenario="rhythm", checkpoints=surrogates, tstops=[10.0, 30.0],
                     slopes=[0.0, 3.0], seed=0, configured_slope=3.0, out=tmp_path / "g.nc",
                     table=tmp_path / "g.md")
    ds = GRADIENT_HORIZON.read(tmp_path / "g.nc")
    assert dict(ds.sizes) == {"slope": 2, "tstop": 2, "connection": ds.sizes["connection"]}
    assert ds.sizes["connection"] > 10                  # every connection, drives included
    sens = ds["sensitivity"].values
    assert np.isfinite(sens).all() and (sens >= 0).all() and sens.max() > 0
    assert ds["n_spikes"].values[-1] > 0
    # spikes carry gradient only with a slope: the two differ once cells fire
    assert not np.allclose(sens[0, -1], sens[1, -1])
    assert "| 3 (configured) |" in (tmp_path / "g.md").read_text()
    assert "| 0 |" in (tmp_path / "g.md").read_text()


def test_two_neuron_network_jobs_on_one_machine_do_not_interfere(repo, tmp_path):
    """hnn-core's MPIBackend kills every nrniv on the machine when it ends; ours are
    plain MPI programs: two at once both finish, with the numbers of a lone run."""
    tiny_spec(repo, tmp_path)

    def start(name, scenario):
        return subprocess.Popen(
            ["mpiexec", "-n", "1", "hnn-surrogate", "network-neuron", "--spec",
             str(tmp_path / "spec.json"), "--scenario", scenario, "--condition", "default",
             "--seed", "0", "--out", str(tmp_path / f"{name}.nc")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    jobs = [start("a", "rhythm"), start("b", "evoked")]
    assert [j.wait(timeout=300) for j in jobs] == [0, 0]
    assert start("alone", "rhythm").wait(timeout=300) == 0
    a, alone = NETWORK_RUN.read(tmp_path / "a.nc"), NETWORK_RUN.read(tmp_path / "alone.nc")
    np.testing.assert_array_equal(a["spike_gid"].values, alone["spike_gid"].values)
    assert NETWORK_RUN.read(tmp_path / "b.nc").sizes["spike"] > 0


def test_drive_sweep_writes_its_grid(repo, tmp_path):
    from hnn_surrogate.artifacts import DRIVE_SWEEP

    tiny_spec(repo, tmp_path)
    proc = subprocess.run(["hnn-surrogate", "sweep-drive", "--spec", str(tmp_path / "spec.json"),
                           "--scenario", "rhythm", "--rates", "10", "40",
                           "--pyramidal-weights", "0.004", "--basket-weights", "0.002",
                           "--seed", "0", "--transient-ms", "20", "--out",
                           str(tmp_path / "sweep.nc")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ds = DRIVE_SWEEP.read(tmp_path / "sweep.nc")
    assert list(ds["rate_constant"].values) == [10.0, 40.0]
    assert "| rate (Hz) |" in proc.stdout
    assert ds.attrs["simulator"] == "neuron"
    # more drive, more L2 basket spikes (strictly: 0 == 0 would say nothing)
    rates = ds["rate"].sel(cell_type="L2_basket").values
    assert rates[1] > rates[0], rates


def test_drive_sweep_screens_with_the_surrogates(repo, tmp_path):
    """The same grid through the surrogate network: each point is that network's
    own run of the drive (its rates are those of a direct run)."""
    from hnn_surrogate.artifacts import DRIVE_SWEEP
    from hnn_surrogate.network.drive_sweep import sweep_drive
    from hnn_surrogate.network.spec import build_network

    spec = tiny_spec(repo, tmp_path)
    surrogates = untrained_surrogates()
    sweep_drive(spec, scenario="rhythm", rates=[10.0, 80.0], pyramidal_weights=[0.04],
                basket_weights=[0.02], seed=0, transient_ms=spec["transient_ms"],
                out=tmp_path / "s.nc", checkpoints=surrogates)
    ds = DRIVE_SWEEP.read(tmp_path / "s.nc")
    assert ds.attrs["simulator"] == "surrogate"
    assert list(ds["rate_constant"].values) == [10.0, 80.0]
    # point 2 by hand: its drive set on the scenario, the surrogate network run once
    sp = json.loads(json.dumps(spec))
    params = sp["scenarios"]["rhythm"]["drives"][0].setdefault("params", {})
    params.update(rate_constant=80.0, weights_ampa={"L2_pyramidal": 0.04, "L5_pyramidal": 0.04,
                                                    "L2_basket": 0.02, "L5_basket": 0.02})
    net = build_network(sp, scenario="rhythm", condition="default", seed=0)
    tstop = sp["scenarios"]["rhythm"]["tstop"]
    instantiate_drives(net, tstop)
    res = SurrogateNetwork(build_wiring(net, tstop=tstop, bin_ms=sp["bin_ms"]), surrogates).run()
    # rates after the transient, as the comparison counts them
    after = res.spike_times >= spec["transient_ms"]
    span_s = (tstop - spec["transient_ms"]) / 1000.0
    for t in ds["cell_type"].values.astype(str):
        cells = list(net.gid_ranges[t])
        want = (np.isin(res.spike_gids, cells) & after).sum() / len(cells) / span_s
        assert ds["rate"].sel(cell_type=t).values[1] == pytest.approx(want), t
    assert ds["rate"].values[1].sum() > 0


def test_replay_regime_cells_fire_alone_as_they_did_in_the_network(repo, tmp_path):
    """End to end check of the wiring and of the cells stage's replay regime: the events
    the surrogates' wiring says each cell received in a NEURON network run, replayed to
    the lone cell by a replay shard, make it fire when it fired in the network (every
    cell of every type; the shard runs 20 ms past the network's end, input-free)."""
    from hnn_surrogate.cells.replay import ReplayInputs
    from hnn_surrogate.cells.shard import simulate_shard
    from hnn_surrogate.network.replay import write_received_events

    spec = tiny_spec(repo, tmp_path)
    subprocess.run(["mpiexec", "-n", "1", "hnn-surrogate", "network-neuron", "--spec",
                    str(tmp_path / "spec.json"), "--scenario", "rhythm", "--condition",
                    "default", "--seed", "0", "--out", str(tmp_path / "run.nc")],
                   check=True, capture_output=True)
    run = NETWORK_RUN.read(tmp_path / "run.nc")
    events = tmp_path / "events.nc"
    write_received_events(spec, scenario="rhythm", condition="default", seed=0,
                          run_path=tmp_path / "run.nc", out=events)
    with pytest.raises(ValueError, match="condition"):
        write_received_events(spec, scenario="rhythm", condition="l5_inhibition_up", seed=0,
                              run_path=tmp_path / "run.nc", out=tmp_path / "x.nc")
    net_tstop = spec["scenarios"]["rhythm"]["tstop"]
    st, sg = run["spike_time"].values, run["spike_gid"].values
    for t in CELL_TYPES:
        inputs = ReplayInputs([events], t, seed=3, delay=0.1)
        n = inputs.capacity
        ds = simulate_shard(cell_type=t, regime_name="replay", replay=[events], first=0,
                            count=n, tstop=net_tstop + 20.0, dt=spec["dt"],
                            bin_ms=spec["bin_ms"], delay=0.1, seed=3, store_fine=False)
        gids = [inputs.source(k)[1] for k in range(n)]
        assert len(set(gids)) == n == (run["n_cells"].sel(cell_type=t).item())
        # the shard counts the NEURON run it replays as part of its cost
        assert json.loads(ds.attrs["source_neuron_jobs"]) == {
            f"network/{run.attrs['config_hash']}/rhythm/default/0":
                pytest.approx(float(run.attrs["wall_s"]))}
        fired = 0
        for k, gid in enumerate(gids):
            alone = ds["spike_time"].values[ds["spike_sim"].values == k]
            np.testing.assert_allclose(alone[alone < net_tstop], st[sg == gid], atol=0.05,
                                       err_msg=f"{t} gid {gid}")
            fired += bool(alone.size)
        assert fired, f"no {t} cell fired: the check would be empty"
        with pytest.raises(ValueError, match="lower cells.replay.n_sims"):
            inputs.source(n)


def test_half_precision_saved_activations_keep_the_run_and_the_gradient(monkeypatch):
    """grad_storage='float16' keeps autograd's saved float32 activations in half
    precision (each base tensor once): the run is the same, the gradient within
    about 1e-3 of the exact one."""
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates(sizes={t: (64, 64) for t in CELL_TYPES}))
    grads, runs = [], []
    for storage in ("exact", "float16"):
        scale = sim.scale.clone().requires_grad_(True)
        out = sim.run(scale, grad_storage=storage)
        ((out.dipole["L5"] ** 2).sum() + (out.dipole["L2"] ** 2).sum()).backward()
        grads.append(scale.grad)
        runs.append(out)
    assert runs[0].spike_times.size > 0
    np.testing.assert_array_equal(runs[0].spike_times, runs[1].spike_times)
    torch.testing.assert_close(runs[0].dipole["L5"], runs[1].dipole["L5"], rtol=0, atol=0)
    assert not torch.equal(grads[0], grads[1])                 # half precision was used
    big = float(grads[0].abs().max())
    torch.testing.assert_close(grads[1], grads[0], rtol=2e-2, atol=2e-3 * big)
    with pytest.raises(ValueError, match="grad_storage 'bf16': one of exact, float16"):
        sim.run(sim.scale.clone().requires_grad_(True), grad_storage="bf16")
    # the float32 copies kept at hand for backpropagation change nothing: the
    # same gradient, bit for bit, when every read converts its copy afresh
    import hnn_surrogate.network.simulate as simulate

    monkeypatch.setattr(simulate, "UNPACKED_RECENT", 0)
    scale = sim.scale.clone().requires_grad_(True)
    out = sim.run(scale, grad_storage="float16")
    ((out.dipole["L5"] ** 2).sum() + (out.dipole["L2"] ** 2).sum()).backward()
    assert torch.equal(scale.grad, grads[1])


def test_the_network_expands_compressed_targets_as_the_checkpoint_does():
    """A surrogate trained with target compression: the network stage's voltages
    are the heads' outputs expanded by the checkpoint's own mapping."""
    from hnn_surrogate.surrogate.checkpoint import LoadedSurrogate

    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    plain = untrained_surrogates()
    soft = {}
    for t, s in plain.items():
        blob = dict(s.blob, normalization=dict(s.blob["normalization"]))
        n_t = len(s.targets)
        blob["normalization"]["target_center"] = [-70.0, 0.0][:n_t]
        blob["normalization"]["target_soft"] = [0.5, 0.0][:n_t]      # voltage only
        soft[t] = LoadedSurrogate(blob)
    with torch.no_grad():
        a = SurrogateNetwork(wiring, plain).run(record_v=True)
        b = SurrogateNetwork(wiring, soft).run(record_v=True)
    assert a.spike_times.size > 0
    np.testing.assert_array_equal(a.spike_gids, b.spike_gids)        # the heads do not feed back
    for t in a.v_soma:
        np.testing.assert_allclose(b.v_soma[t], -70.0 + 0.5 * np.sinh(a.v_soma[t]), rtol=1e-12)
    for layer in ("L2", "L5"):                    # the dipole is not compressed: unchanged
        torch.testing.assert_close(a.dipole[layer], b.dipole[layer])


def test_the_lstm_cell_as_one_autograd_node_has_the_nine_operations_gradient():
    """In a run with gradients the fused LSTM cell is one node with its backward
    written out (``fused._LSTMCellDoubled``): its outputs and its gradient, in
    float64, equal autograd's through the cell's own nine operations, over
    several bins (the cell state carried); and its outputs are an LSTM cell's."""
    from hnn_surrogate.network import fused

    gen = torch.Generator().manual_seed(3)
    gates0 = torch.randn(4, 2, 5, 4 * 6, generator=gen, dtype=torch.float64)
    c0 = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    w_out = torch.randn(4, 2, 5, 6, generator=gen, dtype=torch.float64)

    def run(one_node):
        gates, c2 = gates0.clone().requires_grad_(True), (2 * c0).requires_grad_(True)
        h_all, c = [], c2
        for j in range(gates.shape[0]):
            if one_node:
                h, c = fused._lstm_cell_doubled(gates[j], c)
            else:
                i, f, g2, o = torch.sigmoid(gates[j]).chunk(4, dim=-1)
                h, c, _ = fused._lstm_tail(i, f, g2, o, c)
            h_all.append(h)
        loss = (torch.stack(h_all) * w_out).sum() + (c ** 2).sum()
        loss.backward()
        return torch.stack(h_all), c, gates.grad, c2.grad

    one, nine = run(True), run(False)
    assert one[0].grad_fn.next_functions[0][0].name().startswith("_LSTMCellDoubled")
    for a, b in zip(one, nine):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # the doubled form is PyTorch's LSTM cell (gate g's rows doubled, c doubled)
    i, f, g, o = gates0[0].chunk(4, dim=-1)
    c_ref = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    h1, c1 = fused._lstm_cell_doubled(torch.cat([i, f, 2 * g, o], dim=-1)
                                      .requires_grad_(True), 2 * c0)
    torch.testing.assert_close(h1, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c1 / 2, c_ref, rtol=1e-12, atol=1e-12)


def test_the_comparison_table_gives_neurons_spread_over_the_seeds_beside_each_target():
    """Three seeds: NEURON's gamma fraction 0.1 / 0.2 / 0.3 (sd 0.1, 50 % of its mean),
    its peak 10 / 12 / 14 Hz (sd 2 Hz, absolute like its target); the verdicts and
    their count are as without the columns; NEURON against itself (seed 1 against
    seed 0) misses the gamma fraction in both conditions."""
    from hnn_surrogate.artifacts import NETWORK_COMPARISON
    from hnn_surrogate.network.compare import (
        BANDS, SIMULATORS, comparison_counts, format_comparison, neuron_halves)

    conds, seeds, cts = ["default", "more"], [0, 1, 2], ["L5_pyramidal"]
    shape = (len(conds), len(seeds), len(SIMULATORS))
    band = np.full(shape + (len(BANDS),), 0.1)
    band[:, :, :, list(BANDS).index("gamma")] = np.array([0.1, 0.2, 0.3])[None, :, None]
    peak = np.broadcast_to(np.array([10.0, 12.0, 14.0])[None, :, None], shape).copy()
    power = np.ones(shape)
    power[1] = 2.0
    ds = NETWORK_COMPARISON.build(
        {"rate": np.full(shape + (1,), 5.0), "peak_freq": peak, "band_fraction": band,
         "dipole_power": power, "l5_share": np.full(shape, 0.9),
         "psd": np.ones(shape + (3,))},
        {"condition": conds, "seed": np.array(seeds, np.int64), "simulator": list(SIMULATORS),
         "cell_type": cts, "band": list(BANDS), "freq": np.array([1.0, 2.0, 3.0])},
        {"scenario": "rhythm", "transient_ms": 100.0})
    text = format_comparison(ds)
    assert "| NEURON's seed spread |" in text
    assert "| default | gamma fraction | 0.200 | 0.200 | 0 % | <= 20 % | yes | 0.200 | 50 % |" in text
    assert "| default | dipole peak (Hz) | 12.0 | 12.0 | +0.0 | <= 2 | yes | 12.0 | 2.0 |" in text
    assert "| default | rate L5_pyramidal (Hz) | 5.00 | 5.00 | 0 % | <= 15 % | yes | 5.00 | 0 % |" in text
    assert "12 of 12 targets met (NEURON vs the surrogate network)" in text
    # NEURON against itself, seed 1 against seed 0: the gamma fraction 0.2 against 0.1
    # misses, the peak 12 against 10 Hz is within 2 Hz
    assert "| default | gamma fraction | 0.200 | 0.200 | 0 % | <= 20 % | yes | 0.200 | 50 % | NO |" \
        in text
    assert "| default | dipole peak (Hz) | 12.0 | 12.0 | +0.0 | <= 2 | yes | 12.0 | 2.0 | yes |" \
        in text
    assert "| default | L5 share of dipole | 0.90 | 0.90 | +0.00 | (reported) |  | 0.90 | 0.00 |  |" \
        in text
    assert ("NEURON against itself (NEURON on seeds 1 in the surrogate network's place, "
            "against seeds 0; 1 each): 10 of 12 targets met") in text
    # seven seeds: 3 against 3, the last left out
    ds7 = xr.concat([ds, ds.assign_coords(seed=[3, 4, 5]), ds.isel(seed=[0]).assign_coords(
        seed=[6])], dim="seed")
    assert "(NEURON on seeds 3-5 in the surrogate network's place, against seeds 0-2; 3 each)" \
        in format_comparison(ds7)
    # the NetCDF's counts; NEURON against itself keeps the comparison's layout
    assert comparison_counts(ds) == {"targets_met": 12, "targets_checked": 12,
                                     "neuron_self_met": 10}
    halves = neuron_halves(ds7)
    assert halves["rate"].dims == ds7["rate"].dims and halves.sizes["seed"] == 3
    assert list(halves["simulator"].values) == list(SIMULATORS)
    # one seed: no control, no column entries, no summary line
    one = ds.isel(seed=[0])
    assert neuron_halves(one) is None and comparison_counts(one)["neuron_self_met"] == -1
    text1 = format_comparison(one)
    assert "NEURON against itself (" not in text1
    assert "| default | gamma fraction | 0.100 | 0.100 | 0 % | <= 20 % | yes | 0.100 |  |  |" \
        in text1
