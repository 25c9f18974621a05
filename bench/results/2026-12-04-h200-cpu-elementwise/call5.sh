source tmp-dev/common.sh
el start
( TARGETS="shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C --models resnet18,efficientnet_b0,mobilenet_v3_small > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
timeout 120 build-dev/tests/shoal_tests --gtest_filter='CpuThreads.*:ConvKernels.*:Conv*' --gtest_brief=1 > $R/cputests.txt 2>&1; el "cpu tests rc=$?"; tail -2 $R/cputests.txt
for rep in 1 2 3; do for b in old new; do
  for n in resnet18 efficientnet_b0 mobilenet_v3_small; do
    if [ $b = old ]; then export SHOAL_AB_OLD=1; else unset SHOAL_AB_OLD; fi
    timeout 120 build-dev/onnx_train_parity --case $C/$n --device cpu --json $C/$n/shoal_cpu_${b}$rep.json > $R/${n}_${b}$rep.log 2>&1
    el "$b$rep $(tail -1 $R/${n}_${b}$rep.log | sed 's/.*cases.//' | cut -c1-150)"
  done
done; done
unset SHOAL_AB_OLD
for n in resnet18 efficientnet_b0 mobilenet_v3_small; do cp $C/$n/shoal_cpu_new1.json $C/$n/shoal_cpu.json; done
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; tail -9 $R/compare.txt
for b in old new; do if [ $b = old ]; then export SHOAL_AB_OLD=1; else unset SHOAL_AB_OLD; fi
  timeout 120 build-dev/onnx_train_parity --case $C/resnet18 --device cpu --steps 6 --profile > $R/resnet18.$b.cpu_profile.txt 2>&1
done
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $R/cases/$n/ 2>/dev/null; done
finish
