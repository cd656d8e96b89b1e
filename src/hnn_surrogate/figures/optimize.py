"""The poster's fit figure, drawn from stored NetCDF alone.

Objective against step (surrogate network, each fit seed); power spectrum of
the start and of the fitted network, NEURON beside the surrogates (fit seeds
and fresh seeds apart); each free connection's gain change; rates before and
after; NEURON rasters of the start and the fitted network (first fit seed).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..artifacts import FIT_CHECK, FIT_TRAJECTORY, NETWORK_RUN, atomic_output  # noqa: E402
from ..optimize.objective_config import best_index  # noqa: E402
from .network import STYLE, _raster  # noqa: E402


def plot_fit(trajectory, check, rasters: dict, out):
    """``rasters``: {"start": network_run path, "fitted": path} (NEURON, one seed)."""
    tr, ck = FIT_TRAJECTORY.read(trajectory), FIT_CHECK.read(check)
    fig = plt.figure(figsize=(18, 9), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, 0])
    for j, s in enumerate(tr["seed"].values):
        ax.plot(tr["step"].values, tr["objective"].values[:, j], lw=1, label=f"seed {s}")
    ax.plot(tr["step"].values, tr["objective"].values.mean(axis=1), "k", lw=2, label="mean")
    ax.set(title="objective (surrogate network)", xlabel="Adam step", ylabel="objective")
    ax.legend(fontsize=7)
    for col, fit_seed in ((1, 1), (2, 0)):
        ax = fig.add_subplot(grid[0, col])
        sel = ck["fit_seed"].values == fit_seed
        if not sel.any():
            ax.set_title("no " + ("fit" if fit_seed else "fresh") + " seeds")
            continue
        for sim in ("neuron", "surrogate"):
            for cond, alpha in (("default", 0.45), ("fitted", 1.0)):
                p = ck["power"].sel(condition=cond, simulator=sim).values[sel].mean(axis=0)
                ax.semilogy(ck["freq"].values, p, alpha=alpha,
                            **{**STYLE[sim], "label": f"{STYLE[sim]['label']} {cond}"})
        ax.axvspan(8, 12, color="0.9")
        ax.axvspan(13, 30, color="#e6f0ff")
        ax.set(title=("fit" if fit_seed else "fresh") + " seeds: spectrum", xlabel="Hz",
               ylabel="power (nAm$^2$)", xlim=(1, 100))
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 3])
    # the fitted gains: the step of the best mean objective (Trajectory.best_step)
    best = best_index(tr["objective"].values)
    change = np.log2(tr["gain"].values[best])
    ax.barh(np.arange(change.size), change, color=np.where(change > 0, "tab:red", "tab:blue"))
    ax.set_yticks(np.arange(change.size), tr["free"].values.astype(str), fontsize=6)
    ax.set(title=f"gain change (log2), step {best}", xlabel="log2 gain")
    ax = fig.add_subplot(grid[1, 0])
    types = ck["cell_type"].values.astype(str)
    x = np.arange(types.size)
    for k, (sim, cond) in enumerate([(s, c) for s in ("neuron", "surrogate")
                                     for c in ("default", "fitted")]):
        r = ck["rate"].sel(condition=cond, simulator=sim).values.mean(axis=0)
        ax.bar(x + (k - 1.5) * 0.2, r, 0.2, label=f"{sim} {cond}",
               color=STYLE[sim]["color"], alpha=0.45 if cond == "default" else 1.0)
    ax.set_xticks(x, types, fontsize=7)
    ax.set(title="rates (all seeds)", ylabel="Hz")
    ax.legend(fontsize=7)
    for col, key in ((1, "start"), (2, "fitted")):
        ax = fig.add_subplot(grid[1, col:col + 1])
        _raster(ax, NETWORK_RUN.read(rasters[key]), f"NEURON, {key}")
    ax = fig.add_subplot(grid[1, 3])
    for key, alpha in (("start", 0.5), ("fitted", 1.0)):
        run = NETWORK_RUN.read(rasters[key])
        ax.plot(run["time"].values, run["dipole_processed"].sel(layer="agg").values, "k",
                alpha=alpha, lw=1, label=f"NEURON {key}")
    ax.set(title="NEURON dipole (processed)", xlabel="time (ms)", ylabel="nAm")
    ax.legend(fontsize=7)
    fig.suptitle(f"fit from {tr.attrs['start']}: {tr.attrs['objective']}, lr {tr.attrs['lr']}; "
                 f"NEURON/surrogate transfer {ck.attrs['transfer']:.2f}")
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
