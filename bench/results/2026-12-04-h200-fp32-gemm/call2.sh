# Exact fp32 convolutions as implicit GEMMs on the CUDA cores, call 2: the GPU tests under
# compute-sanitizer, ResNet-18 fp32 beside PyTorch fp32 (TF32 off) in the same call, the seed
# CNN and resnet_mnist A/B (threshold -1 = the direct kernels, as before; default 2^24).
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 130 compute-sanitizer --tool memcheck --error-exitcode 7 build-dev/tests/shoal_tests --gtest_filter='ConvTensorCoreGpu.EveryExactFp32*' > $R/memcheck_fp32.txt 2>&1; el "memcheck fp32 gemm gpu tests rc=$?"; tail -4 $R/memcheck_fp32.txt
timeout 200 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/torch_fp32.json --modes eager,default --precisions fp32 --runs 20 --steps 10 > $R/torch.log 2>&1; el "torch fp32 rc=$?"
rb(){ tag=$1; shift; env "$@" timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs ${RUNS:-20} --steps ${STEPS:-10} --json $R/shoal_$tag.json > $R/shoal_$tag.log 2>&1; el "resnet fp32 $tag rc=$?"; }
rb gemm
RUNS=5 STEPS=3 rb direct SHOAL_CUDA_FP32_GEMM_MIN_MACS=-1
for rep in 1 2; do for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 60 build-dev/shoal_bench --device cuda --json $R/seed_${v}_$rep.json > $R/seed_${v}_$rep.log 2>&1; el "seed cnn bench min=$v rep $rep rc=$?"
done; done
for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 40 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist_$v.txt 2>&1; el "resnet_mnist min=$v rc=$?"; tail -2 $R/resnet_mnist_$v.txt
done
python3 - $R <<'PY'
import json, glob, os, sys
R = sys.argv[1]
for f in sorted(glob.glob(R + "/seed_*.json")):
    s = json.load(open(f))["summary"]
    print(os.path.basename(f), {k: round(v, 4) for k, v in s.items() if k in ("train_step_ms_fused", "infer_bs1_ms_fused", "infer_bs64_ms_fused", "infer_bs8192_ms_fused") or k.startswith("epochs")})
for f in sorted(glob.glob(R + "/shoal_*.json")) + [R + "/torch_fp32.json"]:
    try: print(os.path.basename(f), json.dumps(json.load(open(f)))[:2500])
    except Exception as e: print(f, e)
PY
finish
