"""Command-line subcommands of the surrogate stage: train (or import a trained
surrogate), evaluate, the linear baseline, panels, learning curve.

Each is one Snakemake rule's action; ``hnn-surrogate <command> --help`` documents it.
"""

from __future__ import annotations

from pathlib import Path

from ..cli_args import positive_int, read_json


def _train(args):
    from ..surrogate.train import TrainConfig, train_surrogate

    import dataclasses

    cfg = read_json(args.config, "training config")
    model_keys = ("hidden", "kernel_size", "dilations", "lstm_hidden", "linear_taus_ms")
    from ..config import TRAIN_OPTIONS_OFF

    # model keys added later: absent means off
    optional_model_keys = {"rest_start": TRAIN_OPTIONS_OFF["rest_start"][0]}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    missing = sorted(set(model_keys) - set(cfg))
    unknown = sorted(set(cfg) - set(model_keys) - set(optional_model_keys) - train_keys)
    if missing or unknown:
        raise SystemExit(f"train: {args.config}: "
                         + "; ".join([f"lacks {', '.join(missing)}"] * bool(missing)
                                     + [f"unknown keys {', '.join(unknown)}"] * bool(unknown))
                         + " (it is the config's train section, as results/parameters/train/ holds)")
    model_kwargs = {k: (tuple(cfg[k]) if k == "dilations" else cfg[k]) for k in model_keys}
    model_kwargs.update({k: cfg.get(k, v) for k, v in optional_model_keys.items()})
    train_cfg = TrainConfig(seed=args.seed, **{k: v for k, v in cfg.items()
                                               if k not in model_keys and k not in optional_model_keys})
    train_surrogate(args.dataset, args.out, model_kwargs=model_kwargs, train_config=train_cfg,
                    history_path=args.history)


def _import_surrogate(args):
    from ..surrogate.checkpoint import CheckpointError, import_checkpoint

    try:
        loaded = import_checkpoint(args.checkpoint, args.out, cell_type=args.cell_type,
                                   bin_ms=args.bin_ms)
    except CheckpointError as err:
        raise SystemExit(f"import-surrogate: {err}") from None
    print(f"{args.out}: {loaded.cell_type} surrogate from {args.checkpoint} (epoch "
          f"{loaded.blob.get('epoch')}, trained on data {loaded.data_hash})")


def _tune_threshold(args):
    from ..surrogate.checkpoint import CheckpointError
    from ..surrogate.train import retune_spike_threshold

    try:
        _, _, table = retune_spike_threshold(args.checkpoint, args.dataset, rule=args.rule,
                                             out=args.out)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"tune-threshold: {err}") from None
    print(table)
    print(f"-> {args.out}")


def _evaluate(args):
    from ..surrogate.evaluate import evaluate_surrogate

    for path in args.unseen_by:
        if not Path(path).is_file():
            raise SystemExit(f"evaluate --unseen-by: {path} does not exist")
    evaluate_surrogate(args.checkpoint, args.dataset, args.out, split=args.split,
                       table=args.table, allow_other_data=args.allow_other_data,
                       unseen_by=tuple(args.unseen_by))


def _linear_baseline(args):
    from ..surrogate.baseline import fit_linear_baseline

    fit_linear_baseline(args.dataset, args.out, v_clip=args.v_clip,
                        surrogate_metrics=args.surrogate_metrics, split=args.split,
                        table=args.table)


def _panels(args):
    from ..figures.surrogate import plot_panels
    from ..surrogate.panels import compute_panels

    compute_panels(args.checkpoint, args.dataset, args.calibration, args.out)
    plot_panels(args.out, args.figure)


def _learning_curve(args):
    from ..datasets import open_cell_dataset
    from ..surrogate.checkpoint import CheckpointError, load_checkpoint
    from ..surrogate.evaluate import learning_curve
    from ..surrogate.train import training_positions

    if len(args.metrics) != len(args.checkpoints):
        raise SystemExit("learning-curve: give one --checkpoints file per metrics file")
    ds = open_cell_dataset(args.dataset)
    fractions, n_train, hashes = [], [], {}
    for path in args.checkpoints:      # what each model was trained on, from its own record
        cfg = load_checkpoint(path, dataset=ds, hashes=hashes).blob["train_config"]
        if "train_fraction" not in cfg or "seed" not in cfg:
            raise CheckpointError(f"{path}: its train_config records no train_fraction "
                                  f"and seed, so the simulations it learnt from are unknown")
        fractions.append(float(cfg["train_fraction"]))
        n_train.append(training_positions(ds, fractions[-1], int(cfg["seed"])).size)
    n_full = int((ds["split"].values == "train").sum())
    learning_curve(args.metrics, fractions, n_train, n_full, args.out, figure=args.figure)


