# Call V: 16-bit channels-last convolutions (SHOAL_CUDA_CL16 1 / 0, and 1 with SHOAL_CUDA_CL16_OVERLAP=1),
# ResNet-18 bf16 alternated twice,
# torch.compile bf16 in the same call, a profile, the new GPU tests, memcheck, a widened resnet_mnist trained;
# and (stop 50) resnet_mnist inference with its folded batch norms hoisted (SHOAL_CUDA_PREPARE 1 / 0),
# and the widened model's bf16 training step with its 16-bit copies shared or not (SHOAL_CUDA_CL16_SHARE 1 / 0).
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli shoal_bench" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 200 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBit*:CudaExecutor.ParameterDerived*:CudaExecutor.SixteenBitCopies*' > $R/gpu_test_cl16.txt 2>&1; el "gpu test cl16 rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure|got|OK \]" $R/gpu_test_cl16.txt | head -8
rb(){ p=$1; cl=$2; ov=$3; tag=$4; SHOAL_CUDA_CL16=$cl SHOAL_CUDA_CL16_OVERLAP=$ov timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision $p --runs 20 --steps 10 --json $R/shoal_${p}_cl${cl}_ov${ov}_$tag.json > $R/shoal_${p}_cl${cl}_ov${ov}_$tag.log 2>&1; el "resnet $p cl16=$cl overlap=$ov $tag rc=$?"; }
rb bf16 1 0 a; rb bf16 1 1 a; rb bf16 0 0 a; rb bf16 1 0 b; rb bf16 1 1 b; rb bf16 0 0 b
# Hoisted folded batch norms (stop 50): resnet_mnist inference with SHOAL_CUDA_PREPARE 1 / 0 alternated.
for t in a b; do for pr in 1 0; do SHOAL_CUDA_PREPARE=$pr timeout 60 build-dev/shoal_bench --device cuda --pipeline examples/resnet_mnist.mmd --skip-train --batches 1,64 --variants fused --precision tf32 --runs 300 --json $R/hoist_p${pr}_$t.json > $R/hoist_p${pr}_$t.log 2>&1; el "hoist prepare=$pr $t rc=$?"; grep -iE "batch|infer" $R/hoist_p${pr}_$t.log | head -4; done; done
# Shared 16-bit copies (stop 50): wide.mmd's bf16 training step, SHOAL_CUDA_CL16_SHARE 1 / 0 alternated.
for t in a b; do for sh in 1 0; do SHOAL_CUDA_CL16=1 SHOAL_CUDA_CL16_SHARE=$sh timeout 90 build-dev/shoal_bench --device cuda --pipeline tmp-dev/wide.mmd --batches 64 --variants fused --precision bf16 --steps 200 --runs 50 --json $R/share_s${sh}_$t.json > $R/share_s${sh}_$t.log 2>&1; el "share=$sh $t rc=$?"; grep -E "^ +fused|step" $R/share_s${sh}_$t.log | head -3; done; done
timeout 100 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
SHOAL_CUDA_CL16=1 SHOAL_PROFILE_LAUNCHES=40 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_bf16_cl1.log 2>&1; el "profile rc=$?"
for m in "bf16 1" "bf16 0" "fp32 0"; do set -- $m; SHOAL_CUDA_CL16=$2 timeout 60 build-dev/shoal run tmp-dev/wide.mmd --device gpu --precision $1 > $R/wide_$1_cl$2.txt 2>&1; el "wide $1 cl16=$2 rc=$?"; grep -i "accuracy" $R/wide_$1_cl$2.txt | tail -1; done
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitChannelsLastConvolutions*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
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
grep -E "_tc |cl16" $R/prof_bf16_cl1.log | head -45
finish
