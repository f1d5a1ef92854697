#!/usr/bin/env bash
# Creates .venv (once) with recakit and everything its notebooks and tests need.
# torch: a CUDA build where `nvidia-smi` sees a GPU, the CPU build elsewhere (a plain
# `pip install torch` on Linux downloads several GB of CUDA libraries a CPU never uses).
# Set RECAKIT_TORCH (e.g. "torch==2.6.0") to choose the torch requirement yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${RECAKIT_VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  spec=${RECAKIT_TORCH:-"torch>=2.4"}
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    $pip install "$spec"
  elif ! $pip --isolated install --timeout 20 "$spec" --index-url https://download.pytorch.org/whl/cpu; then
    # No route to the CPU wheel index: fall back to the CPU wheel that local mirrors carry.
    echo "setup: the CPU wheel index is unreachable; installing torch==2.13.0 from the configured mirror" >&2
    $pip install "torch==2.13.0"
  fi
fi
$pip install -q -e ".[notebooks,test]"
"$VENV/bin/python" -c "import torch, transformers, recakit; print('recakit ready: torch', torch.__version__, '| transformers', transformers.__version__)"
