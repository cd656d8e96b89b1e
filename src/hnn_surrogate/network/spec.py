"""hnn-core networks from the ``network`` config section: model, drives, condition, seed.

A *scenario* names a set of drives and a duration (``rhythm``: Poisson noise on
proximal synapses; ``evoked``: hnn-core's ERP drives); a *condition* names a
change to the connectivity (``l5_inhibition_up``: the L5 basket -> L5
pyramidal GABA-A gain raised); a *seed* sets every drive's ``event_seed``.
Every simulator builds its network with ``build_network`` from the same spec,
so NEURON and the surrogates see the same cells, connections and events.
"""

from __future__ import annotations

import copy

DRIVE_TYPES = {
    "poisson": "add_poisson_drive",
    "evoked": "add_evoked_drive",
    "bursty": "add_bursty_drive",
}


def event_seed(seed: int, drive_index: int) -> int:
    """``event_seed`` of drive ``drive_index`` in the run with ``seed``."""
    return 1000 * int(seed) + int(drive_index)


def build_network(spec: dict, *, scenario: str, condition: str, seed: int):
    """A fresh ``hnn_core.Network``.

    Parameters
    ----------
    spec : dict
        The validated ``network`` config section.
    scenario, condition : str
        Keys of ``spec["scenarios"]`` and ``spec["conditions"]``.
    seed : int
        Drive seed: drive ``i`` gets ``event_seed = 1000 * seed + i``.
    """
    import hnn_core

    for kind, name, table in (("scenario", scenario, spec["scenarios"]),
                              ("condition", condition, spec["conditions"])):
        if name not in table:
            raise KeyError(f"{kind} {name!r} is not in the config (known: {sorted(table)})")
    model = getattr(hnn_core, f"{spec['model']}_model")
    net = model(mesh_shape=tuple(spec["mesh_shape"]))
    add_drives(net, spec, scenario=scenario, seed=seed)
    apply_condition(net, spec, condition)
    return net


def add_drives(net, spec: dict, *, scenario: str, seed: int) -> None:
    """Add the drives of ``scenario`` to ``net``, drive ``i`` with
    ``event_seed = 1000 * seed + i`` (hnn-core's ERP drives: one seed each)."""
    drives = spec["scenarios"][scenario]["drives"]
    for i, drive in enumerate(drives):
        kind = drive["type"]
        params = copy.deepcopy(drive.get("params", {}))
        if kind == "erp":
            from hnn_core.network_models import add_erp_drives_to_jones_model

            add_erp_drives_to_jones_model(net, tstart=float(params.get("tstart", 0.0)))
            for j, name in enumerate(sorted(n for n in net.external_drives
                                            if n.startswith(("evprox", "evdist")))):
                net.external_drives[name]["event_seed"] = event_seed(seed, i) + j
            continue
        getattr(net, DRIVE_TYPES[kind])(drive["name"], event_seed=event_seed(seed, i), **params)


def apply_condition(net, spec: dict, condition: str, *, drives_only: bool = False) -> None:
    """Multiply the gains of ``condition``'s connections of ``net`` (with
    ``drives_only``, only those from a drive: a sparse network carries its
    cell-to-cell gains in its rules, ``network.sparse``)."""
    from hnn_core.network import pick_connection

    for change in spec["conditions"][condition]:
        if drives_only and change["src"] in net.cell_types:
            continue
        idx = pick_connection(net, src_gids=change["src"], target_gids=change["target"],
                              receptor=change.get("receptor"), loc=change.get("loc"))
        if not idx:
            raise KeyError(f"condition {condition!r}: no connection {change['src']} -> "
                           f"{change['target']} {change.get('receptor', '')}")
        for c in idx:
            net.connectivity[c]["nc_dict"]["gain"] *= float(change["gain"])


def scenario_tstop(spec: dict, scenario: str) -> float:
    return float(spec["scenarios"][scenario]["tstop"])
