#!/usr/bin/env bash
# Installs the build dependencies, builds shoal and trains the seed's MNIST CNN on the bundled
# data (GPU when usable, else the CPU interpreter). Extra arguments go to `shoal run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default -DSHOAL_BUILD_TESTS=OFF >/dev/null
cmake --build --preset default --target shoal_cli
./build/shoal run examples/mnist_cnn.mmd "$@"
