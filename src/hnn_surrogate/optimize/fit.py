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

from .objective_config import best_index
from .objectives import binned_rates, evaluate_objective, spectrum
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

    def best_step(self) -> int:
        """The step whose gains scored the highest mean objective over the fit's seeds
        (the surrogate's own score: no NEURON run chooses it; may be step 0, the
        start)."""
        return best_index(self.objective)

    def fitted_condition(self, step: int | None = None) -> list[dict]:
        """The gains of ``step`` (default: ``best_step``) as a network condition
        (``spec.build_network``)."""
        step = self.best_step() if step is None else step
        return [{"src": s, "target": t, "receptor": r, "gain": float(g)}
                for (s, t, r), g in zip(self.types, self.gain[step])]


def hnn_baseline(net, n_bins: int, bin_ms: float) -> torch.Tensor:
    """What hnn-core's baseline renormalisation adds to ``net``'s aggregate dipole (nAm per
    bin; affine, so a fixed tensor), so that a fit scores the dipole its NEURON check does."""
    from ..network.api import to_hnn_dipole
    from ..network.run import bin_centres

    zero = np.zeros(n_bins)
    dpl = to_hnn_dipole(bin_centres(n_bins, float(bin_ms)), zero, zero, net)
    return torch.from_numpy(dpl.data["agg"].copy())


def fit_networks(spec, scenario, surrogates, free, bounds, seeds, tstop):
    """A fit's networks: (hnn-core networks per seed, the first one's wiring, the
    seeds' ``BatchedNetwork``, the ``FreeGains``, hnn-core's dipole baseline)."""
    from ..network.api import load_surrogates
    from ..network.batch import BatchedNetwork
    from ..network.run import network_wiring
    from ..network.spec import build_network

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
    return nets, wiring, batch, gains, hnn_baseline(nets[0], wiring.n_bins, bin_ms)


def spike_rates(out, wiring, transient_ms: float, window_ms: float | None = None) -> dict:
    """{cell type: spikes per cell per second after the transient} of a surrogate run
    (per window of ``window_ms``: ``objectives.binned_rates``), as tensors whose
    gradient is the spike logits' (``NetworkOutput.spike_count``)."""
    return {t: binned_rates(c, wiring.n_cells(t), bin_ms=out.bin_ms, transient_ms=transient_ms,
                            window_ms=window_ms)
            for t, c in out.spike_count.items()}


def score_batch(batch, gains, z, baseline, objective, bin_ms, transient_ms, slope, learn,
                grad_storage="exact"):
    """Run the seeds' batch at gains ``z``, score each seed's objective, and (``learn``)
    backpropagate minus their mean into ``z.grad``: one step's work."""
    with torch.set_grad_enabled(learn):
        outs = batch.run(gains.scale(z), surrogate_slope=slope, grad_storage=grad_storage)
        dipoles = [o.dipole["L2"] + o.dipole["L5"] + baseline for o in outs]
        penalised = bool(objective.get("rates"))
        scored = [evaluate_objective(objective, d, bin_ms=bin_ms, transient_ms=transient_ms,
                                     rates=spike_rates(o, batch.wirings[0], transient_ms,
                                                       objective.get("rate_window_ms"))
                                     if penalised else None)
                  for o, d in zip(outs, dipoles)]
        if learn:
            (-torch.stack(scored).mean()).backward()
    return outs, dipoles, scored


