import subprocess

import pytest
import yaml

from hnn_surrogate.config import (
    TRAIN_SECTION_NOT_TRAINING, ConfigError, load_config, train_config, validate_config,
)


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "paper.yaml"])
def test_shipped_configs_are_valid_and_run_every_stage(repo, name):
    from hnn_surrogate import CELL_TYPES

    cfg = load_config(repo / "config" / name)
    # the network stage needs a surrogate of every HNN cell type
    assert sorted(cfg["cells"]["cell_types"]) == sorted(CELL_TYPES)
    assert cfg["network"]["scenarios"] and cfg["network"]["conditions"]["default"] == []


def test_dataclass_defaults_are_the_schemas():
    """One source of truth: the schema's defaults are the dataclasses' defaults."""
    import dataclasses

    from hnn_surrogate.config import schema_default
    from hnn_surrogate.network.simulate import SURROGATE_GRADIENT_SLOPE
    from hnn_surrogate.surrogate.model import SurrogateConfig
    from hnn_surrogate.surrogate.train import TrainConfig

    train = schema_default("train")
    seen = set()
    for cls in (TrainConfig, SurrogateConfig):
        for f in dataclasses.fields(cls):
            if f.name in train:
                default = (f.default if f.default is not dataclasses.MISSING
                           else f.default_factory() if f.default_factory is not dataclasses.MISSING
                           else None)
                want = tuple(train[f.name]) if isinstance(default, tuple) else train[f.name]
                assert default == want, f"{cls.__name__}.{f.name}: {default} != schema {want}"
                seen.add(f.name)
    # the linear path's time constants: ms in the config, bins in the model
    assert SurrogateConfig(n_channels=1).linear_taus == tuple(train["linear_taus_ms"]) == ()
    assert seen == set(train) - {*TRAIN_SECTION_NOT_TRAINING, "linear_taus_ms"}, set(train) - seen
    assert SURROGATE_GRADIENT_SLOPE == schema_default("network", "surrogate_slope")


def _rule_commands(repo):
    """(rule, hnn-surrogate subcommand, options its shell passes) of every rule."""
    import re

    out = []
    for path in sorted((repo / "workflow" / "rules").glob("*.smk")):
        # rules defined inside an `if` block are indented
        for block in re.split(r"\n(?=[ \t]*(?:use )?rule )", path.read_text()):
            name = re.match(r"\s*(?:use )?rule (\w+)", block)
            shell = block.split("shell:", 1)
            if not name or len(shell) < 2:
                continue
            cmd = re.search(r"hnn-surrogate ([a-z-]+)", shell[1])
            if cmd:
                out.append((name.group(1), cmd.group(1),
                            set(re.findall(r"(--[a-z][a-z0-9-]*)", shell[1]))))
    return out


def test_every_argument_a_rule_passes_is_required_on_the_command_line(repo):
    """A default in the CLI would be a second source of truth beside the config's."""
    from hnn_surrogate.cli import build_parser

    commands = _rule_commands(repo)
    assert len(commands) >= 12
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for rule, command, options in commands:
        actions = {o: a for a in sub[command]._actions for o in a.option_strings}
        for opt in options:
            assert opt in actions, f"rule {rule}: {command} has no option {opt}"
            a = actions[opt]
            flag = a.nargs == 0                    # store_true: its absence is the default
            assert a.required or flag or a.default is None, (
                f"rule {rule} passes {opt} to {command}, which has a default ({a.default!r})")


def test_training_options_added_later_leave_parameter_files_as_they_were_when_off():
    from hnn_surrogate.config import TRAIN_OPTIONS_OFF, train_config

    for cell_type in ("L2_pyramidal", "L5_pyramidal", "L2_basket", "L5_basket"):
        off = train_config(validate_config({}), cell_type)
        assert not set(TRAIN_OPTIONS_OFF) & set(off), cell_type
        assert "dipole_fast_hz" not in off  # it matters only beside dipole_fast_weight
    weighted = train_config(validate_config({"train": {"per_cell_type": {
        "L5_pyramidal": {"spike_pos_weight": 10}}}}), "L5_pyramidal")
    assert weighted["spike_pos_weight"] == 10
    fast = train_config(validate_config({"train": {"per_cell_type": {
        "L5_pyramidal": {"dipole_fast_weight": 0.2}}}}), "L5_pyramidal")
    assert (fast["dipole_fast_weight"], fast["dipole_fast_hz"]) == (0.2, 100.0)
    on = train_config(validate_config({"train": {"rest_start": True, "per_cell_type": {
        "L2_pyramidal": {"target_compression": {"v_soma": 0.05}}}}}), "L2_pyramidal")
    assert on["rest_start"] is True
    assert on["target_compression"] == {"v_soma": 0.05, "dipole": 0.0}


