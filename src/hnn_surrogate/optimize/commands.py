"""Command-line subcommands of the optimize stage: a connectivity fit, its NEURON check.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

import logging

from ..cli_args import keyed_runs, network_spec, positive_int, read_json


def add_malloc(p) -> None:
    from ..alloc import MALLOC_MODES

    p.add_argument("--malloc", choices=MALLOC_MODES, default="keep",
                   help="keep: glibc keeps freed memory for the next step (no mmap, no "
                        "trimming; hnn_surrogate.alloc); default: glibc as it is")


def _fit(args):
    from ..alloc import set_malloc
    from .fit import fit_connectivity, write_fit
    from .objective_config import check_objective

    set_malloc(args.malloc)
    spec = network_spec(args)
    fit = read_json(args.fit, "fit")
    if fit["start"] not in spec["scenarios"]:
        raise SystemExit(f"fit-connectivity: start {fit['start']!r} is not a scenario of "
                         f"{args.spec}")
    check_objective(fit["objective"], where="fit objective", bin_ms=spec["bin_ms"])
    span = fit["tstop"] - fit["transient_ms"]
    for key in ("window_ms", "rate_window_ms"):
        if fit["objective"].get(key, 0) > span:
            raise SystemExit(f"fit-connectivity: fit objective.{key} {fit['objective'][key]:g} ms "
                             f"is longer than the run after the transient ({span:g} ms)")
    traj = fit_connectivity(spec, scenario=fit["start"], surrogates=args.checkpoints,
                            free=fit["free"], bounds=fit["bounds"],
                            objective=fit["objective"], lr=fit["lr"], n_steps=fit["steps"],
                            seeds=fit["seeds"], tstop=fit["tstop"],
                            transient_ms=fit["transient_ms"], slope=fit["slope"],
                            threads=args.threads, grad_storage=fit["grad_storage"],
                            log=logging.getLogger("fit"))
    write_fit(traj, spec=spec, fit=fit, out=args.out, fitted_out=args.fitted, table=args.table)


def _fit_step_benchmark(args):
    from ..alloc import set_malloc
    from .fit import step_benchmark, write_step_benchmark

    kept = set_malloc(args.malloc)
    spec = network_spec(args)
    fit = read_json(args.fit, "fit")
    res = step_benchmark(spec, scenario=fit["start"], surrogates=args.checkpoints,
                         free=fit["free"], bounds=fit["bounds"], objective=fit["objective"],
                         seeds=fit["seeds"], tstop=fit["tstop"],
                         transient_ms=fit["transient_ms"], slope=fit["slope"],
                         threads=args.threads, grad_storage=fit["grad_storage"],
                         repeats=args.repeats)
    res["malloc"] = "keep" if kept else "default"
    write_step_benchmark(res, start=fit["start"], out=args.out, table=args.table)


def _fit_check(args):
    from .check import check_fit

    fit = read_json(args.fit, "fit")
    runs = keyed_runs(args, "fit-check")
    if args.figure and not args.trajectory:
        raise SystemExit("fit-check --figure needs --trajectory")
    check_fit(runs, start=fit["start"], objective=fit["objective"],
              transient_ms=fit["transient_ms"], fit_seeds=fit["seeds"], out=args.out,
              table=args.table)
    if args.figure:
        from ..figures.optimize import plot_fit

        seed = fit["seeds"][0]
        plot_fit(args.trajectory, args.out, {"start": runs[("default", seed, "neuron")],
                                             "fitted": runs[("fitted", seed, "neuron")]},
                 args.figure)


def _hnn_search(args):
    from ..artifacts import FIT_TRAJECTORY
    from .hnn_optimizer import search, write_search

    fit = read_json(args.fit, "fit")
    traj = FIT_TRAJECTORY.read(args.trajectory)
    types = list(zip(*(traj[f"free_{k}"].values.tolist()
                       for k in ("src", "target", "receptor"))))
    budget = float(traj["wall_s"].sum()) * args.budget_factor
    res = search(args.spec, start=fit["start"], types=types, bounds=fit["bounds"],
                 objective=fit["objective"], seeds=fit["seeds"],
                 transient_ms=fit["transient_ms"], solver=args.solver, budget_s=budget,
                 max_iter=args.max_iter, mpiexec=args.mpiexec, ranks=args.ranks,
                 journal=args.journal)
    write_search(res, fit=fit, out=args.out, best_out=args.best, table=args.table)


def _compare_search(args):
    from .hnn_optimizer import compare_searches

    compare_searches(args.trajectory, args.check, args.searches, out=args.out,
                     table=args.table, figure=args.figure, checkpoints=args.checkpoints)


def _fit_summary(args):
    from .check import summarize_fits

    if len(args.checks) != len(args.points):
        raise SystemExit("fit-summary: give one --points name per check file")
    summarize_fits(dict(zip(args.points, args.checks)), out=args.out, table=args.table)


def register(sub) -> None:
    """Add this stage's subcommands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("fit-connectivity",
                       help="gradient descent on connection gains through the surrogate network")
    p.add_argument("--spec", required=True,
                   help="JSON file: network spec (model, mesh_shape, bin_ms, scenarios with "
                        "the start, conditions with default)")
    p.add_argument("--fit", required=True,
                   help="JSON file: start, objective, free, bounds, lr, steps, seeds, tstop, "
                        "transient_ms, slope, grad_storage")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    add_malloc(p)
    p.add_argument("--out", required=True, help="fit_trajectory NetCDF")
    p.add_argument("--fitted", required=True,
                   help="JSON file: the fitted gains, a list of {src, target, receptor, gain} "
                        "(a network condition)")
    p.add_argument("--table")
    p.set_defaults(func=_fit)

    p = sub.add_parser("fit-check", help="score a fit's NEURON and surrogate runs")
    p.add_argument("--fit", required=True, help="JSON file: the fit (as for fit-connectivity)")
    p.add_argument("--runs", nargs="+", required=True, help="network_run NetCDF files")
    p.add_argument("--keys", nargs="+", required=True,
                   help="condition:seed:simulator of each run, in --runs order")
    p.add_argument("--trajectory", help="the fit's fit_trajectory NetCDF (for --figure)")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--figure", help="PNG: the poster's fit figure")
    p.set_defaults(func=_fit_check)

    p = sub.add_parser("fit-summary", help="rank fits by their NEURON-checked objective change")
    p.add_argument("checks", nargs="+", help="fit_check NetCDF files")
    p.add_argument("--points", nargs="+", required=True, help="grid point name of each file")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_fit_summary)

    p = sub.add_parser("hnn-search",
                       help="the baseline: hnn-core's Optimizer on the fit's gains, in NEURON, "
                            "within the gradient fit's wall clock")
    p.add_argument("--spec", required=True, help="JSON file: the start's NEURON network spec")
    p.add_argument("--fit", required=True, help="JSON file: the fit (as for fit-connectivity)")
    p.add_argument("--trajectory", required=True,
                   help="the gradient fit's fit_trajectory NetCDF: its free types and wall time")
    p.add_argument("--solver", required=True, choices=["bayesian", "cobyla", "cma"])
    p.add_argument("--budget-factor", type=float, required=True,
                   help="wall-clock budget as a multiple of the gradient fit's")
    p.add_argument("--max-iter", type=positive_int, required=True,
                   help="hnn-core's max_iter (the budget usually ends the search first)")
    p.add_argument("--mpiexec", required=True, help="MPI launcher of each NEURON run")
    p.add_argument("--ranks", type=positive_int, required=True,
                   help="MPI ranks of each NEURON run")
    p.add_argument("--out", required=True, help="hnn_search NetCDF")
    p.add_argument("--best", required=True, help="JSON file: the best gains (a condition)")
    p.add_argument("--table")
    p.add_argument("--journal",
                   help="JSON-lines file: each evaluation recorded as it ends; a search of "
                        "the same parameters resumes from it (killed, or a larger budget)")
    p.set_defaults(func=_hnn_search)

    p = sub.add_parser("compare-search",
                       help="the gradient fit beside hnn-core's Optimizer searches")
    p.add_argument("--trajectory", required=True, help="the fit's fit_trajectory NetCDF")
    p.add_argument("--check", required=True, help="the fit's fit_check NetCDF")
    p.add_argument("--searches", nargs="+", required=True, help="hnn_search NetCDF files")
    p.add_argument("--checkpoints", nargs="+",
                   help="the fit's surrogates: count what their data and training cost "
                        "(without: that count is reported as not known)")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--figure")
    p.set_defaults(func=_compare_search)

    p = sub.add_parser("fit-step-benchmark",
                       help="one fit step against a forward run of the same batch: time, memory")
    p.add_argument("--spec", required=True, help="JSON file: network spec (as fit-connectivity)")
    p.add_argument("--fit", required=True, help="JSON file: the fit (as fit-connectivity)")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="pairs of a forward run and a step (default 5)")
    add_malloc(p)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_fit_step_benchmark)
