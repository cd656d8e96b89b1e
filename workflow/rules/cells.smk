# The cells stage: calibrate each cell type, simulate shards (MPI), merge.


rule calibrate_cell:
    output:
        "results/cells/calibration/{cell_type}.nc",
    log:
        "logs/calibrate_cell/{cell_type}.log",
    benchmark:
        "benchmarks/calibrate_cell/{cell_type}.tsv"
    params:
        dt=CELLS["dt"],
        delay=CELLS["synaptic_delay"],
        iterations=CELLS["calibration_iterations"],
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate calibrate --cell-type {wildcards.cell_type}"
        " --dt {params.dt} --delay {params.delay} --iterations {params.iterations}"
        " --out {output} > {log} 2>&1"


rule simulate_cells:
    input:
        calibration="results/cells/calibration/{cell_type}.nc",
    output:
        "results/cells/shards/{cell_type}/{regime}/{shard}.nc",
    wildcard_constraints:
        regime="|".join(CELLS["regimes"]),
    log:
        "logs/simulate_cells/{cell_type}/{regime}/{shard}.log",
    benchmark:
        "benchmarks/simulate_cells/{cell_type}/{regime}/{shard}.tsv"
    params:
        regime_json=lambda wc: json.dumps(CELLS["regimes"][wc.regime]),
        first=lambda wc: shard_range(wc)[0],
        n_sims=lambda wc: shard_range(wc)[1],
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine="--store-fine" if CELLS["store_fine"] else "",
    resources:
        mpi="mpiexec",
        tasks=CELLS["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    threads: CELLS["mpi_ranks"]
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate simulate-shard"
        " --cell-type {wildcards.cell_type} --regime {wildcards.regime}"
        " --regime-json '{params.regime_json}' --calibration {input.calibration}"
        " --first {params.first} --count {params.n_sims} --tstop {params.tstop}"
        " --dt {params.dt} --bin-ms {params.bin_ms} --delay {params.delay}"
        " --seed {params.seed} {params.fine} --out {output} > {log} 2>&1"


rule replay_events:
    input:
        "results/network/{scenario}/{condition}/neuron_{seed}.nc",
    output:
        "results/cells/replay/{scenario}/{condition}/events_{seed}.nc",
    log:
        "logs/replay_events/{scenario}_{condition}_{seed}.log",
    params:
        spec=lambda wc: network_spec_json(wc.scenario, wc.condition),
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate replay-events --spec '{params.spec}' --scenario {wildcards.scenario}"
        " --condition {wildcards.condition} --seed {wildcards.seed} --run {input}"
        " --out {output} > {log} 2>&1"


rule simulate_replay:
    input:
        replay_event_files(),
    output:
        "results/cells/shards/{cell_type}/replay/{shard}.nc",
    log:
        "logs/simulate_cells/{cell_type}/replay/{shard}.log",
    benchmark:
        "benchmarks/simulate_cells/{cell_type}/replay/{shard}.tsv"
    params:
        first=lambda wc: shard_range(wc, "replay")[0],
        n_sims=lambda wc: shard_range(wc, "replay")[1],
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine="--store-fine" if CELLS["store_fine"] else "",
    resources:
        mpi="mpiexec",
        tasks=CELLS["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    threads: CELLS["mpi_ranks"]
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate simulate-shard"
        " --cell-type {wildcards.cell_type} --regime replay --replay-events {input}"
        " --first {params.first} --count {params.n_sims} --tstop {params.tstop}"
        " --dt {params.dt} --bin-ms {params.bin_ms} --delay {params.delay}"
        " --seed {params.seed} {params.fine} --out {output} > {log} 2>&1"


rule merge_cells:
    input:
        shard_files,
    output:
        "results/cells/{cell_type}.nc",
    log:
        "logs/merge_cells/{cell_type}.log",
    benchmark:
        "benchmarks/merge_cells/{cell_type}.tsv"
    params:
        seed=config["seed"],
        train=CELLS["split"]["train"],
        val=CELLS["split"]["val"],
        test=CELLS["split"]["test"],
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate merge-cells {input} --out {output} --seed {params.seed}"
        " --train {params.train} --val {params.val} --test {params.test} > {log} 2>&1"


rule plot_cells:
    input:
        "results/cells/{cell_type}.nc",
    output:
        report("results/cells/figures/{cell_type}.png", category="cells"),
    log:
        "logs/plot_cells/{cell_type}.log",
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate plot-cells {input} --out {output} > {log} 2>&1"
