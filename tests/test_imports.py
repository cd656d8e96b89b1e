"""Each process loads only what it needs: every Snakemake job is a fresh
interpreter (and on a cluster parses the workflow again), so an import of
torch or hnn-core that a job does not use costs seconds, hundreds of times."""

import subprocess
import sys

import pytest

from hnn_surrogate.config import ConfigError, validate_config

HEAVY = ("torch", "neuron", "hnn_core")


def _loaded(code):
    code += f"; import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_building_the_parser_loads_neither_torch_nor_neuron():
    assert _loaded("from hnn_surrogate.cli import build_parser; build_parser()") == "[]"


def test_the_config_check_loads_hnn_core_only_where_it_checks_drives(repo):
    path = repo / "config" / "tiny.yaml"     # its optimize stage is on: objectives checked
    load = ("import yaml; from hnn_surrogate.config import validate_config; "
            f"c = yaml.safe_load(open({str(path)!r}))")
    # the main process: drives against hnn-core's API, objectives without torch
    assert _loaded(load + "; validate_config(c)") == "['hnn_core', 'neuron']"   # not torch
    # a job process: the schema alone
    assert _loaded(load + "; validate_config(c, semantic=False)") == "[]"


def test_a_job_process_still_refuses_a_bad_key_and_leaves_cross_checks_to_the_main_one():
    with pytest.raises(ConfigError, match="no_such_key"):
        validate_config({"cells": {"no_such_key": 1}}, semantic=False)
    low_above_high = {"cells": {"regimes": {"subthreshold": {"rate_hz": [20.0, 1.0]}}}}
    with pytest.raises(ConfigError, match="low 20.0 is above high 1.0"):
        validate_config(low_above_high)
    assert validate_config(low_above_high, semantic=False)["cells"]["regimes"]["subthreshold"][
        "rate_hz"] == [20.0, 1.0]
