"""Command-line entry points; each Snakemake rule calls exactly one of them.

``hnn-surrogate <command> --help`` documents each. Arguments are explicit
(no whole-config passing), so every command also runs by hand.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .artifacts import read_json


def _positive_int(text):
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _setup_logging():
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )


def _calibrate(args):
    from .cells.calibrate import write_calibration

    write_calibration(args.cell_type, args.out, dt=args.dt, delay=args.delay,
                      iterations=args.iterations, log=logging.getLogger("calibrate").info)


def _simulate_shard(args):
    from .cells.calibrate import read_reference
    from .cells.shard import simulate_shard

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
                   store_fine=args.store_fine, out=args.out)


def _merge_cells(args):
    from .datasets import merge_shards

    merge_shards(args.shards, args.out, seed=args.seed,
                 fractions={"train": args.train, "val": args.val, "test": args.test})


def _bench_cells(args):
    from .bench.cells import run_cells_benchmark

    run_cells_benchmark(cell_types=args.cell_types, calibrations=args.calibrations,
                        regime_name=args.regime, regime=read_json(args.regime_file, "regime"),
                        n_sims=args.n_sims, tstop=args.tstop, dt=args.dt,
                        bin_ms=args.bin_ms, delay=args.delay, seed=args.seed,
                        mpiexec=args.mpiexec, out=args.out, table=args.table)


def _plot_cells(args):
    from .figures.cells import plot_cell_examples

    plot_cell_examples(args.dataset, args.out)


def _train(args):
    from .surrogate.train import TrainConfig, train_surrogate

    cfg = read_json(args.config, "training config")
    model_keys = ("hidden", "kernel_size", "dilations", "lstm_hidden", "linear_taus_ms")
    model_kwargs = {k: (tuple(cfg[k]) if k == "dilations" else cfg[k]) for k in model_keys}
    train_cfg = TrainConfig(seed=args.seed, **{k: v for k, v in cfg.items() if k not in model_keys})
    train_surrogate(args.dataset, args.out, model_kwargs=model_kwargs, train_config=train_cfg,
                    history_path=args.history)


def _evaluate(args):
    from .surrogate.evaluate import evaluate_surrogate

    evaluate_surrogate(args.checkpoint, args.dataset, args.out, split=args.split,
                       table=args.table, allow_other_data=args.allow_other_data)


def _linear_baseline(args):
    from .surrogate.baseline import fit_linear_baseline

    fit_linear_baseline(args.dataset, args.out, v_clip=args.v_clip,
                        surrogate_metrics=args.surrogate_metrics, split=args.split,
                        table=args.table)


def _bench_surrogate(args):
    from .bench.surrogate import run_surrogate_benchmark

    run_surrogate_benchmark(checkpoints=args.checkpoints, datasets=args.datasets, out=args.out,
                            table=args.table, batches=tuple(args.batches), n_bins=args.n_bins,
                            device=args.device)


def _panels(args):
    from .figures.surrogate import plot_panels
    from .surrogate.panels import compute_panels

    compute_panels(args.checkpoint, args.dataset, args.calibration, args.out)
    plot_panels(args.out, args.figure)


def _learning_curve(args):
    from .datasets import open_cell_dataset
    from .surrogate.evaluate import learning_curve

    if len(args.metrics) != len(args.fractions):
        raise SystemExit("learning-curve: give one --fractions value per metrics file")
    n_train = int((open_cell_dataset(args.dataset)["split"].values == "train").sum())
    learning_curve(args.metrics, args.fractions, n_train, args.out, figure=args.figure)


def _network_spec(args) -> dict:
    return read_json(args.spec, "network spec")


def _network_neuron(args):
    from .network.runs import run_neuron_network

    run_neuron_network(_network_spec(args), scenario=args.scenario, condition=args.condition,
                       seed=args.seed, out=args.out)


def _replay_events(args):
    from .network.replay import write_received_events

    write_received_events(_network_spec(args), scenario=args.scenario,
                          condition=args.condition, seed=args.seed, run_path=args.run,
                          out=args.out)


def _network_surrogate(args):
    from .network.runs import run_surrogate_network

    run_surrogate_network(_network_spec(args), scenario=args.scenario, condition=args.condition,
                          seed=args.seed, checkpoints=args.checkpoints, out=args.out,
                          threads=args.threads, replay=args.replay)


def _network_compare(args):
    from .figures.network import plot_network_comparison
    from .network.compare import compare_runs

    if len(args.runs) != len(args.keys):
        raise SystemExit("network-compare: give one --keys entry per run file")
    runs = {}
    for key, path in zip(args.keys, args.runs):
        condition, seed, simulator = key.split(":")
        runs[(condition, int(seed), simulator)] = path
    compare_runs(runs, scenario=args.scenario, transient_ms=args.transient_ms, out=args.out,
                 table=args.table)
    if args.figure:
        seed = min(k[1] for k in runs)
        plot_network_comparison(args.out, {(c, sim): p for (c, s, sim), p in runs.items()
                                           if s == seed}, args.figure)


def _bench_network(args):
    from .bench.network import run_network_benchmark

    run_network_benchmark(_network_spec(args), scenario=args.scenario,
                          checkpoints=args.checkpoints, out=args.out, table=args.table,
                          mpiexec=args.mpiexec, repeats=args.repeats, seed=args.seed)


def _gradient_horizon(args):
    from .network.gradients import gradient_horizon

    gradient_horizon(_network_spec(args), scenario=args.scenario, checkpoints=args.checkpoints,
                     tstops=args.tstops, slopes=args.slopes, seed=args.seed,
                     configured_slope=args.configured_slope, out=args.out,
                     table=args.table, threads=args.threads)


def _sweep_drive(args):
    from .network.drive_sweep import sweep_drive

    sweep_drive(_network_spec(args), scenario=args.scenario, rates=args.rates,
                pyramidal_weights=args.pyramidal_weights, basket_weights=args.basket_weights,
                seed=args.seed, transient_ms=args.transient_ms, out=args.out, table=args.table,
                checkpoints=args.checkpoints)


def _compare_results(args):
    from .compare_results import BAD, compare_results, format_report

    rows = compare_results(args.a, args.b, rtol=args.rtol)
    text = format_report(rows, args.a, args.b, args.rtol)
    print(text)
    if args.out:
        from .artifacts import atomic_output

        with atomic_output(args.out) as tmp:
            tmp.write_text(text + "\n")
    if any(r.verdict in BAD for r in rows):
        raise SystemExit(1)


def _add_network_args(p):
    p.add_argument("--spec", required=True,
                   help="JSON file: the network run's spec (model, mesh_shape, postproc, bin_ms, "
                        "scenarios, conditions; dt for NEURON), as the pipeline writes it to "
                        "results/parameters/network/")
    p.add_argument("--scenario", required=True)


def _add_sim_args(p):
    p.add_argument("--dt", type=float, required=True, help="NEURON step (ms)")
    p.add_argument("--delay", type=float, required=True, help="synaptic delay (ms)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hnn-surrogate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("calibrate", help="per-channel threshold weights of one cell type")
    p.add_argument("--cell-type", required=True)
    _add_sim_args(p)
    p.add_argument("--iterations", type=_positive_int, required=True,
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
    p.add_argument("--tstop", type=float, required=True, help="simulated time (ms)")
    p.add_argument("--bin-ms", type=float, required=True, help="surrogate bin (ms)")
    p.add_argument("--seed", type=int, required=True, help="global seed")
    p.add_argument("--store-fine", action="store_true", help="also store traces at dt")
    _add_sim_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_simulate_shard)

    p = sub.add_parser("merge-cells", help="merge shards of one cell type; split by simulation")
    p.add_argument("shards", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--train", type=float, required=True, help="fraction of simulations")
    p.add_argument("--val", type=float, required=True, help="fraction of simulations")
    p.add_argument("--test", type=float, required=True, help="fraction of simulations")
    p.set_defaults(func=_merge_cells)

    p = sub.add_parser("train", help="train the surrogate of one cell type")
    p.add_argument("dataset", help="merged cell_sims dataset")
    p.add_argument("--config", required=True,
                   help="JSON file: the 'train' config section as this cell type sees it")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="checkpoint (.pt)")
    p.add_argument("--history", help="training history (NetCDF)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="held-out free-running fidelity of a surrogate")
    p.add_argument("checkpoint")
    p.add_argument("dataset")
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--allow-other-data", action="store_true",
                   help="evaluate on data other than the checkpoint's training data (its "
                        "splits are then not the training's)")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("linear-baseline",
                       help="a linear filter of the inputs beside the surrogate, per regime")
    p.add_argument("dataset", help="merged cell_sims dataset")
    p.add_argument("--v-clip", type=float, required=True, help="voltage clip (mV), as training's")
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--surrogate-metrics", help="the surrogate's surrogate_metrics on the same data")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_linear_baseline)

    p = sub.add_parser("bench-surrogate", help="surrogate vs NEURON single-cell throughput")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--batches", nargs="+", type=_positive_int, required=True)
    p.add_argument("--n-bins", type=_positive_int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_bench_surrogate)

    p = sub.add_parser("panels", help="single-cell panels, NEURON vs surrogate (NetCDF + PNG)")
    p.add_argument("checkpoint")
    p.add_argument("dataset")
    p.add_argument("--calibration", required=True)
    p.add_argument("--out", required=True, help="surrogate_panels NetCDF")
    p.add_argument("--figure", required=True, help="PNG drawn from --out")
    p.set_defaults(func=_panels)

    p = sub.add_parser("learning-curve", help="held-out metrics against training-set size")
    p.add_argument("--dataset", required=True, help="the merged dataset (counts train sims)")
    p.add_argument("--metrics", nargs="+", required=True, help="surrogate_metrics files")
    p.add_argument("--fractions", nargs="+", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--figure")
    p.set_defaults(func=_learning_curve)

    p = sub.add_parser("plot-cells", help="figure of a merged cell-type dataset")
    p.add_argument("dataset")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_plot_cells)

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
    _add_sim_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--table", help="also write the printed table here (markdown)")
    p.set_defaults(func=_bench_cells)
    p = sub.add_parser("network-neuron",
                       help="one hnn-core network run in NEURON (run under mpiexec)")
    _add_network_args(p)
    p.add_argument("--condition", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_network_neuron)

    p = sub.add_parser("replay-events",
                       help="every cell's received events in a NEURON network run")
    _add_network_args(p)
    p.add_argument("--condition", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--run", required=True, help="the run's network_run NetCDF (NEURON)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_replay_events)

    p = sub.add_parser("network-surrogate", help="one hnn-core network run with the surrogates")
    _add_network_args(p)
    p.add_argument("--condition", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--threads", type=_positive_int, required=True)
    p.add_argument("--replay", help="open loop: deliver this NEURON network_run's spikes")
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
    _add_network_args(p)
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
    _add_network_args(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--tstops", nargs="+", type=float, required=True, help="ms")
    p.add_argument("--slopes", nargs="+", type=float, required=True)
    p.add_argument("--configured-slope", type=float, required=True,
                   help="the slope the config uses (network.surrogate_slope), marked")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--threads", type=_positive_int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_gradient_horizon)

    p = sub.add_parser("bench-network", help="network: surrogate vs hnn-core in NEURON")
    _add_network_args(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--mpiexec", required=True, help="MPI launcher (mpiexec, srun)")
    p.add_argument("--seed", type=int, required=True, help="drive seed")
    p.add_argument("--repeats", type=_positive_int, required=True,
                   help="surrogate runs, half before and half after NEURON's; the median counts")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_bench_network)

    p = sub.add_parser("compare-results",
                       help="two result folders, stage by stage: equal, or where they differ "
                            "(exit status 1 if they differ)")
    p.add_argument("a", help="a results/ folder")
    p.add_argument("b", help="another results/ folder")
    p.add_argument("--rtol", type=float, default=0.0,
                   help="relative difference still counted as close (default 0: bit for bit)")
    p.add_argument("--out", help="also write the report here (markdown)")
    p.set_defaults(func=_compare_results)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    _setup_logging()
    args.func(args)


if __name__ == "__main__":
    main()
