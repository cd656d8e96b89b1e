"""Command-line subcommands of the benchmarks: NEURON cells, surrogate throughput,
the network.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

from ..cli_args import add_network_args, add_sim_args, network_spec, positive_int, read_json


def _bench_cells(args):
    from ..bench.cells import run_cells_benchmark

    run_cells_benchmark(cell_types=args.cell_types, calibrations=args.calibrations,
                        regime_name=args.regime, regime=read_json(args.regime_file, "regime"),
                        n_sims=args.n_sims, tstop=args.tstop, dt=args.dt,
                        bin_ms=args.bin_ms, delay=args.delay, seed=args.seed,
                        mpiexec=args.mpiexec, out=args.out, table=args.table)


def _bench_surrogate(args):
    from ..bench.surrogate import run_surrogate_benchmark

    run_surrogate_benchmark(checkpoints=args.checkpoints, datasets=args.datasets, out=args.out,
                            table=args.table, batches=tuple(args.batches), n_bins=args.n_bins,
                            device=args.device)


def _bench_network(args):
    from ..bench.network import run_network_benchmark

    run_network_benchmark(network_spec(args), scenario=args.scenario,
                          checkpoints=args.checkpoints, out=args.out, table=args.table,
                          mpiexec=args.mpiexec, repeats=args.repeats, seed=args.seed)


def register(sub) -> None:
    """Add this stage's subcommands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("bench-cells", help="NEURON throughput and MPI speed-up per cell type")
    p.add_argument("--cell-types", nargs="+", required=True)
    p.add_argument("--calibrations", nargs="+", required=True)
    p.add_argument("--regime", required=True)
    p.add_argument("--regime-file", required=True, help="JSON file: the regime's config section")
    p.add_argument("--n-sims", type=int, required=True)
    p.add_argument("--tstop", type=float, required=True)
    p.add_argument("--bin-ms", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--mpiexec", required=True, help="MPI launcher (mpiexec, srun)")
    add_sim_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--table", help="also write the printed table here (markdown)")
    p.set_defaults(func=_bench_cells)

    p = sub.add_parser("bench-surrogate", help="surrogate vs NEURON single-cell throughput")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--batches", nargs="+", type=positive_int, required=True)
    p.add_argument("--n-bins", type=positive_int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_bench_surrogate)

    p = sub.add_parser("bench-network", help="network: surrogate vs hnn-core in NEURON")
    add_network_args(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--mpiexec", required=True, help="MPI launcher (mpiexec, srun)")
    p.add_argument("--seed", type=int, required=True, help="drive seed")
    p.add_argument("--repeats", type=positive_int, required=True,
                   help="surrogate runs, half before and half after NEURON's; the median counts")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_bench_network)
