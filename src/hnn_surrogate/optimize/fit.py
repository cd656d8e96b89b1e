"""Gradient descent (Adam) on connection gains through the surrogate network.

One fit: a starting network (a scenario's drives on the config's network
model), a set of free connection types with bounded gains (``params``), an
objective of the aggregate dipole (``objectives``) averaged over several drive
seeds, a learning rate and a number of steps. Every step runs the surrogate
network with the current gains, every seed's network stepped as one batch
(``network.batch``: all seeds' cells together, each seed's network exactly as
alone), scores the objective after the transient (with hnn-core's baseline
renormalisation, as the NEURON check scores it) per seed, and backpropagates
the seeds' mean through the whole run (spikes carry a surrogate gradient,
``network.surrogate_slope``). Each step's objective
per seed, gains, rates per cell type and spectrum are kept; the trajectory
and the fitted gains are the fit's output.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from .objectives import evaluate_objective, spectrum
from .params import FreeGains, resolve_free

log = logging.getLogger(__name__)

SPECTRUM_MAX_HZ = 100.0
"""Highest frequency kept in a trajectory's spectra."""


@dataclass
class Trajectory:
    """What a fit did, step by step (step 0: the starting network)."""

    labels: list            # free connection types, "src->target receptor"
    types: list             # (src, target, receptor)
    seeds: list
    cell_types: list
    objective: np.ndarray   # (n_steps + 1, n_seeds)
    gain: np.ndarray        # (n_steps + 1, n_free)
    grad: np.ndarray        # (n_steps + 1, n_free): d mean objective / d z (NaN at the last)
    rate: np.ndarray        # (n_steps + 1, n_seeds, n_cell_types), Hz
    freqs: np.ndarray       # (n_freqs,)
    power: np.ndarray       # (n_steps + 1, n_seeds, n_freqs)
    wall_s: np.ndarray      # (n_steps + 1,)

    def fitted_condition(self, step: int = -1) -> list[dict]:
        """The gains of ``step`` as a network condition (``spec.build_network``)."""
        return [{"src": s, "target": t, "receptor": r, "gain": float(g)}
                for (s, t, r), g in zip(self.types, self.gain[step])]


def _rates(out, wiring, transient_ms: float, tstop: float) -> list[float]:
    keep = out.spike_times >= transient_ms
    gids = out.spike_gids[keep]
    span = (tstop - transient_ms) / 1000.0
    return [float(np.isin(gids, np.asarray(wiring.gid_ranges[t])).sum()) / (wiring.n_cells(t) * span)
            for t in wiring.cell_types]


def hnn_baseline(net, n_bins: int, bin_ms: float) -> torch.Tensor:
    """What hnn-core's baseline renormalisation adds to ``net``'s aggregate dipole (nAm per
    bin; affine, so a fixed tensor), so that a fit scores the dipole its NEURON check does."""
    from ..network.api import to_hnn_dipole
    from ..network.run import bin_centres

    zero = np.zeros(n_bins)
    dpl = to_hnn_dipole(bin_centres(n_bins, float(bin_ms)), zero, zero, net)
    return torch.from_numpy(dpl.data["agg"].copy())


