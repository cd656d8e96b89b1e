# Benchmarks: measured side by side in one job, written as NetCDF + a table.


rule benchmark_cells:
    input:
        calibrations=expand(
            "results/cells/calibration/{cell_type}.nc", cell_type=CELLS["cell_types"]
        ),
        regime=parameter_file("regime", config["benchmark"]["regime"]),
    output:
        nc="results/benchmarks/cells.nc",
        table=report(
            "results/benchmarks/cells.md",
            category="benchmarks",
            caption="../report/benchmark_cells.rst",
        ),
    log:
        "logs/benchmark_cells/benchmark_cells.log",
    benchmark:
        "benchmarks/benchmark_cells/benchmark_cells.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 2
    resources:
        mpi="mpiexec",
        tasks=2,
        mem_mb=RES["mem_mb"],
        runtime=60,
    params:
        cell_types=CELLS["cell_types"],
        regime=config["benchmark"]["regime"],
        n_sims=config["benchmark"]["n_sims"],
        tstop=config["benchmark"]["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
    shell:
        "hnn-surrogate bench-cells --cell-types {params.cell_types}"
        " --calibrations {input.calibrations} --regime {params.regime}"
        " --regime-file {input.regime} --n-sims {params.n_sims}"
        " --tstop {params.tstop} --dt {params.dt} --bin-ms {params.bin_ms}"
        " --delay {params.delay} --seed {params.seed} --mpiexec {resources.mpi:q}"
        " --out {output.nc} --table {output.table} > {log} 2>&1"


rule benchmark_surrogate:
    input:
        checkpoints=expand(
            "results/train/{cell_type}.pt", cell_type=CELLS["cell_types"]
        ),
        datasets=expand("results/cells/{cell_type}.nc", cell_type=CELLS["cell_types"]),
    output:
        nc="results/benchmarks/surrogate.nc",
        table=report(
            "results/benchmarks/surrogate.md",
            category="benchmarks",
            caption="../report/benchmark_surrogate.rst",
        ),
    log:
        "logs/benchmark_surrogate/benchmark_surrogate.log",
    benchmark:
        "benchmarks/benchmark_surrogate/benchmark_surrogate.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 2
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    params:
        batches=config["benchmark"]["surrogate_batches"],
        n_bins=config["benchmark"]["surrogate_bins"],
    shell:
        "hnn-surrogate bench-surrogate --checkpoints {input.checkpoints}"
        " --datasets {input.datasets} --batches {params.batches} --n-bins {params.n_bins}"
        " --out {output.nc} --table {output.table} > {log} 2>&1"
