"""Connectivity fits: bounded gains, differentiable objectives, gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnn_surrogate.network.simulate import SurrogateNetwork
from hnn_surrogate.network.wiring import build_wiring
from hnn_surrogate.optimize.objectives import check_objective, evaluate_objective, soft_peak, spectrum
from hnn_surrogate.optimize.params import FreeGains
from network_helpers import BIN_MS, TSTOP, tiny_net, untrained_surrogates


class _Conn:
    def __init__(self, src, tgt, rec, scale, loc="proximal"):
        self.src_type, self.target_type, self.receptor, self.scale, self.loc = src, tgt, rec, scale, loc


CONNS = [_Conn("L2_basket", "L2_pyramidal", "gabaa", 0.05),
         _Conn("L2_basket", "L2_pyramidal", "gabaa", 0.02, loc="distal"),
         _Conn("L5_pyramidal", "L5_basket", "ampa", 0.001),
         _Conn("noise", "L5_pyramidal", "ampa", 0.004)]


def test_gains_stay_within_their_bounds_and_start_at_the_network():
    g = FreeGains(CONNS, [("L2_basket", "L2_pyramidal", "gabaa"),
                          ("L5_pyramidal", "L5_basket", "ampa")], 0.125, 8.0)
    z = g.initial()
    torch.testing.assert_close(g.scale(z), torch.tensor([c.scale for c in CONNS],
                                                        dtype=torch.float64))
    torch.testing.assert_close(z.detach(), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    for big in (-1e3, -30.0, 30.0, 1e3):
        gains = g.gains(torch.full((2,), big, dtype=torch.float64))
        assert ((gains >= 0.125) & (gains <= 8.0)).all()
    s = g.scale(torch.tensor([np.log(3.0), 0.0], dtype=torch.float64))
    # both locations of the freed type move together; the drive stays fixed
    assert float(s[0] / 0.05) == pytest.approx(float(s[1] / 0.02))
    assert float(s[3]) == 0.004 and float(s[2]) == pytest.approx(0.001)
    torch.testing.assert_close(g.gains(g.z_of([0.5, 2.0])),
                               torch.tensor([0.5, 2.0], dtype=torch.float64))


def test_bad_free_sets_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="nothing to fit"):
        FreeGains(CONNS, [], 0.125, 8.0)
    with pytest.raises(KeyError, match="no connection L5_basket -> L2_basket gabaa"):
        FreeGains(CONNS, [("L5_basket", "L2_basket", "gabaa")], 0.125, 8.0)
    with pytest.raises(ValueError, match="0 < low < 1 < high"):
        FreeGains(CONNS, [("noise", "L5_pyramidal", "ampa")], 8.0, 0.125)


def _sines(freqs_amps, n=2000, bin_ms=0.5):
    t = np.arange(n) * bin_ms / 1000.0
    return torch.tensor(sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps))


def test_objectives_score_known_spectra():
    alpha, beta = _sines([(10.0, 1.0), (20.0, 0.2)]), _sines([(10.0, 0.2), (20.0, 1.0)])
    share = {"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0]}
    ratio = {"kind": "band_ratio", "band": [13.0, 30.0], "reference": [8.0, 12.0]}
    kw = dict(bin_ms=0.5, transient_ms=100.0)
    assert float(evaluate_objective(share, alpha, **kw)) < 0.1 < 0.9 < float(
        evaluate_objective(share, beta, **kw))
    assert float(evaluate_objective(ratio, beta, **kw)) == pytest.approx(
        -float(evaluate_objective(ratio, alpha, **kw)), rel=1e-6)
    f, p = spectrum(beta, **kw)
    assert float(soft_peak(f, p, [1.0, 100.0], temperature=0.05)) == pytest.approx(20.0, abs=0.5)
    peak = {"kind": "peak_frequency", "target_hz": 20.0, "total": [1.0, 100.0], "temperature": 0.05}
    assert float(evaluate_objective(peak, beta, **kw)) > float(evaluate_objective(peak, alpha, **kw))


def _volleys(times_ms, n=2000, bin_ms=0.5, width_ms=8.0):
    """Biphasic transients (a Gaussian's derivative: its spectrum peaks at
    1 / (2 pi width), 20 Hz here), silent in between."""
    t = np.arange(n) * bin_ms
    return torch.tensor(sum(-(t - c) / width_ms * np.exp(-0.5 * ((t - c) / width_ms) ** 2)
                            for c in times_ms))


def test_a_windowed_objective_asks_for_a_rhythm_in_every_window():
    kw = dict(bin_ms=0.5, transient_ms=100.0)
    share = {"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0]}
    windowed = {**share, "window_ms": 200.0}
    rhythm = _sines([(10.0, 0.2), (20.0, 1.0)])
    volleys = _volleys([350.0, 750.0]) + 1e-3 * _sines([(10.0, 1.0)])
    # on the whole run, two 20 Hz-ish volleys score 2/3 of a sustained beta rhythm ...
    whole = float(evaluate_objective(share, volleys, **kw))
    assert whole > 0.5 * float(evaluate_objective(share, rhythm, **kw))
    # ... per window only the windows holding a volley do, and with min only the worst counts
    per_window = float(evaluate_objective(windowed, volleys, **kw))
    worst = float(evaluate_objective({**windowed, "window_combine": "min"}, volleys, **kw))
    sustained = float(evaluate_objective(windowed, rhythm, **kw))
    assert worst < 0.25 < per_window < whole - 0.1
    assert sustained > 0.9 and float(evaluate_objective({**windowed, "window_combine": "min"},
                                                        rhythm, **kw)) > 0.9
    # differentiable, and a batch of dipoles is scored row by row
    x = volleys.clone().requires_grad_(True)
    evaluate_objective(windowed, x, **kw).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    both = evaluate_objective(windowed, torch.stack([volleys, rhythm]), **kw)
    assert both.shape == (2,) and float(both[1]) == pytest.approx(sustained)


def test_a_band_contrast_asks_for_a_peak_not_a_flat_spectrum():
    """band_contrast scores a peak in the band above its flanks; a flat spectrum
    scores by the bands' widths alone, where a band's share of a wider total
    rises as the spectrum flattens away from a peak outside the band."""
    kw = dict(bin_ms=0.5, transient_ms=100.0)
    contrast = {"kind": "band_contrast", "band": [13.0, 30.0], "below": [8.0, 12.0],
                "above": [31.0, 45.0], "window_ms": 200.0}
    share = {"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "window_ms": 200.0}
    alpha, beta = _sines([(10.0, 1.0)]), _sines([(10.0, 0.2), (20.0, 1.0)])
    flat = torch.from_numpy(np.random.default_rng(0).standard_normal(2000))
    c = {name: float(evaluate_objective(contrast, x, **kw))
         for name, x in (("alpha", alpha), ("beta", beta), ("flat", flat))}
    assert c["alpha"] < -1.0 < c["flat"] < 1.0 < c["beta"]
    # beta's share ranks the flat spectrum above alpha: it rewards flattening
    assert float(evaluate_objective(share, flat, **kw)) > float(
        evaluate_objective(share, alpha, **kw))
    with pytest.raises(ValueError, match="above: missing"):
        check_objective({k: v for k, v in contrast.items() if k != "above"}, bin_ms=0.5)
    with pytest.raises(ValueError, match="below: \\[12.0, 8.0\\]"):
        check_objective({**contrast, "below": [12.0, 8.0]}, bin_ms=0.5)


def test_rates_per_window_ask_for_firing_through_the_run():
    """rate_window_ms: each window's rate against the range, the penalties averaged.
    Two volleys in 900 ms meet a 1 Hz floor on the run's mean rate but not in most
    100 ms windows; the same spikes spread out meet it in every window."""
    from hnn_surrogate.optimize.objectives import binned_rates, rate_penalty

    kw = dict(bin_ms=0.5, transient_ms=100.0)
    volleys, spread = torch.zeros(2000), torch.zeros(2000)
    volleys[[500, 1500]] = 50.0                     # 100 spikes of 100 cells, in 2 bins
    spread[torch.arange(250, 2000, 200)] = 100.0 / 9
    whole = binned_rates(volleys, 100, **kw)
    assert float(whole) == pytest.approx(100 / (100 * 0.9))           # the old rate
    per_window = binned_rates(volleys, 100, window_ms=100.0, **kw)
    assert per_window.shape == (9,) and float(per_window.sum()) == pytest.approx(10.0)
    assert torch.allclose(binned_rates(spread, 100, window_ms=100.0, **kw),
                          torch.full((9,), 100 / 9 / 100 / 0.1, dtype=torch.float32))
    ranges = {"L5_pyramidal": [1.0, 30.0]}
    assert float(rate_penalty(ranges, {"L5_pyramidal": whole})) == 0.0
    # seven silent windows of nine, each 1 Hz short: 7/9 (1/30)^2
    assert float(rate_penalty(ranges, {"L5_pyramidal": per_window})) == pytest.approx(
        7 / 9 / 900)
    assert float(rate_penalty(ranges, {"L5_pyramidal": binned_rates(
        spread, 100, window_ms=100.0, **kw)})) == 0.0
    # a partial last window is left out; its gradient reaches every counted bin
    counts = torch.ones(2000, dtype=torch.float64, requires_grad=True)
    binned_rates(counts, 10, window_ms=400.0, **kw).sum().backward()     # 2 windows of 800 bins
    assert float(counts.grad[200:1800].min()) > 0
    assert float(counts.grad[:200].abs().max()) == float(counts.grad[1800:].abs().max()) == 0
    with pytest.raises(ValueError, match="rate_window_ms 2000.0: 4000 bins per window"):
        binned_rates(volleys, 100, window_ms=2000.0, **kw)


@pytest.mark.parametrize("cfg, match", [
    ({"kind": "gamma_power"}, "kind: 'gamma_power' is not one of"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "rate_window_ms": 100.0},
     "rate_window_ms: needs rates"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "rate_window_ms": -1,
      "rates": {"L5_pyramidal": [1.0, 30.0]}}, "rate_window_ms: -1 must be a positive"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "rate_window_ms": 0.1,
      "rates": {"L5_pyramidal": [1.0, 30.0]}}, "rate_window_ms: 0.1 ms is under one 0.5 ms bin"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "window_ms": 0},
     "window_ms: 0 must be a positive"),
    ({"kind": "band_share", "band": [21.0, 24.0], "total": [1.0, 100.0], "window_ms": 200.0},
     "band: \\[21.0, 24.0\\] Hz holds no frequency of a 200 ms window"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "window_combine": "min"},
     "window_combine: needs window_ms"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "window_ms": 3.0},
     "window_ms: 3 ms is 6 bins of 0.5 ms; a window's spectrum needs at least 8"),
    ({"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0], "window_ms": 200.0,
      "window_combine": "max"}, "window_combine: 'max' is not one of"),
    ({"kind": "band_share", "band": [13.0, 30.0]}, "total: missing"),
    ({"kind": "band_share", "band": [13.0, 600.0], "total": [1.0, 100.0]}, "band: .* within 0-500"),
    ({"kind": "band_ratio", "band": [30.0, 13.0], "reference": [8.0, 12.0]}, "band: \\[30.0, 13.0\\]"),
    ({"kind": "peak_frequency", "target_hz": 200.0, "total": [1.0, 100.0], "temperature": 1.0},
     "target_hz"),
])
def test_bad_objectives_are_refused(cfg, match):
    with pytest.raises(ValueError, match=match):
        check_objective(cfg, bin_ms=0.5)


def test_gradient_equals_central_finite_differences_where_no_spike_flips():
    """float64, a tiny network, several free gains. With surrogate slope 0 a spike carries
    no gradient, so autograd differentiates the run with its spikes held: exactly what a
    central difference measures where the perturbation flips no spike. With the
    configured slope the surrogate term of each spike is added (the fit's gradient);
    its departure from the difference is measured here and must be nonzero."""
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates(), dtype=torch.float64)
    free = [("noise", "L5_pyramidal", "ampa"), ("noise", "L2_pyramidal", "ampa"),
            ("L2_basket", "L2_pyramidal", "gabaa"), ("L5_pyramidal", "L5_pyramidal", "ampa"),
            ("L2_pyramidal", "L5_pyramidal", "ampa")]
    gains = FreeGains(wiring.connections, free, 0.125, 8.0)
    cfg = {"kind": "band_share", "band": [30.0, 200.0], "total": [1.0, 500.0]}

    def run(z, slope=0.0):
        out = sim.run(gains.scale(z), surrogate_slope=slope)
        value = evaluate_objective(cfg, out.dipole["L2"] + out.dipole["L5"], bin_ms=BIN_MS,
                                   transient_ms=0.0)
        return value, out

    z = gains.z_of([1.3, 0.9, 1.1, 1.2, 0.8]).requires_grad_(True)
    value, ref = run(z)
    assert ref.spike_times.size > 0, "no spike: the check would not cross a spike"
    value.backward()
    grad = z.grad.clone()
    eps = 1e-4
    fd = []
    for i in range(len(free)):
        vals = []
        for sign in (1, -1):
            zi = z.detach().clone()
            zi[i] += sign * eps
            with torch.no_grad():
                v, out = run(zi)
            np.testing.assert_array_equal(out.spike_gids, ref.spike_gids)
            np.testing.assert_array_equal(out.spike_times, ref.spike_times)
            vals.append(float(v))
        fd.append((vals[0] - vals[1]) / (2 * eps))
    fd = np.array(fd)
    assert np.abs(fd).max() > 0
    np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-4, atol=1e-6 * np.abs(fd).max())
    # the fit's gradient (configured slope) adds each spike's surrogate term
    z2 = z.detach().clone().requires_grad_(True)
    v2, _ = run(z2, slope=0.3)
    v2.backward()
    assert v2.item() == pytest.approx(value.item())
    assert not np.allclose(z2.grad.numpy(), fd, rtol=1e-3)


@pytest.mark.parametrize("change, match", [
    ({"grid": {"objective": ["gamma"]}}, "optimize.grid.objective': 'gamma' is not one of"),
    ({"free_sets": {"none": {"cells": False, "drives": []}}, "grid": {"free": ["none"]}},
     "optimize.free_sets.none': frees nothing"),
    ({"objectives": {"beta_share": {"kind": "band_share", "band": [13.0, 700.0],
                                    "total": [1.0, 100.0]}}},
     "optimize.objectives.beta_share'.band: .* within 0-500"),
    ({"bounds": [8.0, 0.125]}, "optimize.bounds': \\[8.0, 0.125\\] must satisfy low < 1 < high"),
    ({"bounds": [0.125, 8.0]}, "optimize.bounds': .* beyond the gains the surrogates were trained"),
    ({"free_sets": {"cells_and_noise": {"cells": True, "drives": ["alpha_prox"]}}},
     "optimize.free_sets.cells_and_noise.drives': start 'rhythm' has no drive 'alpha_prox'"),
    ({"objectives": {"beta_share": {"kind": "band_share", "band": [13.0, 20.0],
                                    "total": [1.0, 100.0]}}},
     "band': \\[13.0, 20.0\\] Hz is narrower than the spectrum's resolution"),
    ({"starts": {"loud": {"tstop": 100.0, "drives": [
        {"type": "poisson", "name": "proximal_noise",
         "params": {"rate_constant": 20.0, "location": "proximal",
                    "weights_ampa": {"L5_pyramidal": 0.02}}}]}}, "grid": {"start": ["loud"]}},
     "drive 'proximal_noise' of start 'loud' onto L5_pyramidal \\(0.02 uS\\) times "
     "optimize.bounds .* beyond the cells.network_prior.poisson.weight_pyramidal"),
    ({"starts": {"flat": {"tstop": 100.0, "drives": [
        {"type": "poisson", "name": "proximal_noise",
         "params": {"rate_constant": 20.0, "location": "proximal", "weights_ampa": 0.004}}]}},
      "grid": {"start": ["flat"]}},
     "drive 'proximal_noise' of start 'flat' has weights_ampa 0.004, not a mapping"),
    ({"starts": {"text": {"tstop": 100.0, "drives": [
        {"type": "poisson", "name": "proximal_noise",
         "params": {"rate_constant": 20.0, "location": "proximal",
                    "weights_ampa": {"L5_pyramidal": "1e-4", "L5_basketcell": 0.002}}}]}},
      "grid": {"start": ["text"]}},
     "onto L5_pyramidal: weight '1e-4' is not a number .*\n.*'L5_basketcell' is not an HNN "
     "cell type"),
    ({"starts": {"volley": {"tstop": 100.0, "drives": [
        {"type": "evoked", "name": "proximal_noise",
         "params": {"mu": 20.0, "sigma": 2.0, "numspikes": 1, "location": "proximal",
                    "weights_ampa": {"L5_pyramidal": 0.004}}}]}}, "grid": {"start": ["volley"]}},
     "frees drive 'proximal_noise' of start 'volley', but the network_prior regime trains "
     "the surrogates on no evoked-drive weights"),
    ({"check_seeds": [2]}, "optimize.check_seeds': \\[2\\] are cells.replay.seeds"),
    ({"check_seeds": [0]}, "optimize.check_seeds': \\[0\\] are fit seeds"),
    ({"objectives": {"beta_share": {"kind": "band_share", "band": [13.0, 30.0],
                                    "total": [1.0, 100.0], "window_ms": 5000.0}}},
     "beta_share.window_ms': 5000 ms is longer than the run of start 'rhythm' after the transient"),
    ({"objectives": {"beta_share": {"kind": "band_share", "band": [13.0, 30.0],
                                    "total": [1.0, 100.0], "rates": {"L5_pyramidal": [1.0, 9.0]},
                                    "rate_window_ms": 5000.0}}},
     "beta_share.rate_window_ms': 5000 ms is longer than the run of start 'rhythm'"),
    ({"grid": {"start": ["nowhere"]}}, "optimize.grid.start': 'nowhere' is not one of"),
    ({"starts": {"alpha": {"tstop": 100.0, "drives": [
        {"type": "bursty", "name": "a", "params": {"burst_hz": 10.0}}]}}},
     "optimize.starts.alpha.drives\\[0\\].params.burst_hz': not an argument"),
])
def test_bad_sweep_configs_are_refused_naming_the_key(repo, change, match):
    import copy

    from hnn_surrogate.config import ConfigError, load_config, validate_config

    cfg = load_config(repo / "config" / "tiny.yaml")
    opt = copy.deepcopy(cfg["optimize"])
    for key, value in change.items():
        opt[key] = {**opt[key], **value} if isinstance(value, dict) and key == "grid" else value
    with pytest.raises(ConfigError, match=match):
        validate_config({**cfg, "optimize": opt})


def test_a_freed_drive_with_zero_weights_is_accepted(repo):
    """A gain on a weight of 0 (AMPA or NMDA) moves nothing, so the prior check lets it be."""
    import copy

    from hnn_surrogate.config import load_config, validate_config

    cfg = load_config(repo / "config" / "tiny.yaml")
    opt = copy.deepcopy(cfg["optimize"])
    opt["starts"] = {"quiet": {"tstop": 100.0, "drives": [
        {"type": "poisson", "name": "proximal_noise",
         "params": {"rate_constant": 20.0, "location": "proximal",
                    "weights_ampa": {"L5_pyramidal": 0.004, "L2_basket": 0.0},
                    "weights_nmda": {"L5_pyramidal": 0.0}}}]}}
    opt["grid"] = {**opt["grid"], "start": ["quiet"]}
    validate_config({**cfg, "optimize": opt})


def test_a_fit_over_several_seeds_scores_each_as_its_network_alone(repo, tmp_path):
    """The seeds' networks step as one batch: each seed's objective is that of its
    network run alone, and the first step's gradient the seeds' mean."""
    from hnn_surrogate.network.run import network_wiring
    from hnn_surrogate.network.spec import build_network
    from hnn_surrogate.optimize.fit import fit_connectivity, hnn_baseline
    from hnn_surrogate.optimize.params import resolve_free

    from network_helpers import tiny_spec

    spec = tiny_spec(repo, tmp_path)
    surrogates = untrained_surrogates()
    cfg = {"kind": "band_share", "band": [13.0, 30.0], "total": [1.0, 100.0]}
    free = {"cells": True, "drives": ["proximal_noise"]}
    seeds, tstop = [0, 3], 60.0
    traj = fit_connectivity(spec, scenario="rhythm", surrogates=surrogates, free=free,
                            bounds=(0.25, 4.0), objective=cfg, lr=0.1, n_steps=1, seeds=seeds,
                            tstop=tstop, transient_ms=10.0, slope=1.0)
    values, grads = [], []
    for seed in seeds:
        net = build_network(spec, scenario="rhythm", condition="default", seed=seed)
        w = network_wiring(net, tstop=tstop, bin_ms=spec["bin_ms"])
        gains = FreeGains(w.connections, resolve_free(w.connections, free, w.cell_types), 0.25, 4.0)
        z = gains.initial().requires_grad_(True)
        out = SurrogateNetwork(w, surrogates).run(gains.scale(z), surrogate_slope=1.0)
        dipole = out.dipole["L2"] + out.dipole["L5"] + hnn_baseline(net, w.n_bins, spec["bin_ms"])
        value = evaluate_objective(cfg, dipole, bin_ms=spec["bin_ms"], transient_ms=10.0)
        value.backward()
        values.append(float(value.detach()))
        grads.append(z.grad.numpy())
    assert values[0] != values[1]
    np.testing.assert_allclose(traj.objective[0], values, rtol=1e-4)
    np.testing.assert_allclose(traj.grad[0], np.mean(grads, axis=0), rtol=1e-3,
                               atol=1e-4 * np.abs(grads).max())


def _known_search(repo, tmp_path, other_seed):
    """A search's setting without NEURON: the tiny spec, two free types, and an
    objective that is a known function of the gains (the first seed's; the second
    seed's is ``other_seed``), each evaluation taking 0.1 s of a clock it advances.
    Returns (types, calls made, the clock [now], evaluate)."""
    from network_helpers import tiny_spec

    tiny_spec(repo, tmp_path)
    types = [("L2_basket", "L2_pyramidal", "gabaa"), ("proximal_noise", "L5_pyramidal", "ampa")]
    calls, now = [], [0.0]

    def evaluate(condition):
        calls.append(condition)
        now[0] += 0.1
        g = np.log2([c["gain"] for c in condition])
        return [-float(((g - [1.0, -0.5]) ** 2).sum()), other_seed]

    return types, calls, now, evaluate


@pytest.mark.parametrize("solver", ["bayesian", "cobyla", "cma"])
def test_hnn_cores_optimizer_searches_the_gains_within_its_budget(repo, tmp_path, solver):
    """hnn-core's own solvers on log2 gains: the start is evaluated first, the search
    starts no evaluation that would end past its wall-clock budget (judged by the
    longest so far) and keeps the best evaluation. The
    objective here is a known function of the gains (NEURON's runs are tested by
    the tiny pipeline)."""
    import json

    from hnn_surrogate.optimize.hnn_optimizer import search

    types, calls, now, evaluate = _known_search(repo, tmp_path, other_seed=0.0)
    res = search(tmp_path / "spec.json", start="rhythm", types=types, bounds=(0.25, 4.0),
                 objective={"kind": "band_share"}, seeds=[0, 1], transient_ms=0.0,
                 solver=solver, budget_s=0.95, max_iter=500, evaluate=evaluate,
                 clock=lambda: now[0])
    assert res.objective.shape == (len(calls), 2) and len(calls) >= 2
    np.testing.assert_allclose(res.gain[0], 1.0)                    # the start first
    # stopped within the budget: a tenth evaluation would end at 1.0 s, past it
    assert len(calls) == 9 and res.wall_s[-1] == pytest.approx(0.9)
    assert res.objective.mean(axis=1)[res.best] == res.objective.mean(axis=1).max()
    assert res.objective.mean(axis=1).max() > res.objective.mean(axis=1)[0]
    assert ((res.gain >= 0.25 - 1e-12) & (res.gain <= 4.0 + 1e-12)).all()
    assert json.loads(json.dumps(res.condition()))[0]["src"] == "L2_basket"
    # seeded: the same search again asks for the same points (bayesian draws its
    # candidates from numpy's global generator, which is left as it was)
    first, state = calls[:], np.random.get_state()
    calls.clear()
    now[0] = 0.0
    again = search(tmp_path / "spec.json", start="rhythm", types=types, bounds=(0.25, 4.0),
                   objective={"kind": "band_share"}, seeds=[0, 1], transient_ms=0.0,
                   solver=solver, budget_s=0.95, max_iter=500, evaluate=evaluate,
                   clock=lambda: now[0])
    assert calls == first
    np.testing.assert_array_equal(again.gain, res.gain)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    with pytest.raises(ValueError, match="solver 'adam' is not one of hnn-core's"):
        search(tmp_path / "spec.json", start="rhythm", types=types, bounds=(0.25, 4.0),
               objective={}, seeds=[0], transient_ms=0.0, solver="adam", budget_s=1.0,
               max_iter=5, evaluate=evaluate)


@pytest.mark.parametrize("solver", ["bayesian", "cobyla", "cma"])
def test_a_search_resumes_from_its_journal(repo, tmp_path, solver):
    """Killed or given a larger budget, a search with a journal replays what it ran
    and runs only the rest: the numbers of one uninterrupted search."""
    import json

    from hnn_surrogate.optimize.hnn_optimizer import search

    types, calls, now, evaluate = _known_search(repo, tmp_path, other_seed=0.5)

    def run(budget, journal, seeds=(0, 1)):
        calls.clear()
        now[0] = 0.0
        return search(tmp_path / "spec.json", start="rhythm", types=types, bounds=(0.25, 4.0),
                      objective={"kind": "band_share"}, seeds=list(seeds), transient_ms=0.0,
                      solver=solver, budget_s=budget, max_iter=500, journal=journal,
                      evaluate=evaluate, clock=lambda: now[0])

    fresh = run(0.95, None)
    n_fresh = len(calls)
    journal = tmp_path / "search.jsonl"
    short = run(0.45, journal)
    assert len(calls) == short.wall_s.size == 4
    assert len(journal.read_text().splitlines()) == 1 + 4
    for res in (run(0.95, journal), run(0.95, journal)):
        np.testing.assert_array_equal(res.gain, fresh.gain)
        np.testing.assert_array_equal(res.objective, fresh.objective)
        np.testing.assert_allclose(res.wall_s, fresh.wall_s)
    assert calls == []                                  # the second: all recorded
    # a line cut by a kill: that evaluation runs again, nothing before it
    text = journal.read_text()
    journal.write_text(text[:-10])
    np.testing.assert_array_equal(run(0.95, journal).gain, fresh.gain)
    assert len(calls) == 1
    # another search's journal: started afresh
    other = run(0.95, journal, seeds=(0, 2))
    assert len(calls) == other.wall_s.size == n_fresh
    assert json.loads(journal.read_text().splitlines()[0])["search"]["seeds"] == [0, 2]
    # a recorded point the search does not ask for (another solver version): from there on
    # the evaluations run again
    lines = journal.read_text().splitlines()
    third = json.loads(lines[3])
    third["x"] = [v + 0.5 for v in third["x"]]
    journal.write_text("\n".join([*lines[:3], json.dumps(third), *lines[4:]]) + "\n")
    np.testing.assert_array_equal(run(0.95, journal, seeds=(0, 2)).gain, other.gain)
    assert len(calls) == n_fresh - 2


def test_rate_penalties_score_the_surrogates_spikes_with_their_gradient():
    """An objective's rate ranges subtract (distance / high)^2 per type outside its
    range, from rates with a gradient (``NetworkOutput.spike_count``)."""
    from hnn_surrogate.optimize.fit import spike_rates
    from hnn_surrogate.optimize.objectives import rate_penalty

    assert float(rate_penalty({"L5_pyramidal": [1.0, 10.0]}, {"L5_pyramidal": 5.0})) == 0.0
    assert float(rate_penalty({"L5_pyramidal": [1.0, 10.0]}, {"L5_pyramidal": 15.0})) == 0.25
    assert float(rate_penalty({"L2_basket": [4.0, 10.0]}, {"L2_basket": 2.0})) == pytest.approx(0.04)
    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    sim = SurrogateNetwork(wiring, untrained_surrogates(), dtype=torch.float64)
    scale = sim.scale.clone().requires_grad_(True)
    out = sim.run(scale, surrogate_slope=1.0)
    rates = spike_rates(out, wiring, transient_ms=0.0)
    late = out.spike_times >= 0.0
    for t in wiring.cell_types:
        cells = np.asarray(wiring.gid_ranges[t])
        n = np.isin(out.spike_gids[late], cells).sum()
        assert float(rates[t]) == pytest.approx(n / (cells.size * TSTOP / 1000.0))
    busiest = max(rates, key=lambda t: float(rates[t]))
    assert float(rates[busiest]) > 0
    cfg = {"kind": "band_share", "band": [30.0, 200.0], "total": [1.0, 500.0],
           "rates": {busiest: [0.0, float(rates[busiest]) / 2]}, "rate_weight": 2.0}
    dipole = out.dipole["L2"] + out.dipole["L5"]
    plain = evaluate_objective({k: cfg[k] for k in ("kind", "band", "total")}, dipole,
                               bin_ms=BIN_MS, transient_ms=0.0)
    value = evaluate_objective(cfg, dipole, bin_ms=BIN_MS, transient_ms=0.0, rates=rates)
    assert float(plain - value) == pytest.approx(2.0 * 1.0)            # (r - r/2)^2 / (r/2)^2
    value.backward()
    assert torch.isfinite(scale.grad).all() and (scale.grad != 0).any()
    with pytest.raises(ValueError, match="rates are needed"):
        evaluate_objective(cfg, dipole.detach(), bin_ms=BIN_MS, transient_ms=0.0)


def test_the_neuron_check_scores_rates_per_window_as_the_fit_does(tmp_path):
    """A surrogate run written as a network_run file (spike times at bin centres)
    scores the same windowed objective in the NEURON check's code (spike times
    binned) as in the fit's (the run's spike counts), and other values than
    with the run's mean rate."""
    from hnn_surrogate.artifacts import NETWORK_RUN
    from hnn_surrogate.optimize.check import _score
    from hnn_surrogate.optimize.fit import spike_rates

    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    out = SurrogateNetwork(wiring, untrained_surrogates(), dtype=torch.float64).run()
    dipole = (out.dipole["L2"] + out.dipole["L5"]).detach()
    types = list(wiring.cell_types)
    busiest = max(types, key=lambda t: float(out.spike_count[t].sum()))
    rate = float(spike_rates(out, wiring, 0.0)[busiest])
    cfg = {"kind": "band_share", "band": [30.0, 200.0], "total": [1.0, 500.0],
           "rates": {busiest: [rate, 2 * rate]}, "rate_weight": 5.0}
    path = tmp_path / "run.nc"
    NETWORK_RUN.write(NETWORK_RUN.build(
        {"gid_start": np.array([wiring.gid_ranges[t][0] for t in types], np.int64),
         "n_cells": np.array([wiring.n_cells(t) for t in types], np.int64),
         "dipole": np.stack([dipole.numpy()] * 3), "dipole_processed": np.stack([dipole.numpy()] * 3),
         "spike_time": out.spike_times.astype(np.float64),
         "spike_gid": out.spike_gids.astype(np.int64)},
        {"time": (np.arange(wiring.n_bins) + 0.5) * BIN_MS, "layer": ["agg", "L2", "L5"],
         "cell_type": types},
        {"simulator": "surrogate", "scenario": "test", "condition": "default", "seed": 1,
         "tstop_ms": TSTOP, "bin_ms": BIN_MS, "wall_s": 0.0, "n_ranks": 1, "config_hash": "x",
         "git_commit": "x", "versions": "{}", "created": "x"}), path)
    values = {}
    for window in (None, 10.0):
        c = cfg if window is None else {**cfg, "rate_window_ms": window}
        fit_side = evaluate_objective(c, dipole, bin_ms=BIN_MS, transient_ms=0.0,
                                      rates=spike_rates(out, wiring, 0.0, window))
        values[window] = _score(path, c, 0.0)[0]
        assert values[window] == pytest.approx(float(fit_side), rel=1e-12)
    # at the floor on the mean, short of it in the windows where the busiest type is quiet
    per_window = spike_rates(out, wiring, 0.0, 10.0)[busiest]
    assert per_window.shape == (6,) and float(per_window.min()) < rate
    assert values[10.0] < values[None]


