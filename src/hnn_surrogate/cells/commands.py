"""Command-line subcommands of the cells stage: calibrate, simulate shards (MPI), merge, plot.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

import logging

from ..cli_args import add_sim_args, positive_int, read_json


def _calibrate(args):
    from ..cells.calibrate import write_calibration

    write_calibration(args.cell_type, args.out, dt=args.dt, delay=args.delay,
                      iterations=args.iterations, log=logging.getLogger("calibrate").info)


def _simulate_shard(args):
    from ..cells.calibrate import read_reference
    from ..cells.shard import simulate_shard

    if (args.replay_events is None) == (args.regime_file is None):
        raise SystemExit("simulate-shard: give either --regime-file and --calibration (random "
                         "input) or --replay-events (replayed network input)")
    if args.replay_events is not None:
        source = dict(replay=args.replay_events)
    else:
        if args.calibration is None:
            raise SystemExit("simulate-shard: --regime-file needs --calibration")
        source = dict(regime=read_json(args.regime_file, "regime"),
                      reference=read_reference(args.calibration, args.cell_type))
    simulate_shard(cell_type=args.cell_type, regime_name=args.regime, **source,
                   first=args.first, count=args.count, tstop=args.tstop, dt=args.dt,
                   bin_ms=args.bin_ms, delay=args.delay, seed=args.seed,
                   store_fine=args.store_fine, record_sections=args.record_sections,
                   out=args.out)


def _cell_type_outs(args, command) -> dict:
    """{cell type: path} from ``--out CELL_TYPE=PATH ...``, every cell type given."""
    from .. import CELL_TYPES

    outs = {}
    for item in args.out:
        cell_type, sep, path = item.partition("=")
        if not sep or cell_type not in CELL_TYPES:
            raise SystemExit(f"{command} --out {item!r}: give CELL_TYPE=PATH, "
                             f"CELL_TYPE one of {', '.join(CELL_TYPES)}")
        outs[cell_type] = path
    missing = set(CELL_TYPES) - set(outs)
    if missing:
        raise SystemExit(f"{command}: no --out for {', '.join(sorted(missing))}")
    return outs


def _simulate_network_prior(args):
    from ..cells.network_prior import REGIME, REGIMES, simulate_prior_run

    outs = _cell_type_outs(args, "simulate-network-prior")
    spec = read_json(args.spec, "network spec")
    prior = read_json(args.prior, "network prior")
    if prior.get("regime", REGIME) not in REGIMES:
        raise SystemExit(f"{args.prior}: regime {prior['regime']!r} is not one of "
                         f"{', '.join(REGIMES)}")
    simulate_prior_run(spec=spec, prior=prior, run=args.run,
                       seed=args.seed, tstop=args.tstop, dt=args.dt, bin_ms=args.bin_ms,
                       delay=args.delay, store_fine=args.store_fine,
                       record_sections=args.record_sections, outs=outs)


def _simulate_closed_loop(args):
    from ..cells.closed_loop import simulate_closed_loop_run
    from ..cells.network_prior import CLOSED_LOOP

    outs = _cell_type_outs(args, "simulate-closed-loop")
    spec = read_json(args.spec, "network spec")
    prior = read_json(args.prior, "network prior")
    if prior.get("regime") != CLOSED_LOOP:
        raise SystemExit(f"{args.prior}: regime {prior.get('regime')!r}, not {CLOSED_LOOP!r}")
    simulate_closed_loop_run(spec=spec, prior=prior, run=args.run,
                             checkpoints=args.checkpoints, seed=args.seed, tstop=args.tstop,
                             dt=args.dt, bin_ms=args.bin_ms, delay=args.delay,
                             store_fine=args.store_fine,
                             record_sections=args.record_sections, outs=outs,
                             teacher_sha256=args.teacher_sha256)


def _merge_cells(args):
    from ..alloc import release_freed_memory
    from ..datasets import merge_shards

    release_freed_memory()          # the shards' parts go back to the kernel as they are joined
    merge_shards(args.shards, args.out, seed=args.seed,
                 fractions={"train": args.train, "val": args.val, "test": args.test})


def _plot_cells(args):
    from ..figures.cells import plot_cell_examples

    plot_cell_examples(args.dataset, args.out)


def _add_recording_args(p) -> None:
    """The options of every job that simulates cells and writes shards: time, bins,
    seed, NEURON's step and delay, what is stored."""
    p.add_argument("--tstop", type=float, required=True, help="simulated time (ms)")
    p.add_argument("--bin-ms", type=float, required=True, help="surrogate bin (ms)")
    p.add_argument("--seed", type=int, required=True, help="global seed")
    p.add_argument("--store-fine", action="store_true", help="also store traces at dt")
    p.add_argument("--record-sections", action="store_true",
                   help="also store every section's midpoint voltage per bin")
    add_sim_args(p)


