"""How the rhythm drive was found: a grid of Poisson drives, in NEURON or the surrogates.

Each grid point replaces the rate and the AMPA weights (pyramidal, basket) of
the first drive of a scenario, runs the default network once in NEURON (this
process, one rank), or with the surrogates where checkpoints are given (a
screen: about 2 s a point instead of 3 min; what it finds is to be checked in
NEURON), and measures the aggregate dipole's spectral peak, band fractions and
the per-type rates with the comparison's own code. The result (``drive_sweep``
NetCDF + a printed table) is what the config's rhythm drive was chosen from;
README.md gives the table.
"""

from __future__ import annotations

import copy
import itertools
import logging

import numpy as np

from ..artifacts import DRIVE_SWEEP
from ..provenance import provenance_attrs
from .compare import BANDS, run_metrics

log = logging.getLogger(__name__)


def sweep_drive(spec, *, scenario, rates, pyramidal_weights, basket_weights, seed,
                transient_ms, out, table=None, checkpoints=None):
    """The grid ``rates`` x ``pyramidal_weights`` x ``basket_weights`` (Hz, uS, uS);
    in NEURON (``spec`` needs ``dt``), or with the surrogates of ``checkpoints``
    (what ``api.load_surrogates`` takes; loaded once). Rates and spectra leave out
    the first ``transient_ms``."""
    from .api import load_surrogates
    from .run import simulate_neuron, simulate_surrogate
    from .runs import run_dataset
    from .spec import build_network, scenario_tstop

    tstop = scenario_tstop(spec, scenario)
    if checkpoints is None:
        simulator = "neuron"

        def simulate(net):
            return simulate_neuron(net, tstop=tstop, dt=spec["dt"], bin_ms=spec["bin_ms"])
    else:
        simulator = "surrogate"
        loaded = load_surrogates(checkpoints)

        def simulate(net):
            return simulate_surrogate(net, tstop=tstop, surrogates=loaded,
                                      bin_ms=spec["bin_ms"])
    grid = list(itertools.product(rates, pyramidal_weights, basket_weights))
    rows = []
    for i, (rate, wp, wb) in enumerate(grid):
        sp = copy.deepcopy(spec)
        params = sp["scenarios"][scenario]["drives"][0].setdefault("params", {})
        params["rate_constant"] = float(rate)
        params["weights_ampa"] = {"L2_pyramidal": wp, "L5_pyramidal": wp,
                                  "L2_basket": wb, "L5_basket": wb}
        net = build_network(sp, scenario=scenario, condition="default", seed=seed)
        ds = run_dataset(simulate(net), net, spec=sp, scenario=scenario, condition="default",
                         seed=seed)
        m = run_metrics(ds, transient_ms)
        rows.append(m)
        log.info("point %d/%d (%s): rate %g Hz, w_pyr %g, w_basket %g uS -> peak %.1f Hz, "
                 "alpha %.2f (%.1f s)", i + 1, len(grid), simulator, rate, wp, wb,
                 m["peak_freq"], m["bands"]["alpha"], ds.attrs["wall_s"])
        # the points so far, rewritten after each: a killed sweep keeps what it measured
        result = _sweep_dataset(grid[: len(rows)], rows, scenario, tstop, seed, simulator,
                                transient_ms)
        DRIVE_SWEEP.write(result, out)
    cell_types = list(rows[0]["rates"])
    lines = [f"Poisson drive sweep ({simulator}, scenario {scenario}, {tstop:.0f} ms, "
             f"seed {seed})",
             "", "| rate (Hz) | w pyr (uS) | w basket (uS) | peak (Hz) | alpha | beta | gamma | "
             + " | ".join(f"{c} (Hz)" for c in cell_types) + " |",
             "|" + "---|" * (7 + len(cell_types))]
    for g, r in zip(grid, rows):
        lines.append(f"| {g[0]:g} | {g[1]:g} | {g[2]:g} | {r['peak_freq']:.1f} | "
                     + " | ".join(f"{r['bands'][b]:.2f}" for b in BANDS) + " | "
                     + " | ".join(f"{r['rates'][c]:.1f}" for c in cell_types) + " |")
    return DRIVE_SWEEP.publish(result, out, "\n".join(lines), table)


def _sweep_dataset(grid, rows, scenario, tstop, seed, simulator, transient_ms):
    cell_types = list(rows[0]["rates"])
    attrs = provenance_attrs(seed=int(seed))
    attrs.update(scenario=scenario, tstop_ms=float(tstop), simulator=simulator,
                 transient_ms=float(transient_ms))
    return DRIVE_SWEEP.build(
        {"rate_constant": np.array([g[0] for g in grid], np.float64),
         "weight_pyramidal": np.array([g[1] for g in grid], np.float64),
         "weight_basket": np.array([g[2] for g in grid], np.float64),
         "peak_freq": np.array([r["peak_freq"] for r in rows]),
         "band_fraction": np.array([[r["bands"][b] for b in BANDS] for r in rows]),
         "rate": np.array([[r["rates"][c] for c in cell_types] for r in rows])},
        {"band": list(BANDS), "cell_type": cell_types}, attrs)
