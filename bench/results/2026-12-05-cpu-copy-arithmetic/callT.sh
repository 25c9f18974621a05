# Call T (issue 12), ready for the next session with a device: TF32's channels-last copies
# (SHOAL_CUDA_CL32=1, CudaCodegenOptions::tf32ChannelsLast) against TF32's gathers (the default),
# alone and with producer warps (SHOAL_CUDA_CL16_WS=1), each twice alternated, beside torch.compile
# TF32 in the same call; the GPU test against float64 first; Nsight Compute on layer 3's 3 x 3
# forward both ways; compute-sanitizer memcheck over the TF32 channels-last test. Session 4
# added cl32st: the TF32 stem's fp32 padded copy (SHOAL_CUDA_CL16_STEM=1) beside the copies.
# Before the call: cp bench/results/2026-12-03-h200-unity-build/common.sh tmp-dev/
# run(command="bash bench/results/2026-12-05-cpu-copy-arithmetic/callT.sh", carry=[".debs/onnx"])
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 120 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.Tf32ChannelsLast*:ConvTensorCoreGpu.SixteenBitProducerWarps*:ConvTensorCoreGpu.SixteenBitStem*' > $R/gpu_test.txt 2>&1; el "gpu test rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_test.txt | head -8
envs(){ case $1 in gather) echo "SHOAL_CUDA_CL32=0";; cl32) echo "SHOAL_CUDA_CL32=1";; cl32ws) echo "SHOAL_CUDA_CL32=1 SHOAL_CUDA_CL16_WS=1";; cl32st) echo "SHOAL_CUDA_CL32=1 SHOAL_CUDA_CL16_STEM=1";; esac; }
rb(){ c=$1; tag=$2; env $(envs $c) timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision tf32 --runs 20 --steps 10 --json $R/shoal_tf32_${c}_$tag.json > $R/shoal_tf32_${c}_$tag.log 2>&1; el "resnet tf32 $c $tag rc=$?"; }
for t in a b; do for c in gather cl32 cl32ws cl32st; do rb $c $t; done; done
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions tf32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
for c in gather cl32; do env $(envs $c) SHOAL_PROFILE_LAUNCHES=60 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision tf32 --runs 5 --steps 3 --batches 256 --profile > $R/prof_$c.log 2>&1; el "profile $c rc=$?"; done
if command -v ncu > /dev/null; then
  for c in gather cl32; do env $(envs $c) timeout 60 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section LaunchStats --kernel-name "regex:layer3_layer3_1_relu_Relu_output_0_tc\$" --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision tf32 --batches 256 --runs 1 --train-batch 0 > $R/ncu_$c.txt 2>&1; el "ncu $c rc=$?"; done
fi
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.Tf32ChannelsLast*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 bench/resnet_summary.py $R
finish
