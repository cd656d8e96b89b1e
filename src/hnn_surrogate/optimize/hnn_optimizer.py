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
import os
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


class Journal:
    """A search's evaluations, one JSON line each as it ends, after a header line of
    what they depend on (the search's parameters, not its budget).

    A search given a journal whose header is its own replays the recorded
    evaluations instead of running NEURON again: its seeded solver asks for the
    same points in the same order, and each gets its recorded objective, wall
    clock and duration. So a search killed (a cluster's time limit, a session's
    end) resumes where it stopped, and one given a larger budget goes on from
    where the smaller one ended, with the numbers a single run would give. A
    journal of other parameters is started afresh; a point asked for that is not
    the next recorded one (another solver version) drops the rest of it.
    """

    def __init__(self, path, header: dict):
        self.path = Path(path)
        self.header = json.loads(json.dumps({"search": header}))   # JSON's types
        self.pending, self.kept = [], []
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            try:
                same = bool(lines) and json.loads(lines[0]) == self.header
            except json.JSONDecodeError:
                same = False
            if same:
                for line in lines[1:]:
                    try:
                        self.pending.append(json.loads(line))
                    except json.JSONDecodeError:     # a line cut by a kill: run it again
                        break
                log.info("%s: %d evaluations recorded, replayed where the search asks for "
                         "them", self.path, len(self.pending))
            else:
                log.info("%s: another search's journal: starting afresh", self.path)
        self._rewrite(self.pending)          # the header and what parsed (not a cut line)

    def _rewrite(self, records):
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in [self.header, *records]))
        tmp.replace(self.path)

    def recorded(self, x) -> dict | None:
        """The next recorded evaluation where it is of point ``x``, else None."""
        if not self.pending:
            return None
        if np.allclose(self.pending[0]["x"], x, rtol=0, atol=1e-9):
            self.kept.append(self.pending.pop(0))
            return self.kept[-1]
        log.info("%s: the search asks for another point than evaluation %d recorded: the "
                 "%d recorded from there are dropped", self.path, len(self.kept) + 1,
                 len(self.pending))
        self.pending = []
        self._rewrite(self.kept)
        return None

    def add(self, record: dict) -> None:
        """Append one ended evaluation (flushed to disk before the search goes on)."""
        self.pending = []
        self.kept.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


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
           budget_s, max_iter, mpiexec="mpiexec", ranks=2, seed=0, journal=None,
           evaluate=None, clock=time.perf_counter) -> Search:
    """Run hnn-core's ``Optimizer`` with ``solver`` on log2 gains of ``types``
    (list of (source, target, receptor)) within ``bounds``, for ``budget_s``
    seconds of wall clock: no evaluation starts that would end past it, judged by
    the longest so far (the first always runs; only an evaluation longer than
    every one before it can overrun).

    ``seed``: the solver's random generator (cma's, as ``seed + 1``: cma reads
    0 as the clock; bayesian's, numpy's global one, set for the search and
    restored after), so a search is the same on every run. ``journal``: a path
    where each evaluation is recorded as it ends, and from which a search of the
    same parameters resumes (``Journal``).

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
    if journal is not None:
        journal = Journal(journal, dict(
            spec=spec, start=start, types=[list(t) for t in types], bounds=list(bounds),
            objective=objective, seeds=[int(x) for x in seeds], transient_ms=transient_ms,
            solver=solver, seed=int(seed), max_iter=int(max_iter)))
    t0 = clock()
    tmp = tempfile.TemporaryDirectory(prefix="hnn_optimizer_")

    seen, took = {}, []                    # evaluations by point; their durations (s)

    def run_one(x):
        nonlocal t0
        x = np.clip(np.asarray(x, float), lo, hi)
        key = tuple(np.round(x, 12))
        if key in seen:                    # a point asked for again: its value, no new run
            return seen[key]
        gains = np.exp2(x)
        rec = journal.recorded(x) if journal is not None else None
        if rec is not None:                # run before: its numbers, its place in time
            if evals["wall_s"] and rec["wall_s"] - rec["took_s"] + max(took) > budget_s:
                raise BudgetSpent
            values, spent, wall = list(rec["values"]), float(rec["took_s"]), float(rec["wall_s"])
            t0 = clock() - wall
        else:
            started = clock()
            if evals["wall_s"] and started - t0 + max(took) > budget_s:
                raise BudgetSpent
            condition = [{"src": s, "target": t, "receptor": r, "gain": float(g)}
                         for (s, t, r), g in zip(types, gains)]
            if evaluate is not None:
                values = list(evaluate(condition))
            else:
                values = neuron_objective(spec_file, start=start, condition=condition,
                                          seeds=seeds, objective=objective,
                                          transient_ms=transient_ms, mpiexec=mpiexec,
                                          ranks=ranks, workdir=tmp.name)
            end = clock()
            spent, wall = end - started, end - t0
        took.append(spent)
        evals["wall_s"].append(wall)
        evals["objective"].append(values)
        evals["gain"].append(gains)
        if journal is not None and rec is None:
            journal.add({"x": [float(v) for v in x], "values": [float(v) for v in values],
                         "took_s": spent, "wall_s": evals["wall_s"][-1]})
        log.info("%s evaluation %d%s: objective %.4f (seeds %s), %.0f s of %.0f", solver,
                 len(evals["wall_s"]), " (recorded)" if rec is not None else "",
                 np.mean(values), " ".join(f"{v:.4f}" for v in values),
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
    # cma takes seed 0 (and None) for "seed from the clock": it gets seed + 1
    kwargs = {"seed": int(seed) + 1} if solver == "cma" else {}
    # hnn-core's bayesian solver takes no seed: it draws its candidate points
    # from numpy's global generator, seeded here for the search and restored after
    state = np.random.get_state()
    np.random.seed(int(seed))
    try:
        run_one(np.zeros(len(types)))      # the start, whatever the solver asks first
        opt.fit(**kwargs)
    except BudgetSpent:
        log.info("%s: budget of %.0f s spent after %d evaluations", solver, budget_s,
                 len(evals["wall_s"]))
    finally:
        np.random.set_state(state)
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


def surrogate_cost(checkpoints) -> dict:
    """What the surrogates cost before any fit: their data's NEURON jobs (wall
    clock, each job once: one network run makes every cell type's data; and
    each data set's merge) and their training (every epoch, resumed runs
    included), as their checkpoints record them (``train``, from what
    ``merge-cells`` recorded).

    Data made by surrogates (the closed_loop regime) lists its teacher's
    training and its teacher's data merge among its jobs
    (``datasets.TEACHER_JOB``): training and data, neither a NEURON job.

    Returns {"data_s", "train_s", "n_jobs", "unknown"}: ``unknown`` names the
    checkpoints that do not record a cost (made before they did); their share
    is then missing, so the sums are NaN rather than too small. No checkpoints:
    NaN as well, with nothing named.
    """
    from ..datasets import TEACHER_JOB, TEACHER_MERGE
    from ..surrogate.checkpoint import recorded_cost

    jobs, merge, train, unknown = {}, 0.0, 0.0, []
    for path in checkpoints:
        cost = recorded_cost(path)
        if cost is None:
            unknown.append(str(path))
            continue
        jobs.update(cost[0])
        merge += cost[1]
        train += cost[2]
    teachers = {k: v for k, v in jobs.items() if k.startswith(TEACHER_JOB)}
    neuron = {k: v for k, v in jobs.items() if k not in teachers}
    merge += sum(v for k, v in teachers.items() if k.endswith(TEACHER_MERGE))
    train += sum(v for k, v in teachers.items() if not k.endswith(TEACHER_MERGE))
    known = bool(checkpoints) and not unknown
    nan = float("nan")
    return {"data_s": float(sum(neuron.values()) + merge) if known else nan,
            "train_s": float(train) if known else nan,
            "n_jobs": len(neuron), "unknown": unknown}


def first_reaching(wall, best_so_far, target) -> float:
    """Wall clock (s) at which a search's best so far first reaches ``target``;
    NaN if it never does."""
    hit = np.flatnonzero(np.asarray(best_so_far) >= target)
    return float(np.asarray(wall)[hit[0]]) if hit.size else float("nan")


def break_even_fits(cost_s, fit_wall, reach, runs, gain=True) -> tuple[float, str, int]:
    """After how many fits the surrogates' one-off cost is paid back, against
    the fastest of the solvers.

    One gradient fit costs ``fit_wall``; solver i reached the fit's NEURON
    objective after ``reach[i]`` s, or (NaN) not within its run of ``runs[i]``
    s, so it needs more. The fastest solver's time per fit T lies between the
    smallest of those times (``reach``, or ``runs`` where NaN: lower bounds) and
    the smallest ``reach``. N fits by gradient cost ``cost_s + N fit_wall``, by
    that solver ``N T``: equal at N = cost / (T - fit_wall).

    Returns (N, how, i), i the solver that sets the figure: "exact" (T known);
    "at most" (T only bounded below, by a run above the fit's wall clock);
    "never" (a solver matched the fit as fast); "not bounded" (a solver that
    never got there stopped before the fit's wall clock, so nothing bounds N);
    "no gain" (the fit did not beat its start in NEURON: nothing to pay back);
    "unknown" (the cost is).
    """
    reach, runs = np.asarray(reach, float), np.asarray(runs, float)
    low = np.where(np.isfinite(reach), reach, runs)
    i = int(np.argmin(low))
    if not np.isfinite(cost_s):
        return float("nan"), "unknown", i
    if not gain:
        return float("nan"), "no gain", i
    if np.isfinite(reach).any() and np.nanmin(reach) <= fit_wall:
        return float("inf"), "never", int(np.nanargmin(reach))
    if low[i] <= fit_wall:
        return float("nan"), "not bounded", i
    how = "exact" if np.isfinite(reach[i]) else "at most"
    return float(cost_s / (low[i] - fit_wall)), how, i


def compare_searches(trajectory, check, searches, *, out, table=None, figure=None,
                     checkpoints=None) -> str:
    """The gradient fit (its NEURON check on the fit seeds, at its wall clock)
    beside every search's best NEURON objective against wall time; with the
    surrogates' ``checkpoints``, once more counting what their data and training
    cost, and after how many fits that is paid back."""
    from ..artifacts import FIT_BASELINE, FIT_CHECK, FIT_TRAJECTORY, HNN_SEARCH
    from ..provenance import provenance_attrs

    cost = surrogate_cost(checkpoints or [])
    cost_s = cost["data_s"] + cost["train_s"]
    traj = FIT_TRAJECTORY.read(trajectory)
    ck = FIT_CHECK.read(check)
    fit_wall = float(traj["wall_s"].sum())
    fit_seeds = ck["fit_seed"].values == 1
    neuron = ck["objective"].sel(simulator="neuron").values[:, fit_seeds]   # (condition, seed)
    start_value = float(neuron[0].mean())
    methods = ["gradient"]
    gradient_value = float(neuron[1].mean())
    rows = {"wall_s": [fit_wall], "neuron_objective": [gradient_value],
            "neuron_objective_at_fit_wall": [gradient_value],
            "start_objective": [start_value], "n_evaluations": [int(fit_seeds.sum())],
            "wall_to_gradient_s": [fit_wall]}
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
        rows["wall_to_gradient_s"].append(first_reaching(wall, ds["best_so_far"].values,
                                                         gradient_value))
        curves[methods[-1]] = (wall, ds["best_so_far"].values)
    # equal wall clock: each search's best of the evaluations it finished within
    # the fit's wall clock (none finished: it has nothing to show by then)
    at_fit = np.asarray(rows["neuron_objective_at_fit_wall"][1:], float)
    best_solver = float(np.nanmax(at_fit)) if np.isfinite(at_fit).any() else float("nan")
    ahead = int(not gradient_value <= best_solver)    # NaN (no solver result): ahead
    # after how many fits the surrogates pay for themselves, against the fastest
    # solver (one that never matched the fit counts its whole run, a lower bound)
    n_even, how, soonest = break_even_fits(cost_s, fit_wall, rows["wall_to_gradient_s"][1:],
                                           rows["wall_s"][1:], gain=gradient_value > start_value)
    attrs = provenance_attrs()
    attrs.update(start=str(ck.attrs["start"]), objective=str(ck.attrs["objective"]),
                 fit_wall_s=fit_wall, gradient_ahead=ahead,
                 surrogate_data_s=cost["data_s"], surrogate_train_s=cost["train_s"],
                 surrogate_neuron_jobs=cost["n_jobs"], break_even_fits=n_even,
                 break_even=how, break_even_solver=methods[1 + soonest])
    ds = FIT_BASELINE.build({k: np.array(v) for k, v in rows.items()}, {"method": methods},
                            attrs)
    lines = [f"Gradient fit against hnn-core's Optimizer, from {ck.attrs['start']}: the fit's "
             "objective in NEURON on the fit seeds (start "
             f"{start_value:.4f}); the gradient fit took {fit_wall:.0f} s (first not counting "
             "its surrogates' data and training, then counting them)", "",
             "| method | wall (s) | NEURON evaluations | objective, best | within the fit's "
             "wall clock |", "|---|---|---|---|---|"]
    for i, m in enumerate(methods):
        lines.append(f"| {m} | {rows['wall_s'][i]:.0f} | {rows['n_evaluations'][i]} | "
                     f"{rows['neuron_objective'][i]:.4f} | "
                     f"{rows['neuron_objective_at_fit_wall'][i]:.4f} |")
    whole = max(rows["neuron_objective"][1:])
    lines += ["", f"FIT_BASELINE gradient {gradient_value:.4f} vs best solver {best_solver:.4f} "
                  f"at the fit's wall clock ({fit_wall:.0f} s): gradient fit "
                  f"{'ahead' if ahead else 'NOT ahead'} (best solver over its whole run: "
                  f"{whole:.4f})"]
    lines += ["", _cost_lines(cost, cost_s, fit_wall, methods, rows, n_even, how, soonest)]
    text = FIT_BASELINE.publish(ds, out, "\n".join(lines), table)
    if figure is not None:
        counted = (f"counting its surrogates' data and training: {cost_s + fit_wall:.0f} s"
                   if np.isfinite(cost_s) else "surrogates' data and training: cost not known")
        _plot_searches(curves, fit_wall, rows, start_value, figure, counted)
    return text


def _cost_lines(cost, cost_s, fit_wall, methods, rows, n_even, how, soonest) -> str:
    if not np.isfinite(cost_s):
        where = (f"no cost recorded in {', '.join(cost['unknown'])}" if cost["unknown"]
                 else "no checkpoints given")
        return f"Counting the surrogates' data and training: not known ({where})."
    solver = methods[1 + soonest]
    reach = rows["wall_to_gradient_s"][1 + soonest]
    reached = (f"The fastest solver, {solver}, reached the gradient fit's objective after "
               f"{reach:.0f} s" if np.isfinite(reach) else
               f"No solver is known to reach the gradient fit's objective sooner than "
               f"{solver}, which had not reached it when it stopped after "
               f"{rows['wall_s'][1 + soonest]:.0f} s")
    even = {"exact": f"after {n_even:.1f} fits",
            "at most": f"after at most {n_even:.1f} fits",
            "never": "never (a solver is as fast per fit)",
            "no gain": "not at all: the fit did not beat its start in NEURON",
            "not bounded": (f"after a number of fits these searches do not bound (they "
                            f"stopped before the fit's {fit_wall:.0f} s; a search run for "
                            f"longer would)")}[how]
    total = cost_s + fit_wall
    return (f"Counting the surrogates' data and training as well: their data took "
            f"{cost['data_s']:.0f} s ({cost['n_jobs']} NEURON jobs, and the merges) and their "
            f"training {cost['train_s']:.0f} s (each job's wall clock, summed), so the "
            f"gradient fit's result comes after {total:.0f} s of jobs, not {fit_wall:.0f} s. "
            f"{reached}. The one-off cost is paid back {even}.\n\nFIT_BASELINE_COUNTED "
            f"gradient fit {total:.0f} s counting data and training; break-even: {how}"
            + (f" {n_even:.1f} fits" if how in ("exact", "at most") else ""))


def _plot_searches(curves, fit_wall, rows, start_value, path, counted):
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
    ax.set(xlabel="wall clock (s)", ylabel="objective in NEURON (fit seeds)",
           title=f"gradient fit: {fit_wall:.0f} s; {counted}")
    ax.title.set_fontsize(8)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
