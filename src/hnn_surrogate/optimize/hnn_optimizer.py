"""The baseline: what HNN users fit with today, hnn-core's gradient-free ``Optimizer``.

hnn-core's ``Optimizer`` (its ``bayesian``, ``cobyla`` and ``cma`` solvers)
searches the same free gains as the gradient fit, from the same start, for the
same objective: each call of its objective function runs the start network
with those gains in NEURON (``network-neuron``, hnn-core, MPI ranks), once per
fit seed, and scores every run with the fit's objective (``check._score``: the
code the gradient fit's NEURON check uses). hnn-core minimises, so it gets
minus the seeds' mean.

The search is given a wall-clock budget (the gradient fit's own, read from its
trajectory, times a factor): the start (every gain 1) is evaluated first, and
no evaluation starts that would end past the budget, judged by the longest
evaluation so far (so the search's wall clock is the fit's, not the fit's plus
one more NEURON evaluation); hnn-core's solver is then stopped and the best
evaluation so far is the result. Every evaluation's time, gains and NEURON
objective per seed are kept.

A solver's parameter is log2 of each free gain within the fit's bounds; the
start (every gain 1) is its initial point.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOLVERS = ("bayesian", "cobyla", "cma")


class BudgetSpent(Exception):
    """Raised inside hnn-core's solver to stop it: the wall-clock budget is spent."""


@dataclass
class Search:
    """Every NEURON evaluation of one solver's search, in order."""

    solver: str
    labels: list
    types: list
    seeds: list
    wall_s: np.ndarray        # (n_evals,) since the search began, at the end of each
    objective: np.ndarray     # (n_evals, n_seeds), NEURON, the fit's objective
    gain: np.ndarray          # (n_evals, n_free)
    budget_s: float

    @property
    def best(self) -> int:
        from .objective_config import best_index

        return best_index(self.objective)

    def condition(self, index: int | None = None) -> list[dict]:
        g = self.gain[self.best if index is None else index]
        return [{"src": s, "target": t, "receptor": r, "gain": float(x)}
                for (s, t, r), x in zip(self.types, g)]