def test_a_rate_floor_has_a_gradient_where_every_cell_is_silent():
    """A silent network's dipole objective has no gradient in its cell-to-cell
    gains (no spike, nothing delivered); a rate floor still has one in its drive
    gains (straight through the spike logits' sigmoid), while the rates it
    scores stay the spikes' own: zero."""
    from hnn_surrogate.optimize.fit import spike_rates

    net = tiny_net(rate=80.0)
    wiring = build_wiring(net, tstop=TSTOP, bin_ms=BIN_MS)
    surrogates = untrained_surrogates()
    for s in surrogates.values():
        s.spike_threshold = 1.0 - 1e-12                  # logit threshold about 27.6
    sim = SurrogateNetwork(wiring, surrogates, dtype=torch.float64)
    scale = sim.scale.clone().requires_grad_(True)
    out = sim.run(scale, surrogate_slope=1.0)
    assert out.spike_times.size == 0
    rates = spike_rates(out, wiring, transient_ms=0.0)
    assert all(float(r) == 0.0 for r in rates.values())
    drive = torch.tensor([c.src_type in net.external_drives for c in wiring.connections])
    assert drive.any() and (~drive).any()
    dipole = out.dipole["L2"] + out.dipole["L5"]
    plain = {"kind": "band_share", "band": [30.0, 200.0], "total": [1.0, 500.0]}
    (g_plain,) = torch.autograd.grad(evaluate_objective(plain, dipole, bin_ms=BIN_MS,
                                                        transient_ms=0.0), scale,
                                     retain_graph=True)
    assert (g_plain[~drive] == 0).all() and (g_plain[drive] != 0).any()
    floor = {**plain, "rates": {"L5_pyramidal": [5.0, 50.0]}, "rate_weight": 1.0}
    value = evaluate_objective(floor, dipole, bin_ms=BIN_MS, transient_ms=0.0, rates=rates)
    (g_floor,) = torch.autograd.grad(value, scale)
    assert torch.isfinite(g_floor).all()
    assert ((g_floor - g_plain)[drive] != 0).any()


