"""The ``network_prior`` regime: every cell of NEURON network runs drawn from a prior.

The random regimes feed lone cells input no network delivers, and the replay
regime takes 35 cells from a handful of the comparison's scenarios. This regime
draws whole networks from a prior over what the network stage and the
connectivity fits visit, runs each in NEURON (hnn-core, MPI ranks inside one
job), and makes every cell of every run one training example:

* every connection type's gain (source type, target type, receptor: hnn-core's
  connectivity, all locations of a type together) log-uniform in ``gain``;
* Poisson noise on the proximal synapses of every cell in every run but the
  alpha drive's alone (below; rate and per-type AMPA weights log-uniform, the
  weights down to 1/4 of the rhythm scenario's), and with a probability
  distal Poisson noise; with a probability hnn-core's ERP drives (its
  ``add_erp_drives_to_jones_model``, started at a uniform time in
  ``evoked.tstart``, so a short response sits inside a full-length run
  instead of being padded with rest; its last input comes about 140 ms after
  the start, so a start later than ``tstop - 170`` ms is cut by the run's
  end: the default 0-800 ms of 1000 never is); with a
  probability hnn-core's 10 Hz bursty alpha drive (its alpha example's, burst
  rate and weight drawn around it), and with a further probability
  (``alpha.alone_probability``) that drive without the Poisson noise, as in
  hnn-core's alpha example and the fits' alpha start;
* drive seeds ``seeds_from + run``, apart from the comparison's and the replay
  regime's (the config check refuses an overlap).

The ``alpha_start`` regime (``network_prior.alpha_start``) draws further runs
the same way from a narrower prior (``regime_prior``): every run the fits'
alpha start, hnn-core's alpha drive alone (no noise, no ERP), its weight
log-uniform in ``alpha_start.weight`` (by default 1-4x the alpha example's,
where the fits go and NEURON begins to fire) and the gains in
``alpha_start.gain``. The network_prior runs hold few such runs (alpha alone in
a quarter of them, its weight over 1/4-4x), and at the fits' start the
surrogates' error is exactly there. A regime of its own, with its own seeds and
generators, so that turning it on changes no network_prior run or split.

Each run is drawn from ``default_rng([seed, crc32("network_prior"), run])``
alone, so run ``i`` is the same whatever the number of runs, jobs or ranks. A
cell's input is what the wiring delivers (``network.replay.received_events``:
hnn-core's weights, delays and the run's spikes, the surrogates' own input);
its targets are its soma voltage and own dipole recorded in the network run
itself (replayed alone the cell fires as in the network: tests). The merge
splits by run (``run`` variable), so whole runs are held out.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np

from .inputs import name_code

log = logging.getLogger(__name__)

REGIME = "network_prior"
ALPHA_START = "alpha_start"
CLOSED_LOOP = "closed_loop"
REGIMES = (REGIME, ALPHA_START)
"""The regimes whose runs are NEURON network runs (closed_loop's are the surrogates')."""

ALPHA_DRIVE = dict(tstart=50.0, burst_std=20.0, numspikes=2, spike_isi=10.0, n_drive_cells=10,
                   cell_specific=False, location="proximal",
                   synaptic_delays={"L2_pyramidal": 0.1, "L5_pyramidal": 1.0})
"""hnn-core's alpha example drive (burst rate and weights drawn per run)."""

DISTAL_TARGETS = ("L2_pyramidal", "L5_pyramidal", "L2_basket")
"""Cell types with distal synapses (L5 basket cells have none)."""


def _log_uniform(rng, lo_hi) -> float:
    lo, hi = (float(x) for x in lo_hi)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def connection_types(net) -> list[tuple[str, str, str]]:
    """Sorted (source type, target type, receptor) of ``net``'s cell-to-cell connections."""
    cells = set(net.cell_types)
    return sorted({(c["src_type"], c["target_type"], c["receptor"]) for c in net.connectivity
                   if c["src_type"] in cells})


_DISCARDED = {"poisson": {"rate_hz": [1.0, 1.0], "weight_pyramidal": [1.0, 1.0],
                          "weight_basket": [1.0, 1.0], "distal_probability": 0.0},
              "evoked": {"probability": 0.0, "tstart": [0.0, 0.0]}}
"""alpha_start's noise and ERP: drawn (one number each, as every run draws them)
and thrown away, so fixed: network_prior's noise and ERP ranges stay out of
its parameter file, and changing them reruns none of its runs."""


