#!/usr/bin/env bash
# Builds shoal (Release, build/) and runs the whole test suite. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default -DSHOAL_BUILD_TESTS=ON >/dev/null
cmake --build --preset default
ctest --preset default "$@"
