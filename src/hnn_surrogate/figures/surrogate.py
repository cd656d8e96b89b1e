"""The poster's single-cell panels, drawn from a ``surrogate_panels`` NetCDF alone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..artifacts import SURROGATE_PANELS  # noqa: E402

NEURON_STYLE = dict(color="k", lw=1.0, label="NEURON")
SURR_STYLE = dict(color="tab:orange", lw=1.0, ls="--", label="surrogate")


def plot_panels(path, out):
    ds = SURROGATE_PANELS.read(path)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), constrained_layout=True)
    t = ds["time"].values
    labels = ds.attrs.get("example_sims", "").split(",")
    for k in range(min(2, ds.sizes["example"])):
        ax = axes[0, k]
        ax.plot(t, ds["example_v_neuron"].values[k], **NEURON_STYLE)
        ax.plot(t, ds["example_v_surrogate"].values[k], **SURR_STYLE)
        ax.set(title=f"held-out example {labels[k] if k < len(labels) else k}",
               xlabel="time (ms)", ylabel="soma V (mV)")
        ax.legend(fontsize=7, loc="upper right")
    ax = axes[0, 2]
    ax.plot(ds["ap_lag"].values, ds["ap_neuron"].values, **NEURON_STYLE)
    ax.plot(ds["ap_lag"].values, ds["ap_surrogate"].values, **SURR_STYLE)
    a = ds.attrs
    ax.set(title=f"AP shape: peak {a['ap_peak_neuron_mv']:.0f} vs {a['ap_peak_surrogate_mv']:.0f} mV,"
                 f"\nhalf-width {a['ap_half_width_neuron_ms']:.2f} vs "
                 f"{a['ap_half_width_surrogate_ms']:.2f} ms",
           xlabel="time from spike (ms)", ylabel="soma V (mV)")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(ds["n_inputs"].values, ds["sync_peak_neuron"].values, "o-", **NEURON_STYLE)
    ax.plot(ds["n_inputs"].values, ds["sync_peak_surrogate"].values, "s--",
            **{k: v for k, v in SURR_STYLE.items() if k != "ls"})
    ax.set(title="temporal summation: synchronous inputs", xlabel="inputs",
           ylabel="peak depolarisation (mV)")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(ds["spread"].values, ds["spread_peak_neuron"].values, "o-", **NEURON_STYLE)
    ax.plot(ds["spread"].values, ds["spread_peak_surrogate"].values, "s--",
            **{k: v for k, v in SURR_STYLE.items() if k != "ls"})
    ax.set(title=f"temporal summation: {a.get('n_spread', '')} inputs spread in time",
           xlabel="spread (ms)", ylabel="peak depolarisation (mV)")
    ax = axes[1, 2]
    w = ds["weight_factor"].values
    ax.step(w, ds["threshold_fired_neuron"].values, where="mid", **NEURON_STYLE)
    ax.step(w, ds["threshold_fired_surrogate"].values, where="mid", **SURR_STYLE)
    ax.plot(w, ds["threshold_p_surrogate"].values, ":", color="tab:orange",
            label="surrogate spike probability")
    ax.set(xscale="log", title="firing threshold: one input", xlabel="weight / threshold weight",
           ylabel="spike")
    ax.set_xticks([0.3, 0.5, 1, 2, 3], labels=["0.3", "0.5", "1", "2", "3"])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    fig.suptitle(f"{a['cell_type']}: NEURON vs surrogate ({a['inputs']})")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_training_histories(paths, out):
    """Training and validation loss against optimiser steps, one panel per cell type,
    from ``surrogate_history`` files: where the validation loss flattens while the
    training loss still falls, more steps on the same data do not help."""
    from ..artifacts import SURROGATE_HISTORY

    hists = [SURROGATE_HISTORY.read(p) for p in paths]
    fig, axes = plt.subplots(1, len(hists), figsize=(3.6 * len(hists), 3.2),
                             constrained_layout=True, squeeze=False)
    for ax, h in zip(axes[0], hists):
        per = int(h.attrs.get("steps_per_epoch", 1))   # histories before it was recorded: epochs
        steps = (h["epoch"].values + 1) * per
        ax.plot(steps, h["train_loss"].values, label="train (crops)")
        ax.plot(steps, h["val_loss"].values, label="validation (whole simulations)")
        best = int(h.attrs["best_epoch"])
        ax.axvline((best + 1) * per, color="0.6", ls=":", label="best")
        ax.set(title=h.attrs["cell_type"], xlabel="optimiser steps" if per > 1 else "epochs",
               ylabel="loss")
        ax.legend(fontsize=7)
    fig.savefig(out, dpi=110)
    plt.close(fig)
