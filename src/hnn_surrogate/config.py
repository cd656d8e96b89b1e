"""Configuration: load, fill defaults from the schema, validate, explain errors.

The schema (``config.schema.yaml`` beside this file; ``workflow/schemas/`` links
to it) gives every key a description and a default. ``validate_config`` returns
a complete config or raises ``ConfigError`` whose message names the offending
key, e.g. ``config key 'cells.regimes.mixed.n_sims': -1 is less than the
minimum of 1``.
"""

from __future__ import annotations

import copy
import functools
import math
from importlib import resources
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from . import CELL_TYPES, PYRAMIDAL_TYPES

SCHEMA_FILE = "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that the pipeline cannot run."""


def load_schema() -> dict:
    """The configuration JSON schema, as a dict."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text()
    return yaml.safe_load(text)


@functools.cache
def _all_defaults() -> dict:
    schema = load_schema()
    full: dict = {}
    _fill_defaults(full, schema, schema)
    return full


def schema_default(*keys: str):
    """The schema's default of a config key, e.g. ``schema_default("train", "lr")``.

    The schema is the one source of the defaults: dataclasses and functions
    that have a default for a config key take it from here.
    """
    value = _all_defaults()
    for k in keys:
        value = value[k]
    return copy.deepcopy(value)


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = dict(target)
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _fill_defaults(instance, schema: dict, root: dict) -> None:
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            _fill_defaults(instance[name], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in instance.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def _schema_errors(config: dict, schema: dict) -> list[str]:
    messages = []
    validator = Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for name in sorted(set(err.instance) - set(allowed)):
                key = _key([*err.path, name])
                hint = f" (known keys: {', '.join(allowed)})" if allowed else ""
                messages.append(f"config key '{key}' is not known{hint}")
            continue
        if "propertyNames" in err.schema_path and "enum" in err.schema:
            messages.append(f"config key '{_key([*err.path, err.instance])}' is not known "
                            f"(one of: {', '.join(err.schema['enum'])})")
            continue
        if "propertyNames" in err.schema_path:
            messages.append(f"config key '{_key(err.path)}': name {err.instance!r} must match "
                            f"{err.schema['pattern']!r} (lower case, digits, underscores)")
            continue
        messages.append(f"config key '{_key(err.path)}': {err.message}")
    return messages


def _semantic_errors(config: dict) -> list[str]:
    messages = []
    cells = config["cells"]

    def check_range(key, pair):
        if pair[0] > pair[1]:
            messages.append(f"config key '{key}': low {pair[0]} is above high {pair[1]}")

    for name, regime in cells["regimes"].items():
        base = f"cells.regimes.{name}"
        check_range(f"{base}.active_fraction", regime["active_fraction"])
        check_range(f"{base}.rate_hz", regime["rate_hz"])
        check_range(f"{base}.weight.excitatory", regime["weight"]["excitatory"])
        check_range(f"{base}.weight.inhibitory", regime["weight"]["inhibitory"])
        if regime.get("volley") is not None:
            check_range(f"{base}.volley.participation", regime["volley"]["participation"])
            check_range(f"{base}.volley.jitter_ms", regime["volley"]["jitter_ms"])
    def check_multiple(key, value, unit_key, unit):
        ratio = value / unit
        if not math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-6):
            messages.append(f"config key '{key}': {value} is not a whole multiple of "
                            f"{unit_key} ({unit})")

    check_multiple("cells.bin_ms", cells["bin_ms"], "cells.dt", cells["dt"])
    check_multiple("cells.tstop", cells["tstop"], "cells.bin_ms", cells["bin_ms"])
    if sum(cells["split"].values()) <= 0:
        messages.append("config key 'cells.split': fractions sum to 0")
    elif cells["split"]["train"] <= 0:
        messages.append("config key 'cells.split.train': must be > 0")
    regimes = set(cells["regimes"]) | {"replay", "network_prior"}
    for name in ("alpha_start", "closed_loop"):
        if cells["network_prior"][name]["n_runs"] > 0:
            regimes.add(name)
    fits = {"train.linear_fit_regimes": config["train"]["linear_fit_regimes"]}
    fits.update({f"train.per_cell_type.{t}.linear_fit_regimes": v["linear_fit_regimes"]
                 for t, v in config["train"]["per_cell_type"].items()
                 if "linear_fit_regimes" in v})
    for key, names in fits.items():
        unknown = [n for n in names if n not in regimes]
        if unknown:
            messages.append(f"config key '{key}': {', '.join(map(repr, unknown))} is not a "
                            f"regime (one of: {', '.join(sorted(regimes))})")
    if not cells["record_sections"]:
        weights = {"train.section_weight": config["train"]["section_weight"]}
        weights.update({f"train.per_cell_type.{t}.section_weight": v["section_weight"]
                        for t, v in config["train"]["per_cell_type"].items()
                        if "section_weight" in v})
        for key, w in weights.items():
            if w > 0:
                messages.append(f"config key '{key}': {w} trains on section voltages, "
                                f"which cells.record_sections: false does not record")
    for t in cells["cell_types"]:
        tc = train_config(config, t)
        late = [e for e in tc.get("snapshot_epochs", []) if e > tc["epochs"]]
        if late:
            messages.append(f"config key 'train.snapshot_epochs': {late} past train.epochs "
                            f"({tc['epochs']}) of {t}")
            break
    messages += _checkpoints_from_errors(config["train"]["checkpoints_from"],
                                         cells["cell_types"])
    closed = cells["network_prior"]["closed_loop"]
    if closed["n_runs"]:
        key = "cells.network_prior.closed_loop.surrogates"
        found = _checkpoints_from_errors(closed["surrogates"], cells["cell_types"], key)
        messages += found or _teacher_errors(closed["surrogates"], cells["bin_ms"], key)
    sc = config["evaluate"]["steps_curve"]
    # the steps curve's training runs on to its last epoch, past train.epochs if need be
    if sc["epochs"] and sc["cell_type"] not in cells["cell_types"]:
        messages.append(f"config key 'evaluate.steps_curve.cell_type': {sc['cell_type']} "
                        f"is not in cells.cell_types")
    lc = config["evaluate"]["learning_curve"]
    if lc["fractions"] and lc["cell_type"] not in cells["cell_types"]:
        messages.append(f"config key 'evaluate.learning_curve.cell_type': {lc['cell_type']!r} "
                        f"is not in cells.cell_types")
    for name in config["train"]["per_cell_type"]:
        if name not in cells["cell_types"]:
            messages.append(f"config key 'train.per_cell_type.{name}': {name} is not in "
                            f"cells.cell_types ({', '.join(cells['cell_types'])})")
    bench = config["benchmark"]
    if bench["regime"] not in cells["regimes"]:
        messages.append(f"config key 'benchmark.regime': {bench['regime']!r} is not one of "
                        f"the configured regimes ({', '.join(cells['regimes'])})")
    check_multiple("benchmark.tstop", bench["tstop"], "cells.bin_ms", cells["bin_ms"])
    messages += _network_errors(config["network"], cells, check_multiple)
    messages += _replay_errors(cells, config["network"])
    messages += _prior_errors(cells, config["network"], check_range)
    messages += _split_errors(cells)
    if config["optimize"]["enabled"]:
        messages += _optimize_errors(config["optimize"], config["network"], cells,
                                     check_multiple)
    if config["scaling"]["enabled"]:
        messages += _scaling_errors(config["scaling"], config["network"], cells, check_multiple)
    return messages


def _checkpoints_from_errors(folder, cell_types, name="train.checkpoints_from") -> list[str]:
    """A folder of surrogates (``train.checkpoints_from``, or the closed_loop
    regime's teacher) that is not one, lacks a cell type's checkpoint or is the
    pipeline's own output folder (the imported surrogates go there; the teacher
    would be trained on its own data); or cell types that give the surrogates no
    network to run (it needs all four)."""
    if folder is None:
        return []
    key = f"config key {name!r}"
    where = Path(folder).resolve()
    results = Path("results").resolve()
    if where == results / "train":
        why = ("where the imported surrogates go" if name == "train.checkpoints_from" else
               "what this data trains: copy a finished training elsewhere and name that")
        return [f"{key}: {folder} is results/train, {why}"]
    if name != "train.checkpoints_from" and results in where.parents:
        return [f"{key}: {folder} is in results/, which this pipeline writes (a surrogate "
                f"made from this data cannot make it): copy a finished training elsewhere "
                f"and name that"]
    if not where.is_dir():
        return [f"{key}: {folder} is not a folder ({where}: a relative path is taken "
                f"from Snakemake's working directory)"]
    missing = [f"{t}.pt" for t in cell_types if not (where / f"{t}.pt").is_file()]
    if missing:
        return [f"{key}: {folder} lacks {', '.join(missing)}"]
    if set(cell_types) != set(CELL_TYPES):
        return [f"{key}: a network of the surrogates (the network, optimize and scaling "
                f"stages, the closed_loop regime) needs all four cell types; "
                f"cells.cell_types has {', '.join(cell_types)}"]
    return []


def _teacher_errors(folder, bin_ms: float, name: str) -> list[str]:
    """The closed_loop regime's teacher: each file an hnn-surrogate checkpoint of its
    cell type with the cells stage's bin (a network of other bins cannot run)."""
    from .surrogate.checkpoint import CheckpointError, safe_load

    messages = []
    for t in CELL_TYPES:
        path = Path(folder) / f"{t}.pt"
        try:
            blob = safe_load(path)
        except CheckpointError as err:
            messages.append(f"config key {name!r}: {err}")
            continue
        if not isinstance(blob, dict) or blob.get("cell_type") != t:
            got = blob.get("cell_type") if isinstance(blob, dict) else None
            messages.append(f"config key {name!r}: {path} is not a {t} surrogate ({got!r})")
        elif not math.isclose(float(blob.get("bin_ms", -1.0)), bin_ms):
            messages.append(f"config key {name!r}: {path} has {blob.get('bin_ms')} ms bins, "
                            f"cells.bin_ms is {bin_ms}")
    return messages


