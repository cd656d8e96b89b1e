# The cells stage: calibrate each cell type, simulate shards (MPI), merge.


rule calibrate_cell:
    output:
        "results/cells/calibration/{cell_type}.nc",
    log:
        "logs/calibrate_cell/{cell_type}.log",
    benchmark:
        "benchmarks/calibrate_cell/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    params:
        dt=CELLS["dt"],
        delay=CELLS["synaptic_delay"],
        iterations=CELLS["calibration_iterations"],
    shell:
        "hnn-surrogate calibrate --cell-type {wildcards.cell_type}"
        " --dt {params.dt} --delay {params.delay} --iterations {params.iterations}"
        " --out {output} > {log} 2>&1"


rule simulate_cells:
    input:
        calibration="results/cells/calibration/{cell_type}.nc",
        regime=parameter_file("regime", "{regime}"),
    output:
        "results/cells/shards/{cell_type}/{regime}/{shard}.nc",
    log:
        "logs/simulate_cells/{cell_type}/{regime}/{shard}.log",
    benchmark:
        "benchmarks/simulate_cells/{cell_type}/{regime}/{shard}.tsv"
    wildcard_constraints:
        regime="|".join(CELLS["regimes"]),
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: CELLS["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=CELLS["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    params:
        source=lambda wc, input: (
            f"--regime-file {input.regime} --calibration {input.calibration}"
        ),
        first=lambda wc: shard_range(wc)[0],
        n_sims=lambda wc: shard_range(wc)[1],
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine=("--store-fine" if CELLS["store_fine"] else "")
        + (" --record-sections" if CELLS["record_sections"] else ""),
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate simulate-shard"
        " --cell-type {wildcards.cell_type} --regime {wildcards.regime} {params.source}"
        " --first {params.first} --count {params.n_sims} --tstop {params.tstop}"
        " --dt {params.dt} --bin-ms {params.bin_ms} --delay {params.delay}"
        " --seed {params.seed} {params.fine} --out {output} > {log} 2>&1"


use rule simulate_cells as simulate_replay with:
    input:
        replay_event_files(),
    output:
        "results/cells/shards/{cell_type}/{regime}/{shard}.nc",
    log:
        "logs/simulate_replay/{cell_type}/{regime}/{shard}.log",
    benchmark:
        "benchmarks/simulate_replay/{cell_type}/{regime}/{shard}.tsv"
    wildcard_constraints:
        regime="replay",
    params:
        source=lambda wc, input: "--replay-events " + " ".join(input),
        first=lambda wc: shard_range(wc, "replay")[0],
        n_sims=lambda wc: shard_range(wc, "replay")[1],
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine=("--store-fine" if CELLS["store_fine"] else "")
        + (" --record-sections" if CELLS["record_sections"] else ""),


rule simulate_network_prior:
    input:
        spec=parameter_file("network_prior", "spec"),
        prior=parameter_file("network_prior", "prior"),
    output:
        expand(
            "results/cells/shards/{cell_type}/network_prior/{{shard}}.nc",
            cell_type=CELL_TYPES,
        ),
    log:
        "logs/simulate_network_prior/{shard}.log",
    benchmark:
        "benchmarks/simulate_network_prior/{shard}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: PRIOR["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=PRIOR["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    params:
        outs=lambda wc, output: " ".join(
            f"{cell_type}={path}" for cell_type, path in zip(CELL_TYPES, output)
        ),
        run=lambda wc: int(wc.shard),
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine=("--store-fine" if CELLS["store_fine"] else "")
        + (" --record-sections" if CELLS["record_sections"] else ""),
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate simulate-network-prior"
        " --spec {input.spec} --prior {input.prior} --run {params.run}"
        " --tstop {params.tstop} --dt {params.dt} --bin-ms {params.bin_ms}"
        " --delay {params.delay} --seed {params.seed} {params.fine}"
        " --out {params.outs} > {log} 2>&1"


# the same job for a run of the alpha_start regime: its parameter file names
# the regime and holds the prior its runs are drawn from
use rule simulate_network_prior as simulate_alpha_start with:
    input:
        spec=parameter_file("network_prior", "spec"),
        prior=parameter_file("network_prior", "alpha_start"),
    output:
        expand(
            "results/cells/shards/{cell_type}/alpha_start/{{shard}}.nc",
            cell_type=CELL_TYPES,
        ),
    log:
        "logs/simulate_alpha_start/{shard}.log",
    benchmark:
        "benchmarks/simulate_alpha_start/{shard}.tsv"


# a run of the closed_loop regime: a network drawn from the prior, run with the
# teacher surrogates (closed_loop.surrogates), every cell's input in it replayed
# to the lone cell in NEURON on the prior's ranks
rule simulate_closed_loop:
    input:
        spec=parameter_file("network_prior", "spec"),
        prior=parameter_file("network_prior", "closed_loop"),
        teacher=expand(
            os.path.join(CLOSED_LOOP["surrogates"], "{cell_type}.pt"),
            cell_type=CELL_TYPES,
        ),
    output:
        expand(
            "results/cells/shards/{cell_type}/closed_loop/{{shard}}.nc",
            cell_type=CELL_TYPES,
        ),
    log:
        "logs/simulate_closed_loop/{shard}.log",
    benchmark:
        "benchmarks/simulate_closed_loop/{shard}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: PRIOR["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=PRIOR["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    params:
        outs=lambda wc, output: " ".join(
            f"{cell_type}={path}" for cell_type, path in zip(CELL_TYPES, output)
        ),
        run=lambda wc: int(wc.shard),
        tstop=CELLS["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
        fine=("--store-fine" if CELLS["store_fine"] else "")
        + (" --record-sections" if CELLS["record_sections"] else ""),
        # checked by the job before any run (a teacher replaced since planning);
        # not a rerun trigger (a function of input: snakemake/snakemake#3895),
        # the teacher files' times are
        teacher_sha256=lambda wc, input: [file_sha256(p) for p in input.teacher],
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate simulate-closed-loop"
        " --spec {input.spec} --prior {input.prior} --run {params.run}"
        " --checkpoints {input.teacher} --teacher-sha256 {params.teacher_sha256}"
        " --tstop {params.tstop} --dt {params.dt}"
        " --bin-ms {params.bin_ms} --delay {params.delay} --seed {params.seed}"
        " {params.fine} --out {params.outs} > {log} 2>&1"


rule list_replay_events:
    input:
        spec=parameter_file("network", "{scenario}", "{condition}", "surrogate"),
        run="results/network/{scenario}/{condition}/neuron_{seed}.nc",
    output:
        "results/cells/replay/{scenario}/{condition}/events_{seed}.nc",
    log:
        "logs/list_replay_events/{scenario}_{condition}_{seed}.log",
    benchmark:
        "benchmarks/list_replay_events/{scenario}_{condition}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    shell:
        "hnn-surrogate replay-events --spec {input.spec} --scenario {wildcards.scenario}"
        " --condition {wildcards.condition} --seed {wildcards.seed} --run {input.run}"
        " --out {output} > {log} 2>&1"


rule merge_cells:
    input:
        shard_files,
    output:
        "results/cells/{cell_type}.nc",
    log:
        "logs/merge_cells/{cell_type}.log",
    benchmark:
        "benchmarks/merge_cells/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=merge_mem_mb,
        runtime=30,
    params:
        seed=config["seed"],
        train=CELLS["split"]["train"],
        val=CELLS["split"]["val"],
        test=CELLS["split"]["test"],
    shell:
        "hnn-surrogate merge-cells {input} --out {output} --seed {params.seed}"
        " --train {params.train} --val {params.val} --test {params.test} > {log} 2>&1"


rule plot_cells:
    input:
        "results/cells/{cell_type}.nc",
    output:
        report(
            "results/cells/figures/{cell_type}.png",
            category="cells",
            caption="../report/plot_cells.rst",
        ),
    log:
        "logs/plot_cells/{cell_type}.log",
    benchmark:
        "benchmarks/plot_cells/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    shell:
        "hnn-surrogate plot-cells {input} --out {output} > {log} 2>&1"