def fit_connectivity(spec: dict, *, scenario: str, surrogates, free, bounds, objective: dict,
                     lr: float, n_steps: int, seeds, tstop: float, transient_ms: float,
                     slope: float, threads: int = 1, log=log) -> Trajectory:
    """Fit the gains of ``free`` connection types by Adam; see the module docstring.

    Parameters
    ----------
    spec : dict
        Network spec (model, mesh_shape, bin_ms, scenarios holding ``scenario``,
        conditions holding ``default``).
    surrogates : what ``network.load_surrogates`` takes.
    free : dict or list
        ``{"cells": bool, "drives": [names]}`` or (source, target, receptor) types.
    bounds : (low, high) of every gain.
    objective : dict
        An objective config (``objectives``), maximised.
    seeds : list of int
        Drive seeds; the objective is their mean.
    """
    from ..network.api import load_surrogates
    from ..network.batch import BatchedNetwork
    from ..network.run import network_wiring
    from ..network.spec import build_network

    torch.set_num_threads(int(threads))
    loaded = load_surrogates(surrogates)
    bin_ms = float(spec["bin_ms"])
    nets = [build_network(spec, scenario=scenario, condition="default", seed=s) for s in seeds]
    wirings = [network_wiring(net, tstop=tstop, bin_ms=bin_ms) for net in nets]
    wiring = wirings[0]
    for s, w in zip(seeds[1:], wirings[1:]):
        if [c.label for c in w.connections] != [c.label for c in wiring.connections]:
            raise ValueError(f"seed {s}: the network's connections differ from seed {seeds[0]}'s")
    batch = BatchedNetwork(wirings, loaded)
    gains = FreeGains(wiring.connections, resolve_free(wiring.connections, free, wiring.cell_types),
                      *bounds)
    z = gains.initial()
    opt = torch.optim.Adam([z], lr=float(lr))
    baseline = hnn_baseline(nets[0], wiring.n_bins, bin_ms)
    rec = {k: [] for k in ("objective", "gain", "grad", "rate", "power", "wall_s")}
    freqs = None
    for step in range(int(n_steps) + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        learn = step < n_steps
        values, rates, powers = [], [], []
        with torch.set_grad_enabled(learn):
            outs = batch.run(gains.scale(z), surrogate_slope=slope)
            dipoles = [o.dipole["L2"] + o.dipole["L5"] + baseline for o in outs]
            scored = [evaluate_objective(objective, d, bin_ms=bin_ms, transient_ms=transient_ms)
                      for d in dipoles]
            if learn:
                (-torch.stack(scored).mean()).backward()
        for out, dipole, value in zip(outs, dipoles, scored):
            values.append(float(value.detach()))
            rates.append(_rates(out, wiring, transient_ms, tstop))
            f, p = spectrum(dipole.detach(), bin_ms=bin_ms, transient_ms=transient_ms)
            keep = f <= SPECTRUM_MAX_HZ
            freqs = f[keep].numpy()
            powers.append(p[keep].numpy())
        rec["objective"].append(values)
        rec["gain"].append(gains.gains(z.detach()).numpy())
        if learn and z.grad is None:      # nothing of the run depends on a free gain
            z.grad = torch.zeros_like(z)
        rec["grad"].append(-z.grad.numpy() if learn else np.full(len(gains.types), np.nan))
        rec["rate"].append(rates)
        rec["power"].append(powers)
        if learn:
            opt.step()
        rec["wall_s"].append(time.perf_counter() - t0)
        log.info("step %d/%d: objective %.4f (seeds %s), gains %s, rates %s Hz, %.1f s", step,
                 n_steps, np.mean(values), " ".join(f"{v:.3f}" for v in values),
                 " ".join(f"{g:.2f}" for g in rec["gain"][-1]),
                 " ".join(f"{r:.1f}" for r in np.mean(rates, axis=0)), rec["wall_s"][-1])
    return Trajectory(labels=gains.labels, types=gains.types, seeds=list(seeds),
                      cell_types=list(wiring.cell_types),
                      objective=np.array(rec["objective"]), gain=np.array(rec["gain"]),
                      grad=np.array(rec["grad"]), rate=np.array(rec["rate"]), freqs=freqs,
                      power=np.array(rec["power"]), wall_s=np.array(rec["wall_s"]))


def write_fit(traj: Trajectory, *, spec: dict, fit: dict, out, fitted_out, table=None) -> str:
    """The ``fit_trajectory`` NetCDF (``out``), the fitted gains as a network condition
    (``fitted_out``, JSON: what ``network-neuron --condition-file`` runs) and a table."""
    from ..artifacts import FIT_TRAJECTORY, write_json
    from ..provenance import config_hash, provenance_attrs

    attrs = provenance_attrs()
    attrs.update(start=fit["start"], objective=json_text(fit["objective"]), lr=float(fit["lr"]),
                 gain_low=float(fit["bounds"][0]), gain_high=float(fit["bounds"][1]),
                 surrogate_slope=float(fit["slope"]), tstop_ms=float(fit["tstop"]),
                 transient_ms=float(fit["transient_ms"]), config_hash=config_hash([spec, fit]))
    ds = FIT_TRAJECTORY.build(
        {"objective": traj.objective, "gain": traj.gain, "grad": traj.grad, "rate": traj.rate,
         "power": traj.power, "wall_s": traj.wall_s,
         "free_src": [t[0] for t in traj.types], "free_target": [t[1] for t in traj.types],
         "free_receptor": [t[2] for t in traj.types]},
        {"step": np.arange(traj.objective.shape[0]), "seed": np.asarray(traj.seeds, np.int64),
         "free": traj.labels, "cell_type": traj.cell_types, "freq": traj.freqs}, attrs)
    mean = traj.objective.mean(axis=1)
    lines = [f"Fit from {fit['start']}: {fit['objective']['kind']} {json_text(fit['objective'])}, "
             f"Adam lr {fit['lr']}, {len(mean) - 1} steps, seeds {traj.seeds} (surrogate network)",
             "", f"objective {mean[0]:.4f} -> {mean[-1]:.4f} (best {mean.max():.4f} at step "
             f"{int(mean.argmax())}); {traj.wall_s.sum():.0f} s", "",
             "| connection | gain |", "|---|---|"]
    lines += [f"| {lab} | {g:.3f} |" for lab, g in zip(traj.labels, traj.gain[-1])]
    write_json(traj.fitted_condition(), fitted_out)
    return FIT_TRAJECTORY.publish(ds, out, "\n".join(lines), table)


def json_text(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)
