# Winograd call C: the weight gradient in Winograd's form too. GPU suites (Winograd with the
# weight gradient, the exact-fp32 and TF32 sweeps -- the split sums' kernel changed --, every op,
# the autotuner), memcheck over the Winograd test; ResNet-18 fp32 twice and with Winograd off,
# beside torch.compile fp32 (TF32 off); training parity against PyTorch's float64 (5 steps,
# batch 16); mnist_cnn and resnet_mnist on the GPU.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli resnet_bench onnx_train_parity" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb def
rb w0 SHOAL_CUDA_WINOGRAD=0
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb def2
EXTRA="--profile --batches 256" rb defp
( timeout 120 python3 bench/onnx_train_torch.py make $R/cases --models resnet18 --steps 5 > $R/parity_make.log 2>&1; el "parity make rc=$?"
  timeout 60 build-dev/onnx_train_parity --case $R/cases/resnet18 --device cuda --json $R/cases/resnet18/shoal_cuda.json > $R/parity_shoal.log 2>&1; el "parity shoal rc=$?"
  python3 bench/onnx_train_torch.py compare $R/cases > $R/parity.txt 2>&1; head -4 $R/parity.txt; cp $R/cases/resnet18/*.json $R/ 2>/dev/null; rm -rf $R/cases )
timeout 230 build-dev/tests/shoal_tests --gtest_filter='ConvWinogradGpu.*:ConvTensorCoreGpu.EveryExactFp32*:ConvTensorCoreGpu.EveryTf32*:AutotuneGpu.*:CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|^\[       OK|Failure" $R/gpu_tests.txt | tail -8
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvWinogradGpu.*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -2 $R/memcheck.txt
for f in mnist_cnn resnet_mnist; do timeout 40 build-dev/shoal run examples/$f.mmd --device cuda > $R/$f.txt 2>&1; el "$f gpu rc=$?"; tail -1 $R/$f.txt; done
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["def", "w0", "def2"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2), "MiB", round(d["train"].get("device_bytes", 0) / 2**20))
    except Exception as e: print(t, e)
try:
    for r in json.load(open(R + "/torch_fp32.json"))["results"]:
        print("torch", r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"}, "MiB", round(r.get("train_max_memory_allocated_bytes", 0) / 2**20))
except Exception as e: print("torch", e)
PY
grep -A6 "time per op, training step" $R/shoal_defp.log
finish
