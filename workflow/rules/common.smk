# The only place with Python logic: config validation, wildcard constraints,
# input functions and the list of final targets.
import json
import math
import os

from snakemake.exceptions import WorkflowError

from hnn_surrogate import CELL_TYPES
from hnn_surrogate.cells.closed_loop import file_sha256
from hnn_surrogate.cells.network_prior import regime_prior
from hnn_surrogate.config import ConfigError, train_config, validate_config

try:
    # a job process (on a cluster, each job parses this file again) checks the
    # schema only: the main process checked the whole config before any job
    _validated = validate_config(config, semantic=workflow.is_main_process)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

CELLS = config["cells"]
RES = config["resources"]

MERGE_MB_PER_SHARD_MB = 5
"""Peak memory of ``merge_cells``: 1,000 MB plus this per MB of shards on disk
(compressed), measured on 90 network_prior runs (``merge-cells`` joining one
variable at a time, freed blocks given back to the kernel): L2 pyramidal
9,864 MB for 2,063 MB of shards, L2 basket 1,863 MB for 294 MB. Declared as
``mem_mb``, at least ``resources.mem_mb``: two pyramidal merges that each
held 16.6 GB (before both changes), side by side, ran out of 24 GB."""


def merge_mem_mb(wildcards, input):
    return max(RES["mem_mb"], int(1000 + MERGE_MB_PER_SHARD_MB * input.size_mb))


PRETRAINED = config["train"]["checkpoints_from"]
"""A folder of trained surrogates used in place of training (None: train them)."""


wildcard_constraints:
    cell_type="|".join(CELL_TYPES),
    regime="[a-z][a-z0-9_]*",
    shard=r"\d{4}",
    fraction=r"0\.\d+",
    scenario="[A-Za-z][A-Za-z0-9_]*",
    condition="[A-Za-z][A-Za-z0-9_]*",
    seed=r"\d+",
    start="[A-Za-z][A-Za-z0-9_]*",
    point=r"[A-Za-z][A-Za-z0-9_.\-]*",


REPLAY = CELLS["replay"]
"""The replay regime (network input replayed to lone cells); off when n_sims is 0."""


PRIOR = CELLS["network_prior"]
"""The network_prior regime (every cell of NEURON runs of networks drawn from a prior);
off when n_runs is 0. One job per run writes one shard per cell type. Its
alpha_start section: the alpha_start regime's runs, drawn alike (off when its
n_runs is 0). Its closed_loop section: the closed_loop regime's runs, networks
drawn alike and run with the surrogates of closed_loop.surrogates, their cells
replayed in NEURON (off when its n_runs is 0)."""

CLOSED_LOOP = PRIOR["closed_loop"]


def regime_sims():
    """Simulations per cell type of every regime, the replay regime included."""
    sims = {name: r["n_sims"] for name, r in CELLS["regimes"].items()}
    if REPLAY["n_sims"]:
        sims["replay"] = REPLAY["n_sims"]
    return sims


def n_shards(regime):
    """Number of shard jobs of a regime."""
    return math.ceil(regime_sims()[regime] / CELLS["shard_size"])


def shard_range(wildcards, regime=None):
    """(first, count) of the simulations in shard ``wildcards.shard`` of ``regime``
    (default: ``wildcards.regime``)."""
    n = regime_sims()[regime or wildcards.regime]
    first = int(wildcards.shard) * CELLS["shard_size"]
    return first, min(CELLS["shard_size"], n - first)


def shard_files(wildcards):
    """Every shard of one cell type, all regimes (network_prior: one per run)."""
    return [
        *(
            f"results/cells/shards/{wildcards.cell_type}/{regime}/{shard:04d}.nc"
            for regime in regime_sims()
            for shard in range(n_shards(regime))
        ),
        *(
            f"results/cells/shards/{wildcards.cell_type}/network_prior/{run:04d}.nc"
            for run in range(PRIOR["n_runs"])
        ),
        *(
            f"results/cells/shards/{wildcards.cell_type}/{regime}/{run:04d}.nc"
            for regime in ("alpha_start", "closed_loop")
            for run in range(PRIOR[regime]["n_runs"])
        ),
    ]


