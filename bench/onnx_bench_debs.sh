#!/usr/bin/env bash
# Downloads the Debian packages of ONNX's and protobuf's C++ libraries (and any package named
# as an argument) into .debs/onnx, for bench/onnx_bench.sh on a machine that cannot reach
# Debian's registry (it unpacks them there with dpkg -x). Run where apt-get works; keep
# .debs/ out of git (echo /.debs/ >> .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs/onnx
cd .debs/onnx
apt-get download libonnx-dev libonnx1 libonnxifi libprotobuf-dev libprotobuf32 libprotobuf-lite32 "$@"
ls -l
