"""Every private part of hnn-core this project uses, in one place.

hnn-core offers no public way to draw a network's drive events without
simulating it, to apply its dipole post-processing to another simulator's
dipole, to read its distance rule, or to run one trial of a network in NEURON
without its backends (whose ``MPIBackend`` kills every ``nrniv`` on the
machine). The project needs each of these, so it calls hnn-core's private
functions and attributes: here and nowhere else. A new hnn-core release is
one file to check: run the test suite, which exercises each of these against
hnn-core in NEURON (wiring against NEURON's NetCons, replayed cells firing as
in the network, NEURON networks on 1 and 2 ranks).

Checked against hnn-core ``TESTED_VERSION``; another version logs a warning on
first use.
"""

from __future__ import annotations

import functools
import logging

TESTED_VERSION = "0.6.1"


@functools.cache
def _check_version() -> None:
    import hnn_core

    if hnn_core.__version__ != TESTED_VERSION:
        logging.getLogger(__name__).warning(
            "hnn-core %s: this project's use of hnn-core's private API was checked against "
            "%s (hnn_surrogate/hnn_compat.py); run the test suite before trusting results",
            hnn_core.__version__, TESTED_VERSION)


def instantiate_drives(net, tstop: float, n_trials: int = 1) -> None:
    """Draw every drive's events as hnn-core's ``simulate_dipole`` does (same seeds,
    same numbers, same order).

    A drive whose ``dynamics`` leave ``tstop`` open ends at the simulation's.

    hnn-core's ``Network._instantiate_drives`` looks up each cell-specific drive
    cell's targets with ``pick_connection``, a scan of every connection's pairs:
    quadratic in the network's size (about 1 min at 4,320 cells, measured), so
    it cannot draw a 100,000-cell network's drives. This is its loop with that
    lookup read once from the drives' own connections; each drive cell's events
    still come from hnn-core's ``_drive_cell_event_times`` with hnn-core's seeds
    (tests/test_scaling.py checks the events equal hnn-core's).
    """
    from hnn_core.drives import _drive_cell_event_times

    _check_version()
    for drive in net.external_drives.values():
        dynamics = drive.get("dynamics", {})
        if "tstop" in dynamics and dynamics["tstop"] is None:
            dynamics["tstop"] = tstop
    net._reset_drives()
    # target types of each drive cell, in the order hnn-core's set gives them
    targets = {}
    for conn in net.connectivity:
        if conn["src_type"] in net.external_drives:
            for src_gid in conn["gid_pairs"]:
                targets.setdefault(int(src_gid), []).append(conn["target_type"])
    trial_seed_offset = net._n_gids
    for trial_idx in range(n_trials):
        for drive in net.external_drives.values():
            gids = net.gid_ranges[drive["name"]]
            event_times = []
            for gid in gids:
                common = dict(trial_idx=trial_idx, drive_cell_gid=gid - gids[0],
                              event_seed=drive["event_seed"], tstop=tstop,
                              trial_seed_offset=trial_seed_offset)
                if drive["cell_specific"]:
                    for target_type in set(targets.get(gid, ())):
                        event_times.append(_drive_cell_event_times(
                            drive["type"], drive["dynamics"], target_type=target_type,
                            **common))
                else:
                    event_times.append(_drive_cell_event_times(
                        drive["type"], drive["dynamics"], target_type="any", **common))
            drive["events"].append(event_times)


def renormalize_dipole(dpl, net) -> None:
    """hnn-core's own post-processing of a raw dipole (fAm), in place: its baseline
    renormalisation for the network's grid, then fAm -> nAm (``simulate_dipole``)."""
    _check_version()
    dpl._baseline_renormalize(net._N_pyr_x, net._N_pyr_y)
    dpl._convert_fAm_to_nAm()


def gaussian_connection(src_pos, tgt_pos, nc_dict: dict, net):
    """hnn-core's distance rule (weight and delay of each pair, ``lamtha`` decay),
    elementwise over arrays of positions ((x, y) tuples of arrays)."""
    from hnn_core.cell import _get_gaussian_connection

    _check_version()
    return _get_gaussian_connection(src_pos, tgt_pos, nc_dict,
                                    inplane_distance=net._inplane_distance)


def simulate_trial(net, *, tstop: float, dt: float, trial_idx: int = 0,
                   record_cells: bool = False, record_sections: bool = False,
                   timings: dict | None = None) -> dict:
    """One trial of ``net`` in NEURON by hnn-core's ``_simulate_single_trial``
    (its ``NetworkBuilder``, gids round-robin over the ranks; call on every rank).
    Returns hnn-core's trial dict (complete on rank 0).

    ``record_cells``: also record every cell's soma voltage (hnn-core's
    ``record_vsec="soma"``: ``data["vsec"][gid]["soma"]``) and every pyramidal
    cell's own dipole (fAm, ``data["cell_dipole"][gid]``), gathered to rank 0;
    hnn-core sums the cells' dipole vectors per type and gathers only the sum,
    so its ``aggregate_data`` is wrapped for this one trial to gather them first.
    ``record_sections`` (with ``record_cells``): every section's midpoint voltage
    instead of the soma's alone (``record_vsec="all"``: ``data["vsec"][gid][section]``).
    Otherwise no section voltage or current is recorded.

    ``timings``: a dict that gets ``build_s``, the seconds hnn-core's
    ``NetworkBuilder`` took to build the cells and connections on this rank.
    """
    import time

    from hnn_core import network_builder
    from hnn_core.network_builder import _simulate_single_trial

    _check_version()
    net._tstop, net._dt = tstop, dt
    for key in ("record_vsec", "record_isec", "record_ca"):
        net._params[key] = False
    net._verbose = False
    if timings is not None:
        init = network_builder.NetworkBuilder.__init__

        def timed_init(self, *args, **kwargs):
            start = time.perf_counter()
            init(self, *args, **kwargs)
            timings["build_s"] = time.perf_counter() - start

        network_builder.NetworkBuilder.__init__ = timed_init
        try:
            return simulate_trial(net, tstop=tstop, dt=dt, trial_idx=trial_idx,
                                  record_cells=record_cells, record_sections=record_sections)
        finally:
            network_builder.NetworkBuilder.__init__ = init
    if not record_cells:
        return _simulate_single_trial(net, tstop, dt, trial_idx)
    net._params["record_vsec"] = "all" if record_sections else "soma"
    builder = network_builder.NetworkBuilder
    aggregate = builder.aggregate_data
    cell_dipoles = {}

    def gather_cell_dipoles(self, n_samples):
        mine = {cell.gid: cell.dipole.as_numpy().copy()
                for cell in self._cells if hasattr(cell, "dipole")}
        for part in network_builder._PC.py_gather(mine, 0) or []:
            cell_dipoles.update(part)
        return aggregate(self, n_samples)

    builder.aggregate_data = gather_cell_dipoles
    try:
        data = _simulate_single_trial(net, tstop, dt, trial_idx)
    finally:
        builder.aggregate_data = aggregate
        net._params["record_vsec"] = False
    data["cell_dipole"] = cell_dipoles
    return data


def cell_synapse(cell, key: str):
    """The NEURON synapse (point process) ``key`` of a built hnn-core cell."""
    return cell._nrn_synapses[key]


def cell_section(cell, name: str):
    """The NEURON section ``name`` of a built hnn-core cell."""
    return cell._nrn_sections[name]
