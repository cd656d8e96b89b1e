"""Held-out, free-running fidelity of a surrogate against NEURON.

The surrogate never sees NEURON's output: it runs from t = 0 over whole test
simulations on their inputs alone. Metrics, per regime and over all:

* soma voltage with spikes cut out (bins from 2 ms before to 8 ms after each
  NEURON spike removed; the surrogate's voltage head against NEURON's voltage
  clipped at the same level): RMSE (mV) and explained variance;
* the whole voltage trace, action potentials included (the heads plus the
  spike kernels at the predicted spikes): Pearson r, as the poster reported;
* spike timing: a predicted spike is a rising edge of the spike head's
  probability through the checkpoint's threshold (tuned on the validation
  split), placed at its bin's centre; predicted and NEURON
  spikes are matched one-to-one within +/-2 ms (greedy in time): precision,
  recall, F1; firing-rate error |n_pred - n_true| / n_true;
* dipole (pyramidal cells): Pearson r and RMSE (nAm) over all bins;
* surrogates with section-voltage outputs: their Pearson r, and the r of the
  dipole derived from them (``sections``) beside the dipole head's;
* the run-summed dipole (pyramidal cells, regimes whose runs hold every cell:
  ``RUN_SUM_REGIMES``): every held-out cell of a network run summed, surrogate against NEURON, as the
  network stage's open loop sums them: Pearson r, and the relative error of
  the alpha, beta and gamma fractions of its power (``network.compare``'s
  bands and tolerance). This is what the network comparison's band targets
  see, measured on held-out runs before any network is built: a cell's
  dipole r does not see the fast part that sets the fractions;
* each cell's dipole error by band (pyramidal cells, every regime): the
  error's power over the true power in alpha, beta, gamma and above 100 Hz.
"""

from __future__ import annotations

import numpy as np
import torch

from ..artifacts import SURROGATE_METRICS
from ..config import schema_default
from ..datasets import open_cell_dataset
from ..network.compare import BANDS, band_fractions
from ..provenance import provenance_attrs
from .checkpoint import load_checkpoint

SPIKE_WINDOW_MS = 2.0
CUT_BEFORE_MS = 2.0
CUT_AFTER_MS = 8.0

METRICS = tuple(v for v, var in SURROGATE_METRICS.variables.items()
                if v not in ("regime", "n_sims") and not var.optional)
"""Metric names; their units and meanings live in the ``surrogate_metrics`` schema."""
SECTION_METRICS = ("section_v_r", "dipole_r_sections")
"""Metrics of surrogates with section-voltage outputs only."""

RUN_SUM_REGIMES = ("network_prior", "alpha_start", "closed_loop")
"""Regimes whose runs hold every cell of a type (a replay run holds a random subset:
its sum is not the network's dipole)."""
RUN_METRICS = ("dipole_sum_r", "band_error_alpha", "band_error_beta", "band_error_gamma",
               "band_within")
"""Run-summed dipole metrics (pyramidal cells; NaN where a regime has no network runs)."""
ERROR_BANDS = {**BANDS, "fast": (float(schema_default("train", "dipole_fast_hz")), np.inf)}
"""The bands of ``dipole_error_bands``: the network comparison's, and the fast part
above ``train.dipole_fast_hz``'s default (100 Hz) where a spike's waveform lies."""
ERROR_BAND_METRICS = tuple(f"dipole_error_{b}" for b in ERROR_BANDS)
"""Per-cell dipole error power per band over the true power in it (pyramidal cells)."""
SUM_TRANSIENT_MS = 100.0
"""The start of each run left out of the run-summed dipole (the rhythm comparison's)."""
BAND_FLOOR = 0.01
"""A band whose NEURON fraction is below this has no relative error (NaN): a replayed
evoked run, rest after 100 ms, holds 0.1 % in alpha, and 15x that is no measure."""

WIDE_WINDOWS_MS = (5.0, 50.0)
"""Spike F1 windows beside the +/-2 ms one (metrics ``spike_f1_5ms``, ``spike_f1_50ms``):
how much of the miss is timing (2-5 ms) and how much spikes missed or added."""


