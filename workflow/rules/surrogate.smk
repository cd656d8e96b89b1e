# The surrogate stage: train one TCN-LSTM per cell type, evaluate it held-out.


rule train_surrogate:
    input:
        "results/cells/{cell_type}.nc",
    output:
        checkpoint="results/train/{cell_type}.pt",
        history="results/train/{cell_type}_history.nc",
    log:
        "logs/train_surrogate/{cell_type}.log",
    benchmark:
        "benchmarks/train_surrogate/{cell_type}.tsv"
    params:
        config_json=lambda wc: json.dumps(train_config(config, wc.cell_type)),
        seed=config["seed"],
    resources:
        gpu=1,
        mem_mb=RES["mem_mb"],
        runtime=240,
    threads: config["train"]["threads"] or 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate train {input} --config-json '{params.config_json}'"
        " --seed {params.seed} --out {output.checkpoint} --history {output.history}"
        " > {log} 2>&1"


rule evaluate_surrogate:
    input:
        checkpoint="results/train/{cell_type}.pt",
        dataset="results/cells/{cell_type}.nc",
    output:
        metrics="results/evaluate/{cell_type}.nc",
        table=report("results/evaluate/{cell_type}.md", category="surrogates"),
    log:
        "logs/evaluate_surrogate/{cell_type}.log",
    params:
        split=config["evaluate"]["split"],
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate evaluate {input.checkpoint} {input.dataset} --split {params.split}"
        " --out {output.metrics} --table {output.table} > {log} 2>&1"


rule plot_surrogate_panels:
    input:
        checkpoint="results/train/{cell_type}.pt",
        dataset="results/cells/{cell_type}.nc",
        calibration="results/cells/calibration/{cell_type}.nc",
    output:
        panels="results/evaluate/panels/{cell_type}.nc",
        figure=report("results/evaluate/figures/{cell_type}.png", category="surrogates"),
    log:
        "logs/plot_surrogate_panels/{cell_type}.log",
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate panels {input.checkpoint} {input.dataset}"
        " --calibration {input.calibration} --out {output.panels} --figure {output.figure}"
        " > {log} 2>&1"


use rule train_surrogate as train_surrogate_subset with:
    output:
        checkpoint="results/learning_curve/{cell_type}/{fraction}.pt",
        history="results/learning_curve/{cell_type}/{fraction}_history.nc",
    log:
        "logs/train_surrogate_subset/{cell_type}/{fraction}.log",
    benchmark:
        "benchmarks/train_surrogate_subset/{cell_type}/{fraction}.tsv"
    params:
        config_json=lambda wc: json.dumps(
            {**train_config(config, wc.cell_type), "train_fraction": float(wc.fraction)}
        ),
        seed=config["seed"],


use rule evaluate_surrogate as evaluate_surrogate_subset with:
    input:
        checkpoint="results/learning_curve/{cell_type}/{fraction}.pt",
        dataset="results/cells/{cell_type}.nc",
    output:
        metrics="results/learning_curve/{cell_type}/{fraction}.nc",
        table="results/learning_curve/{cell_type}/{fraction}.md",
    log:
        "logs/evaluate_surrogate_subset/{cell_type}/{fraction}.log",


rule plot_learning_curve:
    input:
        dataset="results/cells/{cell_type}.nc",
        metrics=learning_curve_metrics,
    output:
        nc="results/learning_curve/{cell_type}.nc",
        figure=report("results/learning_curve/{cell_type}.png", category="surrogates"),
    log:
        "logs/plot_learning_curve/{cell_type}.log",
    params:
        fractions=[*LC["fractions"], 1.0],
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    threads: 1
    conda:
        "../../envs/hnn-surrogate.yaml"
    shell:
        "hnn-surrogate learning-curve --dataset {input.dataset} --metrics {input.metrics}"
        " --fractions {params.fractions} --out {output.nc} --figure {output.figure} > {log} 2>&1"
