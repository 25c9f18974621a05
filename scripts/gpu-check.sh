#!/usr/bin/env bash
# Everything the GPU path is checked by, in one go on a machine with an NVIDIA GPU:
# build, GPU tests, compute-sanitizer memcheck, the MNIST CNN on the GPU (cold and warm
# kernel cache), checkpoint interop with PyTorch, and the benchmark beside PyTorch.
#   scripts/gpu-check.sh [path/to/torch_baseline.py]    (logs go to $OUT, default ./gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
baseline=${1:-../shared/bench/torch_baseline.py}
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

log "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
start=$(date +%s)
cmake --preset default -B build-dev -DSHOAL_BUILD_BENCH=ON >"$OUT/build.log" 2>&1 &&
  cmake --build build-dev -j"$(nproc)" >>"$OUT/build.log" 2>&1 || { log "build failed"; tail -30 "$OUT/build.log"; exit 1; }
log "built in $(( $(date +%s) - start )) s"

./build-dev/tests/shoal_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
log "all tests on the GPU machine: $(grep -E '^\[  (PASSED|FAILED)' "$OUT/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED' "$OUT/tests.log" | head -20

SHOAL_CUDA_SEPARATE_ALLOCS=1 compute-sanitizer --tool memcheck --error-exitcode 9 \
  ./build-dev/tests/shoal_tests --gtest_filter='CudaExecutor*:CudaInfraGpu*' --gtest_brief=1 >"$OUT/memcheck.log" 2>&1
log "compute-sanitizer memcheck (separate allocations): exit $? ; $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)"

export SHOAL_CACHE_DIR=$(mktemp -d)
t0=$(date +%s.%N)
./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose --report "$OUT/cuda_cold.json" >"$OUT/cuda_cold.log" 2>&1
t1=$(date +%s.%N)
./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose --report "$OUT/cuda_warm.json" >"$OUT/cuda_warm.log" 2>&1
t2=$(date +%s.%N)
log "mnist_cnn --device cuda cold cache: $(python3 -c "print(round($t1 - $t0, 2))") s wall; $(grep -iE 'cache' "$OUT/cuda_cold.log" | head -2 | tr '\n' ' ')"
log "mnist_cnn --device cuda warm cache: $(python3 -c "print(round($t2 - $t1, 2))") s wall; $(grep -iE 'cache' "$OUT/cuda_warm.log" | head -2 | tr '\n' ' ')"
grep -E 'device|test accuracy|trained' "$OUT/cuda_warm.log" | tee -a "$OUT/summary.txt"
./build-dev/shoal run examples/seed_pipeline.mmd --device auto >"$OUT/seed_auto.log" 2>&1
log "seed_pipeline --device auto: $(grep -E 'device|test accuracy' "$OUT/seed_auto.log" | tr '\n' ' ')"
./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --disable-pass fuse >"$OUT/cuda_unfused.log" 2>&1
log "unfused: $(grep -E 'test accuracy|trained' "$OUT/cuda_unfused.log" | tr '\n' ' ')"

# Checkpoints both ways with PyTorch's safetensors.
ck=$OUT/shoal_mnist.safetensors
sed "s|t --> out\[output: metrics=accuracy\]|t --> out[output: metrics=accuracy checkpoint=$ck]|" examples/mnist_cnn.mmd >"$OUT/ckpt.mmd"
sed -i "s|path=data/mnist-10k|path=$PWD/data/mnist-10k|" "$OUT/ckpt.mmd"
./build-dev/shoal run "$OUT/ckpt.mmd" --device cuda --epochs 2 --report "$OUT/ckpt.json" >"$OUT/ckpt.log" 2>&1
acc=$(python3 -c "import json;print(json.load(open('$OUT/ckpt.json'))['test_accuracy'])")
python3 bench/torch_interop.py "$ck" "$acc" "$OUT" >"$OUT/interop.log" 2>&1
log "torch loads shoal's checkpoint: exit $? $(cat "$OUT/interop.log" | tail -2 | tr '\n' ' ')"
./build-dev/shoal run bench/mnist_cnn_infer.mmd --device cuda --weights "$OUT/torch_made.safetensors" --report "$OUT/torch_made.json" >"$OUT/torch_made.log" 2>&1
log "shoal scores torch's checkpoint: $(grep -E 'test accuracy|error' "$OUT/torch_made.log" | tr '\n' ' ')"

if [ -x bench/gpu_bench.sh ] && [ "${SKIP_BENCH:-0}" = "0" ]; then
  bench/gpu_bench.sh "$baseline" >"$OUT/bench.log" 2>&1
  log "benchmark (exit $?):"
  tail -30 "$OUT/bench.log" | tee -a "$OUT/summary.txt"
fi
log "done in $(( $(date +%s) - start )) s"
