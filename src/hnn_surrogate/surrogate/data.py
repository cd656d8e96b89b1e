"""Tensors and normalisation for a surrogate, from a merged cell dataset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from .kernels import apply_kernels, fit_kernels, spike_part_of_voltage

TARGETS = ("v_soma", "dipole")
SECTION_PREFIX = "v_"
"""A section-voltage target is named ``v_<section>`` (``v_apical_tuft``)."""


def section_names(ds) -> list[str]:
    """The sections whose voltage can be a target: every recorded section but the
    soma (its voltage is ``v_soma``), in hnn-core's order; [] without ``v_section``."""
    if "v_section" not in ds:
        return []
    return [s for s in ds["recorded_section"].values.astype(str) if s != "soma"]


def target_names(ds, sections: bool = False) -> list[str]:
    """The targets a dataset offers: soma voltage, the dipole for pyramidal cells
    and, with ``sections`` (``train.section_weight`` > 0), the voltage of every
    section but the soma (``v_section``)."""
    names = [t for t in TARGETS if t in ds]
    if sections:
        if "v_section" not in ds:
            raise ValueError("section-voltage targets need data with v_section "
                             "(cells.record_sections: true)")
        names += [SECTION_PREFIX + s for s in section_names(ds)]
    return names


def has_sections(targets) -> bool:
    """Whether a list of target names holds section voltages."""
    return any(t not in TARGETS for t in targets)


def section_array(ds) -> np.ndarray:
    """(N, L, S) mV: the voltage of every section but the soma."""
    keep = [i for i, s in enumerate(ds["recorded_section"].values.astype(str)) if s != "soma"]
    return ds["v_section"].values[..., keep].astype(np.float64)


def data_hash(ds, sections: bool = False) -> str:
    """SHA-256 (16 hex digits) of what training reads: inputs, targets, spikes, split."""
    h = hashlib.sha256()
    core = [t for t in TARGETS if t in ds]
    for name in ("inputs", *core, *(("v_section",) if sections else ()), "spike_count"):
        h.update(np.ascontiguousarray(ds[name].values).tobytes())
    h.update("\n".join(ds["split"].values.astype(str)).encode())
    h.update("\n".join(ds["channel"].values.astype(str)).encode())
    return h.hexdigest()[:16]


def spike_indicator(ds) -> np.ndarray:
    """(N, L) float: 1 in bins where NEURON's soma crossed 0 mV upward."""
    return (ds["spike_count"].values > 0).astype(np.float64)


def target_array(ds, v_clip: float, kernels: np.ndarray | None,
                 sections: bool = False) -> np.ndarray:
    """What the regression heads learn, (N, L, T): physical units.

    Soma voltage clipped at ``v_clip`` mV (action potentials cut off, as in
    Beniaguev et al. 2021) and, for pyramidal cells, the dipole (nAm) minus its
    spike-locked part ``kernels[1]`` convolved with NEURON's spikes; with
    ``sections``, each section's voltage minus its spike-locked part likewise
    (``kernels[2:]``). The spike head learns when the cell fires; the kernels
    add the spikes back.
    """
    parts = [np.minimum(ds["v_soma"].values, v_clip)]
    rest = []
    if "dipole" in ds:
        rest.append(ds["dipole"].values.astype(np.float64)[..., None])
    if sections:
        rest.append(section_array(ds))
    if rest:
        rest = np.concatenate(rest, axis=-1)
        if kernels is not None:
            rest = rest - apply_kernels(spike_indicator(ds), kernels[1:])
        parts += list(np.moveaxis(rest, -1, 0))
    return np.stack(parts, axis=-1)


