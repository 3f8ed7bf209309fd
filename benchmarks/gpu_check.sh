#!/usr/bin/env bash
# GPU readiness in one go, on a machine with an NVIDIA GPU (docs/performance.md, "On a GPU"):
#   1. the CUDA tests (tests/test_gpu.py: device=auto, bf16 autocast + SDPA + fused AdamW, compile,
#      checkpoints across CPU and GPU, runs spread over several GPUs), none may skip;
#   2. a short quick sweep on cuda (2 sizes x 2 token budgets), its table printed;
#   3. benchmarks/gpu_bench.py at (12, 768), ctx 1024: tokens/s and MFU against the bf16 peak.
# Extra arguments go to gpu_bench.py, e.g. `benchmarks/gpu_check.sh --shapes 12x768,24x1024`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check.sh: no CUDA")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
n_gpus=$($PY -c 'import torch; print(torch.cuda.device_count())')

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== 1. CUDA tests"
deselect=()
((n_gpus >= 2)) || deselect=(-k "not different_gpus")  # needs 2 GPUs: left out on one, by name
$PY -m pytest -q -rs -m "gpu or not gpu" tests/test_gpu.py "${deselect[@]}" | tee "$out/tests.log"
if grep -q "skipped" "$out/tests.log"; then echo "gpu_check.sh: a CUDA test skipped" >&2; exit 1; fi

echo "== 2. a short quick sweep on cuda"
start=$(date +%s)
$PY -m scaling.cli sweep runs_dir="$out" train.device=cuda model.size=s1,s4 \
    train.tokens=102400,409600 sweep.name=quick-cuda sweep.report_dir="$out/report"
echo "quick sweep on cuda: $(($(date +%s) - start)) s"

echo "== 3. training throughput at larger shapes"
$PY benchmarks/gpu_bench.py --shapes 12x768 --ctx 1024 "$@"
