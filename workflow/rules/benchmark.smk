# Benchmarks: measured side by side in one job, written as NetCDF + a table.


rule benchmark_cells:
    input:
        calibrations=expand(
            "results/cells/calibration/{cell_type}.nc", cell_type=CELLS["cell_types"]
        ),
    output:
        nc="results/benchmarks/cells.nc",
        table=report("results/benchmarks/cells.md", category="benchmarks"),
    log:
        "logs/benchmark_cells/benchmark_cells.log",
    params:
        cell_types=CELLS["cell_types"],
        regime=config["benchmark"]["regime"],
        regime_json=lambda wc: json.dumps(CELLS["regimes"][config["benchmark"]["regime"]]),
        n_sims=config["benchmark"]["n_sims"],
        tstop=config["benchmark"]["tstop"],
        dt=CELLS["dt"],
        bin_ms=CELLS["bin_ms"],
        delay=CELLS["synaptic_delay"],
        seed=config["seed"],
    resources:
        mpi="mpiexec",
        tasks=2,
        mem_mb=RES["mem_mb"],
        runtime=60,
    threads: 2
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate bench-cells --cell-types {params.cell_types}"
        " --calibrations {input.calibrations} --regime {params.regime}"
        " --regime-json '{params.regime_json}' --n-sims {params.n_sims}"
        " --tstop {params.tstop} --dt {params.dt} --bin-ms {params.bin_ms}"
        " --delay {params.delay} --seed {params.seed} --mpiexec '{resources.mpi}'"
        " --out {output.nc} --table {output.table} > {log} 2>&1"


rule benchmark_surrogate:
    input:
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELLS["cell_types"]),
        datasets=expand("results/cells/{cell_type}.nc", cell_type=CELLS["cell_types"]),
    output:
        nc="results/benchmarks/surrogate.nc",
        table=report("results/benchmarks/surrogate.md", category="benchmarks"),
    log:
        "logs/benchmark_surrogate/benchmark_surrogate.log",
    params:
        batches=config["benchmark"]["surrogate_batches"],
        n_bins=config["benchmark"]["surrogate_bins"],
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    threads: 2
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate bench-surrogate --checkpoints {input.checkpoints}"
        " --datasets {input.datasets} --batches {params.batches} --n-bins {params.n_bins}"
        " --out {output.nc} --table {output.table} > {log} 2>&1"
