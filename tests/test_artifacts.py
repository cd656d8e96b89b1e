"""NetCDF artifacts: schema checks, atomic writes, corrupt or foreign files rejected."""

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hnn_surrogate.artifacts import CELL_CALIBRATION, CELL_SIMS, ArtifactError

MAKE = textwrap.dedent("""
    import numpy as np
    from hnn_surrogate.cells.shard import assemble

    def make(n_sims, n_bins, seed=0):
        rng = np.random.default_rng(seed)
        results = [dict(
            inputs=rng.random((n_bins, 3), dtype=np.float32),
            v_soma=rng.random(n_bins), spike_count=np.zeros(n_bins, np.int8),
            spike_time=np.array([1.0]), event_channel=np.array([0, 2]),
            event_time=np.array([0.5, 3.0]), event_weight=np.array([0.1, 0.2]),
        ) for _ in range(n_sims)]
        return assemble(results, cell_type="L2_basket", regime_name="mixed",
                        indices=range(n_sims), tstop=n_bins * 0.5, dt=0.025, bin_ms=0.5,
                        delay=0.1, seed=1, params_hash="test")
""")
namespace = {}
exec(MAKE, namespace)  # the same helper runs in the killed child process below
make = namespace["make"]


def test_roundtrip_keeps_values_units_and_compression(tmp_path):
    ds = make(4, 50)
    path = CELL_SIMS.write(ds, tmp_path / "a.nc")
    back = CELL_SIMS.read(path)
    np.testing.assert_array_equal(back["inputs"].values, ds["inputs"].values)
    assert back["inputs"].attrs["units"] == "uS"
    assert back.attrs["artifact"] == "cell_sims" and "git_commit" in back.attrs
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        assert nc["inputs"].filters()["zlib"]
        assert nc["inputs"].chunking() == [1, 50, 3]
    assert not list(tmp_path.glob(".*tmp"))


def test_schema_mismatches_are_named(tmp_path):
    ds = make(2, 10)
    with pytest.raises(ArtifactError, match="variable 'v_soma' is missing"):
        CELL_SIMS.write(ds.drop_vars("v_soma"), tmp_path / "x.nc")
    bad = ds.copy()
    bad["v_soma"].attrs["units"] = "V"
    with pytest.raises(ArtifactError, match="'v_soma' is in 'V', expected 'mV'"):
        CELL_SIMS.write(bad, tmp_path / "x.nc")
    with pytest.raises(ArtifactError, match="has dtype float64, expected float32"):
        CELL_SIMS.write(ds.assign(v_soma=ds["v_soma"].astype("float64")), tmp_path / "x.nc")
    path = CELL_SIMS.write(ds, tmp_path / "ok.nc")
    with pytest.raises(ArtifactError, match="is a 'cell_sims' artifact, expected 'cell_calibration'"):
        CELL_CALIBRATION.read(path)
    assert not (tmp_path / "x.nc").exists()


def test_missing_and_corrupt_files_are_rejected(tmp_path):
    with pytest.raises(ArtifactError, match="no such cell_sims file"):
        CELL_SIMS.read(tmp_path / "none.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(ArtifactError, match="junk.nc: not a readable NetCDF file"):
        CELL_SIMS.read(junk)
    good = CELL_SIMS.write(make(3, 400), tmp_path / "good.nc")
    data = good.read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="cut.nc"):
        CELL_SIMS.read(tmp_path / "cut.nc")


def test_a_write_killed_midway_leaves_no_file_a_rerun_would_trust(tmp_path):
    out = tmp_path / "shard.nc"
    child = subprocess.Popen([sys.executable, "-c", MAKE + textwrap.dedent(f"""
        from hnn_surrogate.artifacts import CELL_SIMS
        ds = make(300, 4000)
        print("writing", flush=True)
        CELL_SIMS.write(ds, {str(out)!r})
    """)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    deadline = time.time() + 60
    while not list(tmp_path.glob(".shard.nc.*.tmp")):
        assert time.time() < deadline and child.poll() is None, "write never started"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()  # Snakemake sees a missing output and reruns the job
    # A rerun succeeds and gives a complete, valid file.
    CELL_SIMS.write(make(3, 10), out)
    assert CELL_SIMS.read(out).sizes["sim"] == 3


def test_assemble_orders_ragged_arrays_by_simulation():
    ds = make(3, 10)
    np.testing.assert_array_equal(ds["event_sim"].values, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ds["spike_sim"].values, [0, 1, 2])
