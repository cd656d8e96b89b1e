"""Cells-stage figure: one example simulation per regime, and spiking per regime."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..datasets import open_cell_dataset  # noqa: E402

_INHIBITORY = ("gabaa", "gabab")


def plot_cell_examples(path, out):
    """Inputs, soma voltage (and dipole) of one simulation per regime; spike statistics."""
    ds = open_cell_dataset(path)
    cell_type = ds.attrs["cell_type"]
    regimes = list(dict.fromkeys(ds["regime"].values.astype(str)))
    has_dipole = "dipole" in ds
    rows = 3 if has_dipole else 2
    fig, axes = plt.subplots(rows, len(regimes) + 1, figsize=(4.2 * (len(regimes) + 1), 2.4 * rows),
                             squeeze=False, constrained_layout=True)
    inhib = np.isin(ds["receptor"].values.astype(str), _INHIBITORY)
    for col, regime in enumerate(regimes):
        pos = np.flatnonzero(ds["regime"].values.astype(str) == regime)
        sim = pos[np.argmax(ds["n_spikes"].values[pos] > 0)] if regime != "subthreshold" else pos[0]
        ev = ds["event_sim"].values == sim
        ch, t = ds["event_channel"].values[ev], ds["event_time"].values[ev]
        color = np.where(inhib[ch], "tab:blue", "tab:red")
        ax = axes[0, col]
        ax.scatter(t, ch, s=2, c=color)
        ax.set_title(f"{regime} (sim {int(ds['sim_index'].values[sim])})")
        ax.set_ylabel("channel (red exc, blue inh)")
        if "v_soma_fine" in ds:
            tv, v = ds["time_fine"].values, ds["v_soma_fine"].values[sim]
        else:
            tv, v = ds["time"].values, ds["v_soma"].values[sim]
        axes[1, col].plot(tv, v, lw=0.6, color="k")
        axes[1, col].set_ylabel("soma V (mV)")
        if has_dipole:
            axes[2, col].plot(ds["time"].values, ds["dipole"].values[sim], lw=0.6, color="tab:green")
            axes[2, col].set_ylabel("dipole (nAm)")
        axes[-1, col].set_xlabel("time (ms)")
    ax = axes[0, -1]
    frac = [np.mean(ds["n_spikes"].values[ds["regime"].values.astype(str) == r] > 0) for r in regimes]
    ax.bar(regimes, frac, color="0.5")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of sims with spikes")
    ax.tick_params(axis="x", labelrotation=20)
    ax = axes[1, -1]
    dur = float(ds.attrs["tstop_ms"]) / 1000.0
    for r in regimes:
        rates = ds["n_spikes"].values[ds["regime"].values.astype(str) == r] / dur
        ax.hist(rates, bins=20, histtype="step", label=r)
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("simulations")
    ax.legend(fontsize=7)
    for ax in axes[2:, -1]:
        ax.axis("off")
    fig.suptitle(f"{cell_type}: NEURON training data ({ds.sizes['sim']} simulations)")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
