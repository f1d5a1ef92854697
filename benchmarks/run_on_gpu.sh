#!/usr/bin/env bash
# The one command a GPU session runs: every figure of benchmarks/gpu.py on one H100/H200, in
# about 6 minutes of device time, results written where the device tool brings them back.
#
#   device run (repo root), carry [".whl"], timeout_s 540:   bash benchmarks/run_on_gpu.sh
#
# Extra arguments go to gpu.py (`bash benchmarks/run_on_gpu.sh --tiny` checks the script on a CPU).
#
# bitsandbytes and diffusers are not installed on the GPU image: their wheels travel in .whl/
# (see benchmarks/README.md for the download commands) and are installed here first; without
# them the 8-bit / NF4 figures, or the OpenUni ones, come back null with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
results="${OUT:-benchmarks/results}"
mkdir -p "$results"
python=${PYTHON:-python3}
site=${SITE:-/tmp/site}

if ls .whl/*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
        && export PYTHONPATH="$site"${PYTHONPATH:+:$PYTHONPATH}
else
    echo "no .whl/ wheels: the bitsandbytes figures will be null" >&2
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$results/nvidia_smi.txt"
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

# Sections in order of importance; the JSON is rewritten after each, so a timeout keeps the
# finished ones. 480 s leaves the device tool time to copy the files back.
timeout 480 "$python" benchmarks/gpu.py --sections sampling,train,presets,quantized,openuni \
    --out "$results/gpu_benchmark.json" "$@" 2>&1 | tee "$results/gpu_benchmark.log"
status=${PIPESTATUS[0]}
echo "benchmarks/gpu.py exit status $status (124 = stopped at the time limit)"
exit "$status"
