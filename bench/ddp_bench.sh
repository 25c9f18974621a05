#!/usr/bin/env bash
# Data parallelism on the GPUs of one machine (2 or more; written for 2 H200s): builds shoal
# from this tree and runs bench/ddp_bench.py, which measures
#   - equivalence: `--gpus 2` at global batch 64 against 1 GPU at batch 64 (weights after one
#     epoch), next to the fp32 noise of two 1-GPU runs that differ only in rounding;
#   - scaling: 1 vs 2 GPUs (samples/s) for the seed CNN and a wider CNN (and
#     examples/resnet_mnist.mmd when it exists), and PyTorch DDP on the same GPUs;
#   - faults: a rank killed (through the launcher, and ranks started by hand), a wrong world
#     size, an unreachable rendezvous: exit status, message, seconds to exit.
# Results in $OUT (default /tmp/shoal-ddp): results.json, summary.txt, logs.
#   OUT=/tmp/out bench/ddp_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-ddp}
mkdir -p "$OUT"
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader 2>/dev/null
if ! cmake --preset default -B build-ddp > "$OUT/build.log" 2>&1; then
  echo "configure failed:"; tail -30 "$OUT/build.log"; exit 1
fi
if ! cmake --build build-ddp -j16 --target shoal_cli >> "$OUT/build.log" 2>&1; then
  echo "build failed:"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1
fi
export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$PWD/build-ddp/kernel-cache}
export NCCL_NVLS_ENABLE=0
PYTHONUNBUFFERED=1 python3 bench/ddp_bench.py --shoal build-ddp/shoal --out "$OUT" 2>&1 | tee "$OUT/ddp_bench.log"
exit "${PIPESTATUS[0]}"
