"""Argument helpers shared by the stages' subcommands (``<stage>/commands.py``)."""

from __future__ import annotations

import argparse

from .artifacts import read_json  # noqa: F401  (re-exported for the commands)


def positive_int(text):
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def network_spec(args) -> dict:
    """The network spec file of ``--spec``; with ``--condition-file``, that file's list of
    gain changes becomes condition ``--condition`` (a fit's gains)."""
    spec = read_json(args.spec, "network spec")
    if getattr(args, "condition_file", None):
        changes = read_json(args.condition_file, "condition")
        if not isinstance(changes, list):
            raise SystemExit(f"{args.condition_file}: a condition is a list of "
                             "{src, target, receptor, gain} changes")
        spec["conditions"] = {**spec["conditions"], args.condition: changes}
    return spec


def keyed_runs(args, command: str) -> dict:
    """{(condition, seed, simulator): path} from ``--runs`` and their ``--keys``."""
    if len(args.runs) != len(args.keys):
        raise SystemExit(f"{command}: give one --keys entry per run file")
    runs = {}
    for key, path in zip(args.keys, args.runs):
        condition, seed, simulator = key.split(":")
        runs[(condition, int(seed), simulator)] = path
    return runs


def add_condition_file(p):
    p.add_argument("--condition-file",
                   help="JSON file: the condition's gain changes (a fit's fitted.json), "
                        "in place of the spec's")


def add_network_args(p):
    p.add_argument("--spec", required=True,
                   help="JSON file: the network run's spec (model, mesh_shape, postproc, bin_ms, "
                        "scenarios, conditions; dt for NEURON), as the pipeline writes it to "
                        "results/parameters/network/")
    p.add_argument("--scenario", required=True)


def add_sim_args(p):
    p.add_argument("--dt", type=float, required=True, help="NEURON step (ms)")
    p.add_argument("--delay", type=float, required=True, help="synaptic delay (ms)")