def regime_prior(prior: dict, regime: str = REGIME) -> dict:
    """What a run of ``regime`` is drawn from, given the validated
    ``cells.network_prior`` section: its parameter file's content (neither the
    number of runs nor the ranks; network_prior's as it was before alpha_start
    and closed_loop existed). alpha_start's is network_prior's with the alpha
    drive always on and alone, no ERP, its own weights, gains and seeds,
    network_prior's burst rates, and ``regime`` named: nothing else of
    network_prior's. closed_loop's is network_prior's prior with its own seeds
    and ``regime`` named (its own generator: other networks from the same prior;
    which surrogates run them is the job's input, not the prior's)."""
    base = {k: v for k, v in prior.items()
            if k not in ("n_runs", "mpi_ranks", ALPHA_START, CLOSED_LOOP)}
    if regime == REGIME:
        return base
    if regime == CLOSED_LOOP:
        return {**base, "regime": CLOSED_LOOP,
                "seeds_from": prior[CLOSED_LOOP]["seeds_from"]}
    if regime != ALPHA_START:
        raise ValueError(f"regime {regime!r}: not one of {', '.join((*REGIMES, CLOSED_LOOP))}")
    start = prior[ALPHA_START]
    return {"regime": ALPHA_START, "gain": list(start["gain"]),
            "seeds_from": start["seeds_from"], **_DISCARDED,
            "alpha": {"probability": 1.0, "alone_probability": 1.0,
                      "burst_rate_hz": list(base["alpha"]["burst_rate_hz"]),
                      "weight": list(start["weight"])}}


def draw_run(prior: dict, *, seed: int, run: int, tstop: float, conn_types) -> dict:
    """Run ``run``'s drives, gains and drive seed: a plain, JSON-able dict.

    ``prior``: a ``regime_prior``; its ``regime`` (network_prior if absent)
    names the run's generator, so each regime's runs are their own.

    Returns ``{"drive_seed", "drives", "gains"}``: ``drives`` in the network
    spec's scenario format (``network.spec.build_network``), ``gains`` a list of
    ``{src, target, receptor, gain}`` (a condition's format).
    """
    regime = prior.get("regime", REGIME)
    rng = np.random.default_rng([int(seed), name_code(regime), int(run)])
    poisson = prior["poisson"]
    rate = _log_uniform(rng, poisson["rate_hz"])
    w_pyr, w_bas = (_log_uniform(rng, poisson[k]) for k in ("weight_pyramidal", "weight_basket"))
    drives = [{
        "type": "poisson", "name": "proximal_noise",
        "params": {"rate_constant": rate, "location": "proximal", "synaptic_delays": 0.1,
                   "weights_ampa": {"L2_pyramidal": w_pyr, "L5_pyramidal": w_pyr,
                                    "L2_basket": w_bas, "L5_basket": w_bas}},
    }]
    # Every draw is made whether or not its drive is used, so a probability's
    # change moves no other run's numbers.
    distal = rng.uniform() < poisson["distal_probability"]
    d_rate = _log_uniform(rng, poisson["rate_hz"])
    d_pyr, d_bas = (_log_uniform(rng, poisson[k]) for k in ("weight_pyramidal", "weight_basket"))
    if distal:
        drives.append({
            "type": "poisson", "name": "distal_noise",
            "params": {"rate_constant": d_rate, "location": "distal", "synaptic_delays": 0.1,
                       "weights_ampa": {t: (d_pyr if "pyramidal" in t else d_bas)
                                        for t in DISTAL_TARGETS}},
        })
    evoked = rng.uniform() < prior["evoked"]["probability"]
    lo, hi = prior["evoked"]["tstart"]
    tstart = float(rng.uniform(lo, min(hi, tstop)))
    if evoked:
        drives.append({"type": "erp", "params": {"tstart": tstart}})
    alpha = rng.uniform() < prior["alpha"]["probability"]
    burst_rate = float(rng.uniform(*prior["alpha"]["burst_rate_hz"]))
    w_alpha = _log_uniform(rng, prior["alpha"]["weight"])
    if alpha:
        drives.append({"type": "bursty", "name": "alpha_prox",
                       "params": {**copy.deepcopy(ALPHA_DRIVE), "burst_rate": burst_rate,
                                  "weights_ampa": {"L2_pyramidal": w_alpha,
                                                   "L5_pyramidal": w_alpha}}})
    gains = [{"src": s, "target": t, "receptor": r, "gain": _log_uniform(rng, prior["gain"])}
             for s, t, r in conn_types]
    # drawn last, so that the draws above are those of a prior without it
    if rng.uniform() < prior["alpha"]["alone_probability"] and alpha:
        drives = [d for d in drives if d["type"] != "poisson"]
    return {"drive_seed": int(prior["seeds_from"]) + int(run), "drives": drives, "gains": gains}


def prior_network(spec: dict, draw: dict):
    """The ``hnn_core.Network`` of one drawn run (``spec``: model and grid)."""
    from ..network.spec import build_network

    run_spec = {**spec, "scenarios": {"prior": {"drives": draw["drives"]}},
                "conditions": {"prior": draw["gains"]}}
    return build_network(run_spec, scenario="prior", condition="prior", seed=draw["drive_seed"])