def _scaling_errors(sc: dict, net: dict, cells: dict, check_multiple) -> list[str]:
    """The sweep's scenario exists, its times fit the bins. (Whether a size fits in
    memory is counted by its job before it builds anything.)"""
    messages = []
    if sc["scenario"] not in net["scenarios"]:
        messages.append(f"config key 'scaling.scenario': {sc['scenario']!r} is not one of "
                        f"network.scenarios ({', '.join(net['scenarios'])})")
    check_multiple("scaling.tstop", sc["tstop"], "cells.bin_ms", cells["bin_ms"])
    check_multiple("scaling.cutoff_tstop", sc["cutoff_tstop"], "cells.bin_ms", cells["bin_ms"])
    for key, tstop in (("tstop", sc["tstop"]), ("cutoff_tstop", sc["cutoff_tstop"])):
        if sc["transient_ms"] >= tstop:
            messages.append(f"config key 'scaling.transient_ms': {sc['transient_ms']} is not "
                            f"shorter than scaling.{key} ({tstop})")
    return messages


def _free_drive_errors(where: str, start: str, drive: dict, bounds, prior: dict) -> list[str]:
    """A freed drive's weights times the fit's bounds stay within the weights the
    network_prior regime trains the surrogates on: a fit must not step where
    the surrogates have never been."""
    trained = {"bursty": {"pyramidal": ("alpha.weight", prior["alpha"]["weight"])},
               "poisson": {"pyramidal": ("poisson.weight_pyramidal",
                                         prior["poisson"]["weight_pyramidal"]),
                           "basket": ("poisson.weight_basket", prior["poisson"]["weight_basket"])}}
    name, kinds = drive.get("name"), trained.get(drive["type"], {})
    params = drive.get("params", {})
    nmda = params.get("weights_nmda") or {}
    has_nmda = not isinstance(nmda, dict) or any(w != 0 for w in nmda.values())
    if not kinds or has_nmda:
        what = "NMDA" if kinds else f"{drive['type']}-drive"
        return [f"config key '{where}': frees drive {name!r} of start {start!r}, but the "
                f"network_prior regime trains the surrogates on no {what} weights to move"]
    weights = params.get("weights_ampa") or {}
    if not isinstance(weights, dict):
        return [f"config key '{where}': drive {name!r} of start {start!r} has weights_ampa "
                f"{weights!r}, not a mapping of cell type to weight (uS) as hnn-core's "
                f"add_{drive['type']}_drive takes"]
    lo, hi = bounds
    messages = []
    for target, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            messages.append(f"config key '{where}': drive {name!r} of start {start!r} onto "
                            f"{target}: weight {weight!r} is not a number (YAML reads 1e-4 as "
                            f"text; write 1.0e-4)")
            continue
        if weight == 0:                  # a gain on no weight moves nothing
            continue
        kind = ("pyramidal" if target in PYRAMIDAL_TYPES
                else "basket" if target in CELL_TYPES else None)
        if kind is None:
            messages.append(f"config key '{where}': drive {name!r} of start {start!r}: "
                            f"{target!r} is not an HNN cell type")
            continue
        if kind not in kinds:
            messages.append(f"config key '{where}': frees drive {name!r} of start {start!r}, "
                            f"whose weight onto {target} the network_prior regime never draws")
            continue
        key, (low, high) = kinds[kind]
        if weight * lo < low * (1 - 1e-9) or weight * hi > high * (1 + 1e-9):
            messages.append(
                f"config key '{where}': drive {name!r} of start {start!r} onto {target} "
                f"({weight:g} uS) times optimize.bounds [{lo}, {hi}] spans "
                f"[{weight * lo:.3g}, {weight * hi:.3g}] uS, beyond the "
                f"cells.network_prior.{key} [{low:g}, {high:g}] the surrogates were trained "
                f"on; widen that range or narrow the bounds")
    return messages


