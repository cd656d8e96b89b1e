# The surrogate stage: train one TCN-LSTM per cell type, evaluate it held-out.


rule train_surrogate:
    input:
        dataset="results/cells/{cell_type}.nc",
        config=parameter_file("train", "{cell_type}"),
    output:
        # with train.checkpoints_from, results/train/ holds the imported surrogates:
        # a training asked for by name (its history) writes beside them, not over them
        checkpoint=(
            "results/train/retrained/{cell_type}.pt"
            if PRETRAINED
            else "results/train/{cell_type}.pt"
        ),
        history="results/train/{cell_type}_history.nc",
    log:
        "logs/train_surrogate/{cell_type}.log",
    benchmark:
        "benchmarks/train_surrogate/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: config["train"]["threads"] or 1
    resources:
        gpu=1,
        mem_mb=RES["mem_mb"],
        runtime=240,
    params:
        seed=config["seed"],
    shell:
        "hnn-surrogate train {input.dataset} --config {input.config}"
        " --seed {params.seed} --out {output.checkpoint} --history {output.history}"
        " > {log} 2>&1"


if PRETRAINED:

    # train.checkpoints_from: the surrogates come from that folder, checked and copied
    rule import_surrogate:
        input:
            checkpoint=os.path.join(PRETRAINED, "{cell_type}.pt"),
        output:
            checkpoint="results/train/{cell_type}.pt",
        log:
            "logs/import_surrogate/{cell_type}.log",
        localrule: True
        conda:
            "../../envs/hnn-surrogate.yaml"
        threads: 1
        params:
            bin_ms=CELLS["bin_ms"],
        shell:
            "hnn-surrogate import-surrogate {input.checkpoint} --cell-type {wildcards.cell_type}"
            " --bin-ms {params.bin_ms} --out {output.checkpoint} > {log} 2>&1"


rule evaluate_surrogate:
    input:
        checkpoint="results/train/{cell_type}.pt",
        dataset="results/cells/{cell_type}.nc",
    output:
        metrics="results/evaluate/{cell_type}.nc",
        table=report(
            "results/evaluate/{cell_type}.md",
            category="surrogates",
            caption="../report/evaluate_surrogate.rst",
        ),
    log:
        "logs/evaluate_surrogate/{cell_type}.log",
    benchmark:
        "benchmarks/evaluate_surrogate/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    params:
        split=config["evaluate"]["split"],
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
        figure=report(
            "results/evaluate/figures/{cell_type}.png",
            category="surrogates",
            caption="../report/plot_surrogate_panels.rst",
        ),
    log:
        "logs/plot_surrogate_panels/{cell_type}.log",
    benchmark:
        "benchmarks/plot_surrogate_panels/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    shell:
        "hnn-surrogate panels {input.checkpoint} {input.dataset}"
        " --calibration {input.calibration} --out {output.panels} --figure {output.figure}"
        " > {log} 2>&1"


rule plot_training_histories:
    input:
        expand("results/train/{cell_type}_history.nc", cell_type=CELLS["cell_types"]),
    output:
        report(
            "results/train/histories.png",
            category="surrogates",
            caption="../report/plot_training_histories.rst",
        ),
    log:
        "logs/plot_training_histories/histories.log",
    benchmark:
        "benchmarks/plot_training_histories/histories.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    shell:
        "hnn-surrogate plot-histories {input} --out {output} > {log} 2>&1"


rule fit_linear_baseline:
    input:
        dataset="results/cells/{cell_type}.nc",
        metrics="results/evaluate/{cell_type}.nc",
    output:
        nc="results/evaluate/linear_baseline/{cell_type}.nc",
        table=report(
            "results/evaluate/linear_baseline/{cell_type}.md",
            category="surrogates",
            caption="../report/fit_linear_baseline.rst",
        ),
    log:
        "logs/fit_linear_baseline/{cell_type}.log",
    benchmark:
        "benchmarks/fit_linear_baseline/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=30,
    params:
        v_clip=lambda wc: train_config(config, wc.cell_type)["v_clip"],
        split=config["evaluate"]["split"],
    shell:
        "hnn-surrogate linear-baseline {input.dataset} --v-clip {params.v_clip}"
        " --split {params.split} --surrogate-metrics {input.metrics}"
        " --out {output.nc} --table {output.table} > {log} 2>&1"


