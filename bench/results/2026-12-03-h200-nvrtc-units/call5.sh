source tmp-dev/common.sh
el start
( TARGETS="onnx_train_parity shoal_tests" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C --models resnet18,efficientnet_b0,mobilenet_v3_small,convnext_atto > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
timeout 60 build-dev/tests/shoal_tests --gtest_filter='CpuThreads.*:ConvKernels.*' --gtest_brief=1 > $R/cputests.txt 2>&1; el "cpu tests rc=$?"; tail -2 $R/cputests.txt
for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 120 build-dev/onnx_train_parity --case "$d" --device cpu --json "$d/shoal_cpu.json" > "$d/shoal_cpu.log" 2>&1; el "$n cpu rc=$? $(tail -1 $d/shoal_cpu.log | cut -c1-200)"
  timeout 120 build-dev/onnx_train_parity --case "$d" --device cpu --steps 6 --profile > $R/$n.cpu_profile.txt 2>&1
  head -6 $R/$n.cpu_profile.txt | tail -4 | cut -c1-120
done
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; cat $R/compare.txt
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $d/*.log $R/cases/$n/ 2>/dev/null; done
finish
