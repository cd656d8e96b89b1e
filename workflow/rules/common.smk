# The only place with Python logic: config validation, wildcard constraints,
# input functions and the list of final targets.
import json
import math

from snakemake.exceptions import WorkflowError

from hnn_surrogate import CELL_TYPES
from hnn_surrogate.config import ConfigError, train_config, validate_config

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

CELLS = config["cells"]
RES = config["resources"]


wildcard_constraints:
    cell_type="|".join(CELL_TYPES),
    regime="[a-z][a-z0-9_]*",
    shard=r"\d{4}",
    fraction=r"0\.\d+",
    scenario="[A-Za-z][A-Za-z0-9_]*",
    condition="[A-Za-z][A-Za-z0-9_]*",
    seed=r"\d+",


REPLAY = CELLS["replay"]
"""The replay regime (network input replayed to lone cells); off when n_sims is 0."""


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
    """Every shard of one cell type, all regimes."""
    return [
        f"results/cells/shards/{wildcards.cell_type}/{regime}/{shard:04d}.nc"
        for regime in regime_sims()
        for shard in range(n_shards(regime))
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


def learning_curve_metrics(wildcards):
    """Metrics of the subset models, then of the full model."""
    return [
        *(f"results/learning_curve/{wildcards.cell_type}/{f}.nc" for f in LC["fractions"]),
        f"results/evaluate/{wildcards.cell_type}.nc",
    ]


NET = config["network"]
NETWORK_ON = set(CELLS["cell_types"]) == set(CELL_TYPES)
"""The network stage needs a surrogate of every HNN cell type."""


def network_spec_json(scenario, condition=None, benchmark=False):
    """What one network job reads, as JSON for the command line: the network section
    with only its scenario (and condition), plus the surrogates' bin. Editing another
    scenario or condition leaves this job's parameters, and so its output, alone."""
    spec = json.loads(json.dumps(NET))
    spec.pop("gradient_check")      # read by one rule, from the config; no run depends on it
    spec["scenarios"] = {scenario: spec["scenarios"][scenario]}
    if condition is not None:
        spec["conditions"] = {condition: spec["conditions"][condition]}
    spec["bin_ms"] = CELLS["bin_ms"]
    if benchmark:
        spec["scenarios"][scenario]["tstop"] = NET["benchmark_tstop"]
    return json.dumps(spec, separators=(",", ":"))


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
    """What `snakemake` builds by default."""
    return [
        *expand("results/cells/{cell_type}.nc", cell_type=CELLS["cell_types"]),
        *expand("results/cells/figures/{cell_type}.png", cell_type=CELLS["cell_types"]),
        *expand("results/evaluate/{cell_type}.nc", cell_type=CELLS["cell_types"]),
        *expand("results/evaluate/figures/{cell_type}.png", cell_type=CELLS["cell_types"]),
        "results/benchmarks/cells.nc",
        "results/benchmarks/surrogate.nc",
        *([f"results/learning_curve/{LC['cell_type']}.nc"] if LC["fractions"] else []),
        *(
            [
                *expand("results/network/{scenario}/comparison.nc", scenario=NET["scenarios"]),
                "results/benchmarks/network.nc",
                "results/network/gradient_horizon.nc",
            ]
            if NETWORK_ON
            else []
        ),
    ]
