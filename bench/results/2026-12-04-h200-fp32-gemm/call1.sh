# Exact fp32 convolutions as implicit GEMMs on the CUDA cores: correctness on the device, then
# ResNet-18 fp32 beside PyTorch fp32 (TF32 off), the seed CNN A/B (threshold -1 = the direct
# kernels, as before; default 2^24), resnet_mnist's accuracy.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 150 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*:ConvTensorCore.ExactFp32TakesTheGemmFromItsThreshold' > $R/gpu_fp32_tests.txt 2>&1; el "fp32 gemm gpu tests rc=$?"; tail -3 $R/gpu_fp32_tests.txt
timeout 200 python3 bench/resnet_torch.py --onnx $R/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb(){ tag=$1; shift; env "$@" timeout 90 build-dev/resnet_bench --onnx $R/resnet18.onnx --precision fp32 --runs ${RUNS:-20} --steps ${STEPS:-10} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; grep -i "ms" $R/shoal_$tag.log | tail -6; }
RUNS=5 STEPS=3 rb direct SHOAL_CUDA_FP32_GEMM_MIN_MACS=-1
rb gemm1 SHOAL_CUDA_FP32_GEMM_MIN_MACS=16777216
rb gemm_mb2 SHOAL_CUDA_FP32_GEMM_MIN_MACS=16777216 SHOAL_SIMT_MB2=1
rb gemm_all SHOAL_CUDA_FP32_GEMM_MIN_MACS=0
rb gemm2 SHOAL_CUDA_FP32_GEMM_MIN_MACS=16777216
timeout 60 build-dev/resnet_bench --onnx $R/resnet18.onnx --precision fp32 --runs 3 --steps 3 --batches 32 --profile > $R/profile_fp32.txt 2>&1; el "profile rc=$?"
for rep in 1 2; do for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 60 build-dev/shoal_bench --device cuda --json $R/seed_${v}_$rep.json > $R/seed_${v}_$rep.log 2>&1; el "seed cnn bench min=$v rep $rep rc=$?"
done; done
for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 40 build-dev/shoal run examples/mnist_cnn.mmd --device cuda > $R/mnist_cnn_$v.txt 2>&1; el "mnist_cnn min=$v rc=$?"; tail -2 $R/mnist_cnn_$v.txt
done
timeout 40 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist_gpu.txt 2>&1; el "resnet_mnist gpu rc=$?"; tail -3 $R/resnet_mnist_gpu.txt
finish
