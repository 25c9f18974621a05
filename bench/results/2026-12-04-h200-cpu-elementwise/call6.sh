source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli" timeout 175 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 40 build-dev/tests/shoal_tests --gtest_filter='CudaExecutor.EveryOpMatchesTheInterpreter' > $R/gpu_ops.txt 2>&1; el "every op on the GPU rc=$?"; tail -3 $R/gpu_ops.txt
timeout 25 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist_gpu.txt 2>&1; el "resnet_mnist gpu rc=$?"; tail -4 $R/resnet_mnist_gpu.txt
finish
