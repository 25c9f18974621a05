source tmp-dev/common.sh
el start
TARGETS="shoal_cli shoal_tests" build_new || { finish; exit 1; }
el built
grep -c "Unity/unity_" $R/build.log > $R/unity_objects.txt
ctest --test-dir build-dev -j 16 > $R/ctest.txt 2>&1; el "ctest rc=$?"
grep -E "tests passed|Total Test|Failed|\*\*\*" $R/ctest.txt | head -20
build-dev/tests/shoal_tests --gtest_filter='*Gpu*:CudaExecutor*:Differential*:CudaInfra*' > $R/gpu_direct.txt 2>&1; el "gpu direct rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) " $R/gpu_direct.txt | head -20; grep -c "^\[       OK" $R/gpu_direct.txt
build-dev/shoal run examples/mnist_cnn.mmd --device cuda > $R/example.txt 2>&1; el "example rc=$?"; tail -3 $R/example.txt
finish
