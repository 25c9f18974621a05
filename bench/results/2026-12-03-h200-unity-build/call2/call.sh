source tmp-dev/common.sh
el start
TARGETS="shoal_cli shoal_tests" build_new || { finish; exit 1; }
el "built (unity)"
grep -c "Unity/unity_" $R/build.log > $R/unity_objects.txt
ctest --test-dir build-dev -j 16 > $R/ctest.txt 2>&1; el "ctest rc=$?"
grep -E "tests passed|Total Test" $R/ctest.txt
build-dev/tests/shoal_tests --gtest_filter='*Gpu*:CudaExecutor*:Differential*:CudaInfra*:ConvTensorCore*' > $R/gpu_direct.txt 2>&1; el "gpu direct rc=$?"
grep -E "^\[  (PASSED|FAILED) " $R/gpu_direct.txt | head -20
build-dev/shoal run examples/mnist_cnn.mmd --device cuda > $R/example.txt 2>&1; el "example rc=$?"; tail -3 $R/example.txt
cmake --preset default -B build-n -G Ninja -DSHOAL_LIBRARY_UNITY_BATCH=0 -DSHOAL_ONNX=ON -DCMAKE_PREFIX_PATH=$sys/usr > $R/cmake-n.log 2>&1; ninja -C build-n -j16 shoal_cli > $R/build-n.log 2>&1; el "built (each file alone) rc=$?"
for r in 1 2 3; do for t in 2 16; do for b in build-dev build-n; do
  s=$($b/shoal run examples/mnist_cnn.mmd --device cpu --threads $t --epochs 2 --seed 1 2>/dev/null | grep -E "trained in|test accuracy" | tr '\n' ' ')
  echo "$r t=$t $b: $s" | tee -a $R/cpu.txt
done; done; done
el done
finish
