source tmp-dev/common.sh
el start
( TARGETS="shoal_cli shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
timeout 100 build-dev/tests/shoal_tests --gtest_filter='CudaExecutor.LaunchOptionsChangeNoBit:CudaExecutor.MnistCnnTrainingStepsMatchTheCpu:CudaCodegen.ModulesSplit*' --gtest_brief=1 > $R/gputests.txt 2>&1; el "gpu tests rc=$?"; tail -2 $R/gputests.txt
# Seed CNN start-up, one unit (0) and the default cut, alternated: cold (empty cache) then 3 warm each.
wall(){ local log=$1; shift; local t0=$(date +%s%N); "$@" > $log.out 2> $log; local rc=$?; echo "$(( ($(date +%s%N)-t0)/1000000 )) ms rc=$rc"; }
for rep in 1 2; do for ub in 0 16384; do
  cd0=$(mktemp -d)
  el "seed ub=$ub cold: $(SHOAL_CUDA_UNIT_BYTES=$ub SHOAL_CACHE_DIR=$cd0 wall $R/seed_ub${ub}_cold$rep.log build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose)"
  for i in 1 2 3; do el "seed ub=$ub warm: $(SHOAL_CUDA_UNIT_BYTES=$ub SHOAL_CACHE_DIR=$cd0 wall $R/seed_ub${ub}_warm$rep$i.log build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose)"; done
  rm -rf $cd0
done; done
grep -h "accuracy\|test" $R/seed_ub*_warm13.log.out | tail -3
# The parity runs with the final default (units of 16 KiB), every model on the CPU and the GPU, 20 steps.
for dev in cpu cuda; do for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 150 build-dev/onnx_train_parity --case "$d" --device $dev --json "$d/shoal_$dev.json" > "$d/shoal_$dev.log" 2>&1; rc=$?
  el "$n $dev rc=$rc $(tail -1 "$d/shoal_$dev.log" | cut -c1-220)"
done; done
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; cat $R/compare.txt
cp $C/onnx_train_parity.* $R/ 2>/dev/null
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $d/*.log $R/cases/$n/ 2>/dev/null; done
finish