@pytest.mark.parametrize("cfg, match", [
    ({"kind": "band_share", "band": [13, 30], "total": [1, 100], "rates": {"L4_pyr": [0, 5]}},
     "rates: 'L4_pyr' is not a cell type"),
    ({"kind": "band_share", "band": [13, 30], "total": [1, 100],
      "rates": {"L5_pyramidal": [5, 1]}}, r"rates.L5_pyramidal: \[5, 1\] Hz"),
])
def test_bad_rate_ranges_are_refused(cfg, match):
    with pytest.raises(ValueError, match=match):
        check_objective(cfg)


def test_the_fitted_gains_are_the_step_with_the_best_mean_objective():
    from hnn_surrogate.optimize.fit import Trajectory

    n_steps, types = 4, [("L2_basket", "L2_pyramidal", "gabaa"), ("L5_basket", "L5_pyramidal", "gabaa")]
    objective = np.array([[0.1, 0.2], [0.5, 0.1], [0.4, 0.4], [0.2, 0.3], [0.3, 0.3]])
    gain = np.arange(1, 2 * (n_steps + 1) + 1, dtype=float).reshape(n_steps + 1, 2)
    traj = Trajectory(labels=["a", "b"], types=types, seeds=[0, 1], cell_types=[],
                      objective=objective, gain=gain, grad=np.zeros_like(gain),
                      rate=np.zeros((n_steps + 1, 2, 0)), freqs=np.zeros(0),
                      power=np.zeros((n_steps + 1, 2, 0)), wall_s=np.ones(n_steps + 1))
    assert traj.best_step() == 2                       # mean 0.4; the last step's is 0.3
    assert [c["gain"] for c in traj.fitted_condition()] == [5.0, 6.0]
    assert [c["gain"] for c in traj.fitted_condition(-1)] == [9.0, 10.0]
    assert traj.fitted_condition()[0] == {"src": "L2_basket", "target": "L2_pyramidal",
                                          "receptor": "gabaa", "gain": 5.0}
    # a step whose objective is undefined for a seed is never the fitted one
    traj.objective[3] = [np.nan, 9.0]
    assert traj.best_step() == 2
    traj.objective[:] = np.nan
    with pytest.raises(ValueError, match="no finite objective in any of 5 evaluations"):
        traj.best_step()


