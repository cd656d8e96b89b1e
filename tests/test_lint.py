"""The code and the workflow are clean as their formatters and linters see them."""

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_ruff_is_clean(repo):
    proc = subprocess.run([str(BIN / "ruff"), "check", "src", "tests"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_is_clean(repo):
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
