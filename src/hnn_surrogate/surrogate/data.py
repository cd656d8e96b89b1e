"""Tensors and normalisation for a surrogate, from a merged cell dataset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

TARGETS = ("v_soma", "dipole")


def target_names(ds) -> list[str]:
    """The targets a dataset offers: soma voltage, and the dipole for pyramidal cells."""
    return [t for t in TARGETS if t in ds]


def data_hash(ds) -> str:
    """SHA-256 (16 hex digits) of what training reads: inputs, targets, spikes, split."""
    h = hashlib.sha256()
    for name in ("inputs", *target_names(ds), "spike_count"):
        h.update(np.ascontiguousarray(ds[name].values).tobytes())
    h.update("\n".join(ds["split"].values.astype(str)).encode())
    h.update("\n".join(ds["channel"].values.astype(str)).encode())
    return h.hexdigest()[:16]


@dataclass
class Normalization:
    """Input scale per channel (uS) and target mean/std (mV, nAm) from the training split."""

    input_scale: np.ndarray   # (n_channels,)
    target_mean: np.ndarray   # (n_targets,)
    target_std: np.ndarray    # (n_targets,)

    @classmethod
    def fit(cls, ds) -> "Normalization":
        train = ds.isel(sim=np.flatnonzero(ds["split"].values == "train"))
        x = train["inputs"].values
        scale = np.ones(x.shape[-1])
        for c in range(x.shape[-1]):
            nz = x[..., c][x[..., c] > 0]
            if nz.size:
                scale[c] = nz.mean()
        names = target_names(ds)
        y = np.stack([train[n].values for n in names], axis=-1).reshape(-1, len(names))
        return cls(scale, y.mean(axis=0), y.std(axis=0) + 1e-12)

    def to_dict(self) -> dict:
        return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d) -> "Normalization":
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()})

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        """(N, L, C) uS -> normalised float32 tensor."""
        return torch.from_numpy((x / self.input_scale).astype(np.float32))

    def targets(self, y: np.ndarray) -> torch.Tensor:
        """(N, L, T) physical -> normalised float32 tensor."""
        return torch.from_numpy(((y - self.target_mean) / self.target_std).astype(np.float32))

    def physical(self, y_norm: torch.Tensor) -> np.ndarray:
        """(..., T) normalised -> physical units (mV, nAm), float64 array."""
        return y_norm.detach().cpu().double().numpy() * self.target_std + self.target_mean


def split_tensors(ds, split: str, norm: Normalization):
    """x (N, L, C), y (N, L, T), spikes (N, L) of one split, normalised."""
    pos = np.flatnonzero(ds["split"].values == split)
    sub = ds.isel(sim=pos)
    x = norm.inputs(sub["inputs"].values)
    y = norm.targets(np.stack([sub[n].values for n in target_names(ds)], axis=-1))
    spikes = torch.from_numpy((sub["spike_count"].values > 0).astype(np.float32))
    return x, y, spikes, pos
