"""How far back the network's gradient is useful: its size against simulated time.

The connectivity fit differentiates a loss on the dipole through the surrogate
network. A spike's surrogate gradient reaches the cells it drives, whose
spikes carry it on, so over many hops it can grow without bound. This check
runs one network (a scenario's drives, the default condition) for several
simulated times and surrogate slopes, and measures the relative sensitivity
of the loss to every connection, |d log loss / d log (A_weight * gain)|, the
loss being the summed squared aggregate dipole (raw, nAm^2). Where the largest
sensitivity grows by orders of magnitude with the simulated time, gradient
descent on that horizon is hopeless. The config's ``network.surrogate_slope``
is chosen from it; its row is marked in the table.
"""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import GRADIENT_HORIZON
from ..provenance import config_hash, provenance_attrs

log = logging.getLogger(__name__)


def gradient_horizon(spec, *, scenario, checkpoints, tstops, slopes, seed, out, table=None,
                     threads=1, configured_slope=None):
    """Write the ``gradient_horizon`` NetCDF (and table) to ``out``.

    ``checkpoints``: what ``api.load_surrogates`` takes (paths, a folder, a dict).
    """
    import torch

    from .api import load_surrogates
    from .run import surrogate_network
    from .spec import build_network

    tstops = [float(t) for t in tstops]
    slopes = [float(s) for s in slopes]
    if not tstops or min(tstops) <= 0:
        raise ValueError(f"tstops must be positive (ms), got {tstops}")
    if not slopes or min(slopes) < 0:
        raise ValueError(f"slopes must be >= 0, got {slopes}")
    torch.set_num_threads(int(threads))
    loaded = load_surrogates(checkpoints)
    sens, loss, spikes, labels = [], [], [], None
    for tstop in tstops:
        net = build_network(spec, scenario=scenario, condition="default", seed=seed)
        sim = surrogate_network(net, tstop=tstop, surrogates=loaded, bin_ms=spec["bin_ms"])
        labels = [c.label for c in sim.wiring.connections]
        row = []
        for slope in slopes:
            scale = sim.scale.clone().requires_grad_(True)
            res = sim.run(scale, surrogate_slope=slope)
            agg = sum(res.dipole.values())                       # (n_bins,) nAm
            value = (agg ** 2).sum()
            value.backward()
            row.append((scale.grad * scale.detach()).abs().numpy() / value.item())
            log.info("%.0f ms, slope %g: %d spikes, loss %.3e nAm^2, largest |d log loss / "
                     "d log w| %.3e", tstop, slope, res.spike_times.size, value.item(),
                     row[-1].max())
        sens.append(row)
        loss.append(value.item())
        spikes.append(res.spike_times.size)
    sens = np.array(sens).transpose(1, 0, 2)                     # (slope, tstop, connection)
    attrs = provenance_attrs(seed=int(seed))
    attrs.update(scenario=scenario, condition="default", config_hash=config_hash(spec),
                 configured_slope=float(-1 if configured_slope is None else configured_slope),
                 loss="sum over bins of the squared aggregate dipole (raw, nAm^2)")
    ds = GRADIENT_HORIZON.build(
        {"sensitivity": sens, "loss": np.array(loss), "n_spikes": np.array(spikes, np.int64)},
        {"slope": np.array(slopes), "tstop": np.array(tstops), "connection": labels}, attrs)
    lines = [f"Gradient against simulated time: scenario {scenario}, default condition, "
             f"seed {seed}; largest (median) |d log loss / d log w| over "
             f"{len(labels)} connections, loss = summed squared aggregate dipole", "",
             "| slope | " + " | ".join(f"{t:.0f} ms" for t in tstops) + " |",
             "|---|" + "---|" * len(tstops)]
    for i, slope in enumerate(slopes):
        mark = " (configured)" if configured_slope is not None and slope == configured_slope else ""
        lines.append(f"| {slope:g}{mark} | " + " | ".join(
            f"{sens[i, j].max():.3g} ({np.median(sens[i, j]):.3g})"
            for j in range(len(tstops))) + " |")
    return GRADIENT_HORIZON.publish(ds, out, "\n".join(lines), table)
