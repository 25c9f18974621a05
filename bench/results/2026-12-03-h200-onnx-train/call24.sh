source tmp-dev/common.sh
el start
( TARGETS="shoal_cli shoal_tests onnx_train_parity shoal_bench" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C > $R/torch.log 2>&1; el "make rc=$?"
grep -v "^ " $R/torch.log | grep -v "Traceback\|Warning" | cut -c1-300 | head -20
wait; cat /tmp/build.rc; el built
timeout 200 build-dev/tests/shoal_tests --gtest_filter='CudaExecutor*:CudaInfraGpu*:*Horizontal*:*Dropout*:TrainStep*' --gtest_brief=1 > $R/gputests.txt 2>&1; el "gpu tests rc=$?"; tail -3 $R/gputests.txt; grep FAILED $R/gputests.txt | head
timeout 90 build-dev/shoal_bench --device cuda --variants fused,fused_per_param_updates --batches 64 --steps 400 --runs 20 --json $R/shoal_bench.json > $R/shoal_bench.txt 2>&1; el "bench rc=$?"; cat $R/shoal_bench.txt | tail -15
runall(){ dev=$1; for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 150 build-dev/onnx_train_parity --case "$d" --device $dev --json "$d/shoal_$dev.json" > "$d/shoal_$dev.log" 2>&1; rc=$?
  el "$n $dev rc=$rc"; tail -1 "$d/shoal_$dev.log" | cut -c1-400
done; }
runall cpu > $R/run_cpu.txt 2>&1
runall cuda
cat $R/run_cpu.txt
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; cat $R/compare.txt
# The set-up (compile) time side by side: kernels shared (default) and not, each from an empty kernel cache.
for share in 0 1; do SHOAL_CUDA_SHARE_KERNELS=$share SHOAL_CACHE_DIR=$(mktemp -d) timeout 120 build-dev/onnx_train_parity --case $C/vit_tiny --device cuda --json $R/vit_share$share.json > $R/vit_share$share.log 2>&1; el "vit share=$share rc=$?"; tail -1 $R/vit_share$share.log | cut -c1-300; done
cp $C/onnx_train_parity.* $R/ 2>/dev/null
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $d/*.log $d/*.txt $R/cases/$n/ 2>/dev/null; done
finish
