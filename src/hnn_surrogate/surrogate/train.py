"""Training one surrogate: seeded, resumable, early-stopped on the validation split.

Each epoch takes ``steps_per_epoch`` optimiser steps on batches of training
simulations drawn by ``default_rng([seed, epoch])``, cut into random crops of ``crop_bins`` bins
(the first ``burn_in_bins`` of a crop that does not start at t = 0 carry no
loss, so the model's state can settle). Validation runs whole simulations from
t = 0. After every epoch the full training state goes to ``<out>.resume.pt``
(atomically): a killed job restarts from the last finished epoch and, on the
CPU, ends with the same weights as an uninterrupted run. The best-validation
weights become the checkpoint ``out``; the history goes to NetCDF.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..artifacts import SURROGATE_HISTORY
from ..config import schema_default
from ..datasets import open_cell_dataset
from ..provenance import provenance_attrs
from .checkpoint import CheckpointError, atomic_save, safe_load, save_checkpoint
from .data import Normalization, data_hash, section_names, split_tensors, target_names
from .model import Surrogate, SurrogateConfig

log = logging.getLogger(__name__)


_DEFAULT = schema_default("train")


@dataclass
class TrainConfig:
    """How to train. Defaults are the config schema's (``train`` section), where
    each key is described and its value explained."""

    seed: int                   # the config's global seed
    epochs: int = _DEFAULT["epochs"]
    steps_per_epoch: int = _DEFAULT["steps_per_epoch"]
    batch_size: int = _DEFAULT["batch_size"]
    lr: float = _DEFAULT["lr"]
    weight_decay: float = _DEFAULT["weight_decay"]
    v_clip: float = _DEFAULT["v_clip"]
    spike_kernel_ms: float = _DEFAULT["spike_kernel_ms"]
    patience: int = _DEFAULT["patience"]
    crop_bins: int = _DEFAULT["crop_bins"]
    burn_in_bins: int = _DEFAULT["burn_in_bins"]
    start_fraction: float = _DEFAULT["start_fraction"]
    dipole_weight: float = _DEFAULT["dipole_weight"]
    dipole_fast_hz: float = _DEFAULT["dipole_fast_hz"]
    dipole_fast_weight: float = _DEFAULT["dipole_fast_weight"]
    spike_weight: float = _DEFAULT["spike_weight"]
    threads: int = _DEFAULT["threads"]
    device: str = _DEFAULT["device"]
    loss_weighting: str = _DEFAULT["loss_weighting"]
    target_compression: float | dict = _DEFAULT["target_compression"]
    linear_fit_regimes: list = field(default_factory=lambda: list(_DEFAULT["linear_fit_regimes"]))
    linear_frozen: bool = _DEFAULT["linear_frozen"]
    section_weight: float = _DEFAULT["section_weight"]
    snapshot_epochs: list = field(default_factory=lambda: list(_DEFAULT["snapshot_epochs"]))
    input_kernels: bool = _DEFAULT["input_kernels"]
    spike_pos_weight: float = _DEFAULT["spike_pos_weight"]
    spike_tolerance_ms: float = _DEFAULT["spike_tolerance_ms"]
    spike_timing_weight: float = _DEFAULT["spike_timing_weight"]
    spike_timing_ms: float = _DEFAULT["spike_timing_ms"]
    dropout: float = _DEFAULT["dropout"]
    spike_threshold_rule: str = _DEFAULT["spike_threshold_rule"]
    lr_schedule: str = _DEFAULT["lr_schedule"]
    # not a config key: the learning curve's rules set it per subset model
    train_fraction: float = 1.0  # use this seeded fraction of the training split


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def target_weights(n_targets: int, cfg: TrainConfig, n_sections: int = 0) -> torch.Tensor:
    """(n_targets,) weight of each target's squared error: soma voltage 1, the
    dipole ``dipole_weight``, the last ``n_sections`` (section voltages)
    ``section_weight`` shared among them. The squared error is their weighted
    mean (``loss_terms``), so section targets take a share of it from the soma
    voltage and dipole, beside the spike term's ``spike_weight``."""
    w = torch.ones(n_targets)
    w[1:] = cfg.dipole_weight
    if n_sections:
        w[n_targets - n_sections:] = cfg.section_weight / n_sections
    return w


