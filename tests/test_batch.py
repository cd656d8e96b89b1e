"""Batched networks: several networks stepped as one are each the network alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnn_surrogate.network.batch import BatchedNetwork, batch_wirings
from hnn_surrogate.network.simulate import SurrogateNetwork
from hnn_surrogate.network.wiring import build_wiring

from network_helpers import BIN_MS, TSTOP, tiny_net, untrained_surrogates

F64 = torch.float64     # exact spikes: no threshold crossing moves with rounding


@pytest.fixture(scope="module")
def wirings():
    return [build_wiring(tiny_net(seed=s, rate=80.0), tstop=TSTOP, bin_ms=BIN_MS)
            for s in (1, 2, 3)]


def _loss(out):
    return (out.dipole["L5"] ** 2).sum() + (out.dipole["L2"] ** 2).sum()


@pytest.mark.parametrize("n", [3, 1])
def test_each_network_of_a_batch_is_the_network_alone(wirings, n):
    surrogates = untrained_surrogates()
    batch = BatchedNetwork(wirings[:n], surrogates, dtype=F64)
    with torch.no_grad():
        outs = batch.run(record_v=True)
        alone = [SurrogateNetwork(w, surrogates, dtype=F64).run(record_v=True)
                 for w in wirings[:n]]
    assert len(outs) == n
    if n > 1:
        assert len({a.spike_times.size for a in alone}) > 1  # the seeds give different runs
    for o, a in zip(outs, alone):
        assert a.spike_times.size > 0
        np.testing.assert_array_equal(o.spike_gids, a.spike_gids)
        np.testing.assert_array_equal(o.spike_times, a.spike_times)
        for layer in ("L2", "L5"):
            assert o.dipole[layer].shape == a.dipole[layer].shape == (a.n_bins,)
            torch.testing.assert_close(o.dipole[layer], a.dipole[layer], rtol=1e-10, atol=1e-12)
        for t in a.v_soma:
            np.testing.assert_allclose(o.v_soma[t], a.v_soma[t], rtol=0, atol=1e-9)


def test_a_shared_scale_gets_the_sum_of_the_networks_gradients(wirings):
    surrogates = untrained_surrogates()
    batch = BatchedNetwork(wirings, surrogates, dtype=F64)
    shared = batch.scale[0].clone().requires_grad_(True)
    sum(_loss(o) for o in batch.run(shared)).backward()
    total = torch.zeros_like(shared)
    for w in wirings:
        sim = SurrogateNetwork(w, surrogates, dtype=F64)
        s = sim.scale.clone().requires_grad_(True)
        _loss(sim.run(s)).backward()
        total += s.grad
    assert (total != 0).any()
    torch.testing.assert_close(shared.grad, total, rtol=1e-8, atol=1e-12 * float(total.abs().max()))


def test_each_network_can_have_its_own_weights(wirings):
    surrogates = untrained_surrogates()
    batch = BatchedNetwork(wirings[:2], surrogates, dtype=F64)
    scale = batch.scale.clone()
    drive = [i for i, c in enumerate(wirings[1].connections) if c.src_type == "noise"]
    scale[1, drive] *= 3.0
    with torch.no_grad():
        outs = batch.run(scale)
        own = SurrogateNetwork(wirings[1], surrogates, dtype=F64).run(scale[1])
        base = SurrogateNetwork(wirings[1], surrogates, dtype=F64).run()
    np.testing.assert_array_equal(outs[1].spike_times, own.spike_times)
    assert own.spike_times.size != base.spike_times.size     # the weights mattered


def test_networks_of_other_shapes_or_scales_are_refused(wirings):
    other = build_wiring(tiny_net(seed=1, mesh=(3, 3)), tstop=TSTOP, bin_ms=BIN_MS)
    with pytest.raises(ValueError, match="network 1 of the batch differs .* cells per type"):
        batch_wirings([wirings[0], other])
    with pytest.raises(ValueError, match="at least one network"):
        batch_wirings([])
    batch = BatchedNetwork(wirings[:2], untrained_surrogates())
    with pytest.raises(ValueError, match=r"scale of shape \(3, "):
        batch.run(torch.ones(3, batch.n_connections, dtype=torch.float64))
    with pytest.raises(TypeError, match="no replay"):
        batch.run(replay=(np.zeros(0), np.zeros(0, np.int64)))


def test_the_throughput_benchmark_writes_every_batch_size(repo, tmp_path):
    from hnn_surrogate.artifacts import SCALING_BATCH
    from hnn_surrogate.bench.scaling import run_batch_throughput

    from network_helpers import tiny_spec

    spec = tiny_spec(repo, tmp_path)
    text = run_batch_throughput(spec, scenario="rhythm", seed=3, sizes=[3, 1], tstop=30.0,
                                checkpoints=untrained_surrogates(), threads=1,
                                out=tmp_path / "batch.nc", figure=tmp_path / "batch.png")
    ds = SCALING_BATCH.read(tmp_path / "batch.nc")
    assert list(ds["batch"].values) == [1, 3] and list(ds["seed"].values) == [3, 4, 5]
    assert list(ds["identical"].values) == [1, 1]
    assert list(ds["spikes_batched"].values[0]) == [ds["spikes_alone"].values[0], -1, -1]
    assert (ds["throughput"].values > 0).all() and np.isfinite(ds["speedup"].values).all()
    assert ((ds["bound_fraction"].values > 0) & (ds["bound_fraction"].values < 1)).all()
    assert "SCALING_BATCH batch 3:" in text and (tmp_path / "batch.png").stat().st_size > 1e4
