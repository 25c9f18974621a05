# Exact fp32 GEMM, call 5: variant 3 (variant 2's B prefetch with plain shared loads) with the
# weight gradients unbounded, against 0 and 2; then variant 3 with the autotuner, and the profile
# of its batch-32 tiles, to see whether the cost model's slices suit the CUDA cores' GEMM.
source tmp-dev/common.sh
el start
TARGETS="shoal_cli resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
rb(){ tag=$1; shift; env "$@" timeout ${TMO:-80} build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 15 --steps 6 --batches 1,32,256 ${EXTRA:-} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb v0 SHOAL_SIMT_VARIANT=0
rb v2nomb SHOAL_SIMT_VARIANT=2 SHOAL_SIMT_NOMB=1
rb v3nomb SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1
rb v3nombb SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1
TMO=240 EXTRA=--autotune rb v3tune SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1
TMO=40 EXTRA=--autotune rb v3tune2 SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1
python3 - $R <<'PY'
import json, glob, os, sys
R = sys.argv[1]
for t in ["v0", "v2nomb", "v3nomb", "v3nombb", "v3tune", "v3tune2"]:
    try:
        d = json.load(open(f"{R}/shoal_{t}.json"))
        print(t, {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
    except Exception as e: print(t, e)
PY
SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 3 --steps 3 --batches 32 --profile > $R/profile_v3.txt 2>&1; el "profile v3 rc=$?"
SHOAL_SIMT_VARIANT=3 SHOAL_SIMT_NOMB=1 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 3 --steps 3 --batches 32 --profile --autotune > $R/profile_v3tune.txt 2>&1; el "profile v3 tuned rc=$?"
for f in profile_v3 profile_v3tune; do echo "== $f"; grep -A16 "slowest launches (ms per call; the achieved rate of the products" $R/$f.txt | tail -16 | head -40; grep "products (tensor" $R/$f.txt; done
finish
