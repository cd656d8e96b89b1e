"""Command-line subcommands of the network stage: runs in NEURON and with the
surrogates, event lists, comparison, drive sweep, gradient check.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

from .. import CELL_TYPES
from ..cli_args import (add_condition_file, add_network_args, keyed_runs, network_spec,
                        positive_int)


def _network_neuron(args):
    from ..network.runs import run_neuron_network

    run_neuron_network(network_spec(args), scenario=args.scenario, condition=args.condition,
                       seed=args.seed, out=args.out)


def _replay_events(args):
    from ..network.replay import write_received_events

    write_received_events(network_spec(args), scenario=args.scenario,
                          condition=args.condition, seed=args.seed, run_path=args.run,
                          out=args.out)


def _network_surrogate(args):
    from ..network.runs import run_surrogate_network

    if args.replay_types and not args.replay:
        raise SystemExit("network-surrogate: --replay-types needs --replay (the NEURON run "
                         "whose spikes those types replay)")

    run_surrogate_network(network_spec(args), scenario=args.scenario, condition=args.condition,
                          seed=args.seed, checkpoints=args.checkpoints, out=args.out,
                          threads=args.threads, replay=args.replay,
                          replay_types=args.replay_types)


def _network_compare(args):
    from ..figures.network import plot_network_comparison
    from ..network.compare import compare_runs

    runs = keyed_runs(args, "network-compare")
    compare_runs(runs, scenario=args.scenario, transient_ms=args.transient_ms, out=args.out,
                 table=args.table)
    if args.figure:
        seed = min(k[1] for k in runs)
        plot_network_comparison(args.out, {(c, sim): p for (c, s, sim), p in runs.items()
                                           if s == seed}, args.figure)


def _sweep_drive(args):
    from ..network.drive_sweep import sweep_drive

    sweep_drive(network_spec(args), scenario=args.scenario, rates=args.rates,
                pyramidal_weights=args.pyramidal_weights, basket_weights=args.basket_weights,
                seed=args.seed, transient_ms=args.transient_ms, out=args.out, table=args.table,
                checkpoints=args.checkpoints)


def _gradient_horizon(args):
    from ..network.gradients import gradient_horizon

    gradient_horizon(network_spec(args), scenario=args.scenario, checkpoints=args.checkpoints,
                     tstops=args.tstops, slopes=args.slopes, seed=args.seed,
                     configured_slope=args.configured_slope, out=args.out,
                     table=args.table, threads=args.threads)


def register(sub) -> None:
    """Add this stage's subcommands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("network-neuron",
                       help="one hnn-core network run in NEURON (run under mpiexec)")
    add_network_args(p)
    p.add_argument("--condition", required=True)
    add_condition_file(p)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_network_neuron)

    p = sub.add_parser("replay-events",
                       help="every cell's received events in a NEURON network run")
    add_network_args(p)
    p.add_argument("--condition", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--run", required=True, help="the run's network_run NetCDF (NEURON)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_replay_events)

    p = sub.add_parser("network-surrogate", help="one hnn-core network run with the surrogates")
    add_network_args(p)
    p.add_argument("--condition", required=True)
    add_condition_file(p)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    p.add_argument("--replay", help="open loop: deliver this NEURON network_run's spikes")
    p.add_argument("--replay-types", nargs="+", choices=CELL_TYPES,
                   help="with --replay: only these types' spikes (the others deliver their own)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_network_surrogate)

    p = sub.add_parser("network-compare", help="NEURON vs surrogate network runs (NetCDF + PNG)")
    p.add_argument("--scenario", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="network_run files")
    p.add_argument("--keys", nargs="+", required=True, help="condition:seed:simulator per run")
    p.add_argument("--transient-ms", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--figure")
    p.set_defaults(func=_network_compare)

    p = sub.add_parser("sweep-drive", help="grid over a Poisson drive's rate and weights "
                                           "(NEURON, or the surrogates to screen)")
    add_network_args(p)
    p.add_argument("--rates", nargs="+", type=float, required=True)
    p.add_argument("--pyramidal-weights", nargs="+", type=float, required=True)
    p.add_argument("--basket-weights", nargs="+", type=float, required=True)
    p.add_argument("--checkpoints", nargs="+",
                   help="simulate with these surrogates (one per cell type) instead of NEURON")
    p.add_argument("--seed", type=int, required=True, help="drive seed")
    p.add_argument("--transient-ms", type=float, required=True,
                   help="start-up time left out of rates and spectra (ms)")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_sweep_drive)

    p = sub.add_parser("gradient-horizon",
                       help="network: the gradient's size against simulated time and slope")
    add_network_args(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--tstops", nargs="+", type=float, required=True, help="ms")
    p.add_argument("--slopes", nargs="+", type=float, required=True)
    p.add_argument("--configured-slope", type=float, required=True,
                   help="the slope the config uses (network.surrogate_slope), marked")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_gradient_horizon)