def test_the_surrogates_cost_counts_each_neuron_job_once_and_pays_back_after_n_fits(tmp_path):
    from hnn_surrogate.optimize.hnn_optimizer import (break_even_fits, first_reaching,
                                                      surrogate_cost)

    paths = []
    for name, jobs, train in (("a", {"h/run0": 100.0, "x/a/0": 5.0}, 40.0),
                              ("b", {"h/run0": 100.0, "y/b/0": 3.0}, 60.0)):
        paths.append(tmp_path / f"{name}.pt")
        torch.save({"data_neuron_jobs": jobs, "train_cost_s": train}, paths[-1])
    cost = surrogate_cost(paths)
    assert (cost["data_s"], cost["train_s"], cost["n_jobs"]) == (108.0, 100.0, 3)
    # data made by a teacher surrogate lists its training (training) and its data's
    # merge (data), neither a NEURON job
    paths.append(tmp_path / "c.pt")
    torch.save({"data_neuron_jobs": {"h/run0": 100.0, "teacher/L2_basket/0a/train": 30.0,
                                     "teacher/L2_basket/0a/merge": 2.0},
                "train_cost_s": 7.0}, paths[-1])
    cost = surrogate_cost(paths)
    assert (cost["data_s"], cost["train_s"], cost["n_jobs"]) == (110.0, 137.0, 3)
    paths.pop()
    torch.save({"train_wall_s": 1.0}, tmp_path / "old.pt")
    old = surrogate_cost(paths + [tmp_path / "old.pt"])
    assert np.isnan(old["data_s"]) and old["unknown"] == [str(tmp_path / "old.pt")]
    # the search's best so far reaches 0.5 at its third evaluation
    assert first_reaching([1.0, 2.0, 3.0], [0.1, 0.4, 0.5], 0.5) == 3.0
    assert np.isnan(first_reaching([1.0, 2.0], [0.1, 0.4], 0.5))
    # cost 208 s; a fit takes 10 s, the fastest solver 60 s for the same: 208 / 50 fits
    assert break_even_fits(208.0, 10.0, [60.0, 80.0], [90.0, 90.0]) == (
        pytest.approx(4.16), "exact", 0)
    # one never got there within its 90 s: it needs more, so at most 208 / 80 fits
    assert break_even_fits(208.0, 10.0, [np.nan], [90.0]) == (pytest.approx(2.6), "at most", 0)
    # the fastest bounds it: one reached it at 100 s, the other had not by its 50 s
    assert break_even_fits(208.0, 10.0, [100.0, np.nan], [120.0, 50.0]) == (
        pytest.approx(5.2), "at most", 1)
    assert break_even_fits(208.0, 10.0, [8.0, np.nan], [90.0, 90.0])[:2] == (np.inf, "never")
    assert break_even_fits(np.nan, 10.0, [60.0], [90.0])[1] == "unknown"
    assert break_even_fits(208.0, 10.0, [60.0], [90.0], gain=False)[1] == "no gain"
    # one never got there and stopped before the fit's 10 s: nothing bounds it
    assert break_even_fits(208.0, 10.0, [60.0, np.nan], [90.0, 9.0])[1] == "not bounded"


