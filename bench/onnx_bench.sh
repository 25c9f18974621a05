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

extra=()
debs=${ONNX_DEBS:-.debs/onnx}
if ! [ -f /usr/include/onnx/onnx_pb.h ]; then
  if ! ls "$debs"/*.deb >/dev/null 2>&1; then
    echo "ONNX's C++ library is not installed and $debs holds no .deb: run bench/onnx_bench_debs.sh where Debian's"
    echo "registry is reachable (or apt-get install libonnx-dev libprotobuf-dev), then carry $debs here"
    exit 1
  fi
  sysroot=$PWD/$BUILD/sysroot
  mkdir -p "$sysroot"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$sysroot"; done
  extra=(-DCMAKE_PREFIX_PATH="$sysroot/usr")
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "== ONNX and protobuf from $debs (unpacked in $sysroot)"
fi
if ! cmake --preset default -B "$BUILD" -DSHOAL_BUILD_TESTS=OFF -DSHOAL_ONNX=ON "${extra[@]}" >"$OUT/build.log" 2>&1; then
  echo "configure failed:"; tail -30 "$OUT/build.log"; exit 1
fi
if ! ninja -C "$BUILD" -j"$(nproc)" shoal_cli >>"$OUT/build.log" 2>&1; then
  echo "build failed:"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1
fi
echo "== built in $(elapsed) s"
export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$PWD/$BUILD/kernel-cache}
PYTHONUNBUFFERED=1 python3 bench/onnx_bench.py --shoal "$BUILD/shoal" --out "$OUT" "$@" 2>&1 | tee "$OUT/onnx_bench.log"
status=${PIPESTATUS[0]}
echo "== done in $(elapsed) s; results in $OUT"
exit "$status"
