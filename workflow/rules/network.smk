# The network stage: the same hnn-core network in NEURON (MPI) and with the
# surrogates, per scenario, condition and seed; the comparison; the benchmark;
# the gradient's size against simulated time.


rule simulate_network_neuron:
    input:
        spec=parameter_file("network", "{scenario}", "{condition}", "neuron"),
    output:
        "results/network/{scenario}/{condition}/neuron_{seed}.nc",
    log:
        "logs/simulate_network_neuron/{scenario}_{condition}_{seed}.log",
    benchmark:
        "benchmarks/simulate_network_neuron/{scenario}_{condition}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: NET["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=NET["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate network-neuron"
        " --spec {input.spec} --scenario {wildcards.scenario}"
        " --condition {wildcards.condition} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"


rule simulate_network_surrogate:
    input:
        spec=parameter_file("network", "{scenario}", "{condition}", "surrogate"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        "results/network/{scenario}/{condition}/surrogate_{seed}.nc",
    log:
        "logs/simulate_network_surrogate/{scenario}_{condition}_{seed}.log",
    benchmark:
        "benchmarks/simulate_network_surrogate/{scenario}_{condition}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    params:
        replay="",
    shell:
        "hnn-surrogate network-surrogate --spec {input.spec}"
        " --scenario {wildcards.scenario} --condition {wildcards.condition}"
        " --seed {wildcards.seed} --checkpoints {input.checkpoints} --threads {threads}"
        " {params.replay} --out {output} > {log} 2>&1"


use rule simulate_network_surrogate as simulate_network_open_loop with:
    input:
        spec=parameter_file("network", "{scenario}", "{condition}", "surrogate"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
        replay="results/network/{scenario}/{condition}/neuron_{seed}.nc",
    output:
        "results/network/{scenario}/{condition}/open_loop_{seed}.nc",
    log:
        "logs/simulate_network_open_loop/{scenario}_{condition}_{seed}.log",
    benchmark:
        "benchmarks/simulate_network_open_loop/{scenario}_{condition}_{seed}.tsv"
    params:
        replay=lambda wc, input: f"--replay {input.replay}",


rule compare_network:
    input:
        runs=lambda wc: [path for _, path in network_runs(wc.scenario)],
    output:
        nc="results/network/{scenario}/comparison.nc",
        table=report(
            "results/network/{scenario}/comparison.md",
            category="network",
            caption="../report/compare_network.rst",
        ),
        figure=report(
            "results/network/{scenario}/comparison.png",
            category="network",
            caption="../report/compare_network.rst",
        ),
    log:
        "logs/compare_network/{scenario}.log",
    benchmark:
        "benchmarks/compare_network/{scenario}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    params:
        run_keys=lambda wc: [key for key, _ in network_runs(wc.scenario)],
        transient=lambda wc: network_transient(wc.scenario),
    shell:
        "hnn-surrogate network-compare --scenario {wildcards.scenario} --runs {input.runs}"
        " --keys {params.run_keys} --transient-ms {params.transient} --out {output.nc}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


rule benchmark_network:
    input:
        spec=parameter_file("benchmark", "network"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/benchmarks/network.nc",
        table=report(
            "results/benchmarks/network.md",
            category="benchmarks",
            caption="../report/benchmark_network.rst",
        ),
    log:
        "logs/benchmark_network/benchmark_network.log",
    benchmark:
        "benchmarks/benchmark_network/benchmark_network.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 2
    resources:
        mpi="mpiexec",
        tasks=2,
        mem_mb=RES["mem_mb"],
        runtime=120,
    params:
        scenario=NET["benchmark_scenario"],
        seed=NET["benchmark_seed"],
        repeats=config["benchmark"]["network_repeats"],
    shell:
        "hnn-surrogate bench-network --spec {input.spec} --scenario {params.scenario}"
        " --seed {params.seed} --checkpoints {input.checkpoints} --mpiexec {resources.mpi:q}"
        " --repeats {params.repeats} --out {output.nc} --table {output.table} > {log} 2>&1"


rule measure_gradient_horizon:
    input:
        spec=parameter_file(
            "network", NET["benchmark_scenario"], "default", "surrogate"
        ),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/network/gradient_horizon.nc",
        table=report(
            "results/network/gradient_horizon.md",
            category="network",
            caption="../report/gradient_horizon.rst",
        ),
    log:
        "logs/measure_gradient_horizon/gradient_horizon.log",
    benchmark:
        "benchmarks/measure_gradient_horizon/gradient_horizon.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    params:
        scenario=NET["benchmark_scenario"],
        seed=NET["benchmark_seed"],
        tstops=NET["gradient_check"]["tstops"],
        slopes=NET["gradient_check"]["slopes"],
        configured=NET["surrogate_slope"],
    shell:
        "hnn-surrogate gradient-horizon --spec {input.spec} --scenario {params.scenario}"
        " --seed {params.seed} --checkpoints {input.checkpoints} --tstops {params.tstops}"
        " --slopes {params.slopes} --configured-slope {params.configured} --threads {threads}"
        " --out {output.nc} --table {output.table} > {log} 2>&1"