def spike_bce(logit, spikes, mask, pos_weight, tol_bins: int = 0):
    """The spike head's cross-entropy (with logits), mean over the masked bins.

    ``tol_bins`` 0: every bin's own target (the spike's bin 1, every other 0).
    Above 0, a predicted spike may lie up to ``tol_bins`` bins from NEURON's at
    no cost: a spike's positive term takes the largest logit within that
    distance, and the other bins that close to a spike carry no term; bins
    farther from every spike are negatives as before.
    """
    if tol_bins <= 0:
        bce = F.binary_cross_entropy_with_logits(logit, spikes, pos_weight=pos_weight,
                                                 reduction="none")
    else:
        k, pad = 2 * int(tol_bins) + 1, int(tol_bins)
        near = F.max_pool1d(spikes.unsqueeze(1), k, stride=1, padding=pad).squeeze(1)
        best = F.max_pool1d(logit.unsqueeze(1), k, stride=1, padding=pad).squeeze(1)
        # BCE(l, 1) = softplus(-l), BCE(l, 0) = softplus(l)
        bce = pos_weight * spikes * F.softplus(-best) + (1 - near) * F.softplus(logit)
    return (bce * mask).sum() / mask.sum().clamp(min=1)


def spike_timing_loss(logit, spikes, mask, sigma_bins: float):
    """1 - the cosine between the spike head's probability and NEURON's spikes, both
    smoothed by a Gaussian of ``sigma_bins`` (bins out to 3 of it), masked bins
    left out; the mean over the sequences with a spike in their masked bins (0
    when none has). A predicted spike ``d`` bins from NEURON's overlaps it by
    exp(-d^2 / (4 sigma^2)): the term falls as the spike moves towards NEURON's,
    where the cross-entropy of the spike's own bin is flat in ``d`` once ``d``
    is past a bin or two."""
    half = max(1, int(math.ceil(3 * sigma_bins)))
    t = torch.arange(-half, half + 1, dtype=logit.dtype, device=logit.device)
    g = torch.exp(-0.5 * (t / sigma_bins) ** 2).view(1, 1, -1)
    p = torch.sigmoid(logit) * mask
    s = spikes * mask
    a = F.conv1d(p.unsqueeze(1), g, padding=half).squeeze(1)
    b = F.conv1d(s.unsqueeze(1), g, padding=half).squeeze(1)
    has = s.sum(-1) > 0
    if not bool(has.any()):
        return logit.sum() * 0.0
    a, b = a[has], b[has]
    cos = (a * b).sum(-1) / ((a * a).sum(-1) * (b * b).sum(-1)).sqrt().clamp(min=1e-12)
    return (1.0 - cos).mean()


def spectral_weights(n_bins: int, bin_ms: float, fast_hz: float, fast_weight: float,
                     device=None) -> torch.Tensor:
    """(n_bins // 2 + 1,) weights of a real FFT's bins such that the weighted sum of
    |FFT|^2 is the sum of squares over time (Parseval) with the power above
    ``fast_hz`` counted ``fast_weight`` times: 1 / n_bins, doubled for the bins
    that stand for two (every one but 0 Hz and, for even ``n_bins``, Nyquist)."""
    freq = torch.fft.rfftfreq(n_bins, d=bin_ms / 1000.0, device=device)
    c = torch.full_like(freq, 2.0 / n_bins)
    c[0] = 1.0 / n_bins
    if n_bins % 2 == 0:
        c[-1] = 1.0 / n_bins
    return torch.where(freq > fast_hz, c * fast_weight, c)


