# Exact fp32, call C: the tile chosen per product by its grid cost (default), against the
# previous code ("old") and kSimt everywhere ("new"); PyTorch fp32 (TF32 off) in the same call;
# the GPU tests; the autotuner; resnet_mnist and the seed CNN.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
timeout 120 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:AutotuneGpu.*:CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|  OK) " $R/gpu_tests.txt | tail -6
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*' > $R/memcheck_fp32.txt 2>&1; el "memcheck rc=$?"; tail -2 $R/memcheck_fp32.txt
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb cost
rb old SHOAL_SIMT_EXP=old
rb cost2
rb old2 SHOAL_SIMT_EXP=old
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
TMO=200 EXTRA="--autotune" rb tune
EXTRA="--profile" rb prof
timeout 60 build-dev/shoal_bench --device cuda --json $R/seed.json > $R/seed.log 2>&1; el "seed cnn rc=$?"
timeout 40 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist.txt 2>&1; el "resnet_mnist rc=$?"; tail -2 $R/resnet_mnist.txt
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["cost", "old", "cost2", "old2", "tune", "prof"]:
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
