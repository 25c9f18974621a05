#!/usr/bin/env bash
# The installed package as a user gets it: installs build/ into a fresh prefix and moves the
# prefix elsewhere, builds examples/embed against it as C++20 (the documented standard) and
# runs it, then runs the installed CLI from a folder with no data/ in reach where no CUDA
# library can be loaded (tests/tools/hide_cuda.c preloaded): it must find the installed data
# and train on the CPU. Needs a build with the tests (build/tests/libshoal_hide_cuda.so).
set -euo pipefail
cd "$(dirname "$0")/.."
hide=$PWD/build/tests/libshoal_hide_cuda.so
[[ -f $hide ]] || { echo "check-install: $hide missing (configure with -DSHOAL_BUILD_TESTS=ON)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install build --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/prefix"

cmake -S examples/embed -B "$tmp/embed" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_CXX_STANDARD=20 >/dev/null
cmake --build "$tmp/embed" >/dev/null
"$tmp/embed/embed_spirals" "$tmp/spirals.safetensors"

mkdir "$tmp/work"
cp examples/mlp.mmd "$tmp/work/"
out=$(cd "$tmp/work" && LD_PRELOAD=$hide "$tmp/prefix/bin/shoal" run mlp.mmd --device auto --epochs 1 --verbose 2>&1)
echo "$out"
grep -q "^device: cpu (no usable GPU" <<<"$out" || { echo "check-install: expected the CPU fallback"; exit 1; }
grep -q "^data: $tmp/prefix/share/shoal/mnist-10k" <<<"$out" || { echo "check-install: expected the installed data"; exit 1; }
echo "check-install: ok"