def loss_terms(model, x, y, spikes, mask, cfg: TrainConfig, pos_weight, sample_w=None,
               tol_bins: int = 0, bin_ms: float | None = None):
    """(total, voltage/dipole MSE, spike BCE) over the masked bins; the total adds
    ``spike_timing_weight`` times ``spike_timing_loss`` where that is above 0.

    ``sample_w``: (N, n_targets) weight of each sequence's squared error per
    target (``regime_weights``); all ones when None. ``tol_bins``: the spike
    timing the cross-entropy tolerates (``spike_bce``). With ``dipole_fast_weight``
    other than 1 the dipole's squared error is summed over frequency instead
    of time (``spectral_weights``; ``bin_ms`` needed), its power above
    ``dipole_fast_hz`` counted that many times: at 1 it is the time-domain sum.
    That is the dipole head's error (the dipole less its spike-locked kernel,
    normalised); within a crop the burn-in's masked bins and the FFT's wrap-around
    put a little of a slow error above the cutoff.
    """
    pred, logit = model(x)
    w = target_weights(y.shape[-1], cfg, model.config.n_sections).to(y.device)
    m = mask.unsqueeze(-1)
    if sample_w is not None:
        w = w * sample_w.unsqueeze(1)                          # (N, 1, T)
    has_dipole = model.config.n_targets - model.config.n_sections > 1  # target 1
    if cfg.dipole_fast_weight == 1.0 or not has_dipole:
        # the plain squared error, in the same order of operations as ever: the same
        # config trains the same weights, bit for bit, as before the option existed
        mse = (((pred - y) ** 2) * w * m).sum() / (m.sum() * w.sum() / w.numel()
                                                    * y.shape[-1]).clamp(min=1)
    else:
        sq = (pred - y) ** 2 * m
        if bin_ms is None:
            raise ValueError("dipole_fast_weight needs the bin width (bin_ms)")
        err = (pred[..., 1] - y[..., 1]) * mask               # (N, L)
        spec = torch.fft.rfft(err, dim=-1).abs() ** 2
        c = spectral_weights(err.shape[-1], bin_ms, cfg.dipole_fast_hz,
                             cfg.dipole_fast_weight, err.device)
        # the sequence's weighted sum, spread evenly over its masked bins
        per_seq = (spec * c).sum(-1) / mask.sum(-1).clamp(min=1)
        sq = torch.cat([sq[..., :1], (per_seq.unsqueeze(-1) * mask).unsqueeze(-1),
                        sq[..., 2:]], dim=-1)
        mse = (sq * w).sum() / (m.sum() * w.sum() / w.numel() * y.shape[-1]).clamp(min=1)
    bce = spike_bce(logit, spikes, mask, pos_weight, tol_bins)
    total = mse + cfg.spike_weight * bce
    if cfg.spike_timing_weight > 0:
        if bin_ms is None:
            raise ValueError("spike_timing_weight needs the bin width (bin_ms)")
        total = total + cfg.spike_timing_weight * spike_timing_loss(
            logit, spikes, mask, cfg.spike_timing_ms / bin_ms)
    return total, mse, bce


def spike_class_weight(spikes: torch.Tensor, configured: float = 0.0) -> float:
    """The spike class's weight in the cross-entropy: ``configured`` where it is
    positive, else the training bins' ratio of no-spike to spike, clipped to 1-100."""
    if configured > 0:
        return float(configured)
    rate = spikes.mean()                      # float32, as the weight always was
    return min(max(float((1 - rate) / max(rate, 1e-6)), 1.0), 100.0)


SPIKE_THRESHOLD_GRID = np.concatenate([np.linspace(0.1, 0.95, 18), [0.97, 0.98, 0.99]])
"""Spike-head probability thresholds tried. The positive class weight (up to 100)
inflates the head's probabilities, so the best threshold can lie above 0.95
(surrogates trained on whole simulations: measured at the old grid's top, 0.95)."""


SPIKE_THRESHOLD_RULES = ("f1", "count")
"""How the threshold is chosen on the validation split: ``f1`` the best spike F1;
``count`` the predicted spike count closest to NEURON's (ties: the better F1).
F1 weighs a missed spike and an extra one alike, so its best threshold can
leave the rate biased, and a network amplifies a rate bias (the recurrent
pyramidal loop: docs/measurements/network.md)."""


def check_spike_threshold_rule(rule: str, name: str = "spike threshold rule") -> str:
    """``rule`` if it is one of ``SPIKE_THRESHOLD_RULES``; else ValueError naming ``name``."""
    if rule not in SPIKE_THRESHOLD_RULES:
        raise ValueError(f"{name} {rule!r}: one of {', '.join(SPIKE_THRESHOLD_RULES)}")
    return rule