def _optimize_errors(opt: dict, net: dict, cells: dict, check_multiple) -> list[str]:
    """Every grid name exists, objectives are well formed, bounds and seeds make sense."""
    from .optimize.objective_config import BAND_KEYS, check_objective

    base = "optimize"
    messages = []
    for name, sc in opt["starts"].items():
        if name in net["scenarios"]:
            messages.append(f"config key '{base}.starts.{name}': also a network scenario; "
                            "rename one")
        messages += scenario_errors(f"{base}.starts.{name}", sc, cells, check_multiple)
    starts = {**net["scenarios"], **opt["starts"]}
    for key, table in (("start", starts), ("objective", opt["objectives"]),
                       ("free", opt["free_sets"])):
        for name in opt["grid"][key]:
            if name not in table:
                messages.append(f"config key '{base}.grid.{key}': {name!r} is not one of "
                                f"{', '.join(table) or '(none)'}")
    for name, obj in opt["objectives"].items():
        try:
            check_objective(obj, where=f"config key '{base}.objectives.{name}'",
                            bin_ms=cells["bin_ms"])
        except ValueError as err:
            messages.append(str(err))
    for name, free in opt["free_sets"].items():
        if not free.get("cells", True) and not free.get("drives"):
            messages.append(f"config key '{base}.free_sets.{name}': frees nothing (cells false, "
                            "no drives)")
    lo, hi = opt["bounds"]
    if not lo < 1.0 < hi:
        messages.append(f"config key '{base}.bounds': [{lo}, {hi}] must satisfy low < 1 < high")
    prior = cells["network_prior"]
    if prior["n_runs"] and (lo < prior["gain"][0] or hi > prior["gain"][1]):
        messages.append(f"config key '{base}.bounds': [{lo}, {hi}] reaches beyond the gains the "
                        f"surrogates were trained on (cells.network_prior.gain {prior['gain']})")
    shared = sorted(set(opt["seeds"]) & set(opt["check_seeds"]))
    if shared:
        messages.append(f"config key '{base}.check_seeds': {shared} are fit seeds (optimize.seeds)")
    rep = cells["replay"]
    for name in opt["grid"]["start"]:
        if rep["n_sims"] and name in rep["scenarios"]:
            seen = sorted(set(opt["check_seeds"]) & set(rep["seeds"]))
            if seen:
                messages.append(f"config key '{base}.check_seeds': {seen} are cells.replay.seeds "
                                f"of scenario {name!r}: its runs are training data, not fresh")
        if name not in starts:
            continue
        sc = starts[name]
        if sc["tstop"] <= opt["transient_ms"]:
            messages.append(f"config key '{base}.transient_ms': {opt['transient_ms']} ms is not "
                            f"shorter than start {name!r} ({sc['tstop']} ms)")
            continue
        resolution = 1000.0 / (sc["tstop"] - opt["transient_ms"])
        drives = {d.get("name"): d for d in sc["drives"]}
        for free in opt["grid"]["free"]:
            for drive in opt["free_sets"].get(free, {}).get("drives", []):
                if drive not in drives:
                    messages.append(f"config key '{base}.free_sets.{free}.drives': start {name!r} "
                                    f"has no drive {drive!r} ({', '.join(sorted(map(str, drives)))})")
                elif prior["n_runs"]:
                    messages += _free_drive_errors(f"{base}.free_sets.{free}.drives", name,
                                                   drives[drive], (lo, hi), prior)
        for oname in opt["grid"]["objective"]:
            obj = opt["objectives"].get(oname, {})
            for wkey in ("window_ms", "rate_window_ms"):
                length = obj.get(wkey)
                if isinstance(length, (int, float)) and length > sc["tstop"] - opt["transient_ms"]:
                    messages.append(
                        f"config key '{base}.objectives.{oname}.{wkey}': {length:g} ms is longer "
                        f"than the run of start {name!r} after the transient "
                        f"({sc['tstop'] - opt['transient_ms']:g} ms)")
            window = obj.get("window_ms")
            if window:          # its window's frequencies are checked with the objective
                continue
            for key in BAND_KEYS:
                if key in obj and obj[key][1] - obj[key][0] < resolution:
                    messages.append(
                        f"config key '{base}.objectives.{oname}.{key}': {obj[key]} Hz is narrower "
                        f"than the spectrum's resolution for start {name!r} ({resolution:.2f} Hz)")
    points = [f"{s}-{o}-{f}-lr{lr:g}" for s in opt["grid"]["start"] for o in opt["grid"]["objective"]
              for f in opt["grid"]["free"] for lr in opt["grid"]["lr"]]
    if len(set(points)) != len(points):
        messages.append(f"config key '{base}.grid': two points get one name ({points}); "
                        "give learning rates that differ in 6 significant digits")
    return messages


