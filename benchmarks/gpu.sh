#!/usr/bin/env bash
# The GPU run of issue 4, prepared as one script (GPT-2 small shape, bf16, text mode):
# the encoding benchmark's variants plus the end-to-end embedded replay, on one GPU.
#
#   make gpu-wheels                  # here: wheels the GPU image lacks, into .whl/ (git-ignored)
#   bash benchmarks/gpu.sh           # there (the device tool: carry .whl); results in $OUT
#   GPU_QUICK=1 bash benchmarks/gpu.sh   # a short check of the script itself (about 12 min on 2 CPU cores)
set -euo pipefail
out=${OUT:-benchmarks/results/gpu}
mkdir -p "$out"
if [ -d .whl ]; then  # the GPU image has torch and transformers, not pydantic-settings or river
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
  device=(--device cuda --dtype bfloat16)
else
  echo "no GPU: running on the CPU" | tee "$out/gpu.txt"
  device=()
fi
if [ -n "${GPU_QUICK:-}" ]; then
  sizes=(--pool 8 --prefill 400 --warmup 16 --events 64 --naive-events 4 --micro-batch 32 --batch-size 8
         --kv-cache-bytes 1000000000 --replay --replay-events 64)
else  # H100/H200: about 5 minutes
  sizes=(--pool 1024 --prefill 70000 --warmup 8192 --events 65536 --naive-events 4096 --micro-batch 2048
         --batch-size 256 --kv-cache-bytes 48000000000 --replay --replay-events 65536)
fi
"$py" benchmarks/encoding.py "${device[@]}" "${sizes[@]}" --out-dir "$out" 2>&1 | tee "$out/log.txt"
