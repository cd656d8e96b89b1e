# The optimize stage: connectivity fits by gradient descent through the
# surrogate network (one job per grid point), each fit's start and result
# re-simulated in NEURON and by the surrogates on the fit's seeds and fresh
# ones, scored per fit, and the fits ranked; where enabled, hnn-core's own
# gradient-free Optimizer on the same gains within the fit's wall clock.


rule fit_connectivity:
    input:
        spec=lambda wc: parameter_file("optimize", fit_points()[wc.point][0], "fit"),
        fit=parameter_file("fit", "{point}"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/optimize/{point}/trajectory.nc",
        fitted="results/optimize/{point}/fitted.json",
        table="results/optimize/{point}/trajectory.md",
    log:
        "logs/fit_connectivity/{point}.log",
    benchmark:
        "benchmarks/fit_connectivity/{point}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: OPT["threads"]
    resources:
        mem_mb=RES["mem_mb"],
        runtime=240,
    shell:
        "hnn-surrogate fit-connectivity --spec {input.spec} --fit {input.fit}"
        " --checkpoints {input.checkpoints} --threads {threads} --out {output.nc}"
        " --fitted {output.fitted} --table {output.table} > {log} 2>&1"


rule simulate_start_neuron:
    input:
        spec=parameter_file("optimize", "{start}", "neuron"),
    output:
        "results/optimize/starts/{start}/neuron_{seed}.nc",
    log:
        "logs/simulate_start_neuron/{start}_{seed}.log",
    benchmark:
        "benchmarks/simulate_start_neuron/{start}_{seed}.tsv"
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
        " --spec {input.spec} --scenario {wildcards.start} --condition default"
        " --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule simulate_fit_neuron:
    input:
        spec=lambda wc: parameter_file("optimize", fit_points()[wc.point][0], "neuron"),
        fitted="results/optimize/{point}/fitted.json",
    output:
        "results/optimize/{point}/neuron_fitted_{seed}.nc",
    log:
        "logs/simulate_fit_neuron/{point}_{seed}.log",
    benchmark:
        "benchmarks/simulate_fit_neuron/{point}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: NET["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=NET["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=RES["runtime_cells"],
    params:
        start=lambda wc: fit_points()[wc.point][0],
    shell:
        "{resources.mpi} -n {resources.tasks} hnn-surrogate network-neuron"
        " --spec {input.spec} --scenario {params.start} --condition fitted"
        " --condition-file {input.fitted} --seed {wildcards.seed} --out {output}"
        " > {log} 2>&1"


rule simulate_start_surrogate:
    input:
        spec=parameter_file("optimize", "{start}", "surrogate"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        "results/optimize/starts/{start}/surrogate_{seed}.nc",
    log:
        "logs/simulate_start_surrogate/{start}_{seed}.log",
    benchmark:
        "benchmarks/simulate_start_surrogate/{start}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    shell:
        "hnn-surrogate network-surrogate --spec {input.spec} --scenario {wildcards.start}"
        " --condition default --seed {wildcards.seed} --checkpoints {input.checkpoints}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule simulate_fit_surrogate:
    input:
        spec=lambda wc: parameter_file(
            "optimize", fit_points()[wc.point][0], "surrogate"
        ),
        fitted="results/optimize/{point}/fitted.json",
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        "results/optimize/{point}/surrogate_fitted_{seed}.nc",
    log:
        "logs/simulate_fit_surrogate/{point}_{seed}.log",
    benchmark:
        "benchmarks/simulate_fit_surrogate/{point}_{seed}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    params:
        start=lambda wc: fit_points()[wc.point][0],
    shell:
        "hnn-surrogate network-surrogate --spec {input.spec} --scenario {params.start}"
        " --condition fitted --condition-file {input.fitted} --seed {wildcards.seed}"
        " --checkpoints {input.checkpoints} --threads {threads} --out {output}"
        " > {log} 2>&1"


rule check_fit:
    input:
        fit=parameter_file("fit", "{point}"),
        trajectory="results/optimize/{point}/trajectory.nc",
        runs=lambda wc: [path for _, path in fit_check_runs(wc)],
    output:
        nc="results/optimize/{point}/check.nc",
        table=report(
            "results/optimize/{point}/check.md",
            category="optimize",
            caption="../report/check_fit.rst",
        ),
        figure=report(
            "results/optimize/{point}/fit.png",
            category="optimize",
            caption="../report/check_fit.rst",
        ),
    log:
        "logs/check_fit/{point}.log",
    benchmark:
        "benchmarks/check_fit/{point}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    params:
        run_keys=lambda wc: " ".join(key for key, _ in fit_check_runs(wc)),
    shell:
        "hnn-surrogate fit-check --fit {input.fit} --trajectory {input.trajectory}"
        " --runs {input.runs} --keys {params.run_keys} --out {output.nc}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


rule summarize_fits:
    input:
        expand("results/optimize/{point}/check.nc", point=list(fit_points())),
    output:
        nc="results/optimize/summary.nc",
        table=report(
            "results/optimize/summary.md",
            category="optimize",
            caption="../report/summarize_fits.rst",
        ),
    log:
        "logs/summarize_fits/summary.log",
    benchmark:
        "benchmarks/summarize_fits/summary.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    params:
        points=" ".join(fit_points()),
    shell:
        "hnn-surrogate fit-summary {input} --points {params.points} --out {output.nc}"
        " --table {output.table} > {log} 2>&1"


rule search_hnn:
    input:
        spec=lambda wc: parameter_file("optimize", fit_points()[wc.point][0], "neuron"),
        fit=parameter_file("fit", "{point}"),
        trajectory="results/optimize/{point}/trajectory.nc",
    output:
        nc="results/optimize/{point}/hnn_{solver}.nc",
        best="results/optimize/{point}/hnn_{solver}.json",
        table="results/optimize/{point}/hnn_{solver}.md",
    log:
        "logs/search_hnn/{point}_{solver}.log",
    benchmark:
        "benchmarks/search_hnn/{point}_{solver}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: NET["mpi_ranks"]
    resources:
        mpi="mpiexec",
        tasks=NET["mpi_ranks"],
        mem_mb=RES["mem_mb"],
        runtime=240,
    params:
        factor=OPT["baseline"]["budget_factor"],
        max_iter=OPT["baseline"]["max_iter"],
        # not an output (Snakemake removes a failed job's outputs): a search killed
        # by its time limit, or rerun with a larger budget, resumes from it
        journal="results/optimize/{point}/hnn_{solver}.journal.jsonl",
    shell:
        "hnn-surrogate hnn-search --spec {input.spec} --fit {input.fit}"
        " --trajectory {input.trajectory} --solver {wildcards.solver}"
        " --budget-factor {params.factor} --max-iter {params.max_iter}"
        " --mpiexec '{resources.mpi}' --ranks {resources.tasks} --out {output.nc}"
        " --best {output.best} --table {output.table}"
        " --journal {params.journal} > {log} 2>&1"


rule compare_search:
    input:
        trajectory="results/optimize/{point}/trajectory.nc",
        check="results/optimize/{point}/check.nc",
        searches=expand(
            "results/optimize/{{point}}/hnn_{solver}.nc",
            solver=OPT["baseline"]["solvers"],
        ),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/optimize/{point}/baseline.nc",
        table=report(
            "results/optimize/{point}/baseline.md",
            category="optimize",
            caption="../report/compare_search.rst",
        ),
        figure=report(
            "results/optimize/{point}/baseline.png",
            category="optimize",
            caption="../report/compare_search.rst",
        ),
    log:
        "logs/compare_search/{point}.log",
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    shell:
        "hnn-surrogate compare-search --trajectory {input.trajectory} --check {input.check}"
        " --searches {input.searches} --checkpoints {input.checkpoints}"
        " --out {output.nc} --table {output.table}"
        " --figure {output.figure} > {log} 2>&1"


rule benchmark_fit_step:
    input:
        spec=lambda wc: parameter_file("optimize", fit_points()[wc.point][0], "fit"),
        fit=parameter_file("fit", "{point}"),
        checkpoints=expand("results/train/{cell_type}.pt", cell_type=CELL_TYPES),
    output:
        nc="results/optimize/{point}/step_benchmark.nc",
        table="results/optimize/{point}/step_benchmark.md",
    log:
        "logs/benchmark_fit_step/{point}.log",
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: OPT["threads"]
    resources:
        mem_mb=RES["mem_mb"],
        runtime=60,
    shell:
        "hnn-surrogate fit-step-benchmark --spec {input.spec} --fit {input.fit}"
        " --checkpoints {input.checkpoints} --threads {threads} --out {output.nc}"
        " --table {output.table} > {log} 2>&1"