def _split_errors(cells: dict) -> list[str]:
    """Every regime gives each split at least one unit (simulation, or network run for the
    replay and network_prior regimes, which are split whole)."""
    from .datasets import SPLITS, split_counts

    units = {f"cells.regimes.{k}.n_sims": (r["n_sims"], "simulations")
             for k, r in cells["regimes"].items()}
    rep = cells["replay"]
    if rep["n_sims"]:
        n_runs = len(rep["scenarios"]) * len(rep["conditions"]) * len(rep["seeds"])
        units["cells.replay.seeds"] = (min(n_runs, rep["n_sims"]), "network runs holding "
                                       "replayed cells (scenarios x conditions x seeds, at most "
                                       "n_sims)")
    for key, section in (("cells.network_prior", cells["network_prior"]),
                         *((f"cells.network_prior.{name}", cells["network_prior"][name])
                           for name in ("alpha_start", "closed_loop"))):
        if section["n_runs"]:
            units[f"{key}.n_runs"] = (section["n_runs"], "network runs")
    messages = []
    for key, (n, what) in units.items():
        counts = split_counts(n, cells["split"])
        empty = [s for s, c in zip(SPLITS, counts) if c == 0 and cells["split"][s] > 0]
        if empty:
            messages.append(f"config key '{key}': {n} {what}, split by cells.split, leave "
                            f"{' and '.join(empty)} empty; each split needs one")
    return messages