def _attrs(schema, **given):
    """Every attribute ``schema`` asks for (an empty placeholder), and ``given``."""
    return {**dict.fromkeys(schema.attrs, ""), **given}


def _baseline_inputs(tmp_path, fit_steps_s, start, fitted, searches):
    """A gradient fit's trajectory and NEURON check, and hnn-core searches
    ({solver: (wall_s, seed-mean objective per evaluation)}), as the pipeline
    writes them."""
    from hnn_surrogate.artifacts import FIT_CHECK, FIT_TRAJECTORY, HNN_SEARCH

    n, seeds, free = len(fit_steps_s), [0, 1], ["a"]
    FIT_TRAJECTORY.write(FIT_TRAJECTORY.build(
        {"objective": np.zeros((n, 2)), "gain": np.ones((n, 1)), "grad": np.zeros((n, 1)),
         "rate": np.zeros((n, 2, 0)), "power": np.zeros((n, 2, 0)),
         "wall_s": np.asarray(fit_steps_s, float), "free_src": free, "free_target": free,
         "free_receptor": free},
        {"step": np.arange(n), "seed": seeds, "free": free, "cell_type": np.array([], str),
         "freq": np.zeros(0)}, _attrs(FIT_TRAJECTORY, start="alpha")),
        tmp_path / "trajectory.nc")
    # fit seeds 0 and 1 and one fresh seed, which the comparison must not read
    objective = np.array([[start, start, 9.0], [fitted, fitted, 9.0]])[:, :, None].repeat(2, 2)
    FIT_CHECK.write(FIT_CHECK.build(
        {"objective": objective, "beta_alpha": objective, "peak_freq": objective,
         "peak_beyond_band": np.zeros(objective.shape, np.int8),
         "rate": objective[..., None][..., :0], "power": objective[..., None][..., :0],
         "fit_seed": np.array([1, 1, 0], np.int8)},
        {"condition": ["default", "fitted"], "seed": [0, 1, 2],
         "simulator": ["neuron", "surrogate"], "cell_type": np.array([], str),
         "freq": np.zeros(0)},
        _attrs(FIT_CHECK, start="alpha", objective="beta_share")),
        tmp_path / "check.nc")
    paths = []
    for solver, (wall, mean) in searches.items():
        mean = np.asarray(mean, float)
        paths.append(HNN_SEARCH.write(HNN_SEARCH.build(
            {"wall_s": np.asarray(wall, float), "objective": mean[:, None].repeat(2, 1),
             "best_so_far": np.maximum.accumulate(mean), "gain": np.ones((mean.size, 1))},
            {"evaluation": np.arange(mean.size), "seed": seeds, "free": free},
            _attrs(HNN_SEARCH, solver=solver)),
            tmp_path / f"{solver}.nc"))
    return tmp_path / "trajectory.nc", tmp_path / "check.nc", paths


