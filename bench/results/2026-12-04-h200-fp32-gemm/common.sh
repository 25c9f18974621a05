set -uo pipefail
R=$OUT/r; mkdir -p $R; T0=$(date +%s)
el(){ echo "[$(( $(date +%s)-T0 )) s] $*" | tee -a $R/timeline.txt; }
nvidia-smi > $R/gpu.txt 2>&1
mkdir -p build-dev/sysroot && for d in .debs/onnx/*.deb; do dpkg -x $d build-dev/sysroot; done
sys=$PWD/build-dev/sysroot
export LD_LIBRARY_PATH=$sys/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export SHOAL_CACHE_DIR=$PWD/build-dev/kernel-cache
finish(){ tar czf $OUT/r.tgz -C $OUT r; rm -rf $R; }
build_new(){ cmake --preset default -B build-dev -G Ninja -DSHOAL_BUILD_BENCH=ON -DSHOAL_BUILD_TESTS=ON -DSHOAL_ONNX=ON -DCMAKE_PREFIX_PATH=$sys/usr > $R/cmake.log 2>&1; ninja -C build-dev -j${JOBS:-16} ${TARGETS:-shoal_cli shoal_tests shoal_bench shoal_cuda_floor} > $R/build.log 2>&1 || { tail -40 $R/build.log; return 1; }; }