def _prior_errors(cells: dict, net: dict, check_range) -> list[str]:
    """The network_prior regime's ranges are ranges and its seeds are its own."""
    prior, base = cells["network_prior"], "cells.network_prior"
    messages = []
    for name, key in (("network_prior", base), ("alpha_start", f"{base}.alpha_start"),
                      ("closed_loop", f"{base}.closed_loop")):
        if name in cells["regimes"]:
            messages.append(f"config key 'cells.regimes.{name}': the name is taken by the "
                            f"{name} regime ({key}); rename this regime")
    check_range(f"{base}.gain", prior["gain"])
    for key in ("rate_hz", "weight_pyramidal", "weight_basket"):
        check_range(f"{base}.poisson.{key}", prior["poisson"][key])
    check_range(f"{base}.evoked.tstart", prior["evoked"]["tstart"])
    if prior["evoked"]["tstart"][0] >= cells["tstop"]:
        messages.append(f"config key '{base}.evoked.tstart': starts from "
                        f"{prior['evoked']['tstart'][0]} ms, not before cells.tstop "
                        f"({cells['tstop']} ms)")
    check_range(f"{base}.alpha.burst_rate_hz", prior["alpha"]["burst_rate_hz"])
    check_range(f"{base}.alpha.weight", prior["alpha"]["weight"])
    start = prior["alpha_start"]
    check_range(f"{base}.alpha_start.weight", start["weight"])
    check_range(f"{base}.alpha_start.gain", start["gain"])
    seeds = range(prior["seeds_from"], prior["seeds_from"] + prior["n_runs"])
    start_seeds = range(start["seeds_from"], start["seeds_from"] + start["n_runs"])
    closed = prior["closed_loop"]
    closed_seeds = range(closed["seeds_from"], closed["seeds_from"] + closed["n_runs"])
    outside = (("network.seeds", net["seeds"]), ("cells.replay.seeds", cells["replay"]["seeds"]))
    for key, runs, used in (
            (base, seeds, outside),
            (f"{base}.alpha_start", start_seeds, (*outside, (f"{base} runs' seeds", seeds))),
            (f"{base}.closed_loop", closed_seeds,
             (*outside, (f"{base} runs' seeds", seeds),
              (f"{base}.alpha_start runs' seeds", start_seeds)))):
        for what, taken in used:
            shared = sorted(s for s in taken if s in runs)
            if shared:
                shown = shared if len(shared) <= 5 else [*shared[:5], "..."]
                messages.append(f"config key '{key}.seeds_from': runs' drive seeds "
                                f"{runs.start}..{runs.stop - 1} include {shown} of {what}")
    return messages


