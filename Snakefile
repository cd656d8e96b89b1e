# hnn-surrogate: NEURON single-cell data -> surrogates -> networks.
# Run: snakemake --cores all   (profiles/default is picked up automatically;
# add --configfile config/tiny.yaml or config/paper.yaml for other scales).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/parameters.smk"
include: "workflow/rules/cells.smk"
include: "workflow/rules/surrogate.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/network.smk"
include: "workflow/rules/optimize.smk"
include: "workflow/rules/scaling.smk"


rule all:
    default_target: True
    input:
        all_targets(),
