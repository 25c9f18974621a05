# Call M (issue 12): the copy engine (SHOAL_CUDA_CL16_TMA=1: a stage as one im2col box of A and one
# tile of B, issued by one thread, completing on an mbarrier) first checked on the card against
# float64, then beside the default path after stops 52-53 (the copies' arithmetic once a row, the
# weight gradients' carried pixel -- never yet on a card), producer warps (S) and the stem's form
# (ST), the copy engine at two blocks an SM (M2: SHOAL_CUDA_CL16_TMA_BLOCKS=2), ResNet-18 bf16
# each twice alternated, torch.compile bf16 in the same call; profiles at
# batch 256; Nsight Compute on layer 3's 3 x 3 forward (default, M, M2) and layer 1's (M); memcheck over
# the copy engine's test.
# Before the call: mkdir -p tmp-dev; cp bench/results/2026-12-03-h200-unity-build/common.sh tmp-dev/
# run(command="bash bench/results/2026-12-05-h200-copy-engine/callM.sh", carry=[".debs/onnx"])
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 100 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitCopyEngine*' > $R/gpu_test_tma.txt 2>&1; TMA_RC=$?; el "gpu test tma rc=$TMA_RC"; grep -E "^\[  (PASSED|FAILED)|Failure|error" $R/gpu_test_tma.txt | head -8
timeout 150 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitChannelsLast*:ConvTensorCoreGpu.SixteenBitProducerWarps*:ConvTensorCoreGpu.SixteenBitStem*:CudaExecutor.SixteenBit*' > $R/gpu_test.txt 2>&1; el "gpu test rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_test.txt | head -8
envs(){ case $1 in new) echo "SHOAL_CUDA_CL16_WIDE=0";; S) echo "SHOAL_CUDA_CL16_WS=1";; M) echo "SHOAL_CUDA_CL16_TMA=1";; M2) echo "SHOAL_CUDA_CL16_TMA=1 SHOAL_CUDA_CL16_TMA_BLOCKS=2";; MW) echo "SHOAL_CUDA_CL16_TMA=1 SHOAL_CUDA_CL16_WIDE=1";; ST) echo "SHOAL_CUDA_CL16_STEM=1";; esac; }
rb(){ c=$1; tag=$2; env $(envs $c) timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/shoal_bf16_${c}_$tag.json > $R/shoal_bf16_${c}_$tag.log 2>&1; el "resnet bf16 $c $tag rc=$?"; }
# (A copy engine that fails its test -- or hangs on a phase that never completes -- is not timed.)
CFGS="new M M2 S ST"; [ $TMA_RC -eq 0 ] || CFGS="new S ST"
for t in a b; do for c in $CFGS; do rb $c $t; done; done
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
PCFGS="new M M2"; [ $TMA_RC -eq 0 ] || PCFGS="new S"
for c in $PCFGS; do env $(envs $c) SHOAL_PROFILE_LAUNCHES=80 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_$c.log 2>&1; el "profile $c rc=$?"; done
if command -v ncu > /dev/null; then
  nc(){ c=$1; k=$2; env $(envs $c) timeout 50 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --kernel-name "regex:$k\$" --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --batches 256 --runs 1 --train-batch 0 > $R/ncu_${c}_${k%%_relu*}.txt 2>&1; el "ncu $c $k rc=$?"; }
  for c in $PCFGS; do nc $c layer3_layer3_1_relu_Relu_output_0_tc; done
  [ $TMA_RC -eq 0 ] && nc M layer1_layer1_1_relu_Relu_output_0_tc
fi
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitCopyEngine*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 bench/resnet_summary.py $R
finish
