# Exact fp32, call D: 8 x 8 accumulators in 256 x 64 too (default, "cost"), against its 16 x 4
# ("tall16"), the previous code ("old") and a 256 x 128 tile of 16 x 8 everywhere ("big").
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
[ -f build-dev/resnet18.onnx ] || { timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"; }
SHOAL_SIMT_EXP=big timeout 60 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*' > $R/gpu_tests_big.txt 2>&1; el "gpu tests big rc=$?"; grep -E "^\[  (PASSED|FAILED) " $R/gpu_tests_big.txt | tail -3
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb cost
rb tall16 SHOAL_SIMT_EXP=tall16
rb big SHOAL_SIMT_EXP=big
rb old SHOAL_SIMT_EXP=old
rb cost2
rb big2 SHOAL_SIMT_EXP=big
EXTRA="--profile" rb profbig SHOAL_SIMT_EXP=big
EXTRA="--profile" rb prof
python3 - $R <<'PY'
import json, sys
R = sys.argv[1]
for t in ["cost", "tall16", "big", "old", "cost2", "big2"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
PY
for t in profbig prof; do grep -A12 "inference, batch 256" $R/shoal_$t.log | tail -11 | cut -c1-170; done
finish