def spike_threshold_scores(model, ds, norm, grid=SPIKE_THRESHOLD_GRID, split="val"):
    """Spike F1 and predicted / true spike count of the spike head at each
    threshold of ``grid``, on the ``split`` simulations of ``ds``: (f1, ratio)."""
    from .evaluate import match_spikes, predicted_spike_times

    pos = np.flatnonzero(ds["split"].values == split)
    if not pos.size:
        raise ValueError(f"{ds.attrs.get('cell_type', 'dataset')}: no {split!r} simulations "
                         "to choose the spike threshold on")
    x = norm.inputs(ds["inputs"].values[pos])
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(torch.cat([model(x[i:i + 64])[1] for i in range(0, len(x), 64)])).numpy()
    true = [ds["spike_time"].values[ds["spike_sim"].values == k] for k in pos]
    n_true = sum(t.size for t in true)
    f1, ratio = np.zeros(len(grid)), np.zeros(len(grid))
    for i, thr in enumerate(grid):
        pred = predicted_spike_times(p, float(ds.attrs["bin_ms"]), float(thr))
        hits = sum(match_spikes(t, q) for t, q in zip(true, pred))
        n_pred = sum(q.size for q in pred)
        f1[i] = 2 * hits / (n_true + n_pred) if n_true + n_pred else 1.0
        ratio[i] = n_pred / n_true if n_true else (1.0 if n_pred == 0 else np.inf)
    return f1, ratio


def pick_spike_threshold(grid, f1, ratio, rule: str = "f1") -> float:
    """The threshold of ``grid`` that ``rule`` (``SPIKE_THRESHOLD_RULES``) picks."""
    if check_spike_threshold_rule(rule) == "f1":
        return float(grid[int(np.argmax(f1))])
    # count, rounded: counts equally far from NEURON's (4 and 2 of 3) tie exactly, and
    # go to the better F1, not to whichever float noise makes closer
    off = np.round(np.abs(np.asarray(ratio, np.float64) - 1.0), 9)
    return float(grid[np.lexsort((-np.asarray(f1), off))[0]])


def tune_spike_threshold(model, ds, norm, grid=SPIKE_THRESHOLD_GRID, rule: str = "f1") -> float:
    """The spike-head probability threshold ``rule`` picks on the validation split."""
    return pick_spike_threshold(grid, *spike_threshold_scores(model, ds, norm, grid), rule)


def retune_spike_threshold(checkpoint, dataset, *, rule: str, out) -> tuple[float, float, str]:
    """Choose a trained surrogate's spike threshold again by ``rule``, on the
    validation split of its own training data, and write the checkpoint with it
    to ``out`` (atomically; the rule in its training config too, nothing else).
    The data must be the data it was trained on (its hash), so the split is the
    one training held out.
    Returns (old threshold, new threshold, the table of every threshold's F1 and
    predicted / true spike count)."""
    from .checkpoint import load_checkpoint

    check_spike_threshold_rule(rule)
    ds = open_cell_dataset(dataset)
    loaded = load_checkpoint(checkpoint, dataset=ds)
    f1, ratio = spike_threshold_scores(loaded.model, ds, loaded.norm)
    new = pick_spike_threshold(SPIKE_THRESHOLD_GRID, f1, ratio, rule)
    old = loaded.spike_threshold
    lines = [f"{loaded.cell_type} spike threshold on the validation split of {dataset}: "
             f"{old:.2f} ({loaded.blob.get('spike_threshold_rule', 'f1')}) -> {new:.2f} ({rule})",
             "", "| threshold | spike F1 | predicted / true spikes | |", "|---|---|---|---|"]
    for thr, a, b in zip(SPIKE_THRESHOLD_GRID, f1, ratio):
        mark = " ".join(m for m, t in (("old", old), (rule, new)) if np.isclose(thr, t))
        lines.append(f"| {thr:.2f} | {a:.3f} | {b:.3f} | {mark} |")
    # as training with ``rule`` would have written it: the weights do not depend on the rule
    blob = dict(loaded.blob, spike_threshold=float(new), spike_threshold_rule=str(rule),
                train_config=dict(loaded.blob.get("train_config", {}),
                                  spike_threshold_rule=str(rule)))
    atomic_save(blob, out)
    return old, new, "\n".join(lines)


