# Sourced by the benchmarks that build shoal with its ONNX importer on a GPU machine
# (bench/onnx_bench.sh, bench/resnet_bench.sh, bench/onnx_train_parity.sh):
#
#   shoal_onnx_build BUILD LOG TARGET... [-- CMAKE_ARG...]
#
# Where ONNX's C++ library is not installed, unpacks the .debs in $ONNX_DEBS (default
# .debs/onnx, made by bench/onnx_bench_debs.sh) into BUILD/sysroot and points CMake and the
# loader (LD_LIBRARY_PATH, exported) there. Then configures BUILD with the default preset and
# the benchmarks and ONNX on (plus the CMAKE_ARGs), and builds the TARGETs; both logs go to LOG.
# Returns 1, after saying why, when a step fails.
shoal_onnx_build() {
  local build=$1 log=$2
  shift 2
  local targets=() cmake_args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do targets+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  cmake_args=("$@")
  local debs=${ONNX_DEBS:-.debs/onnx}
  if ! [ -f /usr/include/onnx/onnx_pb.h ]; then
    if ! ls "$debs"/*.deb >/dev/null 2>&1; then
      echo "ONNX's C++ library is not installed and $debs holds no .deb: run bench/onnx_bench_debs.sh where Debian's"
      echo "registry is reachable (or apt-get install libonnx-dev libprotobuf-dev), then carry $debs here"
      return 1
    fi
    local sysroot f
    case $build in /*) sysroot=$build/sysroot ;; *) sysroot=$PWD/$build/sysroot ;; esac
    mkdir -p "$sysroot"
    for f in "$debs"/*.deb; do dpkg -x "$f" "$sysroot"; done
    cmake_args+=(-DCMAKE_PREFIX_PATH="$sysroot/usr")
    export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "== ONNX and protobuf from $debs (unpacked in $sysroot)"
  fi
  if ! cmake --preset default -B "$build" -DSHOAL_BUILD_BENCH=ON -DSHOAL_ONNX=ON "${cmake_args[@]}" >"$log" 2>&1; then
    echo "configure failed:"; tail -30 "$log"; return 1
  fi
  if ! ninja -C "$build" -j"$(nproc)" "${targets[@]}" >>"$log" 2>&1; then
    echo "build failed:"; grep -m20 -A5 "error" "$log"; return 1
  fi
}
