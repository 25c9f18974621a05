#!/usr/bin/env bash
# ResNet-18 at 224 x 224 on one GPU, shoal beside PyTorch in one call (issue 12's bench):
# bench/resnet_torch.py exports torchvision's resnet18 to ONNX and times PyTorch (eager and
# torch.compile; fp32, TF32, bf16); bench/resnet_bench (C++, shoal's public API) times shoal on
# the same export: inference at batch 1, 32 and 256 and a training step at batch 128, with the
# direct fp32 convolutions and with the tensor-core (TF32) ones. Also shoal's planned memory for
# the training step (shoal dump --train --memory). Results in $OUT: torch.json, shoal_*.json,
# memory.json, summary.md.
#
#   bench/resnet_bench.sh [--modes eager,default,max-autotune-no-cudagraphs,reduce-overhead] [--ncu]
#
# Needs what bench/onnx_bench.sh needs (ONNX's C++ library, or its .debs in $ONNX_DEBS) and
# torchvision. --ncu adds Nsight Compute's speed-of-light figures for the heaviest kernels of one
# batch-32 inference with tensor cores.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-resnet-bench}
mkdir -p "$OUT"
modes=eager,default
ncu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --modes) modes=$2; shift 2 ;;
    --ncu) ncu=1; shift ;;
    *) echo "unknown argument $1"; exit 1 ;;
  esac
done
BUILD=build-resnet-bench
extra=()
debs=${ONNX_DEBS:-.debs/onnx}
if ! [ -f /usr/include/onnx/onnx_pb.h ]; then
  sysroot=$PWD/$BUILD/sysroot
  mkdir -p "$sysroot"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$sysroot"; done
  extra=(-DCMAKE_PREFIX_PATH="$sysroot/usr")
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
cmake --preset default -B "$BUILD" -G Ninja -DSHOAL_BUILD_TESTS=OFF -DSHOAL_BUILD_BENCH=ON -DSHOAL_ONNX=ON "${extra[@]}" \
  > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
ninja -C "$BUILD" -j"$(nproc)" shoal_cli resnet_bench >> "$OUT/build.log" 2>&1 || { grep -m20 -A5 error "$OUT/build.log"; exit 1; }
export SHOAL_CACHE_DIR=$PWD/$BUILD/kernel-cache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
PYTHONUNBUFFERED=1 python3 bench/resnet_torch.py --onnx "$OUT/resnet18.onnx" --out "$OUT/torch.json" --modes "$modes" \
  > "$OUT/torch.log" 2>&1 || tail -20 "$OUT/torch.log"
# fp32: direct convolutions, exact cuBLAS (beside torch fp32); TF32: tensor-core convolutions
# and TF32 cuBLAS (beside torch tf32).
"$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --json "$OUT/shoal_direct.json" 2>&1 | tee "$OUT/shoal_direct.log"
SHOAL_CUDA_TC_CONV=1 "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --tf32 --json "$OUT/shoal_tc.json" \
  2>&1 | tee "$OUT/shoal_tc.log"
"$BUILD/shoal" dump "$OUT/resnet_bench_train.mmd" --train --memory -o "$OUT/memory.json" || true
if [ "$ncu" = 1 ] && command -v ncu >/dev/null; then
  SHOAL_CUDA_TC_CONV=1 ncu --section SpeedOfLight --launch-skip 40 --launch-count 40 \
    "$BUILD/resnet_bench" --onnx "$OUT/resnet18.onnx" --batches 32 --runs 1 --train-batch 0 > "$OUT/ncu.txt" 2>&1 || true
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
    rows.append(f"| torch {r['precision']} {r['mode']} (device / e2e) | {r['infer_1_device_ms']:.3f} / {r['infer_1_e2e_ms']:.3f} | "
                f"{r['infer_32_device_ms']:.3f} / {r['infer_32_e2e_ms']:.3f} | {r['infer_256_device_ms']:.3f} / {r['infer_256_e2e_ms']:.3f} | "
                f"{r['train_step_ms']:.2f} | {r['train_max_memory_allocated_bytes'] / 2**20:.0f} MiB |")
mem = None
try:
    m = json.load(open(os.path.join(out, "memory.json")))
    mem = (m.get("arena_bytes", 0) + m.get("persistent_bytes", 0)) / 2**20
except Exception:  # noqa: BLE001
    pass
for v in ("direct", "tc"):
    p = os.path.join(out, f"shoal_{v}.json")
    if not os.path.exists(p):
        rows.append(f"| shoal {v} | failed | | | | |")
        continue
    s = json.load(open(p))
    inf = s["inference"]
    rows.append(f"| shoal {'fp32 direct convs' if v == 'direct' else 'TF32 tensor-core convs'} (e2e) | {inf['1']['ms_median']:.3f} | "
                f"{inf['32']['ms_median']:.3f} | {inf['256']['ms_median']:.3f} | {s['train']['step_ms_median']:.2f} | "
                f"{'' if mem is None else f'{mem:.0f} MiB planned'} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
