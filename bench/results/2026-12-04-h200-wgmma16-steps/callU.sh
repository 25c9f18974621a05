# Call U: 16-bit wgmma stages of 32 steps (SHOAL_CUDA_WGMMA16_STEPS 32 / 16), ResNet-18 bf16
# alternated twice, torch.compile bf16 in the same call, a profile, the bf16 GPU tests,
# memcheck over the paired-taps test (holes in every sub-stage), resnet_mnist in bf16.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
rb(){ p=$1; st=$2; tag=$3; SHOAL_CUDA_WGMMA16_STEPS=$st timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision $p --runs 20 --steps 10 --json $R/shoal_${p}_w${st}_$tag.json > $R/shoal_${p}_w${st}_$tag.log 2>&1; el "resnet $p steps=$st $tag rc=$?"; }
rb bf16 32 a; rb bf16 16 a; rb bf16 32 b; rb bf16 16 b
timeout 100 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
SHOAL_PROFILE_LAUNCHES=30 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_bf16_w32.log 2>&1; el "profile rc=$?"
timeout 120 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryBfloat16*:ConvTensorCoreGpu.EveryFloat16*:ConvTensorCoreGpu.PairedTaps*' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_tests.txt | tail -4
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.PairedTaps*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
timeout 60 build-dev/shoal run examples/resnet_mnist.mmd --device gpu --precision bf16 > $R/resnet_mnist_bf16.txt 2>&1; el "resnet_mnist bf16 rc=$?"; grep -i "accuracy" $R/resnet_mnist_bf16.txt | tail -1
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
