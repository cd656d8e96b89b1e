"""hnn-core networks at any size: hnn-core's connection rules, wired sparsely within a cutoff.

hnn-core connects every cell-to-cell type all to all with a Gaussian distance
rule: pair (i, j) gets weight ``A_weight * exp(-d^2 / lamtha^2)`` and delay
``A_delay / exp(-d^2 / lamtha^2)``, d the in-plane distance. It enumerates
every pair (python lists of gids), so its networks cannot be built past a few
thousand cells. Here:

* the *rules* are read from hnn-core's own model at the config's mesh
  (``build_network``: every connection's type, location, receptor,
  ``A_weight``, ``A_delay``, ``lamtha``, gain after the condition, autapses);
* the *cells and drives* of the large network are hnn-core's: a
  ``hnn_core.Network`` at the large ``mesh_shape`` (its positions and gids),
  the scenario's drives added by hnn-core, their events drawn with hnn-core's
  seeds (``hnn_compat.instantiate_drives``);
* the *pairs* of each rule are those within the cutoff radius, found with a
  k-d tree (scipy's ``cKDTree``: pairs within a radius without enumerating all
  pairs, in C), then weights and delays from hnn-core's own distance rule.

The cutoff radius of a connection is ``min(lamtha_multiple * lamtha,
max_um)`` (in um, hnn-core's ``inplane_distance`` units). A pair at that
distance has weight ``exp(-lamtha_multiple^2)`` of the nearest pair's; the cap
bounds the long-range (basket, lamtha 20-70) connections, which hnn-core's rule
spreads over the whole of any mesh. Either can be ``None`` (no limit).

Given the run's ``tstop``, pairs further than ``lamtha sqrt(ln(tstop / A_delay))``
are left out as well, at no cost in accuracy: their delay (``A_delay`` times
``exp(d^2 / lamtha^2)``) outlasts the run, so no event of theirs is ever
delivered, in NEURON or here (2.6 lamtha for 1 s). With ``lamtha_multiple``
``None`` and ``max_um`` at least the grid's diagonal, the wiring equals
hnn-core's dense one entry by entry (tests/test_scaling.py): on the default
10 x 10 grid, ``max_um`` 13 is exact.

Two ways out, the same pairs:

* ``sparse_wiring``: the surrogates' ``Wiring`` straight from numpy arrays
  (any size);
* ``build_sparse_network(..., connect=True)``: the pairs added to the
  ``hnn_core.Network`` through its ``add_connection`` (one target list per
  source), for NEURON, at the sizes its python lists allow.

Connection probability below 1 is refused: hnn-core draws it over the list of
every pair (``rng.choice`` with its ``conn_seed``), which a sparse build cannot
reproduce.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from .wiring import Connection, NetworkError, Wiring, build_wiring, synapse_entries, synapses_csr


@dataclass(frozen=True)
class Cutoff:
    """Distance limit of every cell-to-cell connection (``None``: no limit)."""

    lamtha_multiple: float | None = None
    max_um: float | None = None

    def radius(self, lamtha: float, inplane_distance: float) -> float:
        r = math.inf
        if self.lamtha_multiple is not None:
            r = min(r, self.lamtha_multiple * lamtha * inplane_distance)
        if self.max_um is not None:
            r = min(r, self.max_um)
        return r

    @classmethod
    def from_config(cls, section: dict | None) -> Cutoff:
        section = section or {}
        return cls(section.get("lamtha_multiple"), section.get("max_um"))


def rule_radius(net, rule: dict, cutoff: Cutoff, tstop: float | None = None) -> float:
    """The radius (um) within which ``rule``'s pairs are kept: the cutoff's, and,
    given ``tstop``, no further than a pair whose delay still ends within the run."""
    nc = rule["nc_dict"]
    lamtha = nc["lamtha"] * net._inplane_distance
    radius = cutoff.radius(nc["lamtha"], net._inplane_distance)
    if tstop is not None:
        ratio = tstop / nc["A_delay"]
        radius = min(radius, lamtha * math.sqrt(math.log(ratio)) if ratio > 1 else 0.0)
    return radius


def connection_rules(net) -> list[dict]:
    """hnn-core's cell-to-cell connections of ``net`` as rules (no pairs)."""
    rules = []
    for c, conn in enumerate(net.connectivity):
        if conn["src_type"] not in net.cell_types:
            continue
        if conn["probability"] < 1.0:
            raise NetworkError(
                f"connection {c} ({conn['src_type']}->{conn['target_type']} {conn['receptor']}) "
                f"has probability {conn['probability']}: hnn-core draws it over the list of all "
                "pairs, which a sparse network cannot reproduce")
        rules.append({"src_type": conn["src_type"], "target_type": conn["target_type"],
                      "loc": conn["loc"], "receptor": conn["receptor"],
                      "nc_dict": copy.deepcopy(dict(conn["nc_dict"])),
                      "allow_autapses": bool(conn["allow_autapses"])})
    return rules