def replay_event_files():
    """The replay regime's NEURON network runs, as replay_events files, in config order."""
    return [
        f"results/cells/replay/{scenario}/{condition}/events_{seed}.nc"
        for seed in REPLAY["seeds"]
        for scenario in REPLAY["scenarios"]
        for condition in REPLAY["conditions"]
    ]


LC = config["evaluate"]["learning_curve"]
SC = config["evaluate"]["steps_curve"]


def learning_curve_models(cell_type, ext):
    """The subset models, then the full model, in one order: their metrics
    (``ext`` "nc") or their checkpoints ("pt")."""
    full = {
        "nc": f"results/evaluate/{cell_type}.nc",
        "pt": f"results/train/{cell_type}.pt",
    }
    return [
        *(f"results/learning_curve/{cell_type}/{f}.{ext}" for f in LC["fractions"]),
        full[ext],
    ]


NET = config["network"]
NETWORK_ON = set(CELLS["cell_types"]) == set(CELL_TYPES)
"""The network stage needs a surrogate of every HNN cell type."""


def network_spec(scenario, condition, simulator, tstop=None):
    """What one network run's output depends on, and nothing more: the network model
    and grid, the dipole's post-processing, the surrogates' bin, one scenario's drives
    and duration (``tstop`` replaces it), one condition, and for NEURON its step.
    Seeds, MPI ranks, transients and benchmark settings are not in it: changing them
    reruns no existing run."""
    scenario_spec = {
        k: v for k, v in NET["scenarios"][scenario].items() if k != "transient_ms"
    }
    if tstop is not None:
        scenario_spec["tstop"] = tstop
    spec = {
        "model": NET["model"],
        "mesh_shape": NET["mesh_shape"],
        "postproc": NET["postproc"],
        "bin_ms": CELLS["bin_ms"],
        "scenarios": {scenario: scenario_spec},
        "conditions": {condition: NET["conditions"][condition]},
    }
    if simulator == "neuron":
        spec["dt"] = NET["dt"]
    return spec


def benchmark_spec():
    """The network benchmark's run (benchmark scenario, default condition, its length)."""
    return network_spec(
        NET["benchmark_scenario"], "default", "neuron", tstop=NET["benchmark_tstop"]
    )


OPT = config["optimize"]
OPT_ON = OPT["enabled"] and NETWORK_ON
"""The fits need the network stage's surrogates."""


SCALE = config["scaling"]
SCALE_ON = SCALE["enabled"] and NETWORK_ON
"""The scaling sweep needs the network stage's surrogates."""


def scaling_point(mesh):
    """What one size's runs depend on: the grid, duration, drives' seed, cutoff,
    threads and NEURON's ranks and limits (a run over the limit is marked not run)."""
    return {
        "mesh": int(mesh),
        "tstop": SCALE["tstop"],
        "scenario": SCALE["scenario"],
        "seed": SCALE["seed"],
        "cutoff": SCALE["cutoff"],
        "transient_ms": SCALE["transient_ms"],
        "threads": SCALE["threads"],
        "neuron": SCALE["neuron"],
    }


def scaling_cutoff_point():
    """What the cutoff check depends on: its seeds, duration and the cutoff."""
    return {
        "scenario": SCALE["scenario"],
        "seeds": SCALE["cutoff_seeds"],
        "cutoff": SCALE["cutoff"],
        "tstop": SCALE["cutoff_tstop"],
        "transient_ms": SCALE["transient_ms"],
    }


def fit_points():
    """{point name: (start, objective, free set, lr)} of every grid point."""
    g = OPT["grid"]
    return {
        f"{s}-{o}-{f}-lr{lr:g}": (s, o, f, lr)
        for s in g["start"]
        for o in g["objective"]
        for f in g["free"]
        for lr in g["lr"]
    }


