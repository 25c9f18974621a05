#!/usr/bin/env bash
# ResNet-18 at 224 x 224 on one GPU, shoal beside PyTorch in one call (issue 12's bench):
# bench/resnet_torch.py exports torchvision's resnet18 to ONNX and times PyTorch (eager and
# torch.compile; fp32, TF32, bf16); bench/resnet_bench (C++, shoal's public API) times shoal on
# the same export at --precision fp32 (exact: direct convolutions), tf32 and bf16 (tensor-core
# implicit GEMMs): inference at batch 1, 32 and 256 (input from the host, and resident on the
# GPU) and a training step at batch 128 on GPU-resident batches. Also shoal's planned memory for
# the training step (shoal dump --train --memory) and one profiled run per tensor-core precision.
# Results in $OUT: torch.json, shoal_<precision>.json, profile_<precision>.txt, memory.json,
# summary.md.
#
#   bench/resnet_bench.sh [--modes eager,default,max-autotune-no-cudagraphs,reduce-overhead]
#                         [--precisions fp32,tf32,bf16] [--runs 30] [--steps 20] [--ncu] [--autotune]
#
# Needs what bench/onnx_bench.sh needs (ONNX's C++ library, or its .debs in $ONNX_DEBS) and
# torchvision. PyTorch trains resnet18 without batch norm, the model shoal trains (the ONNX
# export of the eval-mode network folds batch norm into the convolutions): --train-norm batch
# in resnet_torch.py times torchvision's own. --ncu adds Nsight Compute's speed-of-light figures
# for the heaviest kernels of one batch-32 TF32 inference. BUILD (default build-resnet-bench)
# and SHOAL_BUILD_TESTS=ON let one build serve the GPU tests too. --autotune times shoal's
# tensor-core precisions with their tiles tuned (resnet_bench --autotune: a first run tunes into
# the kernel cache, untimed, then the timed run reads the choice).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-resnet-bench}
mkdir -p "$OUT"
modes=eager,default
precisions=fp32,tf32,bf16
runs=30
steps=20
ncu=0
autotune=()
while [ $# -gt 0 ]; do
  case "$1" in
    --modes) modes=$2; shift 2 ;;
    --precisions) precisions=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --ncu) ncu=1; shift ;;
    --autotune) autotune=(--autotune); shift ;;
    *) echo "unknown argument $1"; exit 1 ;;
  esac
done
BUILD=${BUILD:-build-resnet-bench}
targets="shoal_cli resnet_bench"
[ "${SHOAL_BUILD_TESTS:-OFF}" = ON ] && targets="$targets shoal_tests"
source bench/onnx_build.sh
shoal_onnx_build "$BUILD" "$OUT/build.log" $targets -- -DSHOAL_BUILD_TESTS=${SHOAL_BUILD_TESTS:-OFF} || exit 1
export SHOAL_CACHE_DIR=$PWD/$BUILD/kernel-cache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
PYTHONUNBUFFERED=1 python3 bench/resnet_torch.py --onnx "$OUT/resnet18.onnx" --out "$OUT/torch.json" --modes "$modes" \
  --precisions "$precisions" --runs "$runs" --steps "$steps" > "$OUT/torch.log" 2>&1 || tail -20 "$OUT/torch.log"
for p in ${precisions//,/ }; do
  tune=()
  if [ "$p" != fp32 ] && [ ${#autotune[@]} -gt 0 ]; then
    tune=(--autotune)
    "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --precision "$p" --runs 1 --steps 4 --autotune --verbose \
      > "$OUT/autotune_$p.log" 2>&1 || tail -5 "$OUT/autotune_$p.log"
  fi
  "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --precision "$p" --runs "$runs" --steps "$steps" "${tune[@]}" \
    --json "$OUT/shoal_$p.json" 2>&1 | tee "$OUT/shoal_$p.log"
  if [ "$p" != fp32 ]; then  # where the time goes (profiled runs launch one by one: timed apart)
    "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --precision "$p" --runs 3 --steps 3 --batches 32 --profile "${tune[@]}" \
      > "$OUT/profile_$p.txt" 2>&1 || tail -5 "$OUT/profile_$p.txt"
  fi
done
"$BUILD/shoal" dump "$OUT/resnet_bench_train.mmd" --train --memory --arch sm_90 -o "$OUT/memory.json" || true
if [ "$ncu" = 1 ] && command -v ncu >/dev/null; then
  ncu --section SpeedOfLight --kernel-name 'regex:_tc$' --launch-count 20 \
    "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --precision tf32 --batches 32 --runs 1 --train-batch 0 > "$OUT/ncu.txt" 2>&1 || true
fi
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
t = json.load(open(os.path.join(out, "torch.json")))
rows = ["| run | inference b1 ms | b32 ms | b256 ms | train b128 ms | train memory |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
for r in t["results"]:
    if "error" in r:
        rows.append(f"| torch {r['precision']} {r['mode']} | {r['error'][:80]} | | | | |")
        continue
    rows.append(f"| torch {r['precision']} {r['mode']} (device / e2e pinned) | {r['infer_1_device_ms']:.3f} / {r['infer_1_e2e_ms']:.3f} | "
                f"{r['infer_32_device_ms']:.3f} / {r['infer_32_e2e_ms']:.3f} | {r['infer_256_device_ms']:.3f} / {r['infer_256_e2e_ms']:.3f} | "
                f"{r['train_step_ms']:.2f} | {r['train_max_memory_allocated_bytes'] / 2**20:.0f} MiB |")
mem = None
try:
    m = json.load(open(os.path.join(out, "memory.json")))
    # The GPU's whole footprint (plan + scratch + prepared + status; fp32, sm_90) where dump has it.
    mem = m["gpu"]["device_bytes"] / 2**20 if "gpu" in m else (m.get("arena_bytes", 0) + m.get("persistent_bytes", 0)) / 2**20
except Exception:  # noqa: BLE001
    pass
for p in ("fp32", "tf32", "bf16", "fp16"):
    path = os.path.join(out, f"shoal_{p}.json")
    if not os.path.exists(path):
        continue
    s = json.load(open(path))
    inf = s["inference"]
    cell = lambda b: f"{inf[b].get('ms_median_input_on_gpu', float('nan')):.3f} / {inf[b].get('ms_median_pinned', float('nan')):.3f}"
    rows.append(f"| shoal {p} (device / e2e pinned) | {cell('1')} | {cell('32')} | {cell('256')} | {s['train']['step_ms_median']:.2f} | "
                f"{'' if mem is None else f'{mem:.0f} MiB planned'} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
