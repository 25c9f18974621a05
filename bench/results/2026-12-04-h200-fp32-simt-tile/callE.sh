# Exact fp32, call E: the committed code. The GPU suites it touches (exact fp32 and TF32
# convolution sweeps, autotuner, every op), memcheck over the exact-fp32 sweep; ResNet-18 fp32
# beside PyTorch fp32 (TF32 off) in this call, with the cost model's tiles and autotuned; the
# seed CNN's benchmark; mnist_cnn and resnet_mnist on the GPU.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
timeout 240 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:ConvTensorCoreGpu.EveryTf32*:AutotuneGpu.*:CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|^\[       OK" $R/gpu_tests.txt | tail -8
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*' > $R/memcheck_fp32.txt 2>&1; el "memcheck rc=$?"; tail -2 $R/memcheck_fp32.txt
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb head
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb head2
TMO=200 EXTRA="--autotune" rb tune
timeout 60 build-dev/shoal_bench --device cuda --json $R/seed.json > $R/seed.log 2>&1; el "seed cnn rc=$?"
for f in mnist_cnn resnet_mnist; do timeout 40 build-dev/shoal run examples/$f.mmd --device cuda > $R/$f.txt 2>&1; el "$f gpu rc=$?"; tail -2 $R/$f.txt; done
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["head", "head2", "tune"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
try:
    for r in json.load(open(R + "/torch_fp32.json"))["results"]:
        print("torch", r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"})
except Exception as e: print("torch", e)
try:
    s = json.load(open(f"{R}/seed.json"))["summary"]
    print("seed", {k: round(x, 4) for k, x in s.items() if k in ("train_step_ms_fused", "infer_bs1_ms_fused", "infer_bs64_ms_fused", "infer_bs8192_ms_fused")})
except Exception as e: print("seed", e)
PY
finish
