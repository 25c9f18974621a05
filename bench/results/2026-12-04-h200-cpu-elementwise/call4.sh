source tmp-dev/common.sh
el start
# old = this tree with the weight-gradient slices and the parallel copies reversed
mkdir -p /tmp/old && tar cf - --exclude=./build-dev --exclude=./.debs . | tar xf - -C /tmp/old && (cd /tmp/old && patch -R -p1 < tmp-dev/ab.patch > /dev/null) && el "old tree ok"
( JOBS=8 TARGETS="shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
( cd /tmp/old && cmake --preset default -B build-old -G Ninja -DSHOAL_BUILD_BENCH=ON -DSHOAL_BUILD_TESTS=OFF -DSHOAL_ONNX=ON -DCMAKE_PREFIX_PATH=$sys/usr > /tmp/cmake-old.log 2>&1; ninja -C build-old -j8 onnx_train_parity > /tmp/build-old.log 2>&1; echo "old build rc=$?" > /tmp/build-old.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 330 python3 bench/onnx_train_torch.py make $C --models resnet18,vit_tiny,efficientnet_b0,lstm,bert_tiny,mobilenet_v3_small > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc /tmp/build-old.rc; el built; tail -3 /tmp/build-old.log
timeout 120 build-dev/tests/shoal_tests --gtest_filter='CpuThreads.*:ConvKernels.*:CpuElementwise.*:*Slice*:*Transpose*' --gtest_brief=1 > $R/cputests.txt 2>&1; el "cpu tests rc=$?"; tail -2 $R/cputests.txt
for rep in 1 2 3; do for b in old new; do
  bin=build-dev/onnx_train_parity; [ $b = old ] && bin=/tmp/old/build-old/onnx_train_parity
  for n in resnet18 vit_tiny efficientnet_b0 lstm bert_tiny mobilenet_v3_small; do
    timeout 120 $bin --case $C/$n --device cpu --json $C/$n/shoal_cpu_${b}$rep.json > $R/${n}_${b}$rep.log 2>&1
    el "$b$rep $(tail -1 $R/${n}_${b}$rep.log | sed 's/.*cases.//' | cut -c1-150)"
  done
done; done
cp $C/resnet18/shoal_cpu_new1.json $C/resnet18/shoal_cpu.json 2>/dev/null
for n in resnet18 vit_tiny; do for b in old new; do
  bin=build-dev/onnx_train_parity; [ $b = old ] && bin=/tmp/old/build-old/onnx_train_parity
  timeout 120 $bin --case $C/$n --device cpu --steps 6 --profile > $R/$n.$b.cpu_profile.txt 2>&1
done; done
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $R/cases/$n/ 2>/dev/null; done
finish