use rule train_surrogate as train_surrogate_subset with:
    input:
        dataset="results/cells/{cell_type}.nc",
        config=parameter_file("train_subset", "{cell_type}", "{fraction}"),
    output:
        checkpoint="results/learning_curve/{cell_type}/{fraction}.pt",
        history="results/learning_curve/{cell_type}/{fraction}_history.nc",
    log:
        "logs/train_surrogate_subset/{cell_type}/{fraction}.log",
    benchmark:
        "benchmarks/train_surrogate_subset/{cell_type}/{fraction}.tsv"
    params:
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
    benchmark:
        "benchmarks/evaluate_surrogate_subset/{cell_type}/{fraction}.tsv"


rule plot_learning_curve:
    input:
        dataset="results/cells/{cell_type}.nc",
        metrics=lambda wc: learning_curve_models(wc.cell_type, "nc"),
        checkpoints=lambda wc: learning_curve_models(wc.cell_type, "pt"),
    output:
        nc="results/learning_curve/{cell_type}.nc",
        figure=report(
            "results/learning_curve/{cell_type}.png",
            category="surrogates",
            caption="../report/plot_learning_curve.rst",
        ),
    log:
        "logs/plot_learning_curve/{cell_type}.log",
    benchmark:
        "benchmarks/plot_learning_curve/{cell_type}.tsv"
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    shell:
        "hnn-surrogate learning-curve --dataset {input.dataset} --metrics {input.metrics}"
        " --checkpoints {input.checkpoints} --out {output.nc} --figure {output.figure}"
        " > {log} 2>&1"


use rule train_surrogate as train_surrogate_steps with:
    input:
        dataset="results/cells/{cell_type}.nc",
        config=parameter_file("train_steps", "{cell_type}"),
    output:
        checkpoint="results/steps_curve/{cell_type}/final.pt",
        history="results/steps_curve/{cell_type}/final_history.nc",
        snapshots=expand(
            "results/steps_curve/{{cell_type}}/final_epoch{epoch}.pt",
            epoch=SC["epochs"],
        ),
    log:
        "logs/train_surrogate_steps/{cell_type}.log",
    benchmark:
        "benchmarks/train_surrogate_steps/{cell_type}.tsv"
    params:
        seed=config["seed"],


use rule evaluate_surrogate as evaluate_surrogate_steps with:
    input:
        checkpoint="results/steps_curve/{cell_type}/final_epoch{epoch}.pt",
        dataset="results/cells/{cell_type}.nc",
    output:
        metrics="results/steps_curve/{cell_type}/epoch{epoch}.nc",
        table="results/steps_curve/{cell_type}/epoch{epoch}.md",
    log:
        "logs/evaluate_surrogate_steps/{cell_type}/{epoch}.log",
    benchmark:
        "benchmarks/evaluate_surrogate_steps/{cell_type}/{epoch}.tsv"


rule plot_steps_curve:
    input:
        metrics=expand(
            "results/steps_curve/{{cell_type}}/epoch{epoch}.nc", epoch=SC["epochs"]
        ),
    output:
        nc="results/steps_curve/{cell_type}.nc",
        figure=report(
            "results/steps_curve/{cell_type}.png",
            category="surrogates",
            caption="../report/plot_steps_curve.rst",
        ),
    log:
        "logs/plot_steps_curve/{cell_type}.log",
    conda:
        "../../envs/hnn-surrogate.yaml"
    threads: 1
    resources:
        mem_mb=RES["mem_mb"],
        runtime=10,
    params:
        epochs=SC["epochs"],
        steps=lambda wc: train_config(config, wc.cell_type)["steps_per_epoch"],
    shell:
        "hnn-surrogate steps-curve --metrics {input.metrics} --epochs {params.epochs}"
        " --steps-per-epoch {params.steps} --out {output.nc} --figure {output.figure}"
        " > {log} 2>&1"
