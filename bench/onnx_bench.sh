#!/usr/bin/env bash
# shoal against ONNX Runtime (CPU) and PyTorch (GPU eager and torch.compile) on exported
# models: torchvision's resnet18 and mobilenet_v3_small (random weights) and a small
# transformer encoder, exported with torch.onnx.export at opset 17. Builds shoal from this tree,
# runs bench/onnx_bench.py, and leaves $OUT/onnx_bench.json and $OUT/onnx_bench.md (a table of
# the largest abs/rel output differences and the latencies at batch 1 and 32).
#
#   bench/onnx_bench.sh [onnx_bench.py options: --models resnet18 --batches 1,32 --runs 50 --no-compile]
#
# Needs cmake, ninja, a C++ compiler, CUDA, and a python3 with torch, torchvision, onnx,
# onnxruntime and numpy (the GPU machine's image has them). ONNX's C++ library comes from
# libonnx-dev and libprotobuf-dev when installed; else from their Debian packages in the
# folder $ONNX_DEBS (default .debs/onnx; bench/onnx_bench_debs.sh downloads them on a machine
# that reaches Debian's registry), unpacked under build-onnx-bench/sysroot. About 10 minutes on
# an H100/H200 with torch.compile (--no-compile: about 3).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-onnx-bench}
mkdir -p "$OUT"
BUILD=build-onnx-bench
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1

source bench/onnx_build.sh
shoal_onnx_build "$BUILD" "$OUT/build.log" shoal_cli -- -DSHOAL_BUILD_TESTS=OFF || exit 1
echo "== built in $(elapsed) s"
export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$PWD/$BUILD/kernel-cache}
PYTHONUNBUFFERED=1 python3 bench/onnx_bench.py --shoal "$BUILD/shoal" --out "$OUT" "$@" 2>&1 | tee "$OUT/onnx_bench.log"
status=${PIPESTATUS[0]}
echo "== done in $(elapsed) s; results in $OUT"
exit "$status"
