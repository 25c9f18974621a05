source tmp-dev/common.sh
el start
( TARGETS="shoal_cli shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
timeout 150 build-dev/tests/shoal_tests --gtest_filter='CudaExecutor*:CudaInfraGpu*:*Horizontal*:TrainStep*:CudaCodegen.ModulesSplit*:CudaCodegen.CompileProgram*' --gtest_brief=1 > $R/gputests.txt 2>&1; el "gpu tests rc=$?"; tail -3 $R/gputests.txt; grep FAILED $R/gputests.txt | head
# Cold Trainer::create per model: one unit, then 32 KiB units (default), then 16 KiB, each from an empty cache.
for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  for ub in 0 32768 16384; do
    cache=$(mktemp -d)
    t0=$(date +%s%N)
    SHOAL_CUDA_UNIT_BYTES=$ub SHOAL_CACHE_DIR=$cache timeout 120 build-dev/onnx_train_parity --case "$d" --device cuda --steps 3 --verbose --json $R/$n.ub$ub.json > $R/$n.ub$ub.log 2>&1
    rc=$?
    el "$n ub=$ub rc=$rc wall $(( ($(date +%s%N)-t0)/1000000 )) ms, $(ls $cache | wc -l) cache files; $(tail -1 $R/$n.ub$ub.log | cut -c1-200)"
    rm -rf $cache
  done
done
finish