def fit_connectivity(spec: dict, *, scenario: str, surrogates, free, bounds, objective: dict,
                     lr: float, n_steps: int, seeds, tstop: float, transient_ms: float,
                     slope: float, threads: int = 1, grad_storage: str = "exact",
                     log=log) -> Trajectory:
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
    grad_storage : how the runs keep what backpropagation needs
        (``SurrogateNetwork.run``: ``exact`` or ``float16``).
    """
    torch.set_num_threads(int(threads))
    _, wiring, batch, gains, baseline = fit_networks(spec, scenario, surrogates, free, bounds,
                                                     seeds, tstop)
    bin_ms = float(spec["bin_ms"])
    z = gains.initial()
    opt = torch.optim.Adam([z], lr=float(lr))
    rec = {k: [] for k in ("objective", "gain", "grad", "rate", "power", "wall_s")}
    freqs = None
    for step in range(int(n_steps) + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        learn = step < n_steps
        values, rates, powers = [], [], []
        outs, dipoles, scored = score_batch(batch, gains, z, baseline, objective, bin_ms,
                                            transient_ms, slope, learn, grad_storage)
        for out, dipole, value in zip(outs, dipoles, scored):
            values.append(float(value.detach()))
            with torch.no_grad():           # a record, not part of the objective's graph
                rates.append([float(r) for r in spike_rates(out, wiring, transient_ms).values()])
            f, p = spectrum(dipole.detach(), bin_ms=bin_ms, transient_ms=transient_ms)
            keep = f <= SPECTRUM_MAX_HZ
            freqs = f[keep].numpy()
            powers.append(p[keep].numpy())
        # the run's graph (what the loss did not reach, e.g. the spike counts, keeps
        # its saved tensors) goes now, not when the next step's run replaces it
        del outs, dipoles, scored
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
    best = traj.best_step()
    lines = [f"Fit from {fit['start']}: {fit['objective']['kind']} {json_text(fit['objective'])}, "
             f"Adam lr {fit['lr']}, {len(mean) - 1} steps, seeds {traj.seeds} (surrogate network)",
             "", f"objective {mean[0]:.4f} -> {mean[-1]:.4f} at the last step, best {mean[best]:.4f} "
             f"at step {best}: the fitted gains; {traj.wall_s.sum():.0f} s", "",
             f"| connection | fitted gain (step {best}) | last step's |", "|---|---|---|"]
    lines += [f"| {lab} | {g:.3f} | {h:.3f} |"
              for lab, g, h in zip(traj.labels, traj.gain[best], traj.gain[-1])]
    write_json(traj.fitted_condition(), fitted_out)
    return FIT_TRAJECTORY.publish(ds, out, "\n".join(lines), table)


def json_text(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def step_benchmark(spec: dict, *, scenario: str, surrogates, free, bounds, objective: dict,
                   seeds, tstop: float, transient_ms: float, slope: float, threads: int,
                   grad_storage: str = "exact", repeats: int = 5) -> dict:
    """One fit step against a forward run of the same batch, side by side in this
    process: a forward run (no gradient) for the peak resident memory of forward
    runs alone, then ``repeats`` pairs of a forward run and a step (the run
    with gradients kept as ``grad_storage``, the objective, backpropagation),
    each pair back to back so that a change of the machine's speed (shared
    machines drift by tens of percent within minutes) falls on both alike; the
    ratio is the median of the pairs' ratios; the peak memory after the steps.
    Last, where ``grad_storage`` is not exact, one exact step: its gradient
    against the steps' (cosine) and its own peak memory."""
    from ..bench.scaling import cpu_name, peak_rss_gb

    torch.set_num_threads(int(threads))
    _, wiring, batch, gains, baseline = fit_networks(spec, scenario, surrogates, free, bounds,
                                                     seeds, tstop)
    bin_ms = float(spec["bin_ms"])
    z = gains.initial()
    rest = (baseline, objective, bin_ms, transient_ms, slope)
    score_batch(batch, gains, z, *rest, learn=False)                # warm-up
    fwd, step, spikes = [], [], []

    def forward():
        t0 = time.perf_counter()
        outs, _, _ = score_batch(batch, gains, z, *rest, learn=False)
        fwd.append(time.perf_counter() - t0)
        spikes.append(sum(o.spike_times.size for o in outs))

    def one_step(storage):
        zz = z.detach().requires_grad_(True)
        t0 = time.perf_counter()
        score_batch(batch, gains, zz, *rest, learn=True, grad_storage=storage)
        return time.perf_counter() - t0, zz.grad

    forward()
    rss_forward = peak_rss_gb()
    fwd.clear()
    for _ in range(int(repeats)):
        forward()
        wall, grad = one_step(grad_storage)
        step.append(wall)
    rss_step = peak_rss_gb()
    cosine, rss_exact = 1.0, rss_step
    if grad_storage != "exact":
        _, exact = one_step("exact")
        rss_exact = peak_rss_gb()
        cosine = float(torch.nn.functional.cosine_similarity(grad, exact, dim=0))
    return {"forward_s": float(np.median(fwd)), "step_s": float(np.median(step)),
            "ratio": float(np.median(np.divide(step, fwd))), "forward_rss_gb": rss_forward,
            "step_rss_gb": rss_step, "exact_rss_gb": rss_exact, "grad_cosine": cosine,
            "grad_storage": grad_storage,
            "n_cells": sum(wiring.n_cells(t) for t in wiring.cell_types),
            "n_seeds": len(seeds), "tstop_ms": float(tstop), "spikes": int(np.median(spikes)),
            "threads": int(threads), "device": cpu_name(), "forward_all_s": fwd,
            "step_all_s": step}


def write_step_benchmark(res: dict, *, start: str, out, table=None) -> str:
    """The ``fit_step_benchmark`` NetCDF and its printed line."""
    from ..artifacts import FIT_STEP_BENCHMARK
    from ..provenance import provenance_attrs

    attrs = provenance_attrs()
    attrs.update(start=start, **{k: res[k] for k in ("n_cells", "n_seeds", "tstop_ms",
                                                      "threads", "device", "spikes",
                                                      "grad_storage")})
    malloc = attrs["malloc"] = res.get("malloc", "default")
    ds = FIT_STEP_BENCHMARK.build(
        {k: res[k] for k in ("forward_s", "step_s", "ratio", "forward_rss_gb", "step_rss_gb",
                             "exact_rss_gb", "grad_cosine", "forward_all_s", "step_all_s")},
        {"repeat": np.arange(len(res["forward_all_s"]))}, attrs)
    text = "\n".join([
        f"One fit step against a forward run of the same batch: {res['n_seeds']} seed(s) of the "
        f"{res['n_cells']}-cell network ({start}), {res['tstop_ms']:.0f} ms, "
        f"{res['threads']} thread(s), {res['device']}, glibc malloc {malloc}; medians of "
        f"{len(res['forward_all_s'])} pairs of a forward run and a step back to back (the "
        f"ratio: the median of the pairs' ratios)", "",
        "| | wall (s) | peak resident (GiB) |", "|---|---|---|",
        f"| forward run (no gradient) | {res['forward_s']:.2f} | {res['forward_rss_gb']:.2f} |",
        f"| fit step (run with gradients kept {res['grad_storage']}, objective, backward) | "
        f"{res['step_s']:.2f} | {res['step_rss_gb']:.2f} |",
        f"| one step with gradients kept exact (for comparison) | | {res['exact_rss_gb']:.2f} |",
        "", f"gradient against the exact step's: cosine {res['grad_cosine']:.6f}", "",
        f"FIT_STEP_BENCHMARK step / forward {res['ratio']:.2f}x, peak "
        f"{res['step_rss_gb']:.2f} GiB (targets: at most 3x and 4 GB)"])
    return FIT_STEP_BENCHMARK.publish(ds, out, text, table)
