#!/usr/bin/env bash
# bash benchmarks/gpu.sh [--steps 100 --warmup 20 --batch 32 --seq 128 --peak-tflops 989 ...]
# bert-base training throughput and MFU on this machine's GPU (see benchmarks/gpu_throughput.py for the FLOP count).
# On a machine without a GPU it refuses in one line; --device cpu --steps 2 --tiny is a smoke test there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
fi
exec env HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m benchmarks.gpu_throughput "$@"
