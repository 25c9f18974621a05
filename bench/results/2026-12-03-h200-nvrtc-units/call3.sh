source tmp-dev/common.sh
el start
( TARGETS="shoal_cli shoal_tests onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C --models resnet18,efficientnet_b0,vit_tiny,mobilenet_v3_small > $R/torch.log 2>&1; el "make rc=$?"
wait; cat /tmp/build.rc; el built
export SHOAL_CACHE_DIR=$(mktemp -d)
timeout 240 build-dev/tests/shoal_tests --gtest_filter='AutotuneGpu*:CudaExecutor.LaunchOptionsChangeNoBit:ConvTensorCoreGpu*' --gtest_brief=1 > $R/gputests.txt 2>&1; el "gpu tests rc=$?"; tail -3 $R/gputests.txt; grep FAILED $R/gputests.txt | head
timeout 150 build-dev/shoal run examples/resnet_mnist.mmd --device cuda --precision tf32 --verbose > $R/resnet_mnist_tf32.txt 2>&1; el "resnet_mnist tf32 rc=$?"; grep -E "test accuracy|units|kernels \+" $R/resnet_mnist_tf32.txt | tail -4
for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 120 build-dev/onnx_train_parity --case "$d" --device cpu --steps 6 --profile > $R/$n.cpu_profile.txt 2>&1; el "$n cpu profile rc=$?"
  head -14 $R/$n.cpu_profile.txt | cut -c1-150
done
finish
