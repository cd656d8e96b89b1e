"""The command line loads only what a command needs."""

import subprocess
import sys


def test_building_the_parser_loads_neither_torch_nor_neuron():
    # every Snakemake job starts a fresh interpreter: a NEURON job that loads
    # torch first pays seconds for nothing, hundreds of times in a pipeline
    code = ("import sys; from hnn_surrogate.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'neuron', 'hnn_core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
