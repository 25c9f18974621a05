# Exact fp32 GEMM, call 6 (the code as committed): the next 4 steps' B columns prefetched, plain
# shared loads, weight gradients one block an SM; autotune allowed in fp32. The GPU tests (the
# exact-fp32 sweep also under memcheck), ResNet-18 fp32 beside PyTorch fp32 (TF32 off) in this
# call, with the cost model's tiles and autotuned, and the seed CNN / resnet_mnist A/B.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 120 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:AutotuneGpu.*:CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|  OK) " $R/gpu_tests.txt | tail -6
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*' > $R/memcheck_fp32.txt 2>&1; el "memcheck rc=$?"; tail -2 $R/memcheck_fp32.txt
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb gemm
TMO=200 EXTRA="--autotune --verbose" rb tune
TMO=60 EXTRA=--autotune rb tune2
for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 60 build-dev/shoal_bench --device cuda --json $R/seed_$v.json > $R/seed_$v.log 2>&1; el "seed cnn min=$v rc=$?"
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 40 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist_$v.txt 2>&1; el "resnet_mnist min=$v rc=$?"; tail -2 $R/resnet_mnist_$v.txt
done
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["gemm", "tune", "tune2"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
try:
    for r in json.load(open(R + "/torch_fp32.json"))["results"]:
        print("torch", r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"})
except Exception as e: print("torch", e)
for v in ["-1", "16777216"]:
    try:
        s = json.load(open(f"{R}/seed_{v}.json"))["summary"]
        print("seed", v, {k: round(x, 4) for k, x in s.items() if k in ("train_step_ms_fused", "infer_bs1_ms_fused", "infer_bs64_ms_fused", "infer_bs8192_ms_fused")})
    except Exception as e: print("seed", v, e)
PY
grep -i "tile\|autotun" $R/shoal_tune.log | head -30
finish
