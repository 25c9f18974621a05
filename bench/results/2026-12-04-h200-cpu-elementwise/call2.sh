source tmp-dev/common.sh
el start
( TARGETS="shoal_cli shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 330 python3 bench/onnx_train_torch.py make $C > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
timeout 120 build-dev/tests/shoal_tests --gtest_filter='CpuThreads.*:CpuElementwise.*:CpuReduce.*:*Norm*:Onnx*' --gtest_brief=1 > $R/cputests.txt 2>&1; el "cpu tests rc=$?"; tail -3 $R/cputests.txt
for dev in cpu cuda; do for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 150 build-dev/onnx_train_parity --case "$d" --device $dev --json "$d/shoal_$dev.json" > "$d/shoal_$dev.log" 2>&1; rc=$?
  el "$n $dev rc=$rc $(tail -1 "$d/shoal_$dev.log" | cut -c1-220)"
done; done
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; cat $R/compare.txt
for n in resnet18 efficientnet_b0 convnext_atto; do
  timeout 120 build-dev/onnx_train_parity --case $C/$n --device cpu --steps 6 --profile > $R/$n.cpu_profile.txt 2>&1
  timeout 120 build-dev/onnx_train_parity --case $C/$n --device cuda --steps 6 --profile > $R/$n.cuda_profile.txt 2>&1
done
cp $C/onnx_train_parity.* $R/ 2>/dev/null
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $d/*.log $R/cases/$n/ 2>/dev/null; done
finish
