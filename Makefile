# Two commands (see README.md):
#   make run    run the pipeline on config/config.yaml (creates .venv first)
#   make test   run the default test suite (creates .venv first)
#   make report the HTML report of a finished run (results/report.html)
# Variables: CONFIG (config file), CORES (local cores), PYTHON (interpreter
# that creates the venv), VENV (where it goes), TARGET (snakemake targets).
PYTHON ?= python3.11
VENV ?= .venv
CONFIG ?= config/config.yaml
CORES ?= all
TARGET ?=
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
	$(VENV)/bin/snakemake --configfile $(CONFIG) --cores $(CORES) $(TARGET)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow"

report: $(STAMP)
	$(VENV)/bin/snakemake --configfile $(CONFIG) --report results/report.html

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint --configfile $(CONFIG)
