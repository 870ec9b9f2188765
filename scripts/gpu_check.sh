#!/usr/bin/env bash
# bash scripts/gpu_check.sh [sizes: tiny,base]   (on a machine with GPUs; not needed for CI)
# One epoch per strategy and precision on the demo data, with the tiny model and a bert-base-sized model built
# from a config (no download): prints PASS/FAIL per case and training samples/s (validation excluded).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
SIZES="${1:-tiny,base}"
OUT="${OUT:-outputs/gpu_check}"
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $GPUS"

BASE_SIZE="model.net.config_overrides.hidden_size=768 model.net.config_overrides.num_hidden_layers=12 model.net.config_overrides.num_attention_heads=12 model.net.config_overrides.intermediate_size=3072"
CASES=(
  "gpu-32|trainer=gpu trainer.precision=32"
  "gpu-bf16|trainer=gpu trainer.precision=bf16-mixed"
  "gpu-16|trainer=gpu trainer.precision=16-mixed"
  "ddp-bf16|trainer=ddp trainer.precision=bf16-mixed"
  "fsdp-bf16|trainer=fsdp"
  "lora-fsdp|trainer=fsdp adapter=lora"
  "qlora-bf16|model=minilm adapter=qlora trainer=gpu trainer.precision=bf16-mixed model.net.quantization.bnb_4bit_compute_dtype=bfloat16"
)
status=0
printf '%-6s %-10s %-6s %10s  %s\n' size case result samples/s detail
for size in ${SIZES//,/ }; do
  extra=""; [ "$size" = base ] && extra="$BASE_SIZE"
  for case in "${CASES[@]}"; do
    name="${case%%|*}"; overrides="${case#*|}"
    if [ "$GPUS" -lt 1 ]; then
      printf '%-6s %-10s %-6s %10s  %s\n' "$size" "$name" SKIP - "no GPU on this machine"; continue
    fi
    if [[ "$name" == qlora* && "$size" == base ]]; then  # the pretrained MiniLM: one size only
      printf '%-6s %-10s %-6s %10s  %s\n' "$size" "$name" SKIP - "pretrained weights: checked at size tiny"; continue
    fi
    if [[ "$name" == *ddp* || "$name" == *fsdp* ]] && [ "$GPUS" -lt 2 ]; then
      printf '%-6s %-10s %-6s %10s  %s\n' "$size" "$name" SKIP - "needs 2+ GPUs, this machine has $GPUS"; continue
    fi
    model="model=tiny_random"; sizing="$extra"
    [[ "$overrides" == *model=* ]] && model="" && sizing=""  # the case names its own model
    probe="$OUT/$size-$name.json"; rm -f "$probe"
    log="$OUT/$size-$name.log"
    # shellcheck disable=SC2086
    env HF_HUB_OFFLINE=1 BENCH_PROBE_OUT="$PWD/$probe" PYTHONPATH="$PWD" timeout 1200 "$PY" train.py \
      $model $sizing $overrides trainer.max_epochs=1 logger=csv resume=false \
      task_name="gpu_check_${size}_${name}" paths.log_dir="$OUT/runs" ++callbacks.progress_bar=null \
      +callbacks.bench_probe._target_=benchmarks.probe.BenchProbe >"$log" 2>&1
    rc=$?
    world=1; [[ "$name" == *ddp* || "$name" == *fsdp* ]] && world=$GPUS  # the probe counts one process's samples
    speed=$("$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['samples'] * int(sys.argv[2]) / r['train_time_s']))" "$probe" "$world" 2>/dev/null || echo -)
    if [ $rc -eq 0 ]; then result=PASS; detail=""; else result=FAIL; detail="exit $rc, see $log"; status=1; fi
    printf '%-6s %-10s %-6s %10s  %s\n' "$size" "$name" "$result" "$speed" "$detail"
  done
done
exit $status