def test_the_baseline_compares_the_searches_at_the_fits_wall_clock(tmp_path):
    from hnn_surrogate.artifacts import FIT_BASELINE
    from hnn_surrogate.optimize.hnn_optimizer import compare_searches

    # the fit: 0.1 -> 0.3 in 3 steps of 20 s (60 s); bayesian reaches 0.2 by 50 s
    # and 0.4 only at 120 s, cobyla 0.25 by 30 s and no more in 100 s, cma nothing
    # by 60 s and 0.35 at 90 s
    traj, check, searches = _baseline_inputs(tmp_path, [20.0, 20.0, 20.0], 0.1, 0.3, {
        "bayesian": ([10.0, 50.0, 120.0], [0.1, 0.2, 0.4]),
        "cobyla": ([10.0, 30.0, 100.0], [0.1, 0.25, 0.2]),
        "cma": ([70.0, 90.0], [0.1, 0.35])})
    torch.save({"data_neuron_jobs": {"h/run0": 180.0}, "train_cost_s": 120.0},
               tmp_path / "ckpt.pt")
    text = compare_searches(traj, check, searches, out=tmp_path / "baseline.nc",
                            table=tmp_path / "baseline.md", checkpoints=[tmp_path / "ckpt.pt"])
    ds = FIT_BASELINE.read(tmp_path / "baseline.nc")
    assert list(ds["method"].values) == ["gradient", "bayesian", "cobyla", "cma"]
    assert ds["neuron_objective"].values[1:] == pytest.approx([0.4, 0.25, 0.35])
    at_fit = ds["neuron_objective_at_fit_wall"].values
    assert at_fit[:3] == pytest.approx([0.3, 0.2, 0.25]) and np.isnan(at_fit[3])
    # ahead at equal wall clock (0.3 > 0.25), though two searches pass it later
    assert ds.attrs["gradient_ahead"] == 1
    assert "gradient 0.3000 vs best solver 0.2500 at the fit's wall clock (60 s): " \
           "gradient fit ahead (best solver over its whole run: 0.4000)" in text
    # counted: 300 s of data and training; bayesian reached 0.3 at 120 s, cma at
    # 90 s (the fastest): 300 / (90 - 60) = 10 fits
    reach = ds["wall_to_gradient_s"].values
    assert reach[[0, 1, 3]] == pytest.approx([60.0, 120.0, 90.0]) and np.isnan(reach[2])
    assert (ds.attrs["break_even"], ds.attrs["break_even_solver"]) == ("exact", "cma")
    assert ds.attrs["break_even_fits"] == pytest.approx(10.0)
    assert (tmp_path / "baseline.md").read_text().strip() == text
    # a search that beats the fit by its wall clock puts it behind
    traj, check, searches = _baseline_inputs(tmp_path, [30.0, 30.0], 0.1, 0.3, {
        "bayesian": ([10.0, 50.0], [0.1, 0.31])})
    text = compare_searches(traj, check, searches, out=tmp_path / "behind.nc")
    assert FIT_BASELINE.read(tmp_path / "behind.nc").attrs["gradient_ahead"] == 0
    assert "gradient fit NOT ahead" in text and "not known (no checkpoints given)" in text
    # no search finished an evaluation within the fit's wall clock: nothing to beat
    traj, check, searches = _baseline_inputs(tmp_path, [5.0], 0.1, 0.3, {
        "bayesian": ([10.0], [0.9])})
    compare_searches(traj, check, searches, out=tmp_path / "none.nc")
    assert FIT_BASELINE.read(tmp_path / "none.nc").attrs["gradient_ahead"] == 1


