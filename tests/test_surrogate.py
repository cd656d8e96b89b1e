"""The surrogate: streaming equals full forward; training resumes; checkpoints are checked."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hnn_surrogate.artifacts import write_json
from hnn_surrogate.datasets import open_cell_dataset
from hnn_surrogate.surrogate.checkpoint import CheckpointError, load_checkpoint
from hnn_surrogate.surrogate.evaluate import match_spikes, predicted_spike_times, subthreshold_mask
from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

TINY_TRAIN = {"hidden": 8, "kernel_size": 3, "dilations": [1, 2, 4], "lstm_hidden": 8,
              "epochs": 4, "steps_per_epoch": 3, "batch_size": 4, "lr": 0.003, "patience": 10,
              "crop_bins": 60, "burn_in_bins": 10, "v_clip": -55.0, "spike_kernel_ms": 10.0,
              "dipole_weight": 1.0, "linear_taus_ms": [],
              "spike_weight": 1.0, "threads": 1, "device": "cpu"}
_MODEL_KEYS = ("hidden", "kernel_size", "dilations", "lstm_hidden")


def _tiny_args(*leave_out):
    """TINY_TRAIN as ``train_surrogate`` takes it: (model kwargs, TrainConfig
    fields), the fields without ``leave_out`` (for a test to set)."""
    kwargs = {k: (tuple(TINY_TRAIN[k]) if k == "dilations" else TINY_TRAIN[k]) for k in _MODEL_KEYS}
    train = {k: v for k, v in TINY_TRAIN.items()
             if k not in _MODEL_KEYS + ("linear_taus_ms",) + leave_out}
    return kwargs, train


@pytest.mark.parametrize("n_targets, taus, rest, kernels", [
    (1, (), False, False), (2, (), False, False), (2, (1.0, 4.0, 40.0), False, False),
    (2, (1.0, 4.0), True, False), (2, (), False, True), (2, (1.0,), True, True)])
def test_step_over_a_sequence_equals_the_full_forward(n_targets, taus, rest, kernels):
    torch.manual_seed(0)
    model = Surrogate(SurrogateConfig(n_channels=5, n_targets=n_targets, hidden=16,
                                      dilations=(1, 2, 4, 8), lstm_hidden=12,
                                      linear_taus=taus, rest_start=rest,
                                      input_rise=(1.0, 1.0, 2.0, 1.0, 2.0) if kernels else (),
                                      input_decay=(10.0, 10.0, 40.0, 10.0, 40.0) if kernels
                                      else ())).eval()
    if taus:                       # the linear path's readout starts at zero: make it count
        torch.nn.init.normal_(model.linear.readout.weight)
    if rest:                       # the learned start state starts at zero: make it count
        torch.nn.init.normal_(model.h0)
        torch.nn.init.normal_(model.c0)
    x = torch.rand(7, 150, 5) * (torch.rand(7, 150, 5) > 0.9)
    with torch.no_grad():
        y, logit = model(x)
        state = model.init_state(7)
        steps = []
        for t in range(x.shape[1]):
            y_t, l_t, state = model.step(x[:, t], state)
            steps.append((y_t, l_t))
    torch.testing.assert_close(torch.stack([s[0] for s in steps], 1), y, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.stack([s[1] for s in steps], 1), logit, atol=1e-5, rtol=1e-4)
    assert y.shape == (7, 150, n_targets)


def test_a_model_started_at_rest_stays_at_rest_without_input():
    """rest_start: the TCN's history is each layer's own activation under no
    input; with the LSTM's start state at its fixed point for no input, a run
    of no input is flat from t = 0 (a zero start makes a transient of about
    the receptive field)."""
    from hnn_surrogate.surrogate.model import lstm_cell

    torch.manual_seed(1)
    cfg = dict(n_channels=3, n_targets=2, hidden=8, dilations=(1, 2, 4), lstm_hidden=6)
    model = Surrogate(SurrogateConfig(**cfg, rest_start=True)).eval()
    zero_start = Surrogate(SurrogateConfig(**cfg)).eval()
    zero_start.load_state_dict({k: v for k, v in model.state_dict().items()
                                if k not in ("h0", "c0")})
    with torch.no_grad():
        h = model.rest_inputs()[-1]
        h = model.blocks[-1].rest(h)
        gx = model.lstm.weight_ih_l0 @ h + model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
        hl = torch.zeros(6)
        c = torch.zeros(6)
        for _ in range(3000):
            hl, c = lstm_cell(gx + model.lstm.weight_hh_l0 @ hl, c)
        model.h0.copy_(hl[None])
        model.c0.copy_(c[None])
        x = torch.zeros(2, 100, 3)
        y, logit = model(x)
        y0, _ = zero_start(x)
    torch.testing.assert_close(y, y[:, :1].expand_as(y), atol=1e-5, rtol=0)
    torch.testing.assert_close(logit, logit[:, :1].expand_as(logit), atol=1e-5, rtol=0)
    assert float((y0 - y0[:, -1:]).abs().max()) > 1e-3         # zeros: a transient


def test_input_kernels_give_hnn_cores_conductance_shape():
    """A lone event through a channel's kernel: zero before it, the Exp2Syn shape
    exp(-t / decay) - exp(-t / rise) after it, peak 1 (one event of weight 1)."""
    from hnn_surrogate.surrogate.model import InputKernels

    k = InputKernels((1.0, 2.0), (10.0, 40.0))
    x = torch.zeros(1, 400, 2)
    x[0, 50] = 1.0
    g = k.traces(x)[0].double()
    t = torch.arange(350, dtype=torch.float64)
    for c, (r, d) in enumerate(((1.0, 10.0), (2.0, 40.0))):
        shape = torch.exp(-t / d) - torch.exp(-t / r)
        torch.testing.assert_close(g[50:, c], shape / shape.max(), rtol=1e-4, atol=1e-5)
        assert float(g[:50, c].abs().max()) < 1e-5
    with pytest.raises(ValueError, match="longer decay"):
        InputKernels((5.0,), (1.0,))


def test_output_is_causal():
    torch.manual_seed(1)
    model = Surrogate(SurrogateConfig(n_channels=3, hidden=8, dilations=(1, 2), lstm_hidden=8)).eval()
    x = torch.zeros(1, 50, 3)
    x2 = x.clone()
    x2[0, 30, 1] = 1.0
    with torch.no_grad():
        a, b = model(x)[0], model(x2)[0]
    assert torch.equal(a[:, :30], b[:, :30])
    assert not torch.equal(a[:, 30:], b[:, 30:])


def test_dropout_acts_in_training_only():
    torch.manual_seed(2)
    model = Surrogate(SurrogateConfig(n_channels=3, hidden=8, dilations=(1, 2), lstm_hidden=8))
    x = torch.rand(2, 40, 3)
    model.eval()
    with torch.no_grad():
        plain = model(x)[0]
        model.dropout = 0.5
        assert torch.equal(model(x)[0], plain)         # evaluation: no unit dropped
        model.train()
        a, b = model(x)[0], model(x)[0]
        model.dropout = 0.0
        rng = torch.get_rng_state()
        assert torch.equal(model(x)[0], plain)         # training without dropout: the same,
        assert torch.equal(torch.get_rng_state(), rng)  # and no random number drawn
    assert not torch.equal(a, b) and not torch.equal(a, plain)


def test_spike_matching_and_masks():
    assert match_spikes(np.array([10.0, 20.0, 30.0]), np.array([11.5, 19.0, 45.0])) == 2
    assert match_spikes(np.array([10.0]), np.array([7.9])) == 0
    p = np.array([[0.1, 0.9, 0.8, 0.2, 0.7]])
    np.testing.assert_allclose(predicted_spike_times(p, 0.5)[0], [0.75, 2.25])
    keep = subthreshold_mask(np.array([5.0]), 40, 0.5)
    assert keep[:6].all() and not keep[6:26].any() and keep[26:].all()


def test_wider_windows_tell_timing_from_count():
    """One spike 3 ms late, one 20 ms late, one missed: F1 counts 0, 1 and 2 of 3
    NEURON spikes (of 2 predicted) within +/-2, 5 and 50 ms."""
    from hnn_surrogate.surrogate.evaluate import fidelity

    v = np.full((1, 400), -65.0)
    m = fidelity(v, v, v, -55.0, [np.array([20.0, 80.0, 150.0])], [np.array([23.0, 100.0])],
                 0.5)
    assert m["spike_f1"] == 0.0
    assert m["spike_f1_5ms"] == pytest.approx(2 * 1 / 5)
    assert m["spike_f1_50ms"] == pytest.approx(2 * 2 / 5)


def test_the_run_summed_dipole_sees_a_fast_part_that_a_cells_dipole_r_hides():
    """Two runs of 20 cells: NEURON's cells share a 10 Hz rhythm under their own noise.
    The surrogate's cells add, each, a 40 Hz component locked across the run: per cell
    it is small, summed over the run it is coherent and shifts the gamma fraction.
    A lone-cell simulation (run None) is left out of the sums."""
    from hnn_surrogate.network.compare import BANDS
    from hnn_surrogate.surrogate.evaluate import RUN_METRICS, run_dipole_metrics

    assert {f"band_error_{b}" for b in BANDS} < set(RUN_METRICS)
    rng = np.random.default_rng(0)
    bin_ms, n = 0.5, 2400
    t = np.arange(n) * bin_ms / 1000
    true = np.sin(2 * np.pi * 10 * t) + 3.0 * rng.standard_normal((41, n))
    runs = [("network_prior", 0)] * 20 + [("network_prior", 1)] * 20 + [None]
    same = run_dipole_metrics(true, true.copy(), runs, bin_ms)
    assert same["dipole_sum_r"] == pytest.approx(1.0)
    assert all(same[f"band_error_{b}"] == pytest.approx(0.0) for b in BANDS)
    assert same["band_within"] == 1.0
    fast = true + 0.3 * np.sin(2 * np.pi * 40 * t)
    per_cell_r = np.corrcoef(true[0], fast[0])[0, 1]
    m = run_dipole_metrics(true, fast, runs, bin_ms)
    assert per_cell_r > 0.99  # a cell's dipole r hardly sees it
    assert m["band_error_gamma"] > 1.0 > 0.2 > m["band_error_alpha"]
    assert m["band_within"] < 1.0 and m["dipole_sum_r"] < 0.99
    # a band with almost no power in NEURON's sum has no relative error
    slow = (np.sin(2 * np.pi * 3 * t) + 0.25 * np.sin(2 * np.pi * 10 * t)
            + 0.05 * rng.standard_normal((20, n)))
    quiet = run_dipole_metrics(slow, slow + 0.25 * np.sin(2 * np.pi * 10 * t), runs[:20],
                               bin_ms)
    assert np.isnan(quiet["band_error_gamma"]) and quiet["band_error_alpha"] > 1.0
    # a flat surrogate sum against a NEURON sum that moves: r 0, every band missed
    flat = run_dipole_metrics(true[:20], np.zeros_like(true[:20]), runs[:20], bin_ms)
    assert flat["dipole_sum_r"] == 0.0 and flat["band_within"] == 0.0
    assert flat["band_error_alpha"] == np.inf  # missed, not unknown
    # a run shorter than the transient keeps its second half
    short = run_dipole_metrics(true[:20, :150], true[:20, :150], runs[:20], bin_ms)
    assert short["dipole_sum_r"] == pytest.approx(1.0)
    # a lone-cell regime has no runs: every run metric is NaN
    lone = run_dipole_metrics(true[:3], fast[:3], [None] * 3, bin_ms)
    assert all(np.isnan(v) for v in lone.values())


def test_a_cells_dipole_error_is_reported_by_band():
    """True dipoles: 10 Hz plus 40 Hz plus 150 Hz, whole cycles in 1 s. A prediction
    that has the 10 Hz part right, half the 40 Hz part and none of the 150 Hz part
    errs 0 in alpha, 0.25 in gamma (half the amplitude: a quarter of the power) and
    1 above 100 Hz; beta holds no true power (NaN, not a ratio of nothing)."""
    from hnn_surrogate.artifacts import SURROGATE_METRICS
    from hnn_surrogate.network.compare import BANDS
    from hnn_surrogate.surrogate.evaluate import (
        ERROR_BAND_METRICS, ERROR_BANDS, dipole_error_bands)

    # the comparison's bands, and every metric a schema variable
    assert {b: ERROR_BANDS[b] for b in BANDS} == BANDS
    assert all(SURROGATE_METRICS.variables[k].optional for k in ERROR_BAND_METRICS)
    bin_ms, n = 0.5, 2000
    t = np.arange(n) * bin_ms / 1000
    phase = np.random.default_rng(1).uniform(0, 2 * np.pi, (5, 1))

    def wave(f, a=1.0):
        return a * np.sin(2 * np.pi * f * t + phase)

    true = wave(10) + wave(40) + wave(150) + 3.0         # an offset the metric removes
    m = dipole_error_bands(true, wave(10) + wave(40, 0.5), bin_ms)
    assert set(m) == set(ERROR_BAND_METRICS)
    assert m["dipole_error_alpha"] == pytest.approx(0.0, abs=1e-20)
    assert m["dipole_error_gamma"] == pytest.approx(0.25)
    assert m["dipole_error_fast"] == pytest.approx(1.0)
    assert np.isnan(m["dipole_error_beta"])
    assert dipole_error_bands(true, true, bin_ms)["dipole_error_gamma"] == 0.0
    # a flat true dipole: nothing to measure against
    assert all(np.isnan(v) for v in dipole_error_bands(np.ones((2, n)), true[:2],
                                                        bin_ms).values())


def _train_cmd(dataset, out, history, config=TINY_TRAIN):
    cfg = write_json(config, Path(out).with_name(Path(out).stem + "_config.json"))
    return [sys.executable, "-m", "hnn_surrogate", "train", str(dataset), "--config", str(cfg),
            "--seed", "3", "--out", str(out), "--history", str(history)]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, calibration):
    """A small merged L5 pyramidal dataset simulated for real (12 sims of 100 ms)."""
    from hnn_surrogate.cells.calibrate import read_reference
    from hnn_surrogate.cells.shard import simulate_shard
    from hnn_surrogate.config import validate_config
    from hnn_surrogate.datasets import merge_shards
    from hnn_surrogate.artifacts import CELL_SIMS

    folder = tmp_path_factory.mktemp("tiny_dataset")
    regimes = validate_config({})["cells"]["regimes"]
    ref = read_reference(calibration("L5_pyramidal"), "L5_pyramidal")
    paths = []
    for name in ("subthreshold", "suprathreshold"):
        ds = simulate_shard(cell_type="L5_pyramidal", regime_name=name, regime=regimes[name],
                            reference=ref, first=0, count=6, tstop=100.0, dt=0.025, bin_ms=0.5,
                            delay=0.1, seed=2, store_fine=False)
        paths.append(CELL_SIMS.write(ds, folder / f"{name}.nc"))
    return merge_shards(paths, folder / "L5_pyramidal.nc", seed=2,
                        fractions={"train": 0.5, "val": 0.25, "test": 0.25}) and folder / "L5_pyramidal.nc"


def test_spike_threshold_rules_pick_the_best_f1_or_the_closest_count():
    from hnn_surrogate.surrogate.train import pick_spike_threshold

    grid = np.array([0.5, 0.6, 0.7, 0.8])
    f1 = np.array([0.80, 0.90, 0.85, 0.70])
    assert pick_spike_threshold(grid, f1, np.array([1.5, 1.2, 0.98, 0.7]), "f1") == 0.6
    assert pick_spike_threshold(grid, f1, np.array([1.5, 1.2, 0.98, 0.7]), "count") == 0.7
    # equally close counts: the better F1, whatever the float noise (4 and 2 of 3 spikes)
    assert pick_spike_threshold(grid, f1, np.array([1.1, 1.05, 0.95, 0.7]), "count") == 0.6
    assert pick_spike_threshold(grid[:2], np.array([0.5, 0.7]), np.array([4, 2]) / 3,
                                "count") == 0.6
    assert pick_spike_threshold(grid[:2], np.array([0.7, 0.5]), np.array([4, 2]) / 3,
                                "count") == 0.5
    with pytest.raises(ValueError, match="rule 'rate'"):
        pick_spike_threshold(grid, f1, f1, "rate")


def test_training_end_to_end_and_checkpoint_rebuilds_the_model(tiny_dataset, tmp_path):
    out, hist = tmp_path / "m.pt", tmp_path / "h.nc"
    subprocess.run(_train_cmd(tiny_dataset, out, hist), check=True, capture_output=True,
                   timeout=600)
    ds = open_cell_dataset(tiny_dataset)
    loaded = load_checkpoint(out, dataset=ds)
    assert loaded.cell_type == "L5_pyramidal" and loaded.targets == ["v_soma", "dipole"]
    assert loaded.channels == list(ds["channel"].values.astype(str))
    assert 0 < loaded.spike_threshold < 1
    # the threshold is the one the configured rule picks on the validation split
    from hnn_surrogate.surrogate.train import (SPIKE_THRESHOLD_GRID, pick_spike_threshold,
                                               spike_threshold_scores)
    f1, ratio = spike_threshold_scores(loaded.model, ds, loaded.norm)
    assert f1.shape == ratio.shape == SPIKE_THRESHOLD_GRID.shape
    assert np.all((f1 >= 0) & (f1 <= 1)) and np.all(ratio >= 0)
    assert loaded.blob["spike_threshold_rule"] == "f1"             # the key left out
    assert loaded.spike_threshold == pick_spike_threshold(SPIKE_THRESHOLD_GRID, f1, ratio, "f1")
    # chosen again by the count rule: only the threshold and its rule change
    again = tmp_path / "count.pt"
    run = subprocess.run([sys.executable, "-m", "hnn_surrogate", "tune-threshold", str(out),
                          str(tiny_dataset), "--rule", "count", "--out", str(again)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "predicted / true spikes" in run.stdout
    recount = load_checkpoint(again, dataset=ds)
    assert recount.blob["spike_threshold_rule"] == "count"
    assert recount.spike_threshold == pick_spike_threshold(SPIKE_THRESHOLD_GRID, f1, ratio,
                                                           "count")
    for key, value in loaded.blob.items():
        if key not in ("spike_threshold", "spike_threshold_rule", "state_dict", "train_config"):
            assert recount.blob[key] == value, key
    assert recount.blob["train_config"] == dict(loaded.blob["train_config"],
                                                spike_threshold_rule="count")
    for key, value in loaded.blob["state_dict"].items():
        assert torch.equal(recount.blob["state_dict"][key], value), key
    # other data than its training data (the same shards split by another seed):
    # refused, naming the data hash, nothing written
    from hnn_surrogate.datasets import merge_shards

    shards = sorted(Path(tiny_dataset).parent.glob("*threshold.nc"))
    other = tmp_path / "other.nc"
    merge_shards(shards, other, seed=5, fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    for data, said in ((other, "data hash"), (hist, "tune-threshold: ")):
        bad = subprocess.run([sys.executable, "-m", "hnn_surrogate", "tune-threshold", str(out),
                              str(data), "--rule", "count", "--out", str(tmp_path / "bad.pt")],
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode != 0 and said in bad.stderr, bad.stderr
        assert not (tmp_path / "bad.pt").exists()
    # what the data cost in NEURON (one job per shard here) and what training did
    jobs = loaded.blob["data_neuron_jobs"]
    assert len(jobs) == 2 and all(v > 0 for v in jobs.values())
    assert loaded.blob["train_cost_s"] >= loaded.blob["train_wall_s"] > 0
    from hnn_surrogate.artifacts import SURROGATE_HISTORY

    h = SURROGATE_HISTORY.read(hist)
    assert h.sizes["epoch"] == 4 and np.all(np.isfinite(h["val_loss"].values))
    assert not out.with_name(out.name + ".resume.pt").exists()
    # Evaluation runs on it and writes metrics.
    subprocess.run([sys.executable, "-m", "hnn_surrogate", "evaluate", str(out),
                    str(tiny_dataset), "--split", "test", "--out", str(tmp_path / "m.nc")], check=True,
                   capture_output=True, timeout=300)
    from hnn_surrogate.artifacts import SURROGATE_METRICS

    metrics = SURROGATE_METRICS.read(tmp_path / "m.nc")
    assert list(metrics["regime"].values)[-1] == "all"
    assert metrics["n_spikes_true"].values[-1] > 0
    # a pyramidal cell's dipole error by band, per regime
    assert np.isfinite(metrics["dipole_error_gamma"].values[-1])


def test_killed_training_resumes_and_ends_where_an_uninterrupted_run_ends(tiny_dataset, tmp_path):
    cfg = dict(TINY_TRAIN, epochs=6, steps_per_epoch=4)
    ref_out = tmp_path / "ref.pt"
    subprocess.run(_train_cmd(tiny_dataset, ref_out, tmp_path / "ref.nc", cfg), check=True,
                   capture_output=True, timeout=600)
    out = tmp_path / "m.pt"
    resume = out.with_name(out.name + ".resume.pt")
    child = subprocess.Popen(_train_cmd(tiny_dataset, out, tmp_path / "h.nc", cfg),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not resume.exists():
        assert child.poll() is None and time.time() < deadline, "no resume state written"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists()
    saved = torch.load(resume, weights_only=True)
    done = saved["state"]["epoch"]
    assert 1 <= done < 6
    proc = subprocess.run(_train_cmd(tiny_dataset, out, tmp_path / "h.nc", cfg),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming from {resume} at epoch {done}" in proc.stderr
    a = torch.load(ref_out, weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_a_training_config_without_a_key_is_refused_naming_it(tiny_dataset, tmp_path):
    cfg = {k: v for k, v in TINY_TRAIN.items() if k != "lstm_hidden"}
    proc = subprocess.run(_train_cmd(tiny_dataset, tmp_path / "m.pt", tmp_path / "h.nc",
                                     dict(cfg, bogus=1)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "lacks lstm_hidden; unknown keys bogus" in proc.stderr


def test_checkpoint_against_other_data_fails_clearly(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    subprocess.run(_train_cmd(tiny_dataset, out, tmp_path / "h.nc",
                              dict(TINY_TRAIN, epochs=1)), check=True, capture_output=True,
                   timeout=600)
    ds = open_cell_dataset(tiny_dataset)
    other_type = ds.assign_attrs(cell_type="L2_pyramidal")
    with pytest.raises(CheckpointError, match="holds L2_pyramidal, but the checkpoint is a "
                                              "L5_pyramidal surrogate"):
        load_checkpoint(out, dataset=other_type)
    fewer = ds.isel(channel=slice(0, 30))
    with pytest.raises(CheckpointError, match="input channels do not match"):
        load_checkpoint(out, dataset=fewer, source="fewer.nc")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    # Other data of the same kind: its splits are not the training's.
    changed = ds.copy(deep=True)
    changed["inputs"].values[0, 0, 0] += 1e-6
    with pytest.raises(CheckpointError, match="data hash .* is not the .* the checkpoint was "
                                              "trained on"):
        load_checkpoint(out, dataset=changed, source="changed.nc")
    assert load_checkpoint(out, dataset=changed, allow_other_data=True).cell_type == "L5_pyramidal"
    # several checkpoints checked on one data set hash it once, and still catch other data
    import hnn_surrogate.surrogate.checkpoint as checkpoint

    calls, real = [], checkpoint.data_hash
    monkeypatch.setattr(checkpoint, "data_hash", lambda *a: calls.append(1) or real(*a))
    hashes = {}
    for _ in range(2):
        load_checkpoint(out, dataset=ds, hashes=hashes)
    assert len(calls) == 1 and list(hashes) == [False]
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="data hash"):
        load_checkpoint(out, dataset=changed, hashes={})
    # A checkpoint whose training never tuned the spike threshold is an error, not 0.5.
    blob = torch.load(out, weights_only=True)
    del blob["spike_threshold"]
    torch.save(blob, tmp_path / "no_threshold.pt")
    with pytest.raises(CheckpointError, match="lacks spike_threshold"):
        load_checkpoint(tmp_path / "no_threshold.pt")
    blob["spike_threshold"] = 1.5
    torch.save(blob, tmp_path / "bad_threshold.pt")
    with pytest.raises(CheckpointError, match="spike threshold 1.5 is not a probability"):
        load_checkpoint(tmp_path / "bad_threshold.pt")


class _Payload:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["checkpoint", "resume"])
def test_a_crafted_file_cannot_run_code(tiny_dataset, tmp_path, where):
    from hnn_surrogate.surrogate.checkpoint import FORMAT

    marker = tmp_path / "code_ran"
    if where == "checkpoint":
        torch.save({"format": FORMAT, "cell_type": _Payload(marker)}, tmp_path / "evil.pt")
        with pytest.raises(CheckpointError, match="evil.pt: refused, the file holds objects "
                                                  "other than tensors"):
            load_checkpoint(tmp_path / "evil.pt")
    else:
        # a poisoned resume file beside a training job's output is ignored, not run
        out = tmp_path / "m.pt"
        torch.save({"fingerprint": _Payload(marker)}, tmp_path / "m.pt.resume.pt")
        proc = subprocess.run(_train_cmd(tiny_dataset, out, tmp_path / "h.nc",
                                         dict(TINY_TRAIN, epochs=1, steps_per_epoch=1)),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "ignoring the resume file" in proc.stderr and "refused" in proc.stderr
    assert not marker.exists()


def test_regime_weights_make_every_regime_count_alike():
    from hnn_surrogate.surrogate.train import regime_weights

    torch.manual_seed(0)
    y = torch.cat([0.01 * torch.randn(4, 50, 2), 3.0 * torch.randn(6, 50, 2)])
    regimes = np.array(["sub"] * 4 + ["supra"] * 6)
    w = regime_weights(y, regimes, "regime")
    assert w.shape == (10, 2) and torch.allclose(w.mean(dim=0), torch.ones(2))
    weighted = [(w[regimes == r][:, None, :] * y[regimes == r] ** 2).mean() for r in ("sub", "supra")]
    assert float(weighted[0]) == pytest.approx(float(weighted[1]), rel=0.05)
    assert torch.equal(regime_weights(y, regimes, "none"), torch.ones(10, 2))
    with pytest.raises(ValueError, match="loss_weighting 'bogus'"):
        regime_weights(y, regimes, "bogus")


@pytest.mark.parametrize("n_bins", [200, 201])
def test_the_dipoles_fast_error_counts_its_weight_and_the_rest_as_before(n_bins):
    """Summed over frequency the dipole's squared error is the time-domain sum
    (Parseval, odd and even lengths, masks and per-sequence weights included); with
    ``dipole_fast_weight`` an error above ``dipole_fast_hz`` counts that many times,
    one below it as before, and the voltage's error is untouched."""
    from types import SimpleNamespace

    from hnn_surrogate.surrogate.train import TrainConfig, loss_terms, spectral_weights

    torch.manual_seed(0)
    e = torch.randn(3, n_bins, dtype=torch.float64)
    c = spectral_weights(n_bins, 0.5, 100.0, 1.0).double()
    torch.testing.assert_close((torch.fft.rfft(e).abs() ** 2 * c).sum(-1), (e ** 2).sum(-1))

    t = torch.arange(n_bins) * 0.5e-3
    y = torch.zeros(2, n_bins, 2)
    pred = torch.randn(2, n_bins, 2)

    class Model:
        config = SimpleNamespace(n_targets=2, n_sections=0)

        def __call__(self, x):
            return x, torch.zeros(x.shape[:2])

    mask = torch.ones(2, n_bins)
    mask[:, :20] = 0
    spikes, pos = torch.zeros(2, n_bins), torch.tensor(1.0)
    sample_w = torch.tensor([[1.0, 2.0], [0.5, 3.0]])
    plain = TrainConfig(seed=0)
    above_nyquist = TrainConfig(seed=0, dipole_fast_weight=0.3, dipole_fast_hz=5000.0)
    # off (weight 1), the squared error is the one every earlier model trained on, bit
    # for bit: retraining a shipped config gives its weights
    m = mask.unsqueeze(-1)
    old = ((pred - y) ** 2 * m).sum() / (m.sum() * y.shape[-1])
    assert torch.equal(loss_terms(Model(), pred, y, spikes, mask, plain, pos)[1], old)
    for w in (None, sample_w):
        a = loss_terms(Model(), pred, y, spikes, mask, plain, pos, w)[1]
        b = loss_terms(Model(), pred, y, spikes, mask, above_nyquist, pos, w, bin_ms=0.5)[1]
        torch.testing.assert_close(a, b)
    fast = TrainConfig(seed=0, dipole_fast_weight=0.1, dipole_fast_hz=100.0)
    for hz, ratio in ((20.0, 1.0), (300.0, 0.1)) if n_bins == 200 else ():  # whole periods
        err = torch.zeros(2, n_bins, 2)
        err[..., 1] = torch.sin(2 * np.pi * hz * t)
        a = loss_terms(Model(), err, y, spikes, torch.ones(2, n_bins), plain, pos)[1]
        b = loss_terms(Model(), err, y, spikes, torch.ones(2, n_bins), fast, pos, bin_ms=0.5)[1]
        assert float(b / a) == pytest.approx(ratio, rel=1e-4)
    volt = torch.zeros(2, n_bins, 2)
    volt[..., 0] = torch.sin(2 * np.pi * 300.0 * t)
    torch.testing.assert_close(
        loss_terms(Model(), volt, y, spikes, mask, fast, pos, bin_ms=0.5)[1],
        loss_terms(Model(), volt, y, spikes, mask, plain, pos)[1])
    with pytest.raises(ValueError, match="bin_ms"):
        loss_terms(Model(), pred, y, spikes, mask, fast, pos)


