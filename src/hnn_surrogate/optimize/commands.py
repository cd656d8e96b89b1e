"""Command-line subcommands of the optimize stage: a connectivity fit, its NEURON check.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

import logging

from ..cli_args import keyed_runs, network_spec, positive_int, read_json


def _fit(args):
    from .fit import fit_connectivity, write_fit
    from .objectives import check_objective

    spec = network_spec(args)
    fit = read_json(args.fit, "fit")
    if fit["start"] not in spec["scenarios"]:
        raise SystemExit(f"fit-connectivity: start {fit['start']!r} is not a scenario of "
                         f"{args.spec}")
    check_objective(fit["objective"], where="fit objective", bin_ms=spec["bin_ms"])
    traj = fit_connectivity(spec, scenario=fit["start"], surrogates=args.checkpoints,
                            free=fit["free"], bounds=fit["bounds"],
                            objective=fit["objective"], lr=fit["lr"], n_steps=fit["steps"],
                            seeds=fit["seeds"], tstop=fit["tstop"],
                            transient_ms=fit["transient_ms"], slope=fit["slope"],
                            threads=args.threads, log=logging.getLogger("fit"))
    write_fit(traj, spec=spec, fit=fit, out=args.out, fitted_out=args.fitted, table=args.table)


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
                        "transient_ms, slope")
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--threads", type=positive_int, required=True)
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