def test_malloc_keep_takes_effect_on_glibc_and_bad_modes_are_refused():
    """``keep`` turns glibc's mmap and trimming off (in a child process, so the
    test process's allocator stays as it is); ``default`` leaves it; others refused."""
    import platform
    import subprocess
    import sys

    from hnn_surrogate.alloc import set_malloc

    code = ("from hnn_surrogate.alloc import set_malloc; "
            "print(set_malloc('keep'), set_malloc('default'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    glibc = platform.libc_ver()[0] == "glibc"
    assert out == [str(glibc), "False"]
    with pytest.raises(ValueError, match="malloc mode 'off'"):
        set_malloc("off")


def test_the_check_marks_a_peak_that_lies_beyond_its_band():
    from hnn_surrogate.optimize.check import PEAK_BAND, spectral_peak

    f = np.arange(0.0, 250.0, 1.0)
    beta = np.exp(-0.5 * ((f - 20.0) / 2.0) ** 2)
    # a beta peak above a flat floor: inside the band, the spectrum's peak
    assert spectral_peak(f, 0.01 + beta) == (20.0, False)
    # the same beta bump on a spectrum rising to 100 Hz and beyond (a fit's
    # volleys' fast dipole): beta is the band's local maximum only if nothing
    # above 80 Hz is larger
    rising = (f / 50.0) ** 4
    assert spectral_peak(f, 0.1 * beta + rising) == (PEAK_BAND[1], True)
    # on the band's top with nothing above it: the edge alone marks it
    assert spectral_peak(f, rising * (f <= PEAK_BAND[1])) == (PEAK_BAND[1], True)
    assert spectral_peak(f, 0.1 * beta + rising * (f <= 60.0)) == (60.0, False)
    assert spectral_peak(f, beta + 0.9 * (f > 85.0)) == (20.0, False)
    assert spectral_peak(f, beta + 1.1 * (f > 85.0)) == (20.0, True)
    # power above 100 Hz is not looked at
    assert spectral_peak(f, 0.01 + beta + 5.0 * (f > 100.0)) == (20.0, False)
    # the lower edge: a spectrum falling from 3 Hz
    assert spectral_peak(f, 1.0 / (1.0 + f)) == (PEAK_BAND[0], True)
    # a silent run (no power) or a broken spectrum has no peak
    assert np.isnan(spectral_peak(f, np.zeros(f.size))[0])
    assert np.isnan(spectral_peak(f, np.where(f == 50.0, np.nan, beta))[0])
    with pytest.raises(ValueError, match="within"):
        spectral_peak(np.array([90.0, 95.0]), np.ones(2))
    with pytest.raises(ValueError, match="above the band"):
        spectral_peak(f, beta, beyond=70.0)


def _check_file(path, *, neuron_change, peaks, beyond):
    """A fit_check of seeds 0 (fit), 7 and 8 (fresh): NEURON's and the surrogates'
    objective 0 at the start and ``neuron_change`` (NEURON) or 0.1 after the fit;
    NEURON's fitted peaks and their ``beyond`` marks per seed (the start's and the
    surrogates' runs: 10 Hz, all marked, which the summary must not count)."""
    from hnn_surrogate.artifacts import FIT_CHECK

    obj = np.zeros((2, 3, 2))
    obj[1, :, 0], obj[1, :, 1] = neuron_change, 0.1
    peak, mark = np.full((2, 3, 2), 10.0), np.ones((2, 3, 2), np.int8)
    peak[1, :, 0], mark[1, :, 0] = peaks, beyond
    return FIT_CHECK.write(FIT_CHECK.build(
        {"objective": obj, "beta_alpha": np.ones((2, 3, 2)), "peak_freq": peak,
         "peak_beyond_band": mark, "rate": np.zeros((2, 3, 2, 0)),
         "power": np.zeros((2, 3, 2, 0)), "fit_seed": np.array([1, 0, 0], np.int8)},
        {"condition": ["default", "fitted"], "seed": [0, 7, 8],
         "simulator": ["neuron", "surrogate"], "cell_type": np.array([], str),
         "freq": np.zeros(0)},
        _attrs(FIT_CHECK, start="alpha", objective="beta_share", transfer=1.0)), path)


def test_the_fit_summary_reports_where_neuron_s_fitted_spectrum_peaks(tmp_path):
    from hnn_surrogate.artifacts import FIT_SUMMARY
    from hnn_surrogate.optimize.check import summarize_fits

    checks = {"beta": _check_file(tmp_path / "a.nc", neuron_change=0.2,
                                  peaks=[16.7, 21.1, 30.0], beyond=[0, 0, 0]),
              "gamma": _check_file(tmp_path / "b.nc", neuron_change=0.3,
                                   peaks=[80.0, 78.9, np.nan], beyond=[1, 1, 0])}
    text = summarize_fits(checks, out=tmp_path / "summary.nc", table=tmp_path / "summary.md")
    s = FIT_SUMMARY.read(tmp_path / "summary.nc")
    # ranked by NEURON's change on the fresh seeds, as before; the peaks beside it:
    # the median of NEURON's fitted runs (a silent run's missing peak left out)
    assert list(s["rank"].values) == [2, 1]
    np.testing.assert_allclose(s["neuron_peak_fitted"].values, [21.1, 79.45])
    assert list(s["neuron_peak_beyond"].values) == [0, 2]
    assert "| 1 | gamma |" in text and "79.5 (2 of 3)" in text and "21.1 (0 of 3)" in text