def test_steps_curve_may_run_past_train_epochs():
    """Its own training runs on to its last epoch, so no epoch is refused (the
    refusal of train.snapshot_epochs past train.epochs is in BAD above)."""
    cfg = validate_config({"evaluate": {"steps_curve": {"epochs": [10, 400]}}})
    assert cfg["evaluate"]["steps_curve"]["epochs"] == [10, 400]
    assert cfg["train"]["epochs"] == 40


def test_defaults_are_filled_in():
    cfg = validate_config({"cells": {"tstop": 200.0}})
    assert cfg["cells"]["tstop"] == 200.0
    assert cfg["cells"]["dt"] == 0.025
    assert set(cfg["cells"]["regimes"]) == {"subthreshold", "suprathreshold", "mixed", "network"}


def test_every_schema_property_has_description_and_default():
    from hnn_surrogate.config import load_schema

    schema = load_schema()

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}.{name} has no description"
            assert "default" in sub, f"{path}.{name} has no default"
            walk(sub, f"{path}.{name}")

    walk(schema, "config")
    walk(schema["$defs"]["regime"], "regime")


BAD = [
    ({"cells": {"tstopp": 100}}, r"config key 'cells.tstopp' is not known"),
    ({"cells": {"tstop": "long"}}, r"config key 'cells.tstop': 'long' is not of type 'number'"),
    ({"cells": {"shard_size": -3}}, r"config key 'cells.shard_size': -3 is less than"),
    ({"cells": {"regimes": {"a": {"n_sims": -1}}}, "benchmark": {"regime": "a"}},
     r"config key 'cells.regimes.a.n_sims': -1 is less than the minimum of 1"),
    ({"cells": {"cell_types": ["L4_pyramidal"]}},
     r"config key 'cells.cell_types\[0\]': 'L4_pyramidal' is not one of"),
    ({"cells": {"bin_ms": 0.03}}, r"config key 'cells.bin_ms': 0.03 is not a whole multiple"),
    ({"cells": {"regimes": {"a": {"rate_hz": [5, 1]}}}, "benchmark": {"regime": "a"}},
     r"config key 'cells.regimes.a.rate_hz': low 5 is above high 1"),
    ({"cells": {"regimes": {"a": {"volley": {"participation": [0.9, 0.2], "jitter_ms": [1, 2]}}}},
      "benchmark": {"regime": "a"}},
     r"config key 'cells.regimes.a.volley.participation': low 0.9 is above high 0.2"),
    ({"cells": {"regimes": {"a": {"volley": {"jitter_ms": [0.0, 1.0]}}}},
      "benchmark": {"regime": "a"}},
     r"config key 'cells.regimes.a.volley.jitter_ms\[0\]': 0.0 is less than or equal to"),
    ({"benchmark": {"regime": "nope"}}, r"config key 'benchmark.regime': 'nope' is not one of"),
    ({"benchmark": {"network_repeats": 0}},
     r"config key 'benchmark.network_repeats': 0 is less than the minimum of 1"),
    ({"cells": {"regimes": {"Bad-Name": {}}}}, r"config key 'cells.regimes': name 'Bad-Name'"),
    ({"network": {"scenarios": {"r": {"tstop": 100.0, "drives": [
        {"type": "poisson", "name": "p", "params": {"rate": 10.0}}]}},
      "benchmark_scenario": "r"}},
     r"config key 'network.scenarios.r.drives\[0\].params.rate': not an argument of hnn-core's "
     r"add_poisson_drive"),
    ({"network": {"scenarios": {"r": {"tstop": 100.0, "drives": [{"type": "tonic"}]}}}},
     r"config key 'network.scenarios.r.drives\[0\].type': 'tonic' is not one of"),
    ({"network": {"surrogate_slope": 0.4}},
     r"config key 'network.surrogate_slope': 0.4 is not among network.gradient_check.slopes"),
    ({"network": {"benchmark_scenario": "nope"}},
     r"config key 'network.benchmark_scenario': 'nope' is not one of the scenarios"),
    ({"network": {"gradient_check": {"slopes": [0.3, -1.0]}}},
     r"config key 'network.gradient_check.slopes\[1\]': -1.0 is less than the minimum of 0"),
    ({"network": {"conditions": {"c": [{"src": "L5_basket", "target": "L6", "gain": 2}]}}},
     r"config key 'network.conditions.c\[0\].target': 'L6' is not a cell type"),
    ({"network": {"scenarios": {"r": {"tstop": 100.2, "drives": [{"type": "erp"}]}},
                  "benchmark_scenario": "r"}},
     r"config key 'network.scenarios.r.tstop': 100.2 is not a whole multiple"),
    ({"cells": {"replay": {"n_sims": 10, "scenarios": ["evoked"], "seeds": [5, 0]}},
      "network": {"seeds": [0, 1]}},
     r"config key 'cells.replay.seeds': \[0\] also in network.seeds"),
    ({"cells": {"replay": {"n_sims": 10, "scenarios": ["nope"], "seeds": [5]}}},
     r"config key 'cells.replay.scenarios': 'nope' is not in network.scenarios"),
    ({"cells": {"replay": {"n_sims": 10, "scenarios": ["evoked"], "conditions": ["x"],
                           "seeds": [5]}}},
     r"config key 'cells.replay.conditions': 'x' is not in network.conditions"),
    ({"cells": {"replay": {"n_sims": 10, "scenarios": ["evoked"]}}},
     r"config key 'cells.replay.seeds': empty, but n_sims is 10"),
    ({"cells": {"tstop": 100.0, "replay": {"n_sims": 2, "scenarios": ["evoked"], "seeds": [9]}},
      "benchmark": {"tstop": 50.0}},
     r"config key 'cells.replay.scenarios': 'evoked' lasts 170.0 ms, longer than cells.tstop"),
    ({"cells": {"regimes": {"replay": {}}}, "benchmark": {"regime": "replay"}},
     r"config key 'cells.regimes.replay': the name is taken by the replay regime"),
    ({"train": {"per_cell_type": {"L3_basket": {"hidden": 8}}}},
     r"config key 'train.per_cell_type.L3_basket' is not known \(one of: L2_pyramidal"),
    ({"train": {"per_cell_type": {"L2_basket": {"hiden": 8}}}},
     r"config key 'train.per_cell_type.L2_basket.hiden' is not known"),
    ({"train": {"per_cell_type": {"L2_basket": {"threads": 1}}}},
     r"config key 'train.per_cell_type.L2_basket.threads' is not known"),
    ({"train": {"per_cell_type": {"L2_basket": {"lstm_hidden": 0}}}},
     r"config key 'train.per_cell_type.L2_basket.lstm_hidden': 0 is less than the minimum"),
    ({"cells": {"cell_types": ["L5_pyramidal"]},
      "train": {"per_cell_type": {"L2_basket": {"hidden": 8}}}},
     r"config key 'train.per_cell_type.L2_basket': L2_basket is not in cells.cell_types"),
    ({"train": {"linear_fit_regimes": ["subthreshold", "subthresold"]}},
     r"config key 'train.linear_fit_regimes': 'subthresold' is not a regime \(one of: "),
    ({"train": {"per_cell_type": {"L2_basket": {"linear_fit_regimes": ["x"]}}}},
     r"config key 'train.per_cell_type.L2_basket.linear_fit_regimes': 'x' is not a regime"),
    ({"cells": {"cell_types": ["L2_basket"]}, "evaluate": {
        "steps_curve": {"epochs": [1]}, "learning_curve": {"cell_type": "L2_basket"}}},
     r"config key 'evaluate.steps_curve.cell_type': L5_pyramidal is not in cells.cell_types"),
    ({"train": {"snapshot_epochs": [50]}},
     r"config key 'train.snapshot_epochs': \[50\] past train.epochs \(40\)"),
    ({"train": {"section_weight": 0.5}},
     r"config key 'train.section_weight': 0.5 trains on section voltages, which "
     r"cells.record_sections: false does not record"),
    ({"train": {"per_cell_type": {"L5_pyramidal": {"section_weight": 1.0}}}},
     r"config key 'train.per_cell_type.L5_pyramidal.section_weight': 1.0 trains on section"),
    ({"train": {"section_weight": -1.0}, "cells": {"record_sections": True}},
     r"config key 'train.section_weight': -1.0 is less than the minimum of 0"),
    ({"train": {"lr_schedule": "cosin"}},
     r"config key 'train.lr_schedule': 'cosin' is not one of \['plateau', 'cosine'\]"),
    ({"train": {"per_cell_type": {"L2_pyramidal": {"lr_schedule": "step"}}}},
     r"config key 'train.per_cell_type.L2_pyramidal.lr_schedule': 'step' is not one of"),
    ({"cells": {"network_prior": {"closed_loop": {"n_runs": -1}}}},
     r"config key 'cells.network_prior.closed_loop.n_runs': -1 is less than the minimum of 0"),
    ({"cells": {"network_prior": {"closed_loop": {"teacher": "pretrained/default"}}}},
     r"config key 'cells.network_prior.closed_loop.teacher' is not known"),
    ({"cells": {"network_prior": {"closed_loop": {"n_runs": 3, "surrogates": ""}}}},
     r"config key 'cells.network_prior.closed_loop.surrogates': '' should be non-empty"),
]