def _add_prior_run_args(p, prior_help: str) -> None:
    """The options of a job that makes one run of a regime drawn from the prior."""
    p.add_argument("--spec", required=True, help="JSON file: network model and mesh_shape")
    p.add_argument("--prior", required=True,
                   help=f"JSON file: what the regime's runs are drawn from {prior_help}")
    p.add_argument("--run", type=int, required=True, help="index of the network run")
    _add_recording_args(p)
    p.add_argument("--out", nargs="+", required=True,
                   help="CELL_TYPE=PATH: where each cell type's shard goes")


def register(sub) -> None:
    """Add this stage's subcommands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("calibrate", help="per-channel threshold weights of one cell type")
    p.add_argument("--cell-type", required=True)
    add_sim_args(p)
    p.add_argument("--iterations", type=positive_int, required=True,
                   help="bisection steps per channel")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("simulate-shard", help="one shard of single-cell simulations (MPI)")
    p.add_argument("--cell-type", required=True)
    p.add_argument("--regime", required=True, help="regime name (seeds the input)")
    p.add_argument("--regime-file", help="JSON file: the regime's config section (random input)")
    p.add_argument("--calibration", help="cell_calibration NetCDF (random input)")
    p.add_argument("--replay-events", nargs="+",
                   help="replay_events NetCDF files: replay network input instead")
    p.add_argument("--first", type=int, required=True, help="index of the first simulation")
    p.add_argument("--count", type=int, required=True, help="simulations in the shard")
    _add_recording_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_simulate_shard)

    p = sub.add_parser("simulate-network-prior",
                       help="one NEURON network run drawn from the prior (MPI): every cell "
                            "a simulation of the network_prior (or alpha_start) regime")
    _add_prior_run_args(p, "(network_prior.regime_prior: the cells.network_prior section, "
                           "or alpha_start's, which names its regime)")
    p.set_defaults(func=_simulate_network_prior)

    p = sub.add_parser("simulate-closed-loop",
                       help="one network drawn from the prior, run with the surrogates; every "
                            "cell's input in it replayed to the lone cell in NEURON (MPI): "
                            "the closed_loop regime")
    _add_prior_run_args(p, "(network_prior.regime_prior(..., 'closed_loop'))")
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="the teacher surrogates that run the network (one per cell type)")
    p.add_argument("--teacher-sha256", nargs="+", default=None,
                   help="each checkpoint's expected sha256, in order: a teacher replaced "
                        "since the job was planned is refused before any run")
    p.set_defaults(func=_simulate_closed_loop)

    p = sub.add_parser("merge-cells", help="merge shards of one cell type; split by simulation")
    p.add_argument("shards", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--train", type=float, required=True, help="fraction of simulations")
    p.add_argument("--val", type=float, required=True, help="fraction of simulations")
    p.add_argument("--test", type=float, required=True, help="fraction of simulations")
    p.set_defaults(func=_merge_cells)

    p = sub.add_parser("plot-cells", help="figure of a merged cell-type dataset")
    p.add_argument("dataset")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_plot_cells)
