"""Section-voltage targets (dense supervision): recorded in NEURON, the dipole read
out of them, trained as extra outputs, evaluated, and stripped for the network."""

import numpy as np
import pytest
import torch

from hnn_surrogate.datasets import open_cell_dataset
from hnn_surrogate.surrogate.checkpoint import CheckpointError, load_checkpoint

TINY = {"hidden": 8, "kernel_size": 3, "dilations": (1, 2, 4), "lstm_hidden": 8}
TRAIN = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4, "lr": 0.003, "patience": 10,
         "crop_bins": 0, "v_clip": -55.0, "spike_kernel_ms": 10.0, "threads": 1,
         "device": "cpu"}


@pytest.fixture(scope="module")
def section_dataset(tmp_path_factory, calibration):
    """A merged L5 pyramidal dataset with section voltages, simulated for real
    (16 simulations of 300 ms, below and above threshold)."""
    from hnn_surrogate.artifacts import CELL_SIMS
    from hnn_surrogate.cells.calibrate import read_reference
    from hnn_surrogate.cells.shard import simulate_shard
    from hnn_surrogate.config import validate_config
    from hnn_surrogate.datasets import merge_shards

    folder = tmp_path_factory.mktemp("sections")
    regimes = validate_config({})["cells"]["regimes"]
    ref = read_reference(calibration("L5_pyramidal"), "L5_pyramidal")
    paths = []
    for name in ("subthreshold", "suprathreshold"):
        ds = simulate_shard(cell_type="L5_pyramidal", regime_name=name, regime=regimes[name],
                            reference=ref, first=0, count=8, tstop=300.0, dt=0.025, bin_ms=0.5,
                            delay=0.1, seed=5, store_fine=False, record_sections=True)
        paths.append(CELL_SIMS.write(ds, folder / f"{name}.nc"))
    merge_shards(paths, folder / "L5_pyramidal.nc", seed=5,
                 fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    return folder


def test_a_lone_cell_records_every_section_and_its_dipole_is_their_readout(section_dataset):
    """Every section's midpoint voltage is recorded in hnn-core's order, the soma's
    equal to v_soma; NEURON's dipole is a linear readout of them: fitted on the
    training simulations, it gives NEURON's dipole on held-out ones (r >= 0.98;
    measured 0.994-0.995 on 1 s runs)."""
    from hnn_surrogate.cells.channels import sections
    from hnn_surrogate.surrogate.sections import dipole_from_sections, fit_dipole_readout

    ds = open_cell_dataset(section_dataset / "L5_pyramidal.nc")
    names = list(ds["recorded_section"].values.astype(str))
    assert names == list(sections("L5_pyramidal")) and len(names) == 9
    np.testing.assert_array_equal(ds["v_section"].values[..., names.index("soma")],
                                  ds["v_soma"].values)
    apical = ds["v_section"].values[..., names.index("apical_tuft")]
    assert not np.allclose(apical, ds["v_soma"].values, atol=0.1)   # a dendrite, not the soma
    coef = fit_dipole_readout(ds)
    test = ds.isel(sim=np.flatnonzero(ds["split"].values == "test"))
    keep = [i for i, s in enumerate(names) if s != "soma"]
    derived = dipole_from_sections(coef, test["v_soma"].values,
                                   test["v_section"].values[..., keep])
    for k in range(test.sizes["sim"]):
        r = np.corrcoef(derived[k], test["dipole"].values[k])[0, 1]
        assert r >= 0.98, (k, str(test["regime"].values[k]), r)


def test_section_targets_train_evaluate_and_leave_the_network_what_it_had(section_dataset,
                                                                         tmp_path):
    from hnn_surrogate.artifacts import SURROGATE_METRICS
    from hnn_surrogate.network.api import load_surrogates
    from hnn_surrogate.surrogate.evaluate import evaluate_surrogate, format_metrics
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    path = section_dataset / "L5_pyramidal.nc"
    out = train_surrogate(path, tmp_path / "m.pt", model_kwargs=dict(TINY),
                          train_config=TrainConfig(seed=3, section_weight=1.0, **TRAIN))
    ds = open_cell_dataset(path)
    loaded = load_checkpoint(out, dataset=ds)
    assert loaded.targets[:2] == ["v_soma", "dipole"]
    assert loaded.targets[2:] == [f"v_{s}" for s in ds["recorded_section"].values.astype(str)
                                  if s != "soma"]
    assert loaded.model.config.n_sections == 8 and loaded.model.config.n_targets == 10

    metrics = evaluate_surrogate(out, path, tmp_path / "m.nc", split="test")
    for k in ("section_v_r", "dipole_r_sections"):
        assert np.all(np.isfinite(metrics[k].values)), k
    assert "dipole r, derived" in format_metrics(SURROGATE_METRICS.read(tmp_path / "m.nc"))

    # the network gets the same model without the section outputs: soma voltage,
    # dipole and spike logit unchanged, step by step as over the whole sequence
    stripped = load_surrogates({"L5_pyramidal": out}, ["L5_pyramidal"])["L5_pyramidal"]
    assert stripped.model.config.n_sections == 0 and stripped.model.config.n_targets == 2
    assert stripped.targets == ["v_soma", "dipole"]
    x = loaded.norm.inputs(ds["inputs"].values[:3])
    with torch.no_grad():
        y, logit = loaded.model(x)
        y2, logit2 = stripped.model(x)
        state = stripped.model.init_state(3)
        y_t, l_t, _ = stripped.model.step(x[:, 0], state)
    torch.testing.assert_close(y2, y[..., :2])
    torch.testing.assert_close(logit2, logit)
    torch.testing.assert_close(y_t, y[:, 0, :2], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(stripped.norm.physical(y2), loaded.norm.physical(y)[..., :2])


def test_section_targets_need_section_data_and_say_so(section_dataset, tmp_path):
    from hnn_surrogate.surrogate.data import data_hash
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    path = section_dataset / "L5_pyramidal.nc"
    ds = open_cell_dataset(path)
    plain_path = tmp_path / "plain.nc"
    plain = ds.drop_vars(["v_section", "recorded_section"])
    from hnn_surrogate.artifacts import CELL_SIMS

    CELL_SIMS.write(plain, plain_path)
    # without sections the data hash is the one it always was (no retraining)
    assert data_hash(ds) == data_hash(plain) != data_hash(ds, sections=True)
    with pytest.raises(ValueError, match="train.section_weight is 1.0, but .*plain.nc has no "
                                         "section voltages"):
        train_surrogate(plain_path, tmp_path / "none.pt", model_kwargs=dict(TINY),
                        train_config=TrainConfig(seed=3, section_weight=1.0, **TRAIN))
    assert not (tmp_path / "none.pt").exists()
    out = train_surrogate(path, tmp_path / "m.pt", model_kwargs=dict(TINY),
                          train_config=TrainConfig(seed=3, section_weight=0.5, **TRAIN))
    with pytest.raises(CheckpointError, match="has no section voltages"):
        load_checkpoint(out, dataset=open_cell_dataset(plain_path), source="plain.nc")


def test_merging_shards_with_and_without_sections_is_refused(section_dataset, tmp_path):
    from hnn_surrogate.artifacts import CELL_SIMS, ArtifactError
    from hnn_surrogate.datasets import merge_shards

    sub = CELL_SIMS.read(section_dataset / "subthreshold.nc")
    bare = tmp_path / "bare.nc"
    CELL_SIMS.write(CELL_SIMS.read(section_dataset / "suprathreshold.nc").drop_vars(
        ["v_section", "recorded_section"]), bare)
    assert "v_section" in sub
    with pytest.raises(ArtifactError, match="bare.nc: holds .*v_section"):
        merge_shards([section_dataset / "subthreshold.nc", bare], tmp_path / "m.nc", seed=1,
                     fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    assert not (tmp_path / "m.nc").exists()


def test_a_basket_cell_trains_on_its_soma_alone_under_section_weight(tmp_path, calibration):
    """A cell of one section has no section targets: with train.section_weight > 0
    it trains as without, and its checkpoint matches its data."""
    from hnn_surrogate.artifacts import CELL_SIMS
    from hnn_surrogate.cells.calibrate import read_reference
    from hnn_surrogate.cells.shard import simulate_shard
    from hnn_surrogate.config import validate_config
    from hnn_surrogate.datasets import merge_shards
    from hnn_surrogate.surrogate.train import TrainConfig, train_surrogate

    regimes = validate_config({})["cells"]["regimes"]
    ref = read_reference(calibration("L2_basket"), "L2_basket")
    ds = simulate_shard(cell_type="L2_basket", regime_name="suprathreshold",
                        regime=regimes["suprathreshold"], reference=ref, first=0, count=8,
                        tstop=100.0, dt=0.025, bin_ms=0.5, delay=0.1, seed=5, store_fine=False,
                        record_sections=True)
    assert list(ds["recorded_section"].values) == ["soma"]
    merge_shards([CELL_SIMS.write(ds, tmp_path / "s.nc")], tmp_path / "b.nc", seed=5,
                 fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    out = train_surrogate(tmp_path / "b.nc", tmp_path / "b.pt", model_kwargs=dict(TINY),
                          train_config=TrainConfig(seed=3, section_weight=1.0, **TRAIN))
    loaded = load_checkpoint(out, dataset=open_cell_dataset(tmp_path / "b.nc"))
    assert loaded.targets == ["v_soma"] and loaded.model.config.n_sections == 0
