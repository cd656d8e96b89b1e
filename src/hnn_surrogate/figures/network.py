"""The poster's network figure, drawn from stored NetCDF alone.

One row per condition (default, increased L5 inhibition, ...): NEURON's raster,
the surrogates' raster, the processed dipole of both, and both spectra (seed
means from the comparison file).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..artifacts import NETWORK_COMPARISON, NETWORK_RUN, atomic_output  # noqa: E402

TYPE_COLORS = {"L2_basket": "tab:blue", "L2_pyramidal": "tab:green",
               "L5_basket": "tab:red", "L5_pyramidal": "tab:purple"}
STYLE = {"neuron": dict(color="k", lw=1.0, label="NEURON"),
         "surrogate": dict(color="tab:orange", lw=1.0, ls="--", label="surrogate")}


def _raster(ax, ds, title):
    st, sg = ds["spike_time"].values, ds["spike_gid"].values
    for i, ct in enumerate(ds["cell_type"].values.astype(str)):
        g0, n = int(ds["gid_start"].values[i]), int(ds["n_cells"].values[i])
        sel = (sg >= g0) & (sg < g0 + n)
        ax.plot(st[sel], sg[sel], "|", ms=2, color=TYPE_COLORS.get(ct, "grey"), label=ct)
    ax.set(title=title, xlabel="time (ms)", ylabel="gid", xlim=(0, float(ds.attrs["tstop_ms"])))


def plot_network_comparison(comparison, runs: dict, out):
    """``runs[(condition, simulator)]`` = network_run path (one seed) -> PNG ``out``."""
    cmp = NETWORK_COMPARISON.read(comparison)
    conds = list(cmp["condition"].values.astype(str))
    fig, axes = plt.subplots(len(conds), 4, figsize=(18, 3.6 * len(conds)),
                             constrained_layout=True, squeeze=False)
    for r, cond in enumerate(conds):
        data = {sim: NETWORK_RUN.read(runs[(cond, sim)]) for sim in ("neuron", "surrogate")}
        _raster(axes[r, 0], data["neuron"], f"{cond}: NEURON")
        _raster(axes[r, 1], data["surrogate"], f"{cond}: surrogate")
        ax = axes[r, 2]
        for sim, ds in data.items():
            ax.plot(ds["time"].values, ds["dipole_processed"].sel(layer="agg").values,
                    **STYLE[sim])
        ax.set(title=f"{cond}: aggregate dipole (smoothed, scaled)", xlabel="time (ms)",
               ylabel="dipole (nAm)")
        ax.legend(fontsize=7)
        ax = axes[r, 3]
        f = cmp["freq"].values
        keep = (f >= 1) & (f <= 80)
        for sim in ("neuron", "surrogate"):
            p = cmp["psd"].sel(condition=cond, simulator=sim).mean("seed").values
            peak = float(cmp["peak_freq"].sel(condition=cond, simulator=sim).mean("seed"))
            style = dict(STYLE[sim], label=f"{STYLE[sim]['label']} (peak {peak:.1f} Hz)")
            ax.semilogy(f[keep], np.maximum(p[keep], 1e-30), **style)
        for lo, hi in ((8, 12), (13, 30), (30, 60)):
            ax.axvspan(lo, hi, color="grey", alpha=0.08)
        ax.set(title=f"{cond}: dipole spectrum (seed mean)", xlabel="frequency (Hz)",
               ylabel="PSD (nAm$^2$/Hz)")
        ax.legend(fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right", markerscale=4)
    fig.suptitle(f"HNN network, NEURON vs surrogates: scenario {cmp.attrs['scenario']}")
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
