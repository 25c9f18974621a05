# Winograd call E: the filter transform without local-memory tables. ResNet-18 fp32 (twice, and
# profiled) beside PyTorch fp32 (TF32 off) in this call; the Winograd GPU test and memcheck.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb def
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb def2
EXTRA="--profile --batches 32" rb defp
timeout 60 build-dev/tests/shoal_tests --gtest_filter='ConvWinogradGpu.*' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_tests.txt | tail -3
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvWinogradGpu.*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["def", "def2"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2), "MiB", round(d["train"].get("device_bytes", 0) / 2**20))
    except Exception as e: print(t, e)
try:
    for r in json.load(open(R + "/torch_fp32.json"))["results"]:
        print("torch", r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"}, "MiB", round(r.get("train_max_memory_allocated_bytes", 0) / 2**20))
except Exception as e: print("torch", e)
PY
grep -A8 "time per op, training step" $R/shoal_defp.log; grep -A4 "slowest launches" $R/shoal_defp.log | head -5
finish