@torch.no_grad()
def init_linear_path(model, x, y, seed: int, n_sims: int = 64, penalty: float = 1e-4,
                     rows=None) -> None:
    """Start the linear path at the best linear filter: the readout of the targets
    by ridge regression on the traces of up to ``n_sims`` training simulations
    (a seeded choice among ``rows``, positions in ``x``; None: all), normalised
    units; the spike logit's readout stays zero."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    pick = rows[np.sort(np.random.default_rng([seed, 11]).permutation(rows.size)[:n_sims])]
    xtx = xty = None
    for i in range(0, pick.size, 8):
        u = model.linear.traces(x[pick[i:i + 8]]).double()
        f = torch.cat([u, torch.ones(*u.shape[:2], 1, dtype=u.dtype)], -1).flatten(0, 1)
        t = y[pick[i:i + 8]].double().flatten(0, 1)
        xtx = f.T @ f if xtx is None else xtx + f.T @ f
        xty = f.T @ t if xty is None else xty + f.T @ t
    reg = penalty * torch.diagonal(xtx).mean() * torch.eye(xtx.shape[0], dtype=xtx.dtype)
    reg[-1, -1] = 0.0
    coef = torch.linalg.solve(xtx + reg, xty)                    # (features + 1, targets)
    n_t = y.shape[-1]
    model.linear.readout.weight[:n_t] = coef[:-1].T.float()
    model.linear.readout.bias[:n_t] = coef[-1].float()


def linear_fit_rows(regimes, chosen, dataset_path) -> np.ndarray:
    """Positions among the training simulations (``regimes``, one per simulation)
    that the linear path's starting fit uses: those of the ``chosen`` regimes, or
    all when none is chosen (``train.linear_fit_regimes``). A chosen regime the
    training split lacks is an error naming it."""
    regimes = np.asarray(regimes).astype(str)
    if not chosen:
        return np.arange(regimes.size)
    missing = sorted(set(chosen) - set(regimes))
    if missing:
        raise ValueError(f"train.linear_fit_regimes: {', '.join(missing)} not among the "
                         f"training simulations of {dataset_path} (it has "
                         f"{', '.join(sorted(set(regimes)))})")
    return np.flatnonzero(np.isin(regimes, list(chosen)))


def snapshot_path(out, epoch: int) -> Path:
    """Where training writes the model as it is after ``epoch`` epochs
    (``train.snapshot_epochs``): ``<out stem>_epoch<epoch>.pt`` beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_epoch{int(epoch)}{out.suffix}")


MAX_REGIME_WEIGHT = 1e3
"""Largest weight ``regime_weights`` gives one regime relative to the mean."""


def regime_weights(y: torch.Tensor, regimes: np.ndarray, mode: str) -> torch.Tensor:
    """(N, n_targets) loss weight of each training sequence and target.

    ``regime``: every regime's squared error divided by its targets' variance
    (normalised units, over its training sequences), so a regime whose
    voltage moves by 0.3 mV counts as much as one whose voltage moves by
    tens; weights rescaled to mean 1 over the sequences, at most
    ``MAX_REGIME_WEIGHT`` times it. ``none``: ones.
    """
    w = torch.ones(y.shape[0], y.shape[-1])
    if mode == "none":
        return w
    if mode != "regime":
        raise ValueError(f"loss_weighting {mode!r}: none or regime")
    for r in np.unique(regimes):
        rows = torch.from_numpy(np.flatnonzero(regimes == r))
        var = y[rows].double().reshape(-1, y.shape[-1]).var(dim=0).clamp(min=1e-12)
        w[rows] = (1.0 / var).float()
    w = w / w.mean(dim=0, keepdim=True)
    return w.clamp(max=MAX_REGIME_WEIGHT)


