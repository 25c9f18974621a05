# Call Z (issue 12), ready for the next session with a device: the whole suite on the card after
# stops 51-52 (the 16-bit copies' conversion kernels and the copies' arithmetic changed), the
# bf16 examples trained on the GPU, compute-sanitizer over the 16-bit kernels and the executor.
# Before the call: cp bench/results/2026-12-03-h200-unity-build/common.sh tmp-dev/
# run(command="bash bench/results/2026-12-05-cpu-copy-arithmetic/callZ.sh", carry=[".debs/onnx"])
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
JOBS=8 SHARD_TIMEOUT=240 timeout 280 scripts/gtest-shards.sh build-dev/tests/shoal_tests 16 $R/shards > $R/shards.txt 2>&1; el "all tests rc=$?"; tail -5 $R/shards.txt
grep -h "tests ran\|PASSED\|FAILED\|SKIPPED \] [0-9]" $R/shards/*.log | awk '/PASSED/{p+=$4} /SKIPPED \] [0-9]/{s+=$3} /FAILED/{print} END{print "passed", p, "skipped", s}'
for m in resnet_mnist mobilenet_mnist; do timeout 60 build-dev/shoal run examples/$m.mmd --device gpu --precision bf16 > $R/$m.bf16.txt 2>&1; el "$m bf16 rc=$?"; grep -i "accuracy" $R/$m.bf16.txt | tail -1; done
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.*:CudaExecutor.SixteenBit*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
finish
