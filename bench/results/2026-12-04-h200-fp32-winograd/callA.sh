# Winograd call A: the GPU test of the new kernels (and memcheck), ResNet-18 fp32 with Winograd
# off / F(4x4) / F(2x2) on every eligible 3x3 (min channels 64, min tiles 1), per-op profiles
# at batch 256 and the training step, PyTorch fp32 (TF32 off) in the same call.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
timeout 150 build-dev/tests/shoal_tests --gtest_filter='ConvWinograd*' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|^\[       OK|Failure" $R/gpu_tests.txt | tail -8
rb(){ tag=$1; shift; env SHOAL_CUDA_WINOGRAD_MIN_TILES=1 "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb w0 SHOAL_CUDA_WINOGRAD=0
rb w4 SHOAL_CUDA_WINOGRAD=4
rb w2 SHOAL_CUDA_WINOGRAD=2
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb w4b SHOAL_CUDA_WINOGRAD=4
EXTRA="--profile --batches 32,256" rb w0p SHOAL_CUDA_WINOGRAD=0
EXTRA="--profile --batches 32,256" rb w4p SHOAL_CUDA_WINOGRAD=4
EXTRA="--profile --batches 32,256" rb w2p SHOAL_CUDA_WINOGRAD=2
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvWinogradGpu.*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -2 $R/memcheck.txt
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["w0", "w4", "w2", "w4b"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
try:
    for r in json.load(open(R + "/torch_fp32.json"))["results"]:
        print("torch", r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"})
except Exception as e: print("torch", e)
PY
finish
