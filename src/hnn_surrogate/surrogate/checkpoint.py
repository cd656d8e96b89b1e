"""Surrogate checkpoints: everything needed to rebuild and use a model from the file alone.

A checkpoint holds the model config, weights, normalisation statistics, the
channel names, target names, cell type, time bin, the hash of the data it was
trained on, the training config, the epoch and the tuned spike threshold, as
tensors and plain Python types only. ``load_checkpoint`` reads it with
``torch.load(weights_only=True)``, so a file from elsewhere cannot run code
while it is read: a pickle that asks for anything but tensors and plain types
is refused. Given a dataset, it checks the checkpoint against it: other
channels, another cell type, another bin width, or other data than it was
trained on (the data hash) fail with a clear error before any work. Data other
than the training data is accepted only when asked for (``allow_other_data``).
"""

from __future__ import annotations

from pathlib import Path

import pickle
import zipfile

import numpy as np
import torch

from ..artifacts import atomic_output
from .data import Normalization, data_hash, has_sections, target_names
from .model import Surrogate, SurrogateConfig

FORMAT = "hnn_surrogate.checkpoint/1"
REQUIRED = ("model_config", "state_dict", "normalization", "cell_type", "channels", "targets",
            "bin_ms", "data_hash", "spike_threshold")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match the data it is used with."""


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary name in the same folder, then rename."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def safe_load(path, what: str = "checkpoint"):
    """``torch.load`` of tensors and plain types only: a pickle asking for anything
    else (a class, a function: code) is refused with CheckpointError, not run."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable {what} (not a torch.save archive)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        why = next((line.strip() for line in str(err).splitlines()
                    if "unsupported global" in line.lower()),
                   None)
        if why is None:
            raise CheckpointError(f"{path}: not a readable {what} ({err})") from None
        raise CheckpointError(f"{path}: refused, the file holds objects other than tensors "
                              f"and plain types, which could run code when loaded "
                              f"({why[:200]})") from None
    except Exception as err:  # zip/format errors of a corrupt file
        raise CheckpointError(f"{path}: not a readable {what} ({err})") from err


def recorded_cost(path) -> tuple[dict, float, float] | None:
    """What checkpoint ``path`` records it cost (``train``): ({data's job: wall
    clock s}, the data's merge s, training s); None where it records none (made
    before checkpoints did)."""
    blob = safe_load(path)
    if "data_neuron_jobs" not in blob or "train_cost_s" not in blob:
        return None
    return ({str(k): float(v) for k, v in blob["data_neuron_jobs"].items()},
            float(blob.get("data_merge_s", 0.0)), float(blob["train_cost_s"]))


def save_checkpoint(path, model: Surrogate, *, norm: Normalization, cell_type, channels,
                    targets, bin_ms, data_hash, train_config: dict, epoch: int,
                    extra: dict | None = None) -> Path:
    # plain Python types only (no numpy scalars or strings): what weights_only loads
    return atomic_save({
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "normalization": norm.to_dict(),
        "cell_type": str(cell_type),
        "channels": [str(c) for c in channels],
        "targets": [str(t) for t in targets],
        "bin_ms": float(bin_ms),
        "data_hash": str(data_hash),
        "train_config": train_config,
        "epoch": int(epoch),
        **(extra or {}),
    }, path)


