# The network stage: the same hnn-core network in NEURON (MPI) and with the
# surrogates, per scenario, condition and seed; the comparison; the benchmark.


rule network_neuron:
    output:
        "results/network/{scenario}/{condition}/neuron_{seed}.nc",
    log:
        "logs/network_neuron/{scenario}_{condition}_{seed}.log",
    params:
        spec=lambda wc: network_spec_json(wc.scenario, wc.condition),
    resources:
        mpi="mpiexec",
        tasks=NET["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    threads: NET["mpi_ranks"]
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate network-neuron"
        " --spec '{params.spec}' --scenario {wildcards.scenario}"
        " --condition {wildcards.condition} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"


rule network_surrogate:
    input:
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        "results/network/{scenario}/{condition}/surrogate_{seed}.nc",
    log:
        "logs/network_surrogate/{scenario}_{condition}_{seed}.log",
    params:
        spec=lambda wc: network_spec_json(wc.scenario, wc.condition),
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate network-surrogate --spec '{params.spec}'"
        " --scenario {wildcards.scenario} --condition {wildcards.condition}"
        " --seed {wildcards.seed} --checkpoints {input.checkpoints} --threads {threads}"
        " --out {output} > {log} 2>&1"


rule network_open_loop:
    input:
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
        replay="results/network/{scenario}/{condition}/neuron_{seed}.nc",
    output:
        "results/network/{scenario}/{condition}/open_loop_{seed}.nc",
    log:
        "logs/network_open_loop/{scenario}_{condition}_{seed}.log",
    params:
        spec=lambda wc: network_spec_json(wc.scenario, wc.condition),
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate network-surrogate --spec '{params.spec}'"
        " --scenario {wildcards.scenario} --condition {wildcards.condition}"
        " --seed {wildcards.seed} --checkpoints {input.checkpoints} --threads {threads}"
        " --replay {input.replay} --out {output} > {log} 2>&1"


rule compare_network:
    input:
        runs=lambda wc: [path for _, path in network_runs(wc.scenario)],
    output:
        nc="results/network/{scenario}/comparison.nc",
        table=report("results/network/{scenario}/comparison.md", category="network"),
        figure=report("results/network/{scenario}/comparison.png", category="network"),
    log:
        "logs/compare_network/{scenario}.log",
    params:
        run_keys=lambda wc: [key for key, _ in network_runs(wc.scenario)],
        transient=lambda wc: network_transient(wc.scenario),
    resources:
        mem_mb=RES["mem_mb"],
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate network-compare --scenario {wildcards.scenario} --runs {input.runs}"
        " --keys {params.run_keys} --transient-ms {params.transient} --out {output.nc}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


rule benchmark_network:
    input:
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/benchmarks/network.nc",
        table=report("results/benchmarks/network.md", category="benchmarks"),
    log:
        "logs/benchmark_network/benchmark_network.log",
    params:
        spec=lambda wc: network_spec_json(NET["benchmark_scenario"], "default", benchmark=True),
        scenario=NET["benchmark_scenario"],
        repeats=config["benchmark"]["network_repeats"],
    resources:
        mpi="mpiexec",
        tasks=2,
        mem_mb=RES["mem_mb"],
        runtime=120,
    threads: 2
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate bench-network --spec '{params.spec}' --scenario {params.scenario}"
        " --checkpoints {input.checkpoints} --mpiexec '{resources.mpi}'"
        " --repeats {params.repeats} --out {output.nc} --table {output.table} > {log} 2>&1"


rule gradient_horizon:
    input:
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/network/gradient_horizon.nc",
        table=report("results/network/gradient_horizon.md", category="network"),
    log:
        "logs/gradient_horizon/gradient_horizon.log",
    params:
        spec=lambda wc: network_spec_json(NET["benchmark_scenario"], "default"),
        scenario=NET["benchmark_scenario"],
        tstops=" ".join(str(t) for t in NET["gradient_check"]["tstops"]),
        slopes=" ".join(str(s) for s in NET["gradient_check"]["slopes"]),
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate gradient-horizon --spec '{params.spec}' --scenario {params.scenario}"
        " --checkpoints {input.checkpoints} --tstops {params.tstops} --slopes {params.slopes}"
        " --threads {threads} --out {output.nc} --table {output.table} > {log} 2>&1"
