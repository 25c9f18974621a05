# Exact fp32 GEMM, call 3: the width rule (filters and channels x taps >= 64) puts the seed CNN and
# resnet_mnist back on the direct kernels -- A/B against -1 (never the GEMM) -- with ResNet-18's
# fp32 figures unchanged; Nsight Compute's FFMA rate for its GEMM kernels at batch 32; the GPU suites.
source tmp-dev/common.sh
el start
TARGETS="shoal_tests shoal_cli shoal_bench resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
for rep in 1 2; do for v in -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 60 build-dev/shoal_bench --device cuda --json $R/seed_${v}_$rep.json > $R/seed_${v}_$rep.log 2>&1; el "seed cnn bench min=$v rep $rep rc=$?"
done; done
for v in -1 16777216 -1 16777216; do
  SHOAL_CUDA_FP32_GEMM_MIN_MACS=$v timeout 40 build-dev/shoal run examples/resnet_mnist.mmd --device cuda > $R/resnet_mnist_$v.txt 2>&1; el "resnet_mnist min=$v rc=$?"; tail -2 $R/resnet_mnist_$v.txt
done
timeout 90 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 20 --steps 10 --json $R/shoal_gemm.json > $R/shoal_gemm.log 2>&1; el "resnet fp32 rc=$?"
timeout 60 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --runs 3 --steps 3 --batches 32 --profile > $R/profile_fp32.txt 2>&1; el "profile rc=$?"
timeout 120 ncu --metrics gpu__time_duration.sum,sm__sass_thread_inst_executed_op_ffma_pred_on.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active --kernel-name regex:tc --launch-count 24 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision fp32 --batches 32 --runs 1 --train-batch 0 > $R/ncu_fp32.txt 2>&1; el "ncu rc=$?"
timeout 150 build-dev/tests/shoal_tests --gtest_filter='*Gpu*:CudaExecutor*' > $R/gpu_suites.txt 2>&1; el "gpu suites rc=$?"; tail -4 $R/gpu_suites.txt
python3 - $R <<'PY'
import json, glob, os, sys, re
R = sys.argv[1]
for f in sorted(glob.glob(R + "/seed_*.json")):
    s = json.load(open(f))["summary"]
    print(os.path.basename(f), {k: round(v, 4) for k, v in s.items() if k in ("train_step_ms_fused", "infer_bs1_ms_fused", "infer_bs64_ms_fused", "infer_bs8192_ms_fused")})
d = json.load(open(R + "/shoal_gemm.json"))
print({b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}, "train", round(d["train"]["step_ms_median"], 2))
# ncu: kernel name, duration, ffma count -> TFLOP/s
cur = None; rows = []
for line in open(R + "/ncu_fp32.txt", errors="replace"):
    m = re.match(r"\s+(\S+tc\S*)\s*\(", line) or re.match(r"\s+(\w+tc)\b.*Context", line)
    if m: cur = {"k": m.group(1)}; rows.append(cur); continue
    if cur is None: continue
    p = line.split()
    if len(p) >= 3 and p[0] in ("gpu__time_duration.sum", "sm__sass_thread_inst_executed_op_ffma_pred_on.sum", "sm__throughput.avg.pct_of_peak_sustained_elapsed", "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active"):
        cur[p[0]] = (p[1], p[-1])
for r in rows: print(r)
PY
grep -A30 "time per op, inference" $R/profile_fp32.txt | head -30
finish
