# Call Y (issue 12), ready for the next session with a device: the 16-bit products with their copies'
# arithmetic once a row (fc6f8d7) against the build before it (3e809e1, stop 51), side by side on
# one card, beside torch.compile bf16; the wide tile, the overlapped stages and the producer warps
# (SHOAL_CUDA_CL16_WS, alone and with the wide tile) on the new copies; Nsight Compute on layers
# 1's and 3's 3 x 3 forwards, old, new and with producer warps (issue slots, tensor pipe); the GPU
# tests, compute-sanitizer memcheck and synccheck (the named barriers) over the 16-bit kernels.
# Session 4 added: "new" also has the weight gradients' carried pixel (12f9552), and ST, the
# stem's 16-bit form (SHOAL_CUDA_CL16_STEM=1), runs and is profiled beside them.
# Before the call, here:
#   mkdir -p tmp-dev/old && git archive 3e809e1 | tar -x -C tmp-dev/old
#   cp bench/results/2026-12-03-h200-unity-build/common.sh tmp-dev/
# run(command="bash bench/results/2026-12-05-cpu-copy-arithmetic/callY.sh", carry=[".debs/onnx"])
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build new rc=$?"
(cd tmp-dev/old && cmake --preset default -B build-old -G Ninja -DSHOAL_BUILD_BENCH=ON -DSHOAL_ONNX=ON -DCMAKE_PREFIX_PATH=$sys/usr > $R/cmake_old.log 2>&1 && timeout 200 ninja -C build-old -j16 resnet_bench > $R/build_old.log 2>&1); el "build old rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 150 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBit*:CudaExecutor.SixteenBit*' > $R/gpu_test.txt 2>&1; el "gpu test rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_test.txt | head -8
bin(){ case $1 in old) echo tmp-dev/old/build-old/resnet_bench;; *) echo build-dev/resnet_bench;; esac; }
envs(){ case $1 in new|old) echo "SHOAL_CUDA_CL16_WIDE=0";; W) echo "SHOAL_CUDA_CL16_WIDE=1";; O) echo "SHOAL_CUDA_CL16_OVERLAP=1";; S) echo "SHOAL_CUDA_CL16_WS=1";; SW) echo "SHOAL_CUDA_CL16_WS=1 SHOAL_CUDA_CL16_WIDE=1";; ST) echo "SHOAL_CUDA_CL16_STEM=1";; esac; }
rb(){ c=$1; tag=$2; env $(envs $c) timeout 90 $(bin $c) --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/shoal_bf16_${c}_$tag.json > $R/shoal_bf16_${c}_$tag.log 2>&1; el "resnet bf16 $c $tag rc=$?"; }
for t in a b; do for c in old new W O S SW ST; do rb $c $t; done; done
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
for c in old new S ST; do env $(envs $c) SHOAL_PROFILE_LAUNCHES=80 timeout 60 $(bin $c) --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_$c.log 2>&1; el "profile $c rc=$?"; done
if command -v ncu > /dev/null; then
  nc(){ c=$1; k=$2; env $(envs $c) timeout 50 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --section InstructionStats --kernel-name "regex:$k\$" --launch-count 1 $(bin $c) --onnx build-dev/resnet18.onnx --precision bf16 --batches 256 --runs 1 --train-batch 0 > $R/ncu_${c}_${k%%_relu*}.txt 2>&1; el "ncu $c $k rc=$?"; }
  for k in layer3_layer3_1_relu_Relu_output_0_tc layer1_layer1_1_relu_Relu_output_0_tc; do for c in old new S; do nc $c $k; done; done
fi
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBit*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
timeout 60 compute-sanitizer --tool synccheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitProducerWarps*' > $R/synccheck.txt 2>&1; el "synccheck rc=$?"; tail -1 $R/synccheck.txt
python3 bench/resnet_summary.py $R
finish