def _steps_curve(args):
    from ..surrogate.evaluate import steps_curve

    steps_curve(args.metrics, args.epochs, args.steps_per_epoch, args.out, figure=args.figure)


def _plot_histories(args):
    from ..figures.surrogate import plot_training_histories

    plot_training_histories(args.histories, args.out)


def register(sub) -> None:
    """Add this stage's subcommands to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("train", help="train the surrogate of one cell type")
    p.add_argument("dataset", help="merged cell_sims dataset")
    p.add_argument("--config", required=True,
                   help="JSON file: the 'train' config section as this cell type sees it")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="checkpoint (.pt)")
    p.add_argument("--history", help="training history (NetCDF)")
    p.set_defaults(func=_train)

    p = sub.add_parser("import-surrogate",
                       help="check a trained surrogate from elsewhere and copy it in place "
                            "of training one (train.checkpoints_from)")
    p.add_argument("checkpoint", help="a trained surrogate (.pt)")
    p.add_argument("--cell-type", required=True, help="the cell type it must be")
    p.add_argument("--bin-ms", type=float, required=True, help="the time bin (ms) it must use")
    p.add_argument("--out", required=True, help="where the checked copy goes (.pt)")
    p.set_defaults(func=_import_surrogate)

    p = sub.add_parser("tune-threshold",
                       help="choose a trained surrogate's spike threshold again (train."
                            "spike_threshold_rule) on its training data's validation split")
    p.add_argument("checkpoint", help="a trained surrogate (.pt)")
    p.add_argument("dataset", help="the merged cell_sims dataset it was trained on")
    p.add_argument("--rule", required=True, choices=["f1", "count"])
    p.add_argument("--out", required=True, help="the checkpoint with the new threshold (.pt)")
    p.set_defaults(func=_tune_threshold)

    p = sub.add_parser("evaluate", help="held-out free-running fidelity of a surrogate")
    p.add_argument("checkpoint")
    p.add_argument("dataset")
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--allow-other-data", action="store_true",
                   help="evaluate on data other than the checkpoint's training data (its "
                        "splits are then not the training's)")
    p.add_argument("--unseen-by", nargs="+", default=[], metavar="DATASET",
                   help="leave out the split's runs and lone simulations that these "
                        "datasets' train or val splits hold: score what neither data saw "
                        "(a model trained on each, compared like for like)")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("linear-baseline",
                       help="a linear filter of the inputs beside the surrogate, per regime")
    p.add_argument("dataset", help="merged cell_sims dataset")
    p.add_argument("--v-clip", type=float, required=True, help="voltage clip (mV), as training's")
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--surrogate-metrics", help="the surrogate's surrogate_metrics on the same data")
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.set_defaults(func=_linear_baseline)

    p = sub.add_parser("panels", help="single-cell panels, NEURON vs surrogate (NetCDF + PNG)")
    p.add_argument("checkpoint")
    p.add_argument("dataset")
    p.add_argument("--calibration", required=True)
    p.add_argument("--out", required=True, help="surrogate_panels NetCDF")
    p.add_argument("--figure", required=True, help="PNG drawn from --out")
    p.set_defaults(func=_panels)

    p = sub.add_parser("steps-curve", help="held-out metrics against optimiser steps "
                                           "(one training run's snapshots)")
    p.add_argument("--metrics", nargs="+", required=True,
                   help="surrogate_metrics files, one per snapshot")
    p.add_argument("--epochs", nargs="+", type=positive_int, required=True,
                   help="the epoch of each snapshot, in the order of --metrics")
    p.add_argument("--steps-per-epoch", type=positive_int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--figure")
    p.set_defaults(func=_steps_curve)

    p = sub.add_parser("learning-curve", help="held-out metrics against training-set size")
    p.add_argument("--dataset", required=True, help="the merged dataset the models trained on")
    p.add_argument("--metrics", nargs="+", required=True, help="surrogate_metrics files")
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="the checkpoint each metrics file evaluated, in the same order")
    p.add_argument("--out", required=True)
    p.add_argument("--figure")
    p.set_defaults(func=_learning_curve)

    p = sub.add_parser("plot-histories", help="training and validation loss per step, per type")
    p.add_argument("histories", nargs="+", help="surrogate_history files")
    p.add_argument("--out", required=True, help="PNG")
    p.set_defaults(func=_plot_histories)