class LoadedSurrogate:
    """A model rebuilt from a checkpoint, with what it needs to map units."""

    def __init__(self, blob: dict):
        self.blob = blob
        self.model = Surrogate(SurrogateConfig.from_dict(blob["model_config"]))
        self.model.load_state_dict(blob["state_dict"])
        self.model.eval()
        self.norm = Normalization.from_dict(blob["normalization"])
        self.cell_type = blob["cell_type"]
        self.channels = list(blob["channels"])
        self.targets = list(blob["targets"])
        self.bin_ms = float(blob["bin_ms"])
        self.data_hash = blob["data_hash"]
        self.spike_threshold = float(blob["spike_threshold"])
        if not 0.0 < self.spike_threshold < 1.0:
            raise CheckpointError(f"spike threshold {self.spike_threshold} is not a "
                                  f"probability in (0, 1)")

    def without_sections(self) -> "LoadedSurrogate":
        """The same surrogate without its section-voltage outputs (``n_sections``):
        the head and linear readout keep the soma voltage, dipole and spike-logit
        rows, the normalisation those targets. What a network needs; the outputs
        kept are unchanged. ``self`` when it has none."""
        n_sec = self.model.config.n_sections
        if not n_sec:
            return self
        conf = self.model.config.to_dict()
        n_core = conf["n_targets"] - n_sec
        conf.update(n_targets=n_core, n_sections=0)
        rows = list(range(n_core)) + [self.model.config.n_targets]      # + the spike logit
        state = {k: (v[rows] if k.startswith(("head.", "linear.readout.")) else v)
                 for k, v in self.blob["state_dict"].items()}
        per_target = ("target_mean", "target_std", "spike_kernels", "target_center",
                      "target_soft")
        norm = {k: (v[:n_core] if k in per_target else v)
                for k, v in self.blob["normalization"].items()}
        blob = dict(self.blob, model_config=conf, state_dict=state, normalization=norm,
                    targets=self.targets[:n_core])
        return LoadedSurrogate(blob)

    def check_dataset(self, ds, source="dataset", *, allow_other_data=False,
                      hashes=None) -> None:
        """Raise CheckpointError if ``ds`` is not data this model can consume, or,
        unless ``allow_other_data``, not the data it was trained on (so that its
        held-out split is the one training held out). ``hashes``: a dict kept
        across the checks of several checkpoints on one ``ds``, so its data hash
        (tens of seconds on a large data set) is computed once."""
        if ds.attrs["cell_type"] != self.cell_type:
            raise CheckpointError(f"{source} holds {ds.attrs['cell_type']}, but the checkpoint "
                                  f"is a {self.cell_type} surrogate")
        channels = list(ds["channel"].values.astype(str))
        if channels != self.channels:
            missing = sorted(set(self.channels) - set(channels))
            extra = sorted(set(channels) - set(self.channels))
            raise CheckpointError(
                f"{source}: input channels do not match the checkpoint's "
                f"(missing {missing}, unexpected {extra}, or another order)")
        if not np.isclose(float(ds.attrs["bin_ms"]), self.bin_ms):
            raise CheckpointError(f"{source}: bin_ms {ds.attrs['bin_ms']} != checkpoint's "
                                  f"{self.bin_ms}")
        sections = has_sections(self.targets)
        if sections and "v_section" not in ds:
            n_core = self.model.config.n_targets - self.model.config.n_sections
            raise CheckpointError(f"{source}: has no section voltages (v_section), the "
                                  f"checkpoint's targets {self.targets[n_core:]}")
        if target_names(ds, sections) != self.targets:
            raise CheckpointError(f"{source}: targets {target_names(ds, sections)} != "
                                  f"checkpoint's {self.targets}")
        if allow_other_data:
            return
        hashes = {} if hashes is None else hashes
        if sections not in hashes:
            hashes[sections] = data_hash(ds, sections)
        if hashes[sections] != self.data_hash:
            raise CheckpointError(
                f"{source}: data hash {hashes[sections]} is not the {self.data_hash} the "
                f"checkpoint was trained on, so its splits are not the training's (a "
                f"'test' simulation may have been trained on); pass allow_other_data "
                f"(--allow-other-data) to evaluate on other data anyway")


def load_checkpoint(path, *, dataset=None, source="dataset",
                    allow_other_data=False, hashes=None) -> LoadedSurrogate:
    """Rebuild a surrogate from ``path``; check it against ``dataset`` if given
    (``allow_other_data``: accept data other than the training data; ``hashes``:
    as ``LoadedSurrogate.check_dataset``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    blob = safe_load(path)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an hnn-surrogate checkpoint ({FORMAT})")
    missing = [k for k in REQUIRED if k not in blob]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}"
                              + (" (training never tuned its spike threshold)"
                                 if "spike_threshold" in missing else ""))
    try:
        loaded = LoadedSurrogate(blob)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if dataset is not None:
        loaded.check_dataset(dataset, source=source, allow_other_data=allow_other_data,
                              hashes=hashes)
    return loaded


def import_checkpoint(src, out, *, cell_type: str, bin_ms: float) -> LoadedSurrogate:
    """Check that ``src`` is a trained ``cell_type`` surrogate for ``bin_ms`` bins whose
    input channels are hnn-core's for that type, then copy it to ``out`` unchanged
    (atomically): the network stage's surrogate without training it here.

    Raises CheckpointError naming ``src`` and what does not match, before ``out``
    is touched. The copy keeps the file's data hash and training config, so its
    provenance travels with it."""
    import shutil

    from ..cells.channels import channels

    loaded = load_checkpoint(src)
    if loaded.cell_type != cell_type:
        raise CheckpointError(f"{src}: a {loaded.cell_type} surrogate, not {cell_type}")
    if not np.isclose(loaded.bin_ms, bin_ms):
        raise CheckpointError(f"{src}: bin_ms {loaded.bin_ms} != the config's "
                              f"cells.bin_ms {bin_ms}")
    expected = [c.key for c in channels(cell_type)]
    if loaded.channels != expected:
        raise CheckpointError(f"{src}: its input channels are not hnn-core's {cell_type} "
                              f"synapses (missing {sorted(set(expected) - set(loaded.channels))}, "
                              f"unexpected {sorted(set(loaded.channels) - set(expected))}, "
                              f"or another order)")
    with atomic_output(out) as tmp:
        shutil.copyfile(src, tmp)
    return loaded