def _replay_errors(cells: dict, net: dict) -> list[str]:
    """The replay regime's runs exist, fit in a simulation, and are not the comparison's."""
    rep, base = cells["replay"], "cells.replay"
    messages = []
    if "replay" in cells["regimes"]:
        messages.append("config key 'cells.regimes.replay': the name is taken by the replay "
                        "regime (cells.replay); rename this regime")
    if rep["n_sims"] == 0:
        return messages
    for key, table in (("scenarios", net["scenarios"]), ("conditions", net["conditions"])):
        if not rep[key]:
            messages.append(f"config key '{base}.{key}': empty, but n_sims is {rep['n_sims']}")
        for name in rep[key]:
            if name not in table:
                messages.append(f"config key '{base}.{key}': {name!r} is not in network.{key} "
                                f"({', '.join(table)})")
    if not rep["seeds"]:
        messages.append(f"config key '{base}.seeds': empty, but n_sims is {rep['n_sims']}")
    shared = sorted(set(rep["seeds"]) & set(net["seeds"]))
    if shared:
        messages.append(f"config key '{base}.seeds': {shared} also in network.seeds: the "
                        f"comparison's runs would be training data")
    for name in rep["scenarios"]:
        if name in net["scenarios"] and net["scenarios"][name]["tstop"] > cells["tstop"]:
            messages.append(f"config key '{base}.scenarios': {name!r} lasts "
                            f"{net['scenarios'][name]['tstop']} ms, longer than cells.tstop "
                            f"({cells['tstop']} ms)")
    return messages


def scenario_errors(base: str, sc: dict, cells: dict, check_multiple) -> list[str]:
    """One scenario's (or fit start's) duration and drives, against hnn-core's API."""
    import inspect

    from hnn_core import Network

    messages = []
    check_multiple(f"{base}.tstop", sc["tstop"], "cells.bin_ms", cells["bin_ms"])
    for i, drive in enumerate(sc["drives"]):
        key = f"{base}.drives[{i}]"
        if drive["type"] == "erp":
            continue
        if "name" not in drive:
            messages.append(f"config key '{key}.name': a {drive['type']} drive needs a name")
        method = getattr(Network, f"add_{drive['type']}_drive")
        allowed = set(inspect.signature(method).parameters) - {"self", "name", "event_seed"}
        for param in drive.get("params", {}):
            if param not in allowed:
                messages.append(f"config key '{key}.params.{param}': not an argument of "
                                f"hnn-core's add_{drive['type']}_drive "
                                f"({', '.join(sorted(allowed))})")
    return messages


