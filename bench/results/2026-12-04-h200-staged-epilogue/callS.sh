# Call S: the staged epilogue (SHOAL_CUDA_STAGED_EPILOGUE 1 / 0) on ResNet-18, bf16, TF32, fp32;
# torch.compile in the same call; GPU tests; memcheck.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 150 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.*:ConvWinogradGpu.*:CudaExecutor.*:SessionGpu.*' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_tests.txt | tail -5
rb(){ p=$1; st=$2; tag=$3; SHOAL_CUDA_STAGED_EPILOGUE=$st timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision $p --runs 20 --steps 10 --json $R/shoal_${p}_s${st}_$tag.json > $R/shoal_${p}_s${st}_$tag.log 2>&1; el "resnet $p staged=$st $tag rc=$?"; }
for p in bf16 tf32; do rb $p 1 a; rb $p 0 a; rb $p 1 b; rb $p 0 b; done
rb fp32 1 a; rb fp32 0 a
timeout 200 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16,tf32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
SHOAL_PROFILE_LAUNCHES=40 timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_bf16_s1.log 2>&1; el "profile rc=$?"
SHOAL_PROFILE_LAUNCHES=40 SHOAL_CUDA_STAGED_EPILOGUE=0 timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_bf16_s0.log 2>&1; el "profile0 rc=$?"
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
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
finish
