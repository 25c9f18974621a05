# Exact fp32 GEMM, call 4: experiment switches (not kept as they are): SHOAL_SIMT_VARIANT=1 plain
# shared loads, =2 the next 4 steps' B fragments loaded during this 4's FMAs; SHOAL_SIMT_NOMB=1 the
# weight gradient's column gathers without the two-blocks bound (128 registers: 68-104 B spills in
# the SIMT form). ResNet-18 fp32 per variant; Nsight Compute's stall reasons for the baseline.
source tmp-dev/common.sh
el start
TARGETS="shoal_cli resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
rb(){ tag=$1; shift; env "$@" timeout 80 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 15 --steps 6 --batches 32,256 --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb v0 SHOAL_SIMT_VARIANT=0
rb v1 SHOAL_SIMT_VARIANT=1
rb v2 SHOAL_SIMT_VARIANT=2
rb nomb SHOAL_SIMT_VARIANT=0 SHOAL_SIMT_NOMB=1
rb v2nomb SHOAL_SIMT_VARIANT=2 SHOAL_SIMT_NOMB=1
rb v0b SHOAL_SIMT_VARIANT=0
python3 - $R <<'PY'
import json, glob, os, sys
R = sys.argv[1]
for t in ["v0", "v1", "v2", "nomb", "v2nomb", "v0b"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
PY
timeout 90 ncu --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --kernel-name regex:k20_fused.*_tc$ --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --batches 32 --runs 1 --train-batch 0 > $R/ncu_k20.txt 2>&1; el "ncu rc=$?"
grep -E "Stall|Warp Cycles|Issued Warp|Eligible|No Eligible|Registers|Achieved Occ|Theoretical Occ|Block Limit" $R/ncu_k20.txt | head -40
finish