def start_scenario(start):
    """A fit's starting network: a key of optimize.starts or network.scenarios."""
    return {**NET["scenarios"], **OPT["starts"]}[start]


def optimize_spec(start, simulator):
    """What a fit (``fit``), or a NEURON or surrogate run of its start or result,
    depends on: the network model and grid, the surrogates' bin, the start's drives
    and duration; for runs the dipole's post-processing, for NEURON its step."""
    scenario = {k: v for k, v in start_scenario(start).items() if k != "transient_ms"}
    spec = {
        "model": NET["model"],
        "mesh_shape": NET["mesh_shape"],
        "bin_ms": CELLS["bin_ms"],
        "scenarios": {start: scenario},
        "conditions": {"default": []},
    }
    if simulator != "fit":
        spec["postproc"] = NET["postproc"]
    if simulator == "neuron":
        spec["dt"] = NET["dt"]
    return spec


def fit_parameters(point):
    """A fit job's settings (``fit-connectivity --fit``)."""
    start, objective, free, lr = fit_points()[point]
    return {
        "start": start,
        "objective": OPT["objectives"][objective],
        "free": OPT["free_sets"][free],
        "bounds": OPT["bounds"],
        "lr": lr,
        "steps": OPT["steps"],
        "seeds": OPT["seeds"],
        "tstop": start_scenario(start)["tstop"],
        "transient_ms": OPT["transient_ms"],
        "slope": NET["surrogate_slope"],
        "grad_storage": OPT["grad_storage"],
    }


def fit_check_runs(wildcards):
    """(condition:seed:simulator, path) of the runs checking fit ``wildcards.point``."""
    start = fit_points()[wildcards.point][0]
    out = []
    for seed in [*OPT["seeds"], *OPT["check_seeds"]]:
        for sim in ("neuron", "surrogate"):
            out.append(
                (
                    f"default:{seed}:{sim}",
                    f"results/optimize/starts/{start}/{sim}_{seed}.nc",
                )
            )
            out.append(
                (
                    f"fitted:{seed}:{sim}",
                    f"results/optimize/{wildcards.point}/{sim}_fitted_{seed}.nc",
                )
            )
    return out


PARAMETERS = {
    "network": lambda scenario, condition, simulator: network_spec(
        scenario, condition, simulator
    ),
    "benchmark": lambda name: {"network": benchmark_spec}[name](),
    # a simulation's input does not depend on how many the regime has; a
    # Poisson regime's file is as it was before volleys existed
    "regime": lambda regime: {
        k: v
        for k, v in CELLS["regimes"][regime].items()
        if k != "n_sims" and not (k == "volley" and v is None)
    },
    # what a network_prior (or alpha_start) run depends on: the network model and
    # grid, the prior it is drawn from (not how many runs there are, nor the ranks)
    "network_prior": lambda part: {
        "spec": lambda: {k: NET[k] for k in ("model", "mesh_shape")},
        "prior": lambda: regime_prior(PRIOR),
        "alpha_start": lambda: regime_prior(PRIOR, "alpha_start"),
        "closed_loop": lambda: regime_prior(PRIOR, "closed_loop"),
    }[part](),
    "optimize": lambda start, simulator: optimize_spec(start, simulator),
    "scaling": lambda part, *mesh: {
        "spec": lambda: network_spec(
            SCALE["scenario"], "default", "neuron", tstop=SCALE["tstop"]
        ),
        "cutoff_spec": lambda: network_spec(
            SCALE["scenario"], "default", "surrogate", tstop=SCALE["cutoff_tstop"]
        ),
        "point": lambda: scaling_point(*mesh),
        "cutoff": scaling_cutoff_point,
        "batch_spec": lambda: network_spec(
            SCALE["scenario"], "default", "surrogate", tstop=SCALE["batch"]["tstop"]
        ),
        "batch": lambda: {
            "scenario": SCALE["scenario"],
            "seed": SCALE["seed"],
            **SCALE["batch"],
        },
    }[part](),
    "fit": lambda point: fit_parameters(point),
    "train": lambda cell_type: train_config(config, cell_type),
    "train_subset": lambda cell_type, fraction: {
        **train_config(config, cell_type),
        "train_fraction": float(fraction),
    },
    # the cell type's own training, run on to the last snapshot epoch (which may
    # lie past train.epochs: the plateau schedule does not depend on the total)
    # with no early stop
    "train_steps": lambda cell_type: {
        **train_config(config, cell_type),
        "snapshot_epochs": sorted(SC["epochs"]),
        "epochs": max(SC["epochs"]),
        "patience": max(SC["epochs"]),
    },
}
"""What each parameter file results/parameters/<kind>/<name parts>.json holds: the
config a job reads, handed to its command as a file (no JSON on a shell line)."""


