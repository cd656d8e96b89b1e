# Network scaling (bench/scaling.py): one job per grid size, the surrogates (1
# and 2 threads) and NEURON (1 and 2 MPI ranks, up to scaling.neuron.max_cells
# and within its time limit) side by side; a summary with the growth exponents
# and the poster's figure; the cutoff's error on the default grid.


rule scaling_point:
    input:
        spec=parameter_file("scaling", "spec"),
        point=parameter_file("scaling", "point", "{mesh}"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/scaling/mesh_{mesh}.nc",
        table="results/scaling/mesh_{mesh}.md",
    log:
        "logs/scaling_point/{mesh}.log",
    benchmark:
        "benchmarks/scaling_point/{mesh}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 2
    resources:
        mpi="mpiexec",
        tasks=2,
        mem_mb=int(SCALE["memory_limit_gb"] * 1024),
        runtime=lambda wc: 30 + 4 * SCALE["neuron"]["time_limit_s"] // 60,
    params:
        limit=SCALE["memory_limit_gb"],
    shell:
        "hnn-surrogate scaling-point --spec {input.spec} --point {input.point}"
        " --checkpoints {input.checkpoints} --memory-limit-gb {params.limit}"
        " --mpiexec '{resources.mpi}' --out {output.nc} --table {output.table} > {log} 2>&1"


rule scaling_summary:
    input:
        expand("results/scaling/mesh_{mesh}.nc", mesh=SCALE["meshes"]),
    output:
        nc="results/scaling/summary.nc",
        table=report(
            "results/scaling/summary.md",
            category="scaling",
            caption="../report/scaling.rst",
        ),
        figure=report(
            "results/scaling/summary.png",
            category="scaling",
            caption="../report/scaling.rst",
        ),
    log:
        "logs/scaling_summary/summary.log",
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate scaling-summary --points {input} --out {output.nc}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


rule scaling_cutoff:
    input:
        spec=parameter_file("scaling", "cutoff_spec"),
        point=parameter_file("scaling", "cutoff"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/scaling/cutoff.nc",
        table="results/scaling/cutoff.md",
    log:
        "logs/scaling_cutoff/cutoff.log",
    benchmark:
        "benchmarks/scaling_cutoff/cutoff.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate scaling-cutoff --spec {input.spec} --point {input.point}"
        " --checkpoints {input.checkpoints} --out {output.nc} --table {output.table}"
        " > {log} 2>&1"


rule scaling_batch:
    input:
        spec=parameter_file("scaling", "batch_spec"),
        point=parameter_file("scaling", "batch"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/scaling/batch.nc",
        table=report(
            "results/scaling/batch.md",
            category="scaling",
            caption="../report/scaling.rst",
        ),
        figure=report(
            "results/scaling/batch.png",
            category="scaling",
            caption="../report/scaling.rst",
        ),
    log:
        "logs/scaling_batch/batch.log",
    benchmark:
        "benchmarks/scaling_batch/batch.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: SCALE["batch"]["threads"]
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    shell:
        "hnn-surrogate scaling-batch --spec {input.spec} --point {input.point}"
        " --checkpoints {input.checkpoints} --out {output.nc} --table {output.table}"
        " --figure {output.figure} > {log} 2>&1"
