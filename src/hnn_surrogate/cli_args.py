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
    """The network spec file of ``--spec``."""
    return read_json(args.spec, "network spec")


def add_network_args(p):
    p.add_argument("--spec", required=True,
                   help="JSON file: the network run's spec (model, mesh_shape, postproc, bin_ms, "
                        "scenarios, conditions; dt for NEURON), as the pipeline writes it to "
                        "results/parameters/network/")
    p.add_argument("--scenario", required=True)


def add_sim_args(p):
    p.add_argument("--dt", type=float, required=True, help="NEURON step (ms)")
    p.add_argument("--delay", type=float, required=True, help="synaptic delay (ms)")
