# Call N (issue 12): the copy engine on by default with its blocks an SM chosen (two where a
# slice is at most 18 stages and the grid fills two an SM): the GPU tests (the executor's 16-bit
# tests now run it), ResNet-18 bf16 -- the copies (SHOAL_CUDA_CL16_TMA=0) and chosen -- each
# twice alternated beside torch.compile bf16; examples/resnet_mnist.mmd trained in bf16 on it.
# Before the call: mkdir -p tmp-dev; cp bench/results/2026-12-03-h200-unity-build/common.sh tmp-dev/
# run(command="bash bench/results/2026-12-05-h200-copy-engine/callN.sh", carry=[".debs/onnx"])
source tmp-dev/common.sh
el start
TARGETS="shoal_tests resnet_bench shoal_cli" timeout 200 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
timeout 100 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.SixteenBitCopyEngine*:CudaExecutor.SixteenBit*' > $R/gpu_test.txt 2>&1; el "gpu test rc=$?"; grep -E "^\[  (PASSED|FAILED)|Failure" $R/gpu_test.txt | head -8
envs(){ case $1 in off) echo "SHOAL_CUDA_CL16_TMA=0";; auto) echo "SHOAL_CUDA_CL16_TMA=1";; M) echo "SHOAL_CUDA_CL16_TMA_BLOCKS=1";; M2) echo "SHOAL_CUDA_CL16_TMA_BLOCKS=2";; esac; }
rb(){ c=$1; tag=$2; env $(envs $c) timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --runs 20 --steps 10 --json $R/shoal_bf16_${c}_$tag.json > $R/shoal_bf16_${c}_$tag.log 2>&1; el "resnet bf16 $c $tag rc=$?"; }
for t in a b; do for c in off auto; do rb $c $t; done; done
timeout 100 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch.json --modes default --precisions bf16 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch rc=$?"
timeout 60 build-dev/shoal run examples/resnet_mnist.mmd --device gpu --precision bf16 > $R/resnet_mnist.bf16.txt 2>&1; el "resnet_mnist bf16 rc=$?"; grep -i "accuracy" $R/resnet_mnist.bf16.txt | tail -1
python3 bench/resnet_summary.py $R
finish
