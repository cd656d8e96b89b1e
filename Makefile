# Two commands (see README.md):
#   make run    run the pipeline on config/config.yaml (creates .venv first)
#   make test   run the default test suite (creates .venv first)
#   make report the HTML report of a finished run (results/report.html)
# Variables: CONFIG (config file), CORES (local cores), PYTHON (interpreter
# that creates the venv), VENV (where it goes), TARGET (snakemake targets),
# MEM_MB (memory Snakemake may hand out to jobs at once; default 90 % of the
# machine's: jobs declare mem_mb, and without a limit two large merges ran
# side by side out of memory).
PYTHON ?= python3.11
VENV ?= .venv
CONFIG ?= config/config.yaml
CORES ?= all
TARGET ?=
MEM_MB ?= $(shell awk '/^MemTotal:/ {printf "%d", $$2 / 1024 * 0.9}' /proc/meminfo 2>/dev/null)
STAMP := $(VENV)/.installed

export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: env run test lint report

env: $(STAMP)

$(STAMP): envs/neuron.txt envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r envs/neuron.txt
	$(VENV)/bin/python -m pip install --quiet -r envs/requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(VENV)/bin/python -c "import neuron, hnn_core, torch, mpi4py, xarray, netCDF4, snakemake"
	touch $@

run: $(STAMP)
	$(VENV)/bin/snakemake --configfile $(CONFIG) --cores $(CORES) \
		$(if $(MEM_MB),--resources mem_mb=$(MEM_MB)) $(TARGET)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow"

report: $(STAMP)
	$(VENV)/bin/snakemake --configfile $(CONFIG) --report results/report.html

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint --configfile $(CONFIG)