def training_subset(regimes, runs, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a seeded ``fraction`` of the training data (the learning
    curve's subsets): the units drawn are network runs (all the cells of a run of
    the replay or network_prior regime together) and lone-cell simulations, so a
    subset holds fewer runs, not fewer cells of each run."""
    keys = [f"{g}/{r}" if r >= 0 else f"sim/{i}"
            for i, (g, r) in enumerate(zip(np.asarray(regimes).astype(str), runs))]
    units, which = np.unique(keys, return_inverse=True)
    perm = np.random.default_rng([seed, 7]).permutation(units.size)
    chosen = perm[: max(1, int(round(fraction * units.size)))]
    return np.flatnonzero(np.isin(which, chosen))


def training_positions(ds, fraction: float, seed: int) -> np.ndarray:
    """Positions in the merged dataset ``ds`` of the simulations a training run with
    ``train_fraction`` ``fraction`` and ``seed`` learns from: the training split,
    or the learning curve's subset of it (``training_subset``)."""
    pos = np.flatnonzero(ds["split"].values == "train")
    if fraction < 1.0:
        pos = pos[training_subset(ds["regime"].values[pos], ds["run"].values[pos],
                                  fraction, seed)]
    return pos


def _crops(x, y, s, idx, rng, cfg):
    n, length = len(idx), x.shape[1]
    crop = cfg.crop_bins if 0 < cfg.crop_bins < length else length
    starts = rng.integers(0, length - crop + 1, size=n) if crop < length else np.zeros(n, int)
    if cfg.start_fraction > 0 and crop < length:     # drawn only when used: 0 changes nothing
        starts[rng.random(n) < cfg.start_fraction] = 0
    xs = torch.stack([x[i, a:a + crop] for i, a in zip(idx, starts)])
    ys = torch.stack([y[i, a:a + crop] for i, a in zip(idx, starts)])
    ss = torch.stack([s[i, a:a + crop] for i, a in zip(idx, starts)])
    mask = torch.ones(n, crop)
    for k, a in enumerate(starts):
        if a > 0:
            mask[k, : cfg.burn_in_bins] = 0
    return xs, ys, ss, mask


def train_surrogate(dataset_path, out, *, model_kwargs: dict, train_config: TrainConfig,
                    history_path=None):
    """Train a surrogate on a merged cell dataset; write checkpoint (and history).

    Parameters
    ----------
    model_kwargs : dict
        ``SurrogateConfig`` fields other than ``n_channels`` and ``n_targets``.
    """
    t_enter = time.perf_counter()
    cfg = train_config
    bad = [e for e in cfg.snapshot_epochs if not 1 <= int(e) <= cfg.epochs]
    if bad:
        raise ValueError(f"train.snapshot_epochs {bad}: each between 1 and train.epochs "
                         f"({cfg.epochs})")
    if cfg.snapshot_epochs and cfg.patience < max(cfg.snapshot_epochs):
        raise ValueError(f"train.snapshot_epochs up to {max(cfg.snapshot_epochs)} with "
                         f"train.patience {cfg.patience}: early stopping could end training "
                         f"before a snapshot; give patience at least the last snapshot epoch")
    if cfg.lr_schedule not in ("plateau", "cosine"):
        raise ValueError(f"train.lr_schedule {cfg.lr_schedule!r}: 'plateau' or 'cosine'")
    check_spike_threshold_rule(cfg.spike_threshold_rule, "train.spike_threshold_rule")
    ds = open_cell_dataset(dataset_path)
    out = Path(out)
    resume_path = out.with_name(out.name + ".resume.pt")
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    # a cell of one section (the basket cells) has no section targets but its soma
    sections = cfg.section_weight > 0 and bool(section_names(ds))
    if cfg.section_weight > 0 and "v_section" not in ds:
        raise ValueError(f"train.section_weight is {cfg.section_weight}, but {dataset_path} has "
                         f"no section voltages (v_section): simulate with "
                         f"cells.record_sections: true, or set train.section_weight: 0")
    targets = target_names(ds, sections)
    norm = Normalization.fit(ds, v_clip=cfg.v_clip,
                             n_lags=max(1, int(round(cfg.spike_kernel_ms / float(ds.attrs["bin_ms"])))),
                             compression=cfg.target_compression, sections=sections)
    dhash = data_hash(ds, sections)
    xt, yt, st, pos_t = split_tensors(ds, "train", norm)
    if cfg.train_fraction < 1.0:
        keep = np.flatnonzero(np.isin(pos_t, training_positions(ds, cfg.train_fraction,
                                                                cfg.seed)))
        xt, yt, st, pos_t = xt[keep], yt[keep], st[keep], pos_t[keep]
    xv, yv, sv, pos_v = split_tensors(ds, "val", norm)
    regime = ds["regime"].values.astype(str)
    wt = regime_weights(yt, regime[pos_t], cfg.loss_weighting)
    # validation weighs each regime as training does (the training split's variances)
    by_regime = {r: wt[np.flatnonzero(regime[pos_t] == r)[0]] for r in np.unique(regime[pos_t])}
    wv = torch.stack([by_regime.get(r, torch.ones(yt.shape[-1])) for r in regime[pos_v]])
    if cfg.loss_weighting == "none":          # the unweighted loss exactly as before
        wt = wv = None
    if len(xt) == 0 or len(xv) == 0:
        raise ValueError(f"{dataset_path}: needs simulations in both train and val splits")
    pos_weight = torch.tensor(spike_class_weight(st, cfg.spike_pos_weight))
    bin_ms = float(ds.attrs["bin_ms"])
    tol_bins = int(round(cfg.spike_tolerance_ms / bin_ms))

    torch.manual_seed(cfg.seed)
    model_kwargs = dict(model_kwargs)
    taus_ms = model_kwargs.pop("linear_taus_ms", ())
    if cfg.input_kernels:        # each channel's receptor kernel, in bins
        from ..cells.channels import synaptic_times

        rise, decay = synaptic_times(str(ds.attrs["cell_type"]))
        model_kwargs.update(input_rise=tuple(t / float(ds.attrs["bin_ms"]) for t in rise),
                            input_decay=tuple(t / float(ds.attrs["bin_ms"]) for t in decay))
    mconf = SurrogateConfig(n_channels=xt.shape[-1], n_targets=len(targets),
                            n_sections=len(targets) - len(target_names(ds)),
                            linear_taus=tuple(float(t) / float(ds.attrs["bin_ms"])
                                              for t in taus_ms), **model_kwargs)
    model = Surrogate(mconf)
    model.dropout = cfg.dropout
    if model.linear is not None:
        init_linear_path(model, xt, yt, cfg.seed,
                         rows=linear_fit_rows(regime[pos_t], cfg.linear_fit_regimes,
                                              dataset_path))
        if cfg.linear_frozen:
            model.linear.requires_grad_(False)
    model = model.to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "cosine":      # stepped per optimiser step
        n_steps = cfg.epochs * cfg.steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, n_steps) / n_steps)))
    else:                                # stepped per epoch on the validation loss
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    state = {"epoch": 0, "best_val": float("inf"), "best_state": None, "stale": 0,
             "history": []}
    # options added later leave the fingerprint as it was at their off value, so a
    # resume file written before they existed still resumes
    from ..config import without_options_off

    fingerprint = {"data_hash": dhash, "model": without_options_off(mconf.to_dict()),
                   "train": without_options_off(asdict(cfg))}
    saved = {}
    if resume_path.exists():
        try:
            saved = safe_load(resume_path, "resume file")
        except CheckpointError as err:
            log.warning("ignoring the resume file: %s", err)
        if not isinstance(saved, dict):
            saved = {}
    if saved:
        passed = saved.get("state", {}).get("epoch", 0)
        lost = [e for e in cfg.snapshot_epochs
                if e <= passed and not snapshot_path(out, e).exists()]
        if lost and saved.get("fingerprint") == fingerprint:
            log.warning("ignoring %s: the snapshots of epochs %s it has passed are gone",
                        resume_path, lost)
        elif saved.get("fingerprint") == fingerprint:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            state = saved["state"]
            log.info("resuming from %s at epoch %d", resume_path, state["epoch"])
        else:
            log.warning("ignoring %s: it was made with other data or settings", resume_path)
    log.info("%s: %d train / %d val simulations, %d channels, targets %s, %d parameters, "
             "spike class weight %.1f, device %s", ds.attrs["cell_type"], len(xt), len(xv),
             xt.shape[-1], targets, sum(p.numel() for p in model.parameters()),
             float(pos_weight), device)

    chans = list(ds["channel"].values.astype(str))

    def save_model(path, epoch, extra=None):
        """``extra``: a dict, or a function giving one once the threshold is tuned."""
        threshold = tune_spike_threshold(model, ds, norm, rule=cfg.spike_threshold_rule)
        extra = extra() if callable(extra) else extra
        save_checkpoint(path, model, norm=norm, cell_type=ds.attrs["cell_type"],
                        channels=chans, targets=targets, bin_ms=float(ds.attrs["bin_ms"]),
                        data_hash=dhash, train_config=asdict(cfg), epoch=epoch,
                        extra={"device": str(device), "spike_threshold": threshold,
                               "spike_threshold_rule": cfg.spike_threshold_rule,
                               "spike_pos_weight": float(pos_weight), **(extra or {})})
        return threshold

    full_mask_v = torch.ones(sv.shape)
    t_start = time.perf_counter()
    n_resumed = len(state["history"])
    while state["epoch"] < cfg.epochs and state["stale"] < cfg.patience:
        epoch = state["epoch"]
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        model.train()
        total, batches = 0.0, 0
        for _ in range(cfg.steps_per_epoch):
            pick = rng.integers(0, len(xt), size=cfg.batch_size)
            xb, yb, sb, mb = _crops(xt, yt, st, pick, rng, cfg)
            loss, _, _ = loss_terms(model, xb.to(device), yb.to(device), sb.to(device),
                                    mb.to(device), cfg, pos_weight.to(device),
                                    None if wt is None else wt[pick].to(device), tol_bins,
                                    bin_ms)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if cfg.lr_schedule == "cosine":
                sched.step()
            total += float(loss.detach())
            batches += 1
        model.eval()
        with torch.no_grad():
            val = [loss_terms(model, xv[i:i + 32].to(device), yv[i:i + 32].to(device),
                              sv[i:i + 32].to(device), full_mask_v[i:i + 32].to(device), cfg,
                              pos_weight.to(device),
                              None if wv is None else wv[i:i + 32].to(device), tol_bins,
                              bin_ms)
                   for i in range(0, len(xv), 32)]
        val_loss = float(np.mean([float(v[0]) for v in val]))
        val_mse = float(np.mean([float(v[1]) for v in val]))
        val_bce = float(np.mean([float(v[2]) for v in val]))
        if cfg.lr_schedule != "cosine":
            sched.step(val_loss)
        improved = val_loss < state["best_val"]
        if improved:
            state["best_val"] = val_loss
            state["best_state"] = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
            state["best_epoch"] = epoch
            state["stale"] = 0
        else:
            state["stale"] += 1
        wall = time.perf_counter() - t0
        state["history"].append((epoch, total / max(batches, 1), val_loss, val_mse, val_bce, wall,
                                 opt.param_groups[0]["lr"]))
        state["epoch"] = epoch + 1
        if epoch + 1 in cfg.snapshot_epochs:
            # the model as it is now, not the best so far: fidelity against steps
            # (written before the resume file moves on, so a resumed run has it;
            # ``epoch`` in the file counts from 0, as the best checkpoint's does)
            path = snapshot_path(out, epoch + 1)
            model.cpu()
            save_model(path, epoch, {"snapshot": True})
            model.to(device)
            log.info("wrote snapshot %s", path)
        atomic_save({"fingerprint": fingerprint, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "state": state}, resume_path)
        log.info("epoch %d/%d: train %.4f, val %.4f (mse %.4f, spike bce %.4f)%s, %.1f s",
                 epoch + 1, cfg.epochs, total / max(batches, 1), val_loss, val_mse, val_bce,
                 " *" if improved else "", wall)

    model.load_state_dict(state["best_state"])
    model.cpu()
    # what training cost: this process from its start (reading the data, its
    # epochs, tuning the threshold) and the epochs of earlier processes a resumed
    # run continues (not their reading or snapshots: a lower bound then); with
    # what the data cost in NEURON (merge-cells records it), so a fit through
    # these surrogates can count both (compare-search)
    epochs_before = sum(r[5] for r in state["history"][:n_resumed])

    def cost():
        now = time.perf_counter()
        spent = {"train_wall_s": now - t_start,
                 "train_cost_s": float(epochs_before + now - t_enter)}
        if "neuron_jobs" in ds.attrs:
            spent["data_neuron_jobs"] = {str(k): float(v) for k, v in
                                         json.loads(str(ds.attrs["neuron_jobs"])).items()}
            spent["data_merge_s"] = float(ds.attrs.get("merge_wall_s", 0.0))
        return spent

    threshold = save_model(out, state["best_epoch"], cost)
    log.info("spike threshold (rule %s, validation split): %.2f", cfg.spike_threshold_rule,
             threshold)
    if threshold == SPIKE_THRESHOLD_GRID.max():
        log.warning("the spike threshold is the largest tried (%.2f): F1 may rise above it",
                    threshold)
    if history_path is not None:
        # a resume file from before the learning rate was recorded has rows without it
        h = np.array([tuple(r) + (np.nan,) * (7 - len(r)) for r in state["history"]],
                     dtype=np.float64)
        attrs = provenance_attrs(seed=cfg.seed)
        attrs.update(cell_type=ds.attrs["cell_type"], data_hash=dhash, device=str(device),
                     best_epoch=int(state["best_epoch"]))
        SURROGATE_HISTORY.write(SURROGATE_HISTORY.build(
            {"train_loss": h[:, 1], "val_loss": h[:, 2], "val_mse": h[:, 3],
             "val_spike_bce": h[:, 4], "wall_s": h[:, 5], "lr": h[:, 6]},
            {"epoch": h[:, 0].astype(np.int32)}, attrs), history_path)
    resume_path.unlink(missing_ok=True)
    log.info("wrote %s (best epoch %d, val %.4f)", out, state["best_epoch"] + 1, state["best_val"])
    return out
