"""Trained surrogates from elsewhere (train.checkpoints_from): checked, copied, used."""

import subprocess

import pytest
import torch
import yaml

from hnn_surrogate import CELL_TYPES
from hnn_surrogate.artifacts import NETWORK_RUN
from hnn_surrogate.surrogate.checkpoint import CheckpointError, import_checkpoint

from network_helpers import untrained_surrogates


@pytest.fixture
def folder(tmp_path):
    """Four real (untrained) checkpoints, one <cell_type>.pt each."""
    out = tmp_path / "pretrained"
    out.mkdir()
    for t, s in untrained_surrogates().items():
        torch.save(s.blob, out / f"{t}.pt")
    return out


def test_import_copies_a_matching_checkpoint_byte_for_byte(folder, tmp_path):
    src = folder / "L2_basket.pt"
    loaded = import_checkpoint(src, tmp_path / "train" / "L2_basket.pt", cell_type="L2_basket",
                               bin_ms=0.5)
    assert loaded.cell_type == "L2_basket"
    assert (tmp_path / "train" / "L2_basket.pt").read_bytes() == src.read_bytes()


def test_import_refuses_another_cell_type_bin_or_channels_and_writes_nothing(folder, tmp_path):
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="a L2_basket surrogate, not L5_basket"):
        import_checkpoint(folder / "L2_basket.pt", out, cell_type="L5_basket", bin_ms=0.5)
    with pytest.raises(CheckpointError, match=r"bin_ms 0.5 != the config's cells.bin_ms 1.0"):
        import_checkpoint(folder / "L2_basket.pt", out, cell_type="L2_basket", bin_ms=1.0)
    blob = torch.load(folder / "L2_basket.pt", weights_only=True)
    blob["channels"] = blob["channels"][::-1]
    torch.save(blob, tmp_path / "reordered.pt")
    with pytest.raises(CheckpointError, match="not hnn-core's L2_basket synapses"):
        import_checkpoint(tmp_path / "reordered.pt", out, cell_type="L2_basket", bin_ms=0.5)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        import_checkpoint(tmp_path / "junk.pt", out, cell_type="L2_basket", bin_ms=0.5)
    assert not out.exists()


def test_the_command_names_the_file_and_fails(folder, tmp_path):
    proc = subprocess.run(["hnn-surrogate", "import-surrogate", str(folder / "L5_pyramidal.pt"),
                           "--cell-type", "L2_pyramidal", "--bin-ms", "0.5",
                           "--out", str(tmp_path / "x.pt")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "L5_pyramidal.pt: a L5_pyramidal surrogate, not L2_pyramidal" in proc.stderr
    assert not (tmp_path / "x.pt").exists()


def _snakemake(repo, workdir, config, *targets, dry=False):
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(repo / "profiles" / "default"), "--configfile", str(cfg),
           "--cores", "2", *(["-n"] if dry else []), *targets]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_the_pipeline_runs_from_them_without_the_cells_stage(repo, folder, tmp_path):
    config = yaml.safe_load((repo / "config" / "tiny.yaml").read_text())
    # relative to Snakemake's working directory (--directory), as the README's command
    config["train"]["checkpoints_from"] = "pretrained"
    work = folder.parent
    # the default targets: no NEURON cell data, no training, no evaluation
    dry = _snakemake(repo, work, config, dry=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = dry.stdout + dry.stderr
    assert "import_surrogate" in jobs and "fit_connectivity" in jobs
    assert "results/cells/" not in jobs            # no NEURON cell data of any regime
    for rule in ("train_surrogate", "evaluate_surrogate", "plot_training_histories"):
        assert f"rule {rule}:" not in jobs, rule
    # a surrogate network run, for real, on the imported surrogates
    target = "results/network/rhythm/default/surrogate_0.nc"
    proc = _snakemake(repo, work, config, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for t in CELL_TYPES:
        assert (work / "results" / "train" / f"{t}.pt").read_bytes() == (
            folder / f"{t}.pt").read_bytes()
    assert not (work / "results" / "cells").exists()
    run = NETWORK_RUN.read(work / target)
    assert run.attrs["simulator"] == "surrogate"
    # a folder that lacks a cell type's checkpoint is refused before any job
    (folder / "L5_basket.pt").unlink()
    other = tmp_path / "other"
    other.mkdir()
    bad = _snakemake(repo, other, dict(config, train=dict(config["train"],
                                                          checkpoints_from=str(folder))), dry=True)
    assert bad.returncode != 0
    said = bad.stdout + bad.stderr
    assert "config key 'train.checkpoints_from'" in said and "lacks L5_basket.pt" in said
    assert not (other / "results").exists()


def test_the_shipped_surrogates_serve_the_default_config(repo, tmp_path):
    """pretrained/default holds a trained surrogate of every type that the default
    config's network stages accept (checked as the import rule checks it)."""
    from hnn_surrogate.config import load_config

    cfg = load_config(repo / "config" / "config.yaml")
    for t in CELL_TYPES:
        loaded = import_checkpoint(repo / "pretrained" / "default" / f"{t}.pt", tmp_path / f"{t}.pt",
                                   cell_type=t, bin_ms=cfg["cells"]["bin_ms"])
        assert loaded.blob["epoch"] > 0 and loaded.data_hash != "none"
        assert 0.0 < loaded.spike_threshold < 1.0
