#!/usr/bin/env bash
# Runs inside the freshly created conda environment (snakemake --sdm conda).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python -m pip install -r "$here/neuron.txt"
python -m pip install -r "$here/requirements.txt"
python -m pip install --no-deps "$here/.."
