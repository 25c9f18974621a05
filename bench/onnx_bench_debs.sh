#!/usr/bin/env bash
# Puts the Debian packages of ONNX's and protobuf's C++ libraries (and any package named as an
# argument) into .debs/onnx, for bench/onnx_bench.sh on a machine where libonnx-dev is not
# installed and Debian's registry cannot be reached (it unpacks them there with dpkg -x).
# Takes them from apt's cache when they are there, else downloads them with apt-get download.
# .debs/ is ignored by git: carry it to that machine (the device tool's carry: [".debs/onnx"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs/onnx
cd .debs/onnx
for p in libonnx-dev libonnx1 libonnxifi libprotobuf-dev libprotobuf32 libprotobuf-lite32 "$@"; do
  v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  cached=$(ls /var/cache/apt/archives/"${p}"_*.deb 2>/dev/null | grep -F "_${v//:/%3a}_" | head -1 || true)
  if [ -n "$v" ] && [ -n "$cached" ]; then
    cp "$cached" .
  else
    apt-get download "$p"
  fi
done
ls -l
