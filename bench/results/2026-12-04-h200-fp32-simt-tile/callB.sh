# Exact fp32, call B: Nsight Compute on layer 2's 3 x 3 (k20) at batch 32, the new 128 x 64
# tile at two blocks an SM against the previous code (SHOAL_SIMT_EXP=old); the SASS of both.
source tmp-dev/common.sh
el start
TARGETS="shoal_cli resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
for e in new old; do
  SHOAL_SIMT_EXP=$e timeout 150 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section Occupancy --section LaunchStats --section InstructionStats --section SourceCounters --kernel-name regex:k20_fused.*_tc$ --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --batches 32 --runs 1 --train-batch 0 > $R/ncu_$e.txt 2>&1; el "ncu $e rc=$?"
  grep -E "Stall|Warp Cycles|Issued Warp|Eligible|Registers Per|Achieved Occ|Theoretical Occ|Block Limit|Shared Memory Config|Duration|FMA|Compute \(SM\)|Bank|Wavefront" $R/ncu_$e.txt | head -40
done
# The SASS of the cached cubins holding k20 (the kernel cache's files).
for f in $(grep -l "k20_fused_conv2d__layer2_layer2_0_relu_1_Relu_output_0_tc" -r build-dev/kernel-cache 2>/dev/null | head -4); do
  b=$(basename $f .cubin); tail -c +49 $f > build-dev/$b.cubin
  cuobjdump -sass -fun k20_fused_conv2d__layer2_layer2_0_relu_1_Relu_output_0_tc build-dev/$b.cubin > $R/sass_${b:0:8}.txt 2>&1; el "sass $b rc=$?"
done
ls -la build-dev/kernel-cache | head > $R/cache_ls.txt
finish
