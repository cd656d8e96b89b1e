"""Surrogate checkpoints: everything needed to rebuild and use a model from the file alone.

A checkpoint holds the model config, weights, normalisation statistics, the
channel names, target names, cell type, time bin, the hash of the data it was
trained on, the training config and the epoch. ``load_checkpoint`` checks it
against a dataset when given one: other channels, another cell type or another
bin width fail with a clear error before any work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifacts import atomic_output
from .data import Normalization, target_names
from .model import Surrogate, SurrogateConfig

FORMAT = "hnn_surrogate.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match the data it is used with."""


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary name in the same folder, then rename."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_checkpoint(path, model: Surrogate, *, norm: Normalization, cell_type, channels,
                    targets, bin_ms, data_hash, train_config: dict, epoch: int,
                    extra: dict | None = None) -> Path:
    return atomic_save({
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "normalization": norm.to_dict(),
        "cell_type": cell_type,
        "channels": list(channels),
        "targets": list(targets),
        "bin_ms": float(bin_ms),
        "data_hash": data_hash,
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
        self.spike_threshold = float(blob.get("spike_threshold", 0.5))

    def check_dataset(self, ds, source="dataset") -> None:
        """Raise CheckpointError if ``ds`` is not data this model can consume."""
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
        if target_names(ds) != self.targets:
            raise CheckpointError(f"{source}: targets {target_names(ds)} != checkpoint's "
                                  f"{self.targets}")


def load_checkpoint(path, *, dataset=None, source="dataset") -> LoadedSurrogate:
    """Rebuild a surrogate from ``path``; check it against ``dataset`` if given."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle/zip errors of a corrupt file
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an hnn-surrogate checkpoint ({FORMAT})")
    loaded = LoadedSurrogate(blob)
    if dataset is not None:
        loaded.check_dataset(dataset, source=source)
    return loaded
