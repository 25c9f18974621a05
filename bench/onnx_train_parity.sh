#!/usr/bin/env bash
# Training parity of ONNX imports, shoal beside PyTorch in one call: bench/onnx_train_torch.py
# builds small real models (torchvision's ResNet-18, MobileNetV3-small and EfficientNet-B0,
# timm's ConvNeXt-atto and ViT-tiny, transformers' BERT and GPT-2 classifiers, an LSTM
# classifier), exports each in training mode, writes the batches of every step and trains the
# same initial weights on them in PyTorch (float64 on the CPU: the reference; fp32 on the CPU
# and on the GPU, TF32 off: its own noise). bench/onnx_train_parity (C++, shoal's public API)
# trains the export on the same batches with the same optimizer on the CPU and the GPU (fp32).
# The comparison -- the largest relative loss difference from float64 over the steps -- goes
# to $OUT/cases/onnx_train_parity.md and .json; the exit status is 1 when a model falls outside
# 4 x PyTorch's own noise.
#
#   bench/onnx_train_parity.sh [--models resnet18,bert_tiny,...] [--steps 20] [--batch 16]
#
# Needs what bench/onnx_bench.sh needs (ONNX's C++ library, or its .debs in $ONNX_DEBS),
# torchvision, timm and transformers. BUILD (default build-onnx-train) is the build folder.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-onnx-train}
mkdir -p "$OUT"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --models|--steps|--batch) args+=("$1" "$2"); shift 2 ;;
    *) echo "unknown argument $1"; exit 1 ;;
  esac
done
BUILD=${BUILD:-build-onnx-train}
source bench/onnx_build.sh
shoal_onnx_build "$BUILD" "$OUT/build.log" onnx_train_parity || exit 1
export SHOAL_CACHE_DIR=$PWD/$BUILD/kernel-cache
cases=$OUT/cases
PYTHONUNBUFFERED=1 python3 bench/onnx_train_torch.py make "$cases" "${args[@]}" 2>&1 | tee "$OUT/torch.log"
devices=cpu
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && devices="cpu cuda"
for d in "$cases"/*/; do
  [ -f "$d/spec.json" ] || continue
  for dev in $devices; do
    "$BUILD/onnx_train_parity" --case "$d" --device "$dev" --json "$d/shoal_$dev.json" \
      > "$d/shoal_$dev.log" 2>&1 || { echo "shoal $(basename "$d") $dev failed:"; tail -3 "$d/shoal_$dev.log"; }
  done
done
python3 bench/onnx_train_torch.py compare "$cases"
