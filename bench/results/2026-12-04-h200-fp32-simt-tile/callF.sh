# Diagnostics for the next step (no code change): which kernels cuDNN runs for ResNet-18 fp32
# (TF32 off), and Nsight Compute's stall reasons for shoal's 8 x 8 exact-fp32 kernel on layer 3's
# 3 x 3 at batch 256.
source tmp-dev/common.sh
el start
timeout 120 python3 tmp-dev/cudnn_kernels.py  # (kept here as cudnn_kernels.py) > $R/cudnn_kernels.txt 2>&1; el "cudnn kernels rc=$?"
grep -iE "wino|implicit|gemm|conv" $R/cudnn_kernels.txt | head -24 | cut -c1-200
TARGETS="resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 150 ncu --section WarpStateStats --section SchedulerStats --section InstructionStats --section SourceCounters --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio --kernel-name regex:k30_fused.*_tc$ --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --batches 256 --runs 1 --train-batch 0 > $R/ncu_k30_b256.txt 2>&1; el "ncu rc=$?"
grep -E "issue_stalled" $R/ncu_k30_b256.txt | sort -k3 -n -r | head -12
finish