def parameters(wildcards):
    """The content of parameter file ``results/parameters/{name}.json``, as JSON text
    with sorted keys: the order of keys in a config file is no change."""
    kind, *parts = wildcards.name.split("/")
    return json.dumps(PARAMETERS[kind](*parts), sort_keys=True)


def parameter_file(kind, *parts):
    """Path of the parameter file of ``kind`` (see PARAMETERS)."""
    return os.path.join("results", "parameters", kind, *map(str, parts)) + ".json"


def network_transient(scenario):
    """Start-up time left out of a scenario's rates and spectra (ms)."""
    return NET["scenarios"][scenario].get("transient_ms", NET["transient_ms"])


def network_runs(scenario):
    """(condition:seed:simulator, path) of every run of a scenario."""
    return [
        (f"{cond}:{seed}:{sim}", f"results/network/{scenario}/{cond}/{sim}_{seed}.nc")
        for cond in NET["conditions"]
        for seed in NET["seeds"]
        for sim in ("neuron", "surrogate", "open_loop")
    ]


def all_targets():
    """What `snakemake` builds by default: with train.checkpoints_from, the stages
    that use the surrogates, not the cells stage and training that would make them."""
    return [*([] if PRETRAINED else data_targets()), *model_targets()]


def data_targets():
    """The cells stage, training and evaluation: what needs the NEURON cell data."""
    return [
        *expand("results/cells/{cell_type}.nc", cell_type=CELLS["cell_types"]),
        *expand("results/cells/figures/{cell_type}.png", cell_type=CELLS["cell_types"]),
        *expand("results/evaluate/{cell_type}.nc", cell_type=CELLS["cell_types"]),
        *expand(
            "results/evaluate/figures/{cell_type}.png", cell_type=CELLS["cell_types"]
        ),
        *expand(
            "results/evaluate/linear_baseline/{cell_type}.nc",
            cell_type=CELLS["cell_types"],
        ),
        "results/train/histories.png",
        "results/benchmarks/cells.nc",
        "results/benchmarks/surrogate.nc",
        *([f"results/learning_curve/{LC['cell_type']}.nc"] if LC["fractions"] else []),
        *([f"results/steps_curve/{SC['cell_type']}.nc"] if SC["epochs"] else []),
    ]


def model_targets():
    """The network, optimize and scaling stages: what needs only the surrogates."""
    return [
        *(
            [
                *expand(
                    "results/network/{scenario}/comparison.nc",
                    scenario=NET["scenarios"],
                ),
                "results/benchmarks/network.nc",
                "results/network/gradient_horizon.nc",
            ]
            if NETWORK_ON
            else []
        ),
        *(
            [
                *(f"results/optimize/{p}/check.nc" for p in fit_points()),
                "results/optimize/summary.nc",
                *(
                    f"results/optimize/{p}/baseline.nc"
                    for p in fit_points()
                    if OPT["baseline"]["enabled"]
                ),
                # the step's cost, on the first grid point
                f"results/optimize/{next(iter(fit_points()))}/step_benchmark.nc",
            ]
            if OPT_ON
            else []
        ),
        *(
            [
                "results/scaling/summary.nc",
                "results/scaling/cutoff.nc",
                "results/scaling/batch.nc",
            ]
            if SCALE_ON
            else []
        ),
    ]