def build_sparse_network(spec: dict, *, scenario: str, condition: str, seed: int,
                         mesh: int, cutoff: Cutoff, connect: bool = False,
                         tstop: float | None = None):
    """The config's network at a ``mesh`` x ``mesh`` grid: ``(net, rules)``.

    ``net`` holds hnn-core's cells and the scenario's drives (and, with
    ``connect``, the cell-to-cell pairs within the cutoff, through hnn-core's
    ``add_connection``, before the drives as in hnn-core's model; a rule
    with no pair within the cutoff adds none); ``rules`` the cell-to-cell
    connections, the condition applied. ``tstop``: leave out the pairs whose
    delay outlasts the run (``rule_radius``).
    """
    from hnn_core import Network

    from .spec import add_drives, apply_condition, build_network

    ref = build_network(spec, scenario=scenario, condition=condition, seed=seed)
    rules = connection_rules(ref)
    net = Network(ref._params, mesh_shape=(int(mesh), int(mesh)),
                  cell_types=copy.deepcopy(ref.cell_types))
    if connect:
        for c, rule in enumerate(rules):
            pairs = rule_pairs(net, rule, cutoff, tstop)
            if not pairs.size:      # hnn-core takes no empty connection: none to add
                continue
            src, starts = np.unique(pairs[:, 0], return_index=True)
            targets = np.split(pairs[:, 1], starts[1:])
            nc = rule["nc_dict"]
            net.add_connection([int(g) for g in src], [t.tolist() for t in targets],
                               rule["loc"], rule["receptor"], nc["A_weight"], nc["A_delay"],
                               nc["lamtha"], allow_autapses=rule["allow_autapses"])
            net.connectivity[-1]["nc_dict"]["gain"] = nc["gain"]
    add_drives(net, spec, scenario=scenario, seed=seed)
    apply_condition(net, spec, condition, drives_only=True)
    return net, rules


def _xy(net, cell_type) -> np.ndarray:
    return np.asarray(net.pos_dict[cell_type], dtype=float).reshape(-1, 3)[:, :2]


def rule_pairs(net, rule: dict, cutoff: Cutoff, tstop: float | None = None) -> np.ndarray:
    """(n, 2) presynaptic and target gids of ``rule`` within ``rule_radius``, in
    hnn-core's order (by presynaptic gid, then target gid)."""
    src_xy, tgt_xy = _xy(net, rule["src_type"]), _xy(net, rule["target_type"])
    radius = rule_radius(net, rule, cutoff, tstop)
    if math.isinf(radius):
        i, j = (a.ravel() for a in np.meshgrid(np.arange(len(src_xy)), np.arange(len(tgt_xy)),
                                                indexing="ij"))
    else:
        from scipy.spatial import cKDTree

        # a little beyond the radius, then hnn-core's own distance decides
        found = cKDTree(src_xy).sparse_distance_matrix(cKDTree(tgt_xy), radius * (1 + 1e-9),
                                                       output_type="ndarray")
        i, j = found["i"].astype(np.int64), found["j"].astype(np.int64)
        d = np.sqrt((tgt_xy[j, 0] - src_xy[i, 0]) ** 2 + (tgt_xy[j, 1] - src_xy[i, 1]) ** 2)
        keep = d <= radius
        i, j = i[keep], j[keep]
        order = np.lexsort((j, i))
        i, j = i[order], j[order]
    src = i + net.gid_ranges[rule["src_type"]][0]
    tgt = j + net.gid_ranges[rule["target_type"]][0]
    if not rule["allow_autapses"]:
        keep = src != tgt
        src, tgt = src[keep], tgt[keep]
    return np.column_stack([src, tgt]).astype(np.int64)


