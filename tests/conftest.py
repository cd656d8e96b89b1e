"""Shared fixtures: the repository, the venv's tools on PATH, calibrated cells."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# mpiexec, snakemake and hnn-surrogate live beside the interpreter in the venv.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def calibration(tmp_path_factory):
    """Calibration files (coarse, 6 iterations), made once per cell type on demand."""
    from hnn_surrogate.cells.calibrate import write_calibration

    folder = tmp_path_factory.mktemp("calibration")
    made = {}

    def get(cell_type):
        if cell_type not in made:
            made[cell_type] = write_calibration(cell_type, folder / f"{cell_type}.nc",
                                                iterations=6)
        return made[cell_type]

    return get
