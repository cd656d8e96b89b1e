"""The default config's regimes do what their names say, for every cell type."""

import subprocess
import sys

import pytest

from hnn_surrogate.artifacts import CELL_SIMS, write_json
from hnn_surrogate.config import load_config

N_SIMS = 20


@pytest.fixture(scope="module")
def config(repo):
    return load_config(repo / "config" / "config.yaml")


def _fraction_spiking(config, calibration, tmp_path, cell_type, regime):
    cells = config["cells"]
    out = tmp_path / f"{cell_type}_{regime}.nc"
    subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "hnn_surrogate", "simulate-shard",
         "--cell-type", cell_type, "--regime", regime,
         "--regime-file", str(write_json(cells["regimes"][regime], tmp_path / f"{regime}.json")),
         "--calibration", str(calibration(cell_type)), "--first", "0", "--count", str(N_SIMS),
         "--tstop", str(cells["tstop"]), "--bin-ms", str(cells["bin_ms"]),
         "--dt", str(cells["dt"]), "--delay", str(cells["synaptic_delay"]),
         "--seed", str(config["seed"]), "--out", str(out)],
        check=True, capture_output=True, timeout=600,
    )
    return float((CELL_SIMS.read(out)["n_spikes"].values > 0).mean())


@pytest.mark.parametrize("cell_type", ["L2_pyramidal", "L5_pyramidal", "L2_basket", "L5_basket"])
def test_subthreshold_rarely_and_suprathreshold_mostly_spikes(config, calibration, tmp_path,
                                                              cell_type):
    sub = _fraction_spiking(config, calibration, tmp_path, cell_type, "subthreshold")
    supra = _fraction_spiking(config, calibration, tmp_path, cell_type, "suprathreshold")
    assert sub <= 0.05, f"{cell_type}: {sub:.0%} of subthreshold simulations spiked"
    assert supra > 0.5, f"{cell_type}: only {supra:.0%} of suprathreshold simulations spiked"