def count_entries(net, rules: list[dict], cutoff: Cutoff, tstop: float | None = None) -> int:
    """Synapse entries (pair x synapse) a sparse wiring of ``net`` will hold, counted
    without building them (for the memory check before a run)."""
    from scipy.spatial import cKDTree

    from ..cells.channels import cell_template
    from .wiring import _target_sections

    total = 0
    for rule in rules:
        src_xy, tgt_xy = _xy(net, rule["src_type"]), _xy(net, rule["target_type"])
        radius = rule_radius(net, rule, cutoff, tstop)
        n = (len(src_xy) * len(tgt_xy) if math.isinf(radius)
             else int(cKDTree(src_xy).count_neighbors(cKDTree(tgt_xy), radius)))
        k = len(_target_sections(cell_template(rule["target_type"]), rule["loc"]))
        total += n * k
    return total


def sparse_wiring(net, rules: list[dict], cutoff: Cutoff, *, tstop: float,
                  bin_ms: float) -> Wiring:
    """The surrogates' wiring of ``net`` (cells and instantiated drives, no
    cell-to-cell connections) with ``rules`` wired within ``cutoff``: what
    ``build_wiring`` gives for the same network connected by hnn-core."""
    from ..cells.channels import channel_index
    from ..hnn_compat import gaussian_connection
    from .wiring import _target_sections

    if any(c["src_type"] in net.cell_types for c in net.connectivity):
        raise NetworkError("sparse_wiring wants a network without cell-to-cell connections "
                           "(its rules wire them)")
    base = build_wiring(net, tstop=tstop, bin_ms=bin_ms)       # the drives
    n_rules = len(rules)
    for d in base.drives.values():
        d.conn += n_rules
    connections, parts, clamped = [], {t: [] for t in base.cell_types}, 0
    n_bins = base.n_bins
    for c, rule in enumerate(rules):
        src_type, tgt_type, nc = rule["src_type"], rule["target_type"], rule["nc_dict"]
        connections.append(Connection(src_type, tgt_type, rule["loc"], rule["receptor"],
                                      float(nc["A_weight"] * nc["gain"])))
        chan = channel_index(tgt_type)
        template = net.cell_types[tgt_type]["cell_object"]
        channels = [chan[f"{sec}_{rule['receptor']}"]
                    for sec in _target_sections(template, rule["loc"])]
        pairs = rule_pairs(net, rule, cutoff, tstop)
        if not pairs.size:
            continue
        src0, tgt0 = net.gid_ranges[src_type][0], net.gid_ranges[tgt_type][0]
        sp = _xy(net, src_type)[pairs[:, 0] - src0]
        tp = _xy(net, tgt_type)[pairs[:, 1] - tgt0]
        g, delay = gaussian_connection((sp[:, 0], sp[:, 1]), (tp[:, 0], tp[:, 1]),
                                       dict(nc, A_weight=1.0), net)
        del sp, tp
        entries, n_clamped = synapse_entries(pairs, pairs[:, 1] - tgt0, np.asarray(g, float),
                                             np.asarray(delay, float), c, channels,
                                             base.n_channels[tgt_type], n_bins, bin_ms)
        clamped += n_clamped
        parts[tgt_type].append(entries)
        del pairs, g, delay
    synapses = {t: synapses_csr(parts.pop(t), base.n_gids) for t in base.cell_types}
    return Wiring(cell_types=base.cell_types, gid_ranges=base.gid_ranges,
                  n_channels=base.n_channels, connections=connections + base.connections,
                  synapses=synapses, drives=base.drives, n_bins=n_bins, bin_ms=base.bin_ms,
                  tstop=base.tstop, n_drive_events=base.n_drive_events,
                  min_delay_clamped=clamped)
