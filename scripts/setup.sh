#!/usr/bin/env bash
# Create ./.venv with sklearn_robust installed in editable mode.
#
#   bash scripts/setup.sh [EXTRA]      # EXTRA: tests, plots, docs, ... (optional)
#
# torch is installed first, the cheap way for the machine at hand, so that pip never
# pulls a multi-GB CUDA build onto a CPU-only machine:
#   1. a torch that the base Python already has (e.g. your own CUDA build) is kept:
#      the venv sees it through --system-site-packages;
#   2. else a local CPU wheel (torch==2.13.0 in pip's find-links) if pip has one;
#   3. else, with an NVIDIA GPU (nvidia-smi), the default build from PyPI;
#   4. else the CPU build from the PyTorch CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRA=${1:-}

if [ ! -x .venv/bin/python ]; then
    if "$PY" -c "import torch" >/dev/null 2>&1; then
        "$PY" -m venv --system-site-packages .venv
    else
        "$PY" -m venv .venv
    fi
fi
VPY=.venv/bin/python
PIP="$VPY -m pip --disable-pip-version-check -q"

if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    if $PIP download --no-deps --no-index -d "$(mktemp -d)" torch==2.13.0 >/dev/null 2>&1; then
        $PIP install torch==2.13.0
    elif command -v nvidia-smi >/dev/null 2>&1; then
        $PIP install torch
    else
        $PIP install torch --index-url https://download.pytorch.org/whl/cpu
    fi
fi

if [ -n "$EXTRA" ]; then
    $PIP install -e ".[$EXTRA]"
else
    $PIP install -e .
fi