@dataclass
class Normalization:
    """Input scale per channel (uS) and the targets' scaling from the training split.

    A target is standardised (``target_mean``, ``target_std``) either as it is
    or, where its ``target_soft`` scale is positive, after the soft
    compression ``asinh((y - target_center) / target_soft)``: linear within a
    few ``target_soft`` of the resting value, logarithmic beyond. A cell's
    subthreshold response (tenths of a mV) and its depolarisations towards
    threshold (tens of mV) then both show in a squared error.
    """

    input_scale: np.ndarray   # (n_channels,)
    target_mean: np.ndarray   # (n_targets,): of the (compressed) targets
    target_std: np.ndarray    # (n_targets,)
    spike_kernels: np.ndarray  # (n_targets, n_lags): mV and nAm per spike, lag 0..n_lags-1 bins
    v_clip: float = -55.0     # mV: voltage target clipped here
    target_center: np.ndarray | None = None  # (n_targets,): resting value (mV, nAm)
    target_soft: np.ndarray | None = None    # (n_targets,): asinh scale (mV, nAm); 0: linear

    def __post_init__(self):
        n = np.asarray(self.target_mean).size
        if self.target_center is None:
            self.target_center = np.zeros(n)
        if self.target_soft is None:
            self.target_soft = np.zeros(n)

    @property
    def n_targets(self) -> int:
        return int(np.asarray(self.target_mean).size)

    @classmethod
    def fit(cls, ds, v_clip: float = -55.0, n_lags: int = 40,
            compression: float | dict = 0.0, sections: bool = False) -> "Normalization":
        """``compression``: each target's asinh scale as a fraction of its pooled
        standard deviation over the training split (0: no compression); one
        number for every target, or {target name: number} (targets not named: 0).
        ``sections``: the section voltages are targets too (``target_names``)."""
        names = target_names(ds, sections)
        if isinstance(compression, dict):
            # a shared train section names the dipole, which basket cells lack
            unknown = sorted(set(compression) - set(TARGETS))
            if unknown:
                raise ValueError(f"target compression names {unknown}: the targets are "
                                 f"{list(TARGETS)}")
            fractions = np.array([float(compression.get(n, 0.0)) for n in names])
        else:
            fractions = np.full(len(names), float(compression))
        if not (np.all(np.isfinite(fractions)) and np.all(fractions >= 0)):
            raise ValueError(f"target compression {compression!r}: numbers >= 0")
        train = ds.isel(sim=np.flatnonzero(ds["split"].values == "train"))
        x = train["inputs"].values
        scale = np.ones(x.shape[-1])
        for c in range(x.shape[-1]):
            nz = x[..., c][x[..., c] > 0]
            if nz.size:
                scale[c] = nz.mean()
        spikes = spike_indicator(train)
        traces = [spike_part_of_voltage(train["v_soma"].values, v_clip)]
        if "dipole" in train:
            traces.append(train["dipole"].values)
        if sections:
            traces += list(np.moveaxis(section_array(train), -1, 0))
        kernels = fit_kernels(spikes, np.stack(traces, axis=-1).astype(np.float64), n_lags)
        y = target_array(train, v_clip, kernels, sections)
        n_t = y.shape[-1]
        center = np.median(y[:, 0], axis=0)               # every simulation starts at rest
        soft = fractions * y.reshape(-1, n_t).std(axis=0)
        norm = cls(scale, np.zeros(n_t), np.ones(n_t), kernels, float(v_clip), center, soft)
        w = norm.compress(y).reshape(-1, n_t)
        norm.target_mean, norm.target_std = w.mean(axis=0), w.std(axis=0) + 1e-12
        return norm

    def to_dict(self) -> dict:
        d = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in vars(self).items()}
        d["v_clip"] = float(self.v_clip)
        return d

    @classmethod
    def from_dict(cls, d) -> "Normalization":
        d = dict(d)
        v_clip = float(d.pop("v_clip"))
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()}, v_clip=v_clip)

    def compress(self, y: np.ndarray) -> np.ndarray:
        """(..., T) physical -> compressed (float64; targets without compression as they are)."""
        y = np.asarray(y, dtype=np.float64)
        soft = self.target_soft > 0
        if not soft.any():
            return y
        s = np.where(soft, self.target_soft, 1.0)
        return np.where(soft, np.arcsinh((y - self.target_center) / s), y)

    def expand(self, w: torch.Tensor) -> torch.Tensor:
        """(..., T) compressed -> physical: ``compress`` inverted, differentiable
        (float64 in, float64 out)."""
        soft = torch.from_numpy(self.target_soft > 0)
        if not bool(soft.any()):
            return w
        s = torch.from_numpy(np.where(self.target_soft > 0, self.target_soft, 1.0))
        c = torch.from_numpy(self.target_center)
        return torch.where(soft, c + s * torch.sinh(torch.where(soft, w, 0.0)), w)

    def physical_tensor(self, y_norm: torch.Tensor) -> torch.Tensor:
        """(..., T) normalised head output -> physical units, float64 tensor
        (differentiable: the network stage's fits backpropagate through it)."""
        w = (y_norm.to(torch.float64) * torch.from_numpy(self.target_std)
             + torch.from_numpy(self.target_mean))
        return self.expand(w)

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        """(N, L, C) uS -> normalised float32 tensor."""
        return torch.from_numpy((x / self.input_scale).astype(np.float32))

    def targets(self, y: np.ndarray) -> torch.Tensor:
        """(N, L, T) physical -> normalised float32 tensor."""
        return torch.from_numpy(((self.compress(y) - self.target_mean)
                                 / self.target_std).astype(np.float32))

    def physical(self, y_norm: torch.Tensor) -> np.ndarray:
        """(..., T) normalised head output -> physical units (mV, nAm), float64 array."""
        return self.physical_tensor(y_norm.detach().cpu()).numpy()

    def traces(self, y_norm: torch.Tensor, spikes: np.ndarray) -> np.ndarray:
        """Full traces (N, L, T) in mV / nAm: heads plus spike kernels at ``spikes`` (N, L)."""
        return self.physical(y_norm) + apply_kernels(np.asarray(spikes, np.float64),
                                                     self.spike_kernels)


def split_tensors(ds, split: str, norm: Normalization):
    """x (N, L, C), y (N, L, T), spikes (N, L) of one split, normalised."""
    pos = np.flatnonzero(ds["split"].values == split)
    sub = ds.isel(sim=pos)
    x = norm.inputs(sub["inputs"].values)
    sections = norm.n_targets > len(target_names(ds))
    y = norm.targets(target_array(sub, norm.v_clip, norm.spike_kernels, sections))
    spikes = torch.from_numpy((sub["spike_count"].values > 0).astype(np.float32))
    return x, y, spikes, pos