def _network_errors(net: dict, cells: dict, check_multiple) -> list[str]:
    """Scenario, drive and condition names and keys, checked against hnn-core's API."""
    messages = []
    if not net["scenarios"]:
        return ["config key 'network.scenarios': at least one scenario is needed"]

    ratio = cells["bin_ms"] / net["dt"]
    if abs(ratio - round(ratio)) > 1e-6:
        messages.append(f"config key 'network.dt': cells.bin_ms ({cells['bin_ms']}) is not a "
                        f"whole multiple of it ({net['dt']})")
    for name, sc in net["scenarios"].items():
        messages += scenario_errors(f"network.scenarios.{name}", sc, cells, check_multiple)
    if net["benchmark_scenario"] not in net["scenarios"]:
        messages.append(f"config key 'network.benchmark_scenario': "
                        f"{net['benchmark_scenario']!r} is not one of the scenarios "
                        f"({', '.join(net['scenarios'])})")
    if "default" not in net["conditions"]:
        messages.append("config key 'network.conditions': needs a 'default' condition (the "
                        "baseline of the comparison and of the benchmark)")
    if net["surrogate_slope"] not in net["gradient_check"]["slopes"]:
        messages.append(f"config key 'network.surrogate_slope': {net['surrogate_slope']} is "
                        f"not among network.gradient_check.slopes "
                        f"({', '.join(map(str, net['gradient_check']['slopes']))}), so the "
                        f"pipeline never measures the gradient it gives")
    known = set(cells["cell_types"])
    for cond, changes in net["conditions"].items():
        for i, ch in enumerate(changes):
            if ch["target"] not in known:
                messages.append(f"config key 'network.conditions.{cond}[{i}].target': "
                                f"{ch['target']!r} is not a cell type ({', '.join(sorted(known))})")
    return messages


def validate_config(config: dict | None, semantic: bool = True) -> dict:
    """Return ``config`` completed with defaults, or raise ConfigError naming each bad key.

    ``semantic=False`` checks the schema only, not how keys fit together (drives
    against hnn-core's API, objectives, bounds against the prior): for Snakemake's
    job processes, whose config the main process has checked whole (they would
    pay seconds each for importing hnn-core)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of keys to values; got {type(config).__name__}")
    schema = load_schema()
    full = copy.deepcopy(config)
    _fill_defaults(full, schema, schema)
    messages = _schema_errors(full, schema)
    if not messages and semantic:
        messages = _semantic_errors(full)
    if messages:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages))
    return full


TRAIN_OPTIONS_OFF = {"rest_start": (False,),
                     "target_compression": (0.0, 0, {"v_soma": 0.0, "dipole": 0.0}),
                     "linear_fit_regimes": ([],), "linear_frozen": (False,),
                     "section_weight": (0.0, 0), "snapshot_epochs": ([],),
                     "input_kernels": (False,), "spike_pos_weight": (0, 0.0),
                     "dropout": (0, 0.0), "spike_tolerance_ms": (0, 0.0),
                     "spike_timing_weight": (0, 0.0),
                     "lr_schedule": ("plateau",), "dipole_fast_weight": (1.0, 1),
                     "spike_threshold_rule": ("f1",)}
"""Training options added after results existed, and the values that leave training
as it was: ``train_config`` leaves them out at those values, so a parameter file
(and the surrogate it trains) stays as it was."""

TRAIN_OPTIONS_ONLY_WITH = {"dipole_fast_hz": "dipole_fast_weight",
                           "spike_timing_ms": "spike_timing_weight"}
"""Options that matter only beside another one: left out with it."""


TRAIN_SECTION_NOT_TRAINING = ("per_cell_type", "checkpoints_from")
"""Keys of the ``train`` section that are not one training's options (``train_config``
leaves them out: per_cell_type is folded in, checkpoints_from replaces training)."""


def train_config(config: dict, cell_type: str) -> dict:
    """The ``train`` section as one cell type's training sees it: its
    ``per_cell_type`` sizes over the shared ones, without ``per_cell_type``;
    the ``TRAIN_OPTIONS_OFF`` at an off value left out."""
    train = {k: v for k, v in config["train"].items() if k not in TRAIN_SECTION_NOT_TRAINING}
    train.update(config["train"]["per_cell_type"].get(cell_type, {}))
    return without_options_off(train)


def without_options_off(d: dict) -> dict:
    """``d`` without the ``TRAIN_OPTIONS_OFF`` keys that hold an off value (and the
    ``TRAIN_OPTIONS_ONLY_WITH`` keys whose option is left out)."""
    out = {k: v for k, v in d.items()
           if not (k in TRAIN_OPTIONS_OFF and v in TRAIN_OPTIONS_OFF[k])}
    return {k: v for k, v in out.items()
            if k not in TRAIN_OPTIONS_ONLY_WITH or TRAIN_OPTIONS_ONLY_WITH[k] in out}


def load_config(path) -> dict:
    """Read a YAML config file and validate it (see ``validate_config``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    return validate_config(data)