def neuron_objective(spec_file, *, start, condition, seeds, objective, transient_ms, mpiexec,
                     ranks, workdir) -> list[float]:
    """The fit's objective of the start network with ``condition`` (a list of gains)
    in NEURON, one run per seed (``network-neuron`` on ``ranks`` MPI ranks)."""
    from .check import _score

    workdir = Path(workdir)
    cond = workdir / "condition.json"
    cond.write_text(json.dumps(condition))
    values = []
    for seed in seeds:
        out = workdir / f"run_{seed}.nc"
        cmd = [*shlex.split(mpiexec), "-n", str(int(ranks)), "hnn-surrogate", "network-neuron",
               "--spec", str(spec_file), "--scenario", start, "--condition", "fitted",
               "--condition-file", str(cond), "--seed", str(int(seed)), "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"NEURON run failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
        values.append(_score(out, objective, transient_ms)[0])
        out.unlink()
    return values


def search(spec_file, *, start, types, bounds, objective, seeds, transient_ms, solver,
           budget_s, max_iter, mpiexec="mpiexec", ranks=2, seed=0, evaluate=None,
           clock=time.perf_counter) -> Search:
    """Run hnn-core's ``Optimizer`` with ``solver`` on log2 gains of ``types``
    (list of (source, target, receptor)) within ``bounds``, for ``budget_s``
    seconds of wall clock: no evaluation starts that would end past it, judged by
    the longest so far (the first always runs; only an evaluation longer than
    every one before it can overrun).

    ``evaluate(condition) -> [objective per seed]`` replaces the NEURON runs
    where given (tests); by default ``neuron_objective``. ``clock``: seconds,
    the budget's (tests pass one that only evaluations advance).
    """
    from hnn_core.optimization import Optimizer

    from ..network.spec import build_network
    from ..artifacts import read_json

    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} is not one of hnn-core's {', '.join(SOLVERS)}")
    if not types:
        raise ValueError("no free connection type: nothing to search")
    if not budget_s > 0:
        raise ValueError(f"budget of {budget_s} s: must be positive")
    spec = read_json(spec_file, "network spec")
    names = [f"{s}->{t} {r}" for s, t, r in types]
    lo, hi = (float(np.log2(b)) for b in bounds)
    constraints = {n: (lo, hi) for n in names}
    evals = {"wall_s": [], "objective": [], "gain": []}
    t0 = clock()
    tmp = tempfile.TemporaryDirectory(prefix="hnn_optimizer_")

    seen, took = {}, []                    # evaluations by point; their durations (s)

    def run_one(x):
        x = np.clip(np.asarray(x, float), lo, hi)
        key = tuple(np.round(x, 12))
        if key in seen:                    # a point asked for again: its value, no new run
            return seen[key]
        started = clock()
        if evals["wall_s"] and started - t0 + max(took) > budget_s:
            raise BudgetSpent
        gains = np.exp2(x)
        condition = [{"src": s, "target": t, "receptor": r, "gain": float(g)}
                     for (s, t, r), g in zip(types, gains)]
        if evaluate is not None:
            values = list(evaluate(condition))
        else:
            values = neuron_objective(spec_file, start=start, condition=condition, seeds=seeds,
                                      objective=objective, transient_ms=transient_ms,
                                      mpiexec=mpiexec, ranks=ranks, workdir=tmp.name)
        end = clock()
        took.append(end - started)
        evals["wall_s"].append(end - t0)
        evals["objective"].append(values)
        evals["gain"].append(gains)
        log.info("%s evaluation %d: objective %.4f (seeds %s), %.0f s of %.0f", solver,
                 len(evals["wall_s"]), np.mean(values), " ".join(f"{v:.4f}" for v in values),
                 evals["wall_s"][-1], budget_s)
        seen[key] = -float(np.mean(values))
        return seen[key]

    def obj_fun(initial_net, initial_params, set_params, predicted_params, update_params,
                obj_values, tstop, obj_fun_kwargs, best=None):
        batch = np.ndim(predicted_params) == 2            # cma asks for a population
        xs = predicted_params if batch else [predicted_params]
        out = []
        for x in xs:
            value = run_one(x)
            obj_values.append(value)
            if best is not None and value < best["obj"]:
                best["obj"], best["params"] = value, list(x)
            out.append(value)
        return out if batch else out[0]

    net = build_network(spec, scenario=start, condition="default", seed=int(seeds[0]))
    opt = Optimizer(net, tstop=float(spec["scenarios"][start]["tstop"]), constraints=constraints,
                    set_params=lambda net, params: None,
                    initial_params={n: 0.0 for n in names}, solver=solver, obj_fun=obj_fun,
                    max_iter=int(max_iter))
    kwargs = {"seed": int(seed)} if solver == "cma" else {}
    try:
        run_one(np.zeros(len(types)))      # the start, whatever the solver asks first
        opt.fit(**kwargs)
    except BudgetSpent:
        log.info("%s: budget of %.0f s spent after %d evaluations", solver, budget_s,
                 len(evals["wall_s"]))
    finally:
        tmp.cleanup()
    return Search(solver=solver, labels=names, types=[tuple(t) for t in types],
                  seeds=[int(s) for s in seeds], wall_s=np.array(evals["wall_s"]),
                  objective=np.array(evals["objective"], float).reshape(-1, len(seeds)),
                  gain=np.array(evals["gain"], float).reshape(-1, len(types)),
                  budget_s=float(budget_s))


def write_search(res: Search, *, fit: dict, out, best_out, table=None) -> str:
    """The ``hnn_search`` NetCDF, the best gains as a network condition (JSON), a table."""
    from ..artifacts import HNN_SEARCH, write_json
    from ..provenance import provenance_attrs

    mean = res.objective.mean(axis=1)
    best_so_far = np.maximum.accumulate(mean)
    attrs = provenance_attrs()
    attrs.update(solver=res.solver, start=fit["start"],
                 objective=json.dumps(fit["objective"], sort_keys=True),
                 budget_s=float(res.budget_s), best=int(res.best))
    ds = HNN_SEARCH.build(
        {"wall_s": res.wall_s, "objective": res.objective, "best_so_far": best_so_far,
         "gain": res.gain},
        {"evaluation": np.arange(mean.size), "seed": np.asarray(res.seeds, np.int64),
         "free": res.labels}, attrs)
    lines = [f"hnn-core Optimizer ({res.solver}) from {fit['start']}, objective "
             f"{fit['objective']['kind']}, NEURON on seeds {res.seeds}: {mean.size} "
             f"evaluations in {res.wall_s[-1]:.0f} s (budget {res.budget_s:.0f} s)", "",
             f"objective start {mean[0]:.4f} -> best {mean[res.best]:.4f} (evaluation "
             f"{res.best})", "", "| connection | best gain |", "|---|---|"]
    lines += [f"| {lab} | {g:.3f} |" for lab, g in zip(res.labels, res.gain[res.best])]
    write_json(res.condition(), best_out)
    return HNN_SEARCH.publish(ds, out, "\n".join(lines), table)