@torch.no_grad()
def predict(loaded, x_uS: np.ndarray, batch: int = 64):
    """Run the surrogate over whole sequences from t = 0.

    Parameters
    ----------
    x_uS : array, shape (N, L, n_channels)
        Binned inputs (uS).

    Returns
    -------
    y : array, shape (N, L, n_targets)
        Soma voltage (mV) and dipole (nAm): the heads plus the spike kernels
        at the predicted spikes.
    heads : array, shape (N, L, n_targets)
        The regression heads alone (voltage clipped at the checkpoint's v_clip).
    p_spike : array, shape (N, L)
        Spike-head probability per bin.
    spikes : array, shape (N, L)
        1 at predicted spikes (rising edges through the checkpoint's threshold).
    """
    ys, ps = [], []
    for i in range(0, len(x_uS), batch):
        y, logit = loaded.model(loaded.norm.inputs(x_uS[i:i + batch]))
        ys.append(y)
        ps.append(torch.sigmoid(logit).double().numpy())
    p = np.concatenate(ps)
    spikes = spike_edges(p, loaded.spike_threshold).astype(np.float64)
    y = torch.cat(ys)
    return loaded.norm.traces(y, spikes), loaded.norm.physical(y), p, spikes


def spike_edges(p_spike: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean (N, L): bins where ``p_spike`` rises through ``threshold``."""
    above = p_spike > threshold
    return above & ~np.concatenate([np.zeros_like(above[..., :1]), above[..., :-1]], axis=-1)


def predicted_spike_times(p_spike: np.ndarray, bin_ms: float, threshold: float = 0.5):
    """Rising edges of ``p_spike > threshold`` per sequence, at bin centres (ms)."""
    return [(np.flatnonzero(e) + 0.5) * bin_ms for e in spike_edges(p_spike, threshold)]


def match_spikes(true, pred, window: float = SPIKE_WINDOW_MS) -> int:
    """Number of one-to-one matches within +/-window (greedy in time order)."""
    true, pred = np.sort(true), np.sort(pred)
    i = j = hits = 0
    while i < true.size and j < pred.size:
        d = pred[j] - true[i]
        if abs(d) <= window:
            hits, i, j = hits + 1, i + 1, j + 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return hits


def subthreshold_mask(spike_times, n_bins: int, bin_ms: float) -> np.ndarray:
    """Bins not within [-2, +8] ms of a spike."""
    keep = np.ones(n_bins, dtype=bool)
    t = np.arange(n_bins) * bin_ms
    for s in spike_times:
        keep &= ~((t + bin_ms > s - CUT_BEFORE_MS) & (t < s + CUT_AFTER_MS))
    return keep


def fidelity(v_true, v_pred, v_head, v_clip, true_spikes, pred_spikes, bin_ms, dip_true=None,
             dip_pred=None):
    """All metrics over a group of simulations (arrays (N, L); spike lists of N arrays)."""
    err, ref = [], []
    v_sub = np.minimum(v_true, v_clip)
    hits = n_true = n_pred = 0
    wide = dict.fromkeys(WIDE_WINDOWS_MS, 0)
    for k in range(len(v_true)):
        keep = subthreshold_mask(true_spikes[k], v_true.shape[1], bin_ms)
        err.append(v_head[k, keep] - v_sub[k, keep])
        ref.append(v_sub[k, keep])
        hits += match_spikes(true_spikes[k], pred_spikes[k])
        for w in wide:
            wide[w] += match_spikes(true_spikes[k], pred_spikes[k], w)
        n_true += true_spikes[k].size
        n_pred += pred_spikes[k].size
    err, ref = np.concatenate(err), np.concatenate(ref)
    precision = hits / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = hits / n_true if n_true else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "v_rmse_sub": float(np.sqrt(np.mean(err ** 2))) if err.size else np.nan,
        "v_explained_variance_sub": float(1 - err.var() / ref.var()) if err.size else np.nan,
        "v_r": float(np.corrcoef(v_true.ravel(), v_pred.ravel())[0, 1]),
        "spike_precision": precision, "spike_recall": recall, "spike_f1": f1,
        **{f"spike_f1_{w:g}ms": 2 * h / (n_true + n_pred) if n_true + n_pred else 1.0
           for w, h in wide.items()},
        "rate_error": abs(n_pred - n_true) / n_true if n_true else np.nan,
        "n_spikes_true": float(n_true), "n_spikes_pred": float(n_pred),
        "dipole_r": np.nan, "dipole_rmse": np.nan,
    }
    if dip_true is not None:
        a, b = dip_true.ravel(), dip_pred.ravel()
        out["dipole_r"] = float(np.corrcoef(a, b)[0, 1])
        out["dipole_rmse"] = float(np.sqrt(np.mean((a - b) ** 2)))
    return out


def dipole_error_bands(dip_true, dip_pred, bin_ms: float) -> dict:
    """Each cell's dipole error by frequency band: the error's power in the band over
    the true dipole's, summed over the cells ((N, L) arrays, each row's mean removed;
    0 is exact, 1 an error as large as the signal there). NaN for a band holding
    under ``BAND_FLOOR`` of the true power: a replayed evoked run is rest after
    100 ms. A cell's dipole r is mostly its spikes' fast part; this says in which
    band the rest of the error lies (the network comparison's bands, and above
    100 Hz)."""
    t = np.asarray(dip_true, np.float64)
    e = np.asarray(dip_pred, np.float64) - t
    f = np.fft.rfftfreq(t.shape[1], bin_ms / 1000.0)

    def power(x):
        return (np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2).sum(0)

    pt, pe = power(t), power(e)
    total = pt[f > 0].sum()
    out = {}
    for band, (lo, hi) in ERROR_BANDS.items():
        sel = (f >= lo) & (f <= hi)
        true_band = pt[sel].sum()
        out[f"dipole_error_{band}"] = (float(pe[sel].sum() / true_band)
                                       if total > 0 and true_band >= BAND_FLOOR * total
                                       else np.nan)
    return out


def run_dipole_metrics(dip_true, dip_pred, runs, bin_ms: float) -> dict:
    """Run-summed dipole of each network run: r and band-fraction errors, mean over runs.

    ``dip_true``, ``dip_pred``: (N, L) per-cell dipoles; ``runs``: N hashable run keys,
    None for a lone-cell simulation (left out). The sum over a run's cells is taken
    after ``SUM_TRANSIENT_MS`` (at most half the run: short test runs keep half);
    its band fractions are ``network.compare``'s (power in
    the band over 1-100 Hz); a band's error is |surrogate - NEURON| / NEURON, and
    ``band_within`` the share of (run, band) pairs within the comparison's 20 %; a
    band below ``BAND_FLOOR`` of NEURON's power counts in neither. All NaN if no
    simulation belongs to a run.
    """
    keys = [r for r in dict.fromkeys(runs) if r is not None]
    out = dict.fromkeys(RUN_METRICS, np.nan)
    if not keys:
        return out
    # a run no longer than twice the transient keeps its second half
    start = min(int(round(SUM_TRANSIENT_MS / bin_ms)), dip_true.shape[1] // 2)
    which = np.array([keys.index(r) if r is not None else -1 for r in runs])

    def fractions(x):
        return np.array(list(band_fractions(x, bin_ms)[2].values()))

    r, err = [], []
    for i in range(len(keys)):
        sel = which == i
        a, b = dip_true[sel, start:].sum(0), dip_pred[sel, start:].sum(0)
        # a flat surrogate sum against a NEURON sum that moves: r 0, every band missed
        r.append(np.nan if a.std() == 0 else np.corrcoef(a, b)[0, 1] if b.std() > 0 else 0.0)
        fa, fb = fractions(a), fractions(b)
        fb = np.where(np.isnan(fb), np.inf, fb)
        err.append(np.where(fa >= BAND_FLOOR, np.abs(fb - fa) / np.maximum(fa, BAND_FLOOR),
                            np.nan))
    err = np.array(err)  # (run, band)
    out["dipole_sum_r"] = float(np.nanmean(r)) if np.isfinite(r).any() else np.nan
    for j, band in enumerate(BANDS):
        col = err[:, j]
        out[f"band_error_{band}"] = float(np.nanmean(col)) if (~np.isnan(col)).any() else np.nan
    scored = err[~np.isnan(err)]
    out["band_within"] = float(np.mean(scored <= 0.2)) if scored.size else np.nan
    return out


def _units(ds) -> list:
    """(regime, unit) of each simulation of ``ds`` (``datasets.split_units``)."""
    from ..datasets import split_units

    return split_units(ds["regime"].values, ds["sim_index"].values, ds["run"].values)


def seen_units(paths) -> set:
    """The (regime, unit) pairs in the train or val split of the datasets at ``paths``:
    a unit is a network run (``run`` >= 0: replay, network_prior and alpha_start
    regimes) or a lone-cell simulation (``sim_index``), as ``datasets.assign_splits``
    draws them."""
    seen = set()
    for path in paths:
        other = open_cell_dataset(path)
        used = np.isin(other["split"].values.astype(str), ["train", "val"])
        seen |= {u for u, keep in zip(_units(other), used) if keep}
    return seen


def evaluate_surrogate(checkpoint, dataset, out, *, split="test", table=None,
                       allow_other_data=False, unseen_by=()):
    """Evaluate on one split; write a ``surrogate_metrics`` NetCDF; return the table text.

    The dataset must be the one the checkpoint was trained on (its data hash,
    which covers the split labels): then the ``test`` simulations are provably
    ones training never saw. ``allow_other_data`` evaluates on other data; the
    metrics then say so (attribute ``same_data_as_training`` = 0).

    ``unseen_by``: other datasets (say, the same config with fewer network runs,
    whose split was drawn over fewer units); the split's simulations whose run
    (or lone simulation) is in their train or val split are left out, so that
    models trained on either dataset are scored on what neither saw (attribute
    ``unseen_by``; the number left out in ``left_out_sims``).
    """
    from .data import data_hash, has_sections, section_array

    ds = open_cell_dataset(dataset)
    loaded = load_checkpoint(checkpoint, dataset=ds, source=str(dataset),
                             allow_other_data=allow_other_data)
    sections = has_sections(loaded.targets)
    same = int(data_hash(ds, sections) == loaded.data_hash)
    pos = np.flatnonzero(ds["split"].values == split)
    left_out = 0
    if unseen_by:
        seen = seen_units(unseen_by)
        units = _units(ds)
        keep = np.array([units[k] not in seen for k in pos], dtype=bool)
        left_out = int(pos.size - keep.sum())
        pos = pos[keep]
    if pos.size == 0:
        raise ValueError(f"{dataset}: no simulations in split {split!r}"
                         + (f" that {', '.join(map(str, unseen_by))} did not train on"
                            if unseen_by else ""))
    sub = ds.isel(sim=pos)
    bin_ms = loaded.bin_ms
    y, heads, p, _ = predict(loaded, sub["inputs"].values)
    pred_spikes = predicted_spike_times(p, bin_ms, loaded.spike_threshold)
    # spike_sim indexes the whole dataset's sim dim, not the split's.
    true_spikes = [ds["spike_time"].values[ds["spike_sim"].values == k] for k in pos]
    regimes = sub["regime"].values.astype(str)
    groups = [str(g) for g in dict.fromkeys(regimes)] + ["all"]
    rows = []
    has_dip = "dipole" in loaded.targets
    for g in groups:
        sel = np.ones(pos.size, bool) if g == "all" else regimes == g
        idx = np.flatnonzero(sel)
        rows.append(fidelity(
            sub["v_soma"].values[idx], y[idx, :, 0], heads[idx, :, 0], loaded.norm.v_clip,
            [true_spikes[k] for k in idx], [pred_spikes[k] for k in idx], bin_ms,
            sub["dipole"].values[idx] if has_dip else None, y[idx, :, 1] if has_dip else None,
        ) | {"n_sims": idx.size})
    if has_dip:
        run = sub["run"].values
        run_key = [(g, int(k)) if k >= 0 and g in RUN_SUM_REGIMES else None
                   for g, k in zip(regimes, run)]
        for g, row in zip(groups, rows):
            idx = np.flatnonzero(np.ones(pos.size, bool) if g == "all" else regimes == g)
            row.update(run_dipole_metrics(sub["dipole"].values[idx], y[idx, :, 1],
                                          [run_key[k] for k in idx], bin_ms))
            row.update(dipole_error_bands(sub["dipole"].values[idx], y[idx, :, 1], bin_ms))
    if sections:
        from .sections import dipole_from_sections, fit_dipole_readout

        n_core = loaded.model.config.n_targets - loaded.model.config.n_sections
        v_sec = section_array(sub)
        coef = fit_dipole_readout(ds) if has_dip else None
        for g, row in zip(groups, rows):
            idx = np.flatnonzero(np.ones(pos.size, bool) if g == "all" else regimes == g)
            row["section_v_r"] = float(np.corrcoef(v_sec[idx].ravel(),
                                                   y[idx, :, n_core:].ravel())[0, 1])
            row["dipole_r_sections"] = np.nan
            if coef is not None:
                derived = dipole_from_sections(coef, y[idx, :, 0], y[idx, :, n_core:])
                row["dipole_r_sections"] = float(np.corrcoef(
                    sub["dipole"].values[idx].ravel(), derived.ravel())[0, 1])
    attrs = provenance_attrs()
    attrs.update(cell_type=loaded.cell_type, split=split, data_hash=loaded.data_hash,
                 same_data_as_training=same, unseen_by=" ".join(map(str, unseen_by)),
                 left_out_sims=left_out,
                 spike_window_ms=SPIKE_WINDOW_MS, cut_ms=f"-{CUT_BEFORE_MS}..+{CUT_AFTER_MS}")
    data = {k: np.array([r[k] for r in rows], dtype=np.float64)
            for k in METRICS + (SECTION_METRICS if sections else ())
            + (RUN_METRICS + ERROR_BAND_METRICS if has_dip else ())}
    data["n_sims"] = np.array([r["n_sims"] for r in rows], dtype=np.int32)
    result = SURROGATE_METRICS.build(data, {"regime": np.array(groups, dtype=object)}, attrs)
    SURROGATE_METRICS.publish(result, out, format_metrics(result), table)
    return result


def format_metrics(ds) -> str:
    lines = [
        f"{ds.attrs['cell_type']}: held-out ({ds.attrs['split']}), free-running from t = 0",
        "",
        "| regime | sims | V RMSE sub (mV) | V expl. var. | V r (all) | spike P | spike R "
        "| spike F1 | F1 +/-5 ms | F1 +/-50 ms | rate error | dipole r | dipole RMSE (nAm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda x, f: "n/a" if np.isnan(x) else format(x, f)  # noqa: E731
    for i, g in enumerate(ds["regime"].values):
        v = {k: float(ds[k].values[i]) for k in METRICS}
        lines.append(
            f"| {g} | {int(ds['n_sims'].values[i])} | {fmt(v['v_rmse_sub'], '.2f')} "
            f"| {fmt(v['v_explained_variance_sub'], '.3f')} | {v['v_r']:.3f} "
            f"| {v['spike_precision']:.2f} "
            f"| {v['spike_recall']:.2f} | {v['spike_f1']:.2f} | {v['spike_f1_5ms']:.2f} "
            f"| {v['spike_f1_50ms']:.2f} | {fmt(v['rate_error'], '.1%')} "
            f"| {fmt(v['dipole_r'], '.3f')} | {fmt(v['dipole_rmse'], '.2e')} |")
    if all(k in ds for k in SECTION_METRICS):
        lines += ["", "Section-voltage outputs: their r, and the dipole derived from them "
                  "(readout fitted on NEURON's training split) beside the dipole head's", "",
                  "| regime | section V r | dipole r, derived | dipole r, head |",
                  "|---|---|---|---|"]
        for i, g in enumerate(ds["regime"].values):
            v = {k: float(ds[k].values[i]) for k in (*SECTION_METRICS, "dipole_r")}
            lines.append(f"| {g} | {v['section_v_r']:.3f} | {fmt(v['dipole_r_sections'], '.3f')} "
                         f"| {fmt(v['dipole_r'], '.3f')} |")
    if all(k in ds for k in RUN_METRICS):
        lines += ["", f"Run-summed dipole (every held-out cell of a network run summed, "
                  f"after {SUM_TRANSIENT_MS:g} ms; mean over runs): r, and each band "
                  "fraction's relative error (the network comparison's target: 20 %)", "",
                  "| regime | dipole r, run sum | alpha error | beta error | gamma error "
                  "| bands within 20 % |", "|---|---|---|---|---|---|"]
        for i, g in enumerate(ds["regime"].values):
            v = {k: float(ds[k].values[i]) for k in RUN_METRICS}
            if np.isnan(v["dipole_sum_r"]) and np.isnan(v["band_within"]):
                continue
            lines.append(f"| {g} | {fmt(v['dipole_sum_r'], '.3f')} "
                         f"| {fmt(v['band_error_alpha'], '.0%')} | {fmt(v['band_error_beta'], '.0%')} "
                         f"| {fmt(v['band_error_gamma'], '.0%')} | {fmt(v['band_within'], '.0%')} |")
    if all(k in ds for k in ERROR_BAND_METRICS):
        lines += ["", "Each cell's dipole error by band: the error's power in the band over "
                  "the true dipole's (n/a: under 1 % of the true power there)", "",
                  "| regime | " + " | ".join(f"{b} {lo:g}-{hi:g} Hz" if np.isfinite(hi)
                                             else f"{b} > {lo:g} Hz"
                                             for b, (lo, hi) in ERROR_BANDS.items()) + " |",
                  "|---|" + "---|" * len(ERROR_BANDS)]
        for i, g in enumerate(ds["regime"].values):
            lines.append(f"| {g} | " + " | ".join(fmt(float(ds[k].values[i]), ".2f")
                                                 for k in ERROR_BAND_METRICS) + " |")
    return "\n".join(lines)


def _curve_data(metric_paths, order, what: str):
    """The 'all' row of each ``surrogate_metrics`` file, in ``order``, and their one
    cell type (several: an error naming ``what``)."""
    rows = [SURROGATE_METRICS.read(p) for p in metric_paths]
    cell_types = {r.attrs["cell_type"] for r in rows}
    if len(cell_types) != 1:
        raise ValueError(f"{what}: metrics of several cell types {sorted(cell_types)}")
    data = {k: np.array([float(rows[i][k].values[-1]) for i in order]) for k in METRICS}
    return data, cell_types.pop()


def learning_curve(metric_paths, fractions, n_train, n_train_full, out, *, figure=None):
    """Collect ``surrogate_metrics`` files of one cell type trained on fractions of the data.

    ``n_train``: the training simulations each model learnt from (a subset draws
    whole network runs, so not ``fraction * n_train_full``). Writes a
    ``learning_curve`` NetCDF (metrics of the 'all' row against that number) and,
    if ``figure`` is given, a plot.
    """
    from ..artifacts import LEARNING_CURVE

    if not len(metric_paths) == len(fractions) == len(n_train):
        raise ValueError(f"learning_curve: {len(metric_paths)} metrics files, "
                         f"{len(fractions)} fractions, {len(n_train)} training-set sizes")
    order = np.argsort(fractions, kind="stable")
    fr = np.asarray(fractions, dtype=np.float64)[order]
    data, cell_type = _curve_data(metric_paths, order, "learning_curve")
    attrs = provenance_attrs()
    attrs.update(cell_type=cell_type, n_train_full=int(n_train_full))
    data["fraction"] = fr
    ds = LEARNING_CURVE.build(data, {"n_train": np.asarray(n_train, dtype=np.int32)[order]},
                              attrs)
    LEARNING_CURVE.write(ds, out)
    if figure is not None:
        plot_curve(ds, ds["n_train"].values, "training simulations", figure, log_x=True,
                   title=f"{ds.attrs['cell_type']}: held-out fidelity against training-set size")
    return ds


def steps_curve(metric_paths, epochs, steps_per_epoch: int, out, *, figure=None):
    """Collect ``surrogate_metrics`` of one training run's snapshots (``train.snapshot_epochs``)
    into a ``steps_curve`` NetCDF: held-out metrics (the 'all' row) against
    optimiser steps, the data fixed; and, if ``figure`` is given, a plot."""
    from ..artifacts import STEPS_CURVE

    if len(metric_paths) != len(epochs):
        raise ValueError(f"steps_curve: {len(metric_paths)} metrics files for "
                         f"{len(epochs)} epochs")
    order = np.argsort(epochs)
    ep = np.asarray(epochs, dtype=np.int32)[order]
    data, cell_type = _curve_data(metric_paths, order, "steps_curve")
    data["steps"] = ep.astype(np.int64) * int(steps_per_epoch)
    attrs = provenance_attrs()
    attrs.update(cell_type=cell_type, steps_per_epoch=int(steps_per_epoch))
    ds = STEPS_CURVE.build(data, {"epoch": ep}, attrs)
    STEPS_CURVE.write(ds, out)
    if figure is not None:
        plot_curve(ds, ds["steps"].values, "optimiser steps (same data)", figure, log_x=False,
                   title=f"{ds.attrs['cell_type']}: held-out fidelity against optimiser steps")
    return ds


def plot_curve(ds, x, xlabel: str, figure, *, log_x: bool, title: str) -> None:
    """Voltage, spike and dipole fidelity of a curve's points against ``x``, with targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    for ax, keys, target in [
        (axes[0], ["v_explained_variance_sub", "v_r"], 0.95),
        (axes[1], ["spike_f1", "spike_precision", "spike_recall"], 0.9),
        (axes[2], ["dipole_r"], 0.95),
    ]:
        keys = [k for k in keys if np.isfinite(ds[k].values).any()]
        if not keys:  # e.g. no dipole for basket cells
            ax.axis("off")
            continue
        for k in keys:
            ax.plot(x, ds[k].values, "o-", label=k)
        ax.axhline(target, color="0.6", ls=":", label=f"target {target}")
        ax.set(xscale="log" if log_x else "linear", xlabel=xlabel,
               ylim=(min(0, ax.get_ylim()[0]), 1.02))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.savefig(figure, dpi=110)
    plt.close(fig)
