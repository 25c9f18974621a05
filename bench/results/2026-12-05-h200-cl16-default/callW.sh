# Call W (stop 50): the 16-bit channels-last convolutions on by default -- every test on the H200
# (16 shards), the examples trained in bf16 on the GPU, ResNet-18 bf16 with no setting (the default
# path) beside SHOAL_CUDA_CL16=0, compute-sanitizer over this stop's GPU tests.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 240 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
JOBS=8 SHARD_TIMEOUT=240 timeout 280 scripts/gtest-shards.sh build-dev/tests/shoal_tests 16 $R/shards > $R/shards.txt 2>&1; el "all tests rc=$?"; tail -5 $R/shards.txt
grep -h "tests ran\|PASSED\|FAILED\|SKIPPED \] [0-9]" $R/shards/*.log | awk '/PASSED/{p+=$4} /SKIPPED \] [0-9]/{s+=$3} /FAILED/{print} END{print "passed", p, "skipped", s}'
for m in resnet_mnist mobilenet_mnist; do timeout 60 build-dev/shoal run examples/$m.mmd --device gpu --precision bf16 > $R/$m.bf16.txt 2>&1; el "$m bf16 rc=$?"; grep -i "accuracy" $R/$m.bf16.txt | tail -1; done
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
for cl in default 0; do if [ $cl = default ]; then unset SHOAL_CUDA_CL16; else export SHOAL_CUDA_CL16=0; fi; timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/resnet_bf16_$cl.json > $R/resnet_bf16_$cl.log 2>&1; el "resnet bf16 cl16=$cl rc=$?"; done; unset SHOAL_CUDA_CL16
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='CudaExecutor.SixteenBitCopies*:CudaExecutor.ParameterDerived*:DifferentialGpu.*' > $R/memcheck.txt 2>&1; el "memcheck rc=$?"; tail -1 $R/memcheck.txt
python3 - $R <<'PY'
import json, sys, glob, os
for f in sorted(glob.glob(sys.argv[1] + "/resnet_bf16_*.json")):
    d = json.load(open(f))
    print(os.path.basename(f), {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
PY
finish
