"""The SLURM profile against a real single-node SLURM (tests/slurm/start-slurm.sh).

Runs the cells stage of one cell type of the tiny config through Snakemake's
SLURM executor: calibration, three MPI shard jobs (2 tasks, 1 CPU each), two
MPI NEURON network runs and their event lists for the replay regime, the
replay shard and the merge, each a real sbatch job.
"""

import shutil
import subprocess

import pytest

from hnn_surrogate.datasets import open_cell_dataset

needs_slurm = pytest.mark.skipif(
    shutil.which("sbatch") is None or shutil.which("slurmctld") is None,
    reason="SLURM is not installed (apt-get install slurmctld slurmd munge slurm-client)",
)


@pytest.fixture(scope="module")
def slurm(repo):
    subprocess.run(["bash", str(repo / "tests" / "slurm" / "start-slurm.sh")], check=True,
                   timeout=120)
    partition = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True,
                               check=True).stdout.split()[0]
    return partition


@needs_slurm
def test_cells_stage_through_the_slurm_executor(repo, tmp_path, slurm):
    target = "results/cells/L2_basket.nc"
    cmd = ["snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", str(repo / "profiles" / "slurm"),
           "--configfile", str(repo / "config" / "tiny.yaml"),
           # No accounting on a test cluster: poll squeue instead of sacct.
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           "--default-resources", f"slurm_partition={slurm}", "slurm_account=none",
           "mem_mb=1000", "runtime=10",
           # The PyPI mpich here has no SLURM PMI: launch ranks with its mpiexec
           # inside the allocation (a cluster profile keeps srun).
           "--set-resources", *(f"{rule}:{key}" for rule in
                                ("simulate_cells", "simulate_replay", "simulate_network_neuron",
                                 "simulate_network_prior", "simulate_alpha_start")
                                for key in ("mpi=mpiexec", "cpus_per_task=1")),
           "--jobs", "4", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    # calibrate, 3 random-input shards, 3 NEURON network runs, their 3 event lists,
    # the replay shard, 3 network_prior runs, 3 alpha_start runs, merge
    assert out.count("has been submitted with SLURM jobid") == 18
    ds = open_cell_dataset(tmp_path / target)
    assert ds.sizes["sim"] == 18 + 6 * 2              # + 6 network runs x 2 L2 basket cells
    assert set(ds["split"].values) == {"train", "val", "test"}
    # Every shard ran as 2 MPI ranks inside its SLURM job.
    for regime in ("subthreshold", "suprathreshold", "network", "replay"):
        rule = "simulate_replay" if regime == "replay" else "simulate_cells"
        log = (tmp_path / "logs" / rule / "L2_basket" / regime / "0000.log").read_text()
        assert "rank 0 of 2" in log
    for run in range(3):    # every prior run's NEURON network on 2 ranks inside its job
        for rule in ("simulate_network_prior", "simulate_alpha_start"):
            log = (tmp_path / "logs" / rule / f"{run:04d}.log").read_text()
            assert "on 2 ranks" in log


def test_every_mpi_rule_runs_under_srun_in_the_slurm_profile(repo):
    """A rule launching MPI ranks gets srun and one core per task on a cluster: a rule
    missing from the profile asks SLURM for one node per task and never starts."""
    import re

    import yaml

    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    mpi_rules = []
    for smk in sorted((repo / "workflow" / "rules").glob("*.smk")):
        for parent, name, body in re.findall(
                r"^(?:rule|use rule (\w+) as) (\w+)(?: with)?:\n(.*?)(?=^\S|\Z)",
                smk.read_text(), flags=re.S | re.M):
            # a rule used from an MPI rule inherits its resources (the parent comes first)
            if 'mpi="mpiexec"' in body or "{resources.mpi}" in body or parent in mpi_rules:
                mpi_rules.append(name)
    assert {"simulate_network_prior", "simulate_alpha_start", "simulate_cells",
            "simulate_replay"} <= set(mpi_rules)
    for rule in mpi_rules:
        assert profile["set-resources"].get(rule) == {"mpi": "srun", "cpus_per_task": 1}, rule
