#!/usr/bin/env bash
# Creates .venv (once) with recakit and everything its notebooks and tests need, at the exact
# versions in requirements.lock: a known-good set, the same on every machine and every day.
# RECAKIT_LATEST=1 installs (or upgrades to) the newest releases pyproject.toml allows instead.
# torch: a CUDA build where `nvidia-smi` sees a GPU, the CPU build elsewhere (a plain
# `pip install torch` on Linux downloads several GB of CUDA libraries a CPU never uses).
# Set RECAKIT_TORCH (e.g. "torch==2.6.0") to choose the torch requirement yourself (with another
# torch than the lock's, pair it with RECAKIT_LATEST=1: the locked set is tested with its own).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${RECAKIT_VENV:-.venv}
LATEST=${RECAKIT_LATEST:-0}
locked_torch=$(grep '^torch==' requirements.lock)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
if [ "$LATEST" != 1 ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: requirements.lock needs Python 3.11 or newer (PYTHON=python3.11 bash scripts/setup.sh);" \
       "RECAKIT_LATEST=1 installs the newest releases this Python can run instead" >&2
  exit 1
fi

if [ -n "${RECAKIT_TORCH:-}" ]; then torch_spec=$RECAKIT_TORCH
elif [ "$LATEST" = 1 ]; then torch_spec="torch>=2.4"
else torch_spec=$locked_torch
fi
upgrade=""
if [ "$LATEST" = 1 ]; then upgrade="--upgrade"; fi
# a torch that satisfies torch_spec already stays (pip says so without an index), except when
# the newest releases are asked for
if [ "$LATEST" = 1 ] || ! $pip --isolated install -q --no-index "$torch_spec" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    $pip install $upgrade "$torch_spec"
  elif ! $pip --isolated install $upgrade --timeout 20 "$torch_spec" --index-url https://download.pytorch.org/whl/cpu; then
    # No route to the CPU wheel index: fall back to the CPU wheel that local mirrors carry.
    echo "setup: the CPU wheel index is unreachable; installing $locked_torch from the configured mirror" >&2
    $pip install "$locked_torch"
  fi
fi

# the rest never replaces the torch build installed above
installed_torch="torch==$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("torch"))')"
if [ "$LATEST" = 1 ]; then
  $pip install -q --upgrade --upgrade-strategy eager -e ".[notebooks,test]" "$installed_torch"
else
  $pip install -q -e ".[notebooks,test]" "$installed_torch" -r <(grep -v '^torch==' requirements.lock)
fi
$pip check
"$VENV/bin/python" -c "import torch, transformers, recakit; print('recakit ready: torch', torch.__version__, '| transformers', transformers.__version__)"
