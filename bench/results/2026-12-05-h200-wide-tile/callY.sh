# Call Y (issue 12): after call X decided which of the wide, swapped, tap-reuse and producer
# options are on by default -- every test on the H200 (16 shards), the examples trained in bf16
# on the GPU, ResNet-18 bf16 with no setting beside every option off and torch.compile in the
# same call, compute-sanitizer over this stop's GPU tests.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
JOBS=8 SHARD_TIMEOUT=240 timeout 280 scripts/gtest-shards.sh build-dev/tests/shoal_tests 16 $R/shards > $R/shards.txt 2>&1; el "all tests rc=$?"; tail -5 $R/shards.txt
grep -h "PASSED\|FAILED\|SKIPPED \] [0-9]" $R/shards/*.log | awk '/PASSED/{p+=$4} /SKIPPED \] [0-9]/{s+=$3} /FAILED/{print} END{print "passed", p, "skipped", s}'
for m in resnet_mnist mobilenet_mnist; do timeout 60 build-dev/shoal run examples/$m.mmd --device gpu --precision bf16 > $R/$m.bf16.txt 2>&1; el "$m bf16 rc=$?"; grep -i "accuracy" $R/$m.bf16.txt | tail -1; done
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
off="SHOAL_CUDA_CL16_WIDE=0 SHOAL_CUDA_CL16_SWAP=0 SHOAL_CUDA_CL16_L1=0 SHOAL_CUDA_CL16_PRODUCER=0"
for t in a b; do
  timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/resnet_bf16_default_$t.json > $R/resnet_bf16_default_$t.log 2>&1; el "resnet bf16 default $t rc=$?"
  env $off timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/resnet_bf16_off_$t.json > $R/resnet_bf16_off_$t.log 2>&1; el "resnet bf16 off $t rc=$?"
done
timeout 120 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
SHOAL_PROFILE_LAUNCHES=80 timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 5 --steps 3 --batches 256 --profile > $R/prof_default.log 2>&1; el "profile rc=$?"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitSwapped*:CudaExecutor.SixteenBitCopiesWritten*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 - $R <<'PY'
import json, sys, glob, os
R = sys.argv[1]
for f in sorted(glob.glob(R + "/resnet_bf16_*.json")):
    d = json.load(open(f))
    print(os.path.basename(f), {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
try:
    for r in json.load(open(R + "/torch.json"))["results"]:
        print("torch", r["precision"], r["mode"], {k: round(v, 3) for k, v in r.items() if k.endswith("device_ms") or k == "train_step_ms"})
except Exception as e: print("torch", e)
PY
grep -E "TFLOP/s" $R/prof_default.log | grep -E "layer[1234]" | grep -v "m//" | awk '{print $1, $3, $NF, $(NF-1)}' | head -20
finish