def base_network(spec: dict):
    import hnn_core

    return getattr(hnn_core, f"{spec['model']}_model")(mesh_shape=tuple(spec["mesh_shape"]))


def simulate_prior_run(*, spec: dict, prior: dict, run: int, seed: int, tstop: float, dt: float,
                       bin_ms: float, delay: float, store_fine: bool,
                       record_sections: bool = False, outs: dict | None = None):
    """Simulate run ``run`` of ``prior`` (a ``regime_prior``: network_prior's or
    alpha_start's runs) in NEURON (call on every MPI rank) and, on rank 0, write
    one ``cell_sims`` shard per cell type (``outs``: {cell type: path}).

    Returns {cell type: Dataset} on rank 0, None elsewhere.
    """
    from ..artifacts import CELL_SIMS
    from ..network.ground_truth import run_neuron
    from ..network.replay import received_events
    from ..network.run import network_wiring
    from ..provenance import config_hash
    from .channels import channels, sections
    from .inputs import bin_events, bin_spikes, bin_trace
    from .shard import assemble, bin_sections

    draw = draw_run(prior, seed=seed, run=run, tstop=tstop,
                    conn_types=connection_types(base_network(spec)))
    net = prior_network(spec, draw)
    t0 = time.perf_counter()
    res = run_neuron(net, tstop=tstop, dt=dt, record_cells=True,
                     record_sections=record_sections)
    if res is None:
        return None
    wall = time.perf_counter() - t0
    log.info("run %d: NEURON %.1f s on %d ranks, %d spikes; drives %s", run, wall,
             res["n_ranks"], res["spike_times"].size, [d["type"] for d in draw["drives"]])
    net = prior_network(spec, draw)  # fresh drives: the wiring draws them as NEURON did
    wiring = network_wiring(net, tstop=tstop, bin_ms=bin_ms)
    n_bins, n_fine = int(round(tstop / bin_ms)), int(round(tstop / dt))
    st, sg = res["spike_times"], res["spike_gids"]
    regime = prior.get("regime", REGIME)
    params = dict(regime=regime, spec=spec, prior=prior, run=run, tstop=tstop, dt=dt,
                  bin_ms=bin_ms, delay=delay, seed=seed)
    if record_sections:  # off: the hash of the data without sections, as before
        params["record_sections"] = True
    written = {}
    for cell_type in wiring.cell_types:
        gids = list(wiring.gid_ranges[cell_type])
        results = []
        for gid in gids:
            ch, arrival, w = received_events(wiring, gid, st, sg)
            v = res["v_soma"][gid]
            out = {
                "inputs": bin_events(ch, arrival, w, n_channels=len(channels(cell_type)),
                                     n_bins=n_bins, bin_ms=bin_ms),
                "v_soma": bin_trace(v, dt=dt, n_bins=n_bins, bin_ms=bin_ms),
                "spike_time": st[sg == gid],
                "event_channel": ch, "event_time": np.maximum(arrival - delay, 0.0),
                "event_weight": w,
            }
            out["spike_count"] = bin_spikes(out["spike_time"], n_bins=n_bins, bin_ms=bin_ms)
            if gid in res["cell_dipole"]:
                out["dipole"] = bin_trace(res["cell_dipole"][gid], dt=dt, n_bins=n_bins,
                                          bin_ms=bin_ms)
            if record_sections:
                vsec = res["v_section"][gid]
                out["v_section"] = bin_sections([vsec[s] for s in sections(cell_type)], dt=dt,
                                                n_bins=n_bins, bin_ms=bin_ms)
            if store_fine:
                out["v_soma_fine"] = v[:n_fine]
                if "dipole" in out:
                    out["dipole_fine"] = res["cell_dipole"][gid][:n_fine]
            results.append(out)
        first = run * len(gids)
        ds = assemble(results, cell_type=cell_type, regime_name=regime,
                      indices=range(first, first + len(gids)), tstop=tstop, dt=dt,
                      bin_ms=bin_ms, delay=delay, seed=seed, params_hash=config_hash(params),
                      runs=np.full(len(gids), run),
                      extra_attrs={"mpi_ranks": res["n_ranks"], "wall_s": wall,
                                   "network_run": run, "drive_seed": draw["drive_seed"],
                                   "drives": ",".join(d["type"] for d in draw["drives"])})
        if outs is not None:
            CELL_SIMS.write(ds, outs[cell_type])
        written[cell_type] = ds
        log.info("run %d: %d %s cells, %.1f spikes/cell/s", run, len(gids), cell_type,
                 ds["n_spikes"].values.mean() / (tstop / 1000.0))
    return written
