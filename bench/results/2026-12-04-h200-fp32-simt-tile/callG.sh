# HEAD on the H200: the GPU suites the session's changes touch, the examples on the GPU.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli" timeout 120 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 130 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:ConvTensorCoreGpu.EveryTf32*:AutotuneGpu.*:CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[       OK" $R/gpu_tests.txt | tail -6
for f in mnist_cnn resnet_mnist; do timeout 20 build-dev/shoal run examples/$f.mmd --device cuda > $R/$f.txt 2>&1; el "$f gpu rc=$?"; tail -2 $R/$f.txt; done
finish