def test_linear_path_starts_at_the_ridge_fit_and_trains_with_regime_weights(tiny_dataset,
                                                                            tmp_path):
    from hnn_surrogate.surrogate.data import Normalization, split_tensors
    from hnn_surrogate.surrogate.train import init_linear_path

    ds = open_cell_dataset(tiny_dataset)
    norm = Normalization.fit(ds, n_lags=20)
    x, y, _, _ = split_tensors(ds, "train", norm)
    model = Surrogate(SurrogateConfig(n_channels=x.shape[-1], n_targets=2, hidden=4,
                                      dilations=(1,), lstm_hidden=4, linear_taus=(2.0, 10.0, 40.0)))
    with torch.no_grad():
        before = ((model.linear.readout(model.linear.traces(x))[..., :2] - y) ** 2).mean()
        init_linear_path(model, x, y, seed=0)
        after = ((model.linear.readout(model.linear.traces(x))[..., :2] - y) ** 2).mean()
    assert float(after) < 0.5 * float(before)          # the ridge fit explains the targets
    assert torch.equal(model.linear.readout.weight[-1], torch.zeros(x.shape[-1] * 3))
    out = tmp_path / "m.pt"
    cfg = dict(TINY_TRAIN, epochs=2, linear_taus_ms=[1.0, 5.0, 20.0], loss_weighting="regime")
    proc = subprocess.run(_train_cmd(tiny_dataset, out, tmp_path / "h.nc", cfg),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_checkpoint(out, dataset=ds)
    assert loaded.model.config.linear_taus == (2.0, 10.0, 40.0)   # ms / 0.5 ms bins


def test_a_frozen_linear_path_fitted_on_one_regime_stays_at_that_fit(tiny_dataset, tmp_path):
    """train.linear_fit_regimes picks the simulations of the starting ridge fit;
    train.linear_frozen keeps the path there while the rest trains; a regime the
    training split lacks is refused, naming the key, before any training."""
    from hnn_surrogate.surrogate.data import Normalization, split_tensors
    from hnn_surrogate.surrogate.train import TrainConfig, init_linear_path, train_surrogate

    ds = open_cell_dataset(tiny_dataset)
    kwargs, train = _tiny_args()
    kwargs["linear_taus_ms"] = [1.0, 5.0, 20.0]
    out = tmp_path / "frozen.pt"
    train_surrogate(tiny_dataset, out, model_kwargs=dict(kwargs), train_config=TrainConfig(
        seed=3, linear_fit_regimes=["subthreshold"], linear_frozen=True, **train))
    loaded = load_checkpoint(out, dataset=ds)
    norm = Normalization.fit(ds, v_clip=TINY_TRAIN["v_clip"], n_lags=20)
    x, y, _, pos = split_tensors(ds, "train", norm)
    sub = np.flatnonzero(ds["regime"].values[pos].astype(str) == "subthreshold")
    assert 0 < sub.size < len(x)
    torch.manual_seed(3)
    fresh = Surrogate(loaded.model.config)
    init_linear_path(fresh, x[sub], y[sub], seed=3)
    torch.testing.assert_close(loaded.model.linear.readout.weight, fresh.linear.readout.weight)
    torch.testing.assert_close(loaded.model.linear.readout.bias, fresh.linear.readout.bias)
    assert not torch.equal(loaded.model.head.weight, fresh.head.weight)     # the rest trained
    with pytest.raises(ValueError, match="train.linear_fit_regimes: volleys not among"):
        train_surrogate(tiny_dataset, tmp_path / "none.pt", model_kwargs=dict(kwargs),
                        train_config=TrainConfig(seed=3, linear_fit_regimes=["volleys"], **train))
    assert not (tmp_path / "none.pt").exists()


def test_snapshots_are_the_model_after_their_epoch_and_make_a_steps_curve(tiny_dataset,
                                                                          tmp_path):
    """train.snapshot_epochs saves the model as it is after each epoch (not the
    best): a run stopped at epoch 1 has the same model there; the steps curve
    collects the snapshots' held-out metrics against optimiser steps; an epoch
    past train.epochs is refused before training."""
    from hnn_surrogate.artifacts import STEPS_CURVE
    from hnn_surrogate.surrogate.evaluate import evaluate_surrogate, steps_curve
    from hnn_surrogate.surrogate.train import TrainConfig, snapshot_path, train_surrogate

    kwargs, train = _tiny_args("epochs", "patience")
    out = tmp_path / "long.pt"
    train_surrogate(tiny_dataset, out, model_kwargs=dict(kwargs), train_config=TrainConfig(
        seed=3, epochs=3, patience=3, snapshot_epochs=[1, 3], **train))
    short = tmp_path / "short.pt"
    train_surrogate(tiny_dataset, short, model_kwargs=dict(kwargs), train_config=TrainConfig(
        seed=3, epochs=1, patience=3, snapshot_epochs=[1], **train))
    plain = tmp_path / "plain.pt"
    train_surrogate(tiny_dataset, plain, model_kwargs=dict(kwargs), train_config=TrainConfig(
        seed=3, epochs=3, patience=3, **train))
    ds = open_cell_dataset(tiny_dataset)
    # taking snapshots changes nothing of the training
    for k, v in load_checkpoint(plain).model.state_dict().items():
        torch.testing.assert_close(v, load_checkpoint(out).model.state_dict()[k], rtol=0, atol=0)
    first, third = (load_checkpoint(snapshot_path(out, e), dataset=ds) for e in (1, 3))
    again = load_checkpoint(snapshot_path(short, 1), dataset=ds)
    assert snapshot_path(out, 3).name == "long_epoch3.pt"
    assert first.blob["epoch"] == 0 and third.blob["epoch"] == 2 and first.blob["snapshot"]
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(v, again.model.state_dict()[k], rtol=0, atol=0)
    assert not torch.equal(first.model.head.weight, third.model.head.weight)
    paths = []
    for e in (3, 1):
        paths.append(tmp_path / f"m{e}.nc")
        evaluate_surrogate(snapshot_path(out, e), tiny_dataset, paths[-1], split="test")
    curve = steps_curve(paths, [3, 1], TINY_TRAIN["steps_per_epoch"], tmp_path / "c.nc",
                        figure=tmp_path / "c.png")
    assert list(curve["epoch"].values) == [1, 3] and list(curve["steps"].values) == [3, 9]
    assert STEPS_CURVE.read(tmp_path / "c.nc")["spike_f1"].shape == (2,)
    assert (tmp_path / "c.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"train.snapshot_epochs \[5\]: each between 1 and "
                                         r"train.epochs \(3\)"):
        train_surrogate(tiny_dataset, tmp_path / "none.pt", model_kwargs=dict(kwargs),
                        train_config=TrainConfig(seed=3, epochs=3, snapshot_epochs=[5], **train))
    with pytest.raises(ValueError, match="train.snapshot_epochs up to 3 with train.patience 2"):
        train_surrogate(tiny_dataset, tmp_path / "none.pt", model_kwargs=dict(kwargs),
                        train_config=TrainConfig(seed=3, epochs=3, patience=2,
                                                 snapshot_epochs=[3], **train))
    assert not (tmp_path / "none.pt").exists()


def test_training_with_input_kernels_takes_each_channels_receptor_times(tiny_dataset, tmp_path):
    from hnn_surrogate.cells.channels import synaptic_times
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    kwargs, train = _tiny_args()
    out = train_surrogate(tiny_dataset, tmp_path / "k.pt", model_kwargs=kwargs,
                          train_config=TrainConfig(seed=3, input_kernels=True, **train))
    loaded = load_checkpoint(out, dataset=open_cell_dataset(tiny_dataset))
    rise, decay = synaptic_times("L5_pyramidal")
    assert set(rise) == {0.5, 1.0} and set(decay) == {5.0, 20.0}   # ms, hnn-core's
    np.testing.assert_allclose(loaded.model.config.input_rise, np.array(rise) / 0.5)
    np.testing.assert_allclose(loaded.model.config.input_decay, np.array(decay) / 0.5)
    assert loaded.model.inp.in_channels == 2 * len(rise)


def _train_briefly(dataset, out, **option):
    """The tiny model trained 2 steps (seed 3) with ``option``, loaded against its data."""
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    kwargs, train = _tiny_args("epochs", "steps_per_epoch")
    train_surrogate(dataset, out, model_kwargs=kwargs, train_config=TrainConfig(
        seed=3, epochs=1, steps_per_epoch=2, **option, **train))
    return load_checkpoint(out, dataset=open_cell_dataset(dataset))


def test_spike_class_weight_is_the_datas_ratio_unless_configured(tiny_dataset, tmp_path):
    from hnn_surrogate.surrogate.train import spike_class_weight

    spikes = torch.zeros(4, 100)
    spikes[0, :5] = 1                                  # 5 of 400 bins
    assert spike_class_weight(spikes) == pytest.approx(395 / 5)
    assert spike_class_weight(torch.zeros(2, 10)) == 100.0        # no spike: the cap
    assert spike_class_weight(torch.ones(2, 10)) == 1.0           # all spikes: the floor
    assert spike_class_weight(spikes, 4.0) == 4.0

    weights = {}
    for w in (0.0, 3.0):
        loaded = _train_briefly(tiny_dataset, tmp_path / f"w{w}.pt", spike_pos_weight=w)
        weights[w] = (loaded.blob["spike_pos_weight"], loaded.model.state_dict())
    assert weights[3.0][0] == 3.0
    assert 1.0 <= weights[0.0][0] <= 100.0 and weights[0.0][0] != 3.0
    # the weight reaches the loss: the same seed trains other weights
    assert any(not torch.equal(weights[0.0][1][k], weights[3.0][1][k]) for k in weights[3.0][1])


def test_spike_tolerance_forgives_a_shift_within_it_and_not_beyond(tiny_dataset, tmp_path):
    from torch.nn import functional as F

    from hnn_surrogate.surrogate.train import spike_bce

    torch.manual_seed(0)
    logit = torch.randn(3, 60)
    spikes = torch.zeros(3, 60)
    spikes[0, 10] = spikes[1, 30] = spikes[2, 59] = 1
    mask = torch.ones(3, 60)
    mask[:, :5] = 0
    pw = torch.tensor(7.0)
    # 0: the exact per-bin cross-entropy, as before
    exact = F.binary_cross_entropy_with_logits(logit, spikes, pos_weight=pw, reduction="none")
    assert torch.allclose(spike_bce(logit, spikes, mask, pw, 0),
                          (exact * mask).sum() / mask.sum())

    def spiky(at):                 # a confident prediction of one spike per row at ``at``
        out = torch.full((3, 60), -8.0)
        for row, k in enumerate(at):
            out[row, k] = 8.0
        return out

    on_time = spike_bce(spiky([10, 30, 59]), spikes, mask, pw, 3)
    for shift in (-3, -1, 2):      # within 3 bins: the same loss as on time
        at = [10 + shift, 30 + shift, min(59, 59 + shift)]
        assert torch.allclose(spike_bce(spiky(at), spikes, mask, pw, 3), on_time)
    late = spike_bce(spiky([14, 34, 55]), spikes, mask, pw, 3)     # 4 bins off: a miss and a false spike
    assert late > on_time + 1.0
    # exact timing punishes the 1-bin shift that the tolerance forgives
    assert spike_bce(spiky([11, 31, 58]), spikes, mask, pw, 0) > spike_bce(
        spiky([10, 30, 59]), spikes, mask, pw, 0) + 1.0
    # masked bins (the crop's burn-in) carry no term, spike or not
    spikes[0, 1] = 1             # its tolerance (bins 0-4) masked too
    assert torch.allclose(spike_bce(spiky([10, 30, 59]), spikes, mask, pw, 3), on_time)

    states = {}
    for tol in (0.0, 1.0):
        states[tol] = _train_briefly(tiny_dataset, tmp_path / f"t{tol}.pt",
                                     spike_tolerance_ms=tol).model.state_dict()
    # the option reaches the loss: the same seed trains other weights
    assert any(not torch.equal(states[0.0][k], states[1.0][k]) for k in states[0.0])


def test_spike_timing_term_falls_as_a_spike_moves_towards_neurons(tiny_dataset, tmp_path):
    from hnn_surrogate.surrogate.train import spike_timing_loss

    spikes = torch.zeros(3, 200)
    spikes[0, 100] = spikes[1, 50] = 1            # sequence 2: no spike, no term
    mask = torch.ones(3, 200)

    def at(bins, extra=None):
        logit = torch.full((3, 200), -12.0)
        logit[0, 100 + bins] = logit[1, 50 + bins] = 12.0
        if extra is not None:
            logit[2, extra] = 12.0
        return logit

    losses = [float(spike_timing_loss(at(d), spikes, mask, 4.0)) for d in (0, 1, 2, 4, 8, 30)]
    assert losses[0] < 1e-3 and losses[-1] > 0.99
    assert all(a < b for a, b in zip(losses, losses[1:]))        # the nearer, the lower
    # a shift either way costs the same; a sequence without spikes adds nothing
    assert np.isclose(float(spike_timing_loss(at(-4), spikes, mask, 4.0)), losses[3], atol=1e-6)
    assert np.isclose(float(spike_timing_loss(at(4, extra=70), spikes, mask, 4.0)), losses[3],
                      atol=1e-6)
    # masked bins count for neither side
    mask[0, 95:] = 0
    assert float(spike_timing_loss(at(0), spikes, mask, 4.0)) < 1e-3
    # the gradient: more probability at NEURON's spike lowers the term, more far off raises it
    logit = torch.full((3, 200), -3.0)
    logit[0, 104] = 1.0
    logit.requires_grad_(True)
    spike_timing_loss(logit, spikes, torch.ones(3, 200), 4.0).backward()
    assert logit.grad[0, 100] < 0 < logit.grad[0, 130]
    # none of the sequences has a spike: 0, and still differentiable
    assert float(spike_timing_loss(at(0), torch.zeros(3, 200), mask, 4.0)) == 0.0

    states = {}
    for w in (0.0, 1.0):
        states[w] = _train_briefly(tiny_dataset, tmp_path / f"v{w}.pt",
                                   spike_timing_weight=w).model.state_dict()
    # the option reaches the loss: the same seed trains other weights
    assert any(not torch.equal(states[0.0][k], states[1.0][k]) for k in states[0.0])


def test_training_with_dropout_trains_another_model_that_evaluates_without_it(tiny_dataset,
                                                                             tmp_path):
    states = {}
    for p in (0.0, 0.3):
        loaded = _train_briefly(tiny_dataset, tmp_path / f"d{p}.pt", dropout=p)
        assert loaded.model.dropout == 0.0 and not loaded.model.training
        states[p] = loaded.model.state_dict()
    # the same seed: only the dropout tells the two runs apart
    assert any(not torch.equal(states[0.0][k], states[0.3][k]) for k in states[0.0])


def test_evaluation_can_leave_out_what_another_datasets_split_trained_on(tiny_dataset, tmp_path):
    """evaluate --unseen-by: the test split's units (network runs, lone simulations)
    that another dataset's train or val split holds are left out, counted in the
    metrics; a dataset whose train and val hold none of them leaves out nothing."""
    from hnn_surrogate.artifacts import CELL_SIMS
    from hnn_surrogate.surrogate.evaluate import evaluate_surrogate

    out = tmp_path / "m.pt"
    _train_briefly(tiny_dataset, out)
    ds = open_cell_dataset(tiny_dataset)
    test = np.flatnonzero(ds["split"].values == "test")
    assert test.size >= 2
    moved = test[: test.size // 2]                    # a split drawn again elsewhere
    split = ds["split"].values.astype(object).copy()
    split[moved] = "train"
    other = tmp_path / "other.nc"
    CELL_SIMS.write(ds.assign(split=("sim", split.astype(str))), other)
    whole = evaluate_surrogate(out, tiny_dataset, tmp_path / "a.nc")
    same = evaluate_surrogate(out, tiny_dataset, tmp_path / "b.nc", unseen_by=(tiny_dataset,))
    fewer = evaluate_surrogate(out, tiny_dataset, tmp_path / "c.nc", unseen_by=(other,))
    n = {k: int(r["n_sims"].sel(regime="all")) for k, r in
         (("whole", whole), ("same", same), ("fewer", fewer))}
    assert n == {"whole": test.size, "same": test.size, "fewer": test.size - moved.size}
    assert int(fewer.attrs["left_out_sims"]) == moved.size and int(same.attrs["left_out_sims"]) == 0
    split[test] = "val"
    CELL_SIMS.write(ds.assign(split=("sim", split.astype(str))), other)
    with pytest.raises(ValueError, match="no simulations in split 'test' that .* did not train on"):
        evaluate_surrogate(out, tiny_dataset, tmp_path / "d.nc", unseen_by=(other,))


def test_cosine_schedule_takes_the_learning_rate_to_zero_over_all_steps(tiny_dataset, tmp_path):
    from hnn_surrogate.artifacts import SURROGATE_HISTORY
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    kwargs, train = _tiny_args("epochs", "steps_per_epoch", "patience", "lr")
    lrs = {}
    for schedule in ("plateau", "cosine"):
        out, hist = tmp_path / f"{schedule}.pt", tmp_path / f"{schedule}.nc"
        train_surrogate(tiny_dataset, out, history_path=hist, model_kwargs=kwargs,
                        train_config=TrainConfig(seed=3, epochs=4, steps_per_epoch=3, patience=5,
                                                 lr=0.01, lr_schedule=schedule, **train))
        lrs[schedule] = SURROGATE_HISTORY.read(hist)["lr"].values
    # after each epoch's 3 of 12 steps: lr (1 + cos(pi k / 12)) / 2, 0 at the last
    k = np.array([3, 6, 9, 12])
    assert np.allclose(lrs["cosine"], 0.01 * 0.5 * (1 + np.cos(np.pi * k / 12)), atol=1e-12)
    # the plateau rule halves only after 3 epochs without progress: 4 epochs, at most once
    assert set(lrs["plateau"]) <= {0.01, 0.005} and lrs["plateau"][0] == 0.01
    with pytest.raises(ValueError, match=r"train.lr_schedule 'linear': 'plateau' or 'cosine'"):
        train_surrogate(tiny_dataset, tmp_path / "bad.pt", model_kwargs=kwargs,
                        train_config=TrainConfig(seed=3, epochs=1, lr_schedule="linear", **train))


def test_linear_baseline_fits_the_subthreshold_response(tmp_path, calibration):
    from hnn_surrogate.artifacts import CELL_SIMS, LINEAR_BASELINE
    from hnn_surrogate.cells.calibrate import read_reference
    from hnn_surrogate.cells.shard import simulate_shard
    from hnn_surrogate.config import validate_config
    from hnn_surrogate.datasets import merge_shards
    from hnn_surrogate.surrogate.baseline import fit_linear_baseline, raised_cosine_basis

    basis = raised_cosine_basis(0.5)
    assert basis.shape == (10, 200) and np.all(basis >= 0) and basis[0, 0] == pytest.approx(1.0)
    regimes = validate_config({})["cells"]["regimes"]
    ref = read_reference(calibration("L2_basket"), "L2_basket")
    paths = [CELL_SIMS.write(simulate_shard(
        cell_type="L2_basket", regime_name=name, regime=regimes[name], reference=ref, first=0,
        count=10, tstop=300.0, dt=0.025, bin_ms=0.5, delay=0.1, seed=4, store_fine=False),
        tmp_path / f"{name}.nc") for name in ("subthreshold", "suprathreshold")]
    merge_shards(paths, tmp_path / "L2_basket.nc", seed=4,
                 fractions={"train": 0.6, "val": 0.2, "test": 0.2})
    text = fit_linear_baseline(tmp_path / "L2_basket.nc", tmp_path / "b.nc", v_clip=-55.0,
                               split="test", table=tmp_path / "b.md")
    ds = LINEAR_BASELINE.read(tmp_path / "b.nc")
    assert list(ds["fit"].values) == ["pooled", "per_regime"]
    assert list(ds["regime"].values) == ["subthreshold", "suprathreshold", "all"]
    # below threshold the cell is nearly linear: a filter for that regime explains it,
    # one fitted on spiking input too does worse there
    sub = ds.sel(regime="subthreshold")
    assert float(sub["v_explained_variance_sub"].sel(fit="per_regime")) > 0.75, text
    assert (float(sub["v_rmse_sub"].sel(fit="per_regime"))
            < float(sub["v_rmse_sub"].sel(fit="pooled")))
    assert np.isnan(ds["dipole_r"].values).all()                 # a basket cell has none
    assert "| subthreshold | linear, per-regime |" in (tmp_path / "b.md").read_text()


def test_target_compression_is_invertible_and_lifts_the_small_signal(tiny_dataset):
    from hnn_surrogate.surrogate.data import Normalization, target_array

    ds = open_cell_dataset(tiny_dataset)
    plain = Normalization.fit(ds, n_lags=20)
    soft = Normalization.fit(ds, n_lags=20, compression=0.05)
    assert np.array_equal(plain.target_soft, [0.0, 0.0])
    assert np.all(soft.target_soft > 0)
    y = target_array(ds, -55.0, soft.spike_kernels)
    # the resting value is the first bin's (every simulation starts at rest)
    assert soft.target_center[0] == pytest.approx(np.median(y[:, 0, 0]))
    np.testing.assert_allclose(soft.physical(soft.targets(y)), y, rtol=1e-5, atol=1e-9)
    z0, z1 = plain.targets(y).numpy(), soft.targets(y).numpy()
    train = ds["split"].values == "train"                 # both standardised on training data
    assert np.allclose(z0[train].reshape(-1, 2).std(0), 1, atol=1e-3)
    assert np.allclose(z1[train].reshape(-1, 2).std(0), 1, atol=1e-3)
    sub = ds["regime"].values.astype(str) == "subthreshold"
    # the subthreshold response's share of the standardised range grows
    assert np.median(z1[sub].std(axis=1), 0)[0] > 2 * np.median(z0[sub].std(axis=1), 0)[0]
    # a checkpoint written before the key existed loads as uncompressed
    old = {k: v for k, v in soft.to_dict().items() if k not in ("target_center", "target_soft")}
    assert np.array_equal(Normalization.from_dict(old).target_soft, [0.0, 0.0])
    again = Normalization.from_dict(soft.to_dict())
    np.testing.assert_array_equal(again.physical(torch.from_numpy(z1)), soft.physical(torch.from_numpy(z1)))
    with pytest.raises(ValueError, match="target compression"):
        Normalization.fit(ds, compression=-1.0)
    v_only = Normalization.fit(ds, n_lags=20, compression={"v_soma": 0.05})
    assert v_only.target_soft[0] == soft.target_soft[0] and v_only.target_soft[1] == 0
    np.testing.assert_allclose(v_only.physical(v_only.targets(y)), y, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="'spikes'"):
        Normalization.fit(ds, compression={"spikes": 0.1})
    # a shared train section names the dipole: a cell without one (basket) trains
    no_dipole = Normalization.fit(ds.drop_vars("dipole"), n_lags=20,
                                  compression={"v_soma": 0.05, "dipole": 0.0})
    assert no_dipole.target_soft.shape == (1,) and no_dipole.target_soft[0] > 0


def test_training_with_compression_and_rest_start_gives_a_checkpoint_in_mV(tiny_dataset,
                                                                          tmp_path):
    from hnn_surrogate.surrogate.evaluate import predict

    out = tmp_path / "m.pt"
    proc = subprocess.run(_train_cmd(tiny_dataset, out, tmp_path / "h.nc",
                                     dict(TINY_TRAIN, epochs=2, target_compression=0.05,
                                          rest_start=True)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ds = open_cell_dataset(tiny_dataset)
    loaded = load_checkpoint(out, dataset=ds)
    assert np.all(loaded.norm.target_soft > 0) and loaded.model.config.rest_start
    _, heads, _, _ = predict(loaded, ds["inputs"].values[:2])
    assert np.all(np.isfinite(heads)) and -120 < heads[..., 0].mean() < 0
