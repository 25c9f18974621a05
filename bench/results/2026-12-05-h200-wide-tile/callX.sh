# Call X (issue 12): three options of the 16-bit channels-last products, side by side on
# ResNet-18 bf16 beside torch.compile bf16 in the same call: 128 x 256 blocks for more than 128
# columns (SHOAL_CUDA_CL16_WIDE), 256 x 128 multiplied the other way round for 65-128
# (SHOAL_CUDA_CL16_SWAP), the reduction channel-block-major with A through L1 (SHOAL_CUDA_CL16_L1);
# and the copies written by their producers (SHOAL_CUDA_CL16_PRODUCER).
# Configurations: base, W, WS, WSL, L, P, WSLP -- alternated twice. The GPU tests against float64 and
# compute-sanitizer; profiles at batch 256 and in training; Nsight Compute on layer 2's, 3's
# and 4's 3 x 3 forwards (the tensor pipe, L1 / L2 / shared memory, the warps' stalls).
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 200 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBit*:CudaExecutor.SixteenBit*' > $R/gpu_test.txt 2>&1; el "gpu test rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure|OK \]" $R/gpu_test.txt | head -8
cfg(){ case $1 in base) echo "0 0 0 0";; W) echo "1 0 0 0";; WS) echo "1 1 0 0";; WSL) echo "1 1 1 0";; L) echo "0 0 1 0";; P) echo "0 0 0 1";; WSLP) echo "1 1 1 1";; esac; }
envs(){ set -- $(cfg $1); echo "SHOAL_CUDA_CL16_WIDE=$1 SHOAL_CUDA_CL16_SWAP=$2 SHOAL_CUDA_CL16_L1=$3 SHOAL_CUDA_CL16_PRODUCER=$4"; }
rb(){ c=$1; tag=$2; env $(envs $c) timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/shoal_bf16_${c}_$tag.json > $R/shoal_bf16_${c}_$tag.log 2>&1; el "resnet bf16 $c $tag rc=$?"; }
for t in a b; do for c in base W WS WSL L P WSLP; do rb $c $t; done; done
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
for c in base WSLP WS L; do env $(envs $c) SHOAL_PROFILE_LAUNCHES=80 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_$c.log 2>&1; el "profile $c rc=$?"; done
if command -v ncu > /dev/null; then
  nc(){ c=$1; k=$2; env $(envs $c) timeout 50 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --kernel-name "regex:$k\$" --launch-count 1 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --batches 256 --runs 1 --train-batch 0 > $R/ncu_${c}_${k%%_relu*}.txt 2>&1; el "ncu $c $k rc=$?"; }
  for c in base WSL; do nc $c layer3_layer3_1_relu_Relu_output_0_tc; done
  for c in base WSL; do nc $c layer2_layer2_1_relu_Relu_output_0_tc; done
  for c in base WSL; do nc $c layer4_layer4_1_relu_Relu_output_0_tc; done
fi
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitWide*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 - $R <<'PY'
import json, sys, glob, os
R = sys.argv[1]
for f in sorted(glob.glob(R + "/shoal_*.json")):
    try:
        d = json.load(open(f))
        print(os.path.basename(f)[6:-5], {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2), "loss", d["train"].get("loss_first"), d["train"].get("loss_last"))
    except Exception as e: print(f, e)
try:
    for r in json.load(open(R + "/torch.json"))["results"]:
        print("torch", r["precision"], r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"})
except Exception as e: print("torch", e)
PY
for f in $R/prof_*.log; do echo "== $f"; grep -E "TFLOP/s" $f | grep -E "layer[234]" | grep -v "m//" | awk '{print $1, $3, $NF, $(NF-1)}' | head -14; done
for f in $R/ncu_*.txt; do echo "== $f"; grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|Achieved Occupancy|Issued Warp|No Eligible" $f | head -10; done
finish