@pytest.mark.parametrize("config,match", BAD)
def test_bad_config_names_the_key(config, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(config)


def test_per_cell_type_train_settings_override_the_shared_ones():
    from hnn_surrogate.config import train_config

    cfg = validate_config({"train": {"hidden": 48, "epochs": 10, "per_cell_type": {
        "L2_basket": {"hidden": 16, "lstm_hidden": 16, "epochs": 30}}}})
    basket, pyr = train_config(cfg, "L2_basket"), train_config(cfg, "L5_pyramidal")
    assert (basket["hidden"], basket["lstm_hidden"], basket["epochs"]) == (16, 16, 30)
    assert (pyr["hidden"], pyr["lstm_hidden"], pyr["epochs"]) == (48, 64, 10)
    assert basket["lr"] == pyr["lr"] and "per_cell_type" not in basket
    # whole simulations for one type, crops for the others
    cfg = validate_config({"train": {"per_cell_type": {
        "L5_pyramidal": {"crop_bins": 0, "batch_size": 8}}}})
    pyr, basket = train_config(cfg, "L5_pyramidal"), train_config(cfg, "L5_basket")
    assert (pyr["crop_bins"], pyr["batch_size"]) == (0, 8)
    assert (basket["crop_bins"], basket["batch_size"]) == (400, 32)


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def _snakemake(repo, workdir, *args):
    return subprocess.run(
        ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
         "--workflow-profile", str(repo / "profiles" / "default"), *args],
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("config,key", [
    ({"cells": {"bogus": 1}}, "cells.bogus"),
    ({"cells": {"tstop": "x"}}, "cells.tstop"),
    ({"cells": {"shard_size": -1}}, "cells.shard_size"),
    ({"cells": {"cell_types": ["L6_pyramidal"]}}, "cells.cell_types[0]"),
])
def test_bad_config_stops_snakemake_before_any_job(repo, tmp_path, config, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    # A real run (not a dry run): it must stop at parse time, so nothing is built.
    proc = _snakemake(repo, tmp_path, "--configfile", str(path), "--cores", "1")
    assert proc.returncode != 0
    assert f"config key '{key}'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_dry_run_of_shipped_configs(repo, tmp_path, name):
    proc = _snakemake(repo, tmp_path, "-n", "--configfile", str(repo / "config" / name))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "simulate_cells" in proc.stdout


def test_lint_is_clean(repo, tmp_path):
    proc = _snakemake(repo, tmp_path, "--lint", "--configfile", str(repo / "config" / "tiny.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_checkpoints_from_is_no_training_option(repo, tmp_path):
    """Setting it changes no training's parameter file (nothing trained reruns), and a
    folder that cannot serve is refused naming the key."""
    cfg = yaml.safe_load((repo / "config" / "tiny.yaml").read_text())
    before = validate_config(cfg, semantic=False)
    after = validate_config(dict(cfg, train=dict(cfg["train"], checkpoints_from=str(tmp_path))),
                            semantic=False)
    for t in before["cells"]["cell_types"]:
        assert train_config(after, t) == train_config(before, t)
    for t in before["cells"]["cell_types"]:
        (tmp_path / f"{t}.pt").write_bytes(b"")
    two = dict(cfg, train=dict(cfg["train"], checkpoints_from=str(tmp_path)),
               cells=dict(cfg["cells"], cell_types=["L2_basket", "L5_basket"]))
    with pytest.raises(ConfigError, match="needs all four cell types; cells.cell_types has "
                                          "L2_basket, L5_basket"):
        validate_config(two)
    with pytest.raises(ConfigError, match=r"'train.checkpoints_from': nowhere is not a folder "
                                          r"\(.*relative path is taken from Snakemake's"):
        validate_config(dict(cfg, train=dict(cfg["train"], checkpoints_from="nowhere")))
