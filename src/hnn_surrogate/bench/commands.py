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


def _scaling_run(args):
    from ..bench.scaling import run_scaling_run

    run_scaling_run(args.spec, args.point, args.simulator, args.out,
                    checkpoints=args.checkpoints, threads=args.threads)


def _scaling_point(args):
    from ..bench.scaling import ScalingError, run_scaling_point

    point = read_json(args.point, "scaling point")
    try:
        run_scaling_point(read_json(args.spec, "network spec"), point,
                          checkpoints=args.checkpoints, out=args.out, table=args.table,
                          memory_limit_gb=args.memory_limit_gb,
                          neuron_max_cells=point["neuron"]["max_cells"],
                          neuron_time_limit_s=point["neuron"]["time_limit_s"],
                          mpiexec=args.mpiexec, threads=tuple(point["threads"]),
                          ranks=tuple(point["neuron"]["ranks"]))
    except ScalingError as err:
        raise SystemExit(f"scaling-point: {err}") from None


def _scaling_summary(args):
    from ..bench.scaling import summarize_scaling

    summarize_scaling(args.points, out=args.out, table=args.table, figure=args.figure)


def _scaling_cutoff(args):
    from ..bench.scaling import run_cutoff_check

    point = read_json(args.point, "scaling point")
    run_cutoff_check(read_json(args.spec, "network spec"), scenario=point["scenario"],
                     seeds=point["seeds"], cutoff_cfg=point["cutoff"],
                     checkpoints=args.checkpoints, tstop=point["tstop"],
                     transient_ms=point["transient_ms"], out=args.out, table=args.table)


def _scaling_batch(args):
    from ..bench.scaling import run_batch_throughput

    point = read_json(args.point, "scaling batch point")
    run_batch_throughput(read_json(args.spec, "network spec"), scenario=point["scenario"],
                         seed=point["seed"], sizes=point["sizes"], checkpoints=args.checkpoints,
                         tstop=point["tstop"], threads=point["threads"], out=args.out,
                         table=args.table, figure=args.figure)


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

    p = sub.add_parser("scaling-run", help="one run of a scaling size (used by scaling-point)")
    p.add_argument("--spec", required=True, help="JSON file: the network spec")
    p.add_argument("--point", required=True, help="JSON file: the size (mesh, tstop, cutoff...)")
    p.add_argument("--simulator", choices=("surrogate", "neuron"), required=True)
    p.add_argument("--checkpoints", nargs="+")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", required=True, help="JSON result (rank 0)")
    p.set_defaults(func=_scaling_run)

    p = sub.add_parser("scaling-point",
                       help="one network size: surrogates (1, 2 threads) and NEURON (1, 2 ranks) "
                            "side by side")
    p.add_argument("--spec", required=True, help="JSON file: the network spec")
    p.add_argument("--point", required=True,
                   help="JSON file: mesh, tstop, scenario, seed, cutoff, transient_ms, threads, "
                        "neuron {ranks, max_cells, time_limit_s}")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--memory-limit-gb", type=float, required=True,
                   help="refuse a size whose estimated memory is above this")
    p.add_argument("--mpiexec", required=True, help="MPI launcher (mpiexec, srun)")
    p.add_argument("--out", required=True)
    p.add_argument("--table", help="also write the printed table here (markdown)")
    p.set_defaults(func=_scaling_point)

    p = sub.add_parser("scaling-summary", help="every size's scaling_point: table, exponents, figure")
    p.add_argument("--points", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--figure")
    p.set_defaults(func=_scaling_summary)

    p = sub.add_parser("scaling-cutoff",
                       help="the cutoff's error on the config's mesh: dense vs cutoff wiring")
    p.add_argument("--spec", required=True)
    p.add_argument("--point", required=True,
                   help="JSON file: scenario, seeds, cutoff, tstop, transient_ms")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_scaling_cutoff)

    p = sub.add_parser("scaling-batch",
                       help="throughput against batch size: networks stepped as one batch")
    p.add_argument("--spec", required=True)
    p.add_argument("--point", required=True,
                   help="JSON file: scenario, seed (the first), sizes, tstop, threads")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--figure")
    p.set_defaults(func=_scaling_batch)
