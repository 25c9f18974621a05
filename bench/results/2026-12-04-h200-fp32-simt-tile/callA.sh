# Exact fp32, call A: the 128 x 64 SIMT tile at two blocks an SM with 8 x 4 lanes ("new",
# default), the previous code ("old") and the previous tiles with the new lanes ("sq"), A/B
# through the temporary SHOAL_SIMT_EXP switch; PyTorch fp32 (TF32 off) in the same call.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 100 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:AutotuneGpu.*' > $R/gpu_tests.txt 2>&1; el "gpu tests rc=$?"; grep -E "^\[  (PASSED|FAILED|  OK) " $R/gpu_tests.txt | tail -6
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb new SHOAL_SIMT_EXP=new
rb old SHOAL_SIMT_EXP=old
rb sq SHOAL_SIMT_EXP=sq
rb new2 SHOAL_SIMT_EXP=new
rb old2 SHOAL_SIMT_EXP=old
timeout 150 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
EXTRA="--profile" rb prof SHOAL_SIMT_EXP=new
timeout 30 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist.txt 2>&1; el "resnet_mnist rc=$?"; tail -2 $R/resnet_mnist.txt
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["new", "old", "sq", "new2", "old2", "prof"]:
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
