#!/usr/bin/env bash
# Installs what shoal builds with on Debian 12 (as root, or through sudo when available).
# The CUDA toolkit is optional: with /usr/local/cuda present, the GPU backend is built too.
# ONNX import needs libonnx-dev and libprotobuf-dev (a build without them works, without it).
# --fuzz also installs clang 16 and its libFuzzer runtime (scripts/fuzz.sh, preset `fuzz`).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  g++ cmake ninja-build pkg-config \
  libfmt-dev libgtest-dev libopenblas-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libssl-dev \
  libonnx-dev libprotobuf-dev >/dev/null
if [ "${1:-}" = --fuzz ]; then
  $SUDO apt-get install -y -qq --no-install-recommends clang-16 libclang-rt-16-dev >/dev/null
fi
echo "shoal: build dependencies installed"