def compare_searches(trajectory, check, searches, *, out, table=None, figure=None) -> str:
    """The gradient fit (its NEURON check on the fit seeds, at its wall clock)
    beside every search's best NEURON objective against wall time."""
    from ..artifacts import FIT_BASELINE, FIT_CHECK, FIT_TRAJECTORY, HNN_SEARCH
    from ..provenance import provenance_attrs

    traj = FIT_TRAJECTORY.read(trajectory)
    ck = FIT_CHECK.read(check)
    fit_wall = float(traj["wall_s"].sum())
    fit_seeds = ck["fit_seed"].values == 1
    neuron = ck["objective"].sel(simulator="neuron").values[:, fit_seeds]   # (condition, seed)
    start_value = float(neuron[0].mean())
    methods = ["gradient"]
    rows = {"wall_s": [fit_wall], "neuron_objective": [float(neuron[1].mean())],
            "neuron_objective_at_fit_wall": [float(neuron[1].mean())],
            "start_objective": [start_value], "n_evaluations": [int(fit_seeds.sum())]}
    curves = {}
    for path in searches:
        ds = HNN_SEARCH.read(path)
        mean = ds["objective"].values.mean(axis=1)
        wall = ds["wall_s"].values
        within = wall <= fit_wall
        methods.append(str(ds.attrs["solver"]))
        rows["wall_s"].append(float(wall[-1]))
        rows["neuron_objective"].append(float(mean.max()))
        rows["neuron_objective_at_fit_wall"].append(float(mean[within].max()) if within.any()
                                                    else float("nan"))
        rows["start_objective"].append(float(mean[0]))
        rows["n_evaluations"].append(int(mean.size))
        curves[methods[-1]] = (wall, ds["best_so_far"].values)
    best_solver = max(rows["neuron_objective"][1:])
    ahead = int(rows["neuron_objective"][0] > best_solver)
    attrs = provenance_attrs()
    attrs.update(start=str(ck.attrs["start"]), objective=str(ck.attrs["objective"]),
                 fit_wall_s=fit_wall, gradient_ahead=ahead)
    ds = FIT_BASELINE.build({k: np.array(v) for k, v in rows.items()}, {"method": methods},
                            attrs)
    lines = [f"Gradient fit against hnn-core's Optimizer, from {ck.attrs['start']}: the fit's "
             "objective in NEURON on the fit seeds (start "
             f"{start_value:.4f}); the gradient fit took {fit_wall:.0f} s (its surrogates' "
             "data and training not counted)", "",
             "| method | wall (s) | NEURON evaluations | objective, best | within the fit's "
             "wall clock |", "|---|---|---|---|---|"]
    for i, m in enumerate(methods):
        lines.append(f"| {m} | {rows['wall_s'][i]:.0f} | {rows['n_evaluations'][i]} | "
                     f"{rows['neuron_objective'][i]:.4f} | "
                     f"{rows['neuron_objective_at_fit_wall'][i]:.4f} |")
    lines += ["", f"FIT_BASELINE gradient {rows['neuron_objective'][0]:.4f} vs best solver "
                  f"{best_solver:.4f}: gradient fit {'ahead' if ahead else 'NOT ahead'}"]
    text = FIT_BASELINE.publish(ds, out, "\n".join(lines), table)
    if figure is not None:
        _plot_searches(curves, fit_wall, rows, start_value, figure)
    return text


def _plot_searches(curves, fit_wall, rows, start_value, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..artifacts import atomic_output

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, (wall, best) in curves.items():
        ax.step(wall, best, where="post", label=f"hnn-core {name}")
    ax.plot([0, fit_wall], [start_value, rows["neuron_objective"][0]], "k*-", ms=10,
            label="gradient fit (NEURON check)")
    ax.axhline(start_value, color="0.6", ls=":", label="start")
    ax.set(xlabel="wall clock (s)", ylabel="objective in NEURON (fit seeds)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
