#!/usr/bin/env bash
# The GPU benchmark: builds shoal_bench, times the MNIST CNN (training step at batch 64,
# inference at batch 1, 64, 8192, fusion on and off), runs the PyTorch baseline on the same
# card, and prints shoal/PyTorch ratios. Results land in $OUT (default /tmp/shoal-bench):
# shoal_bench.json, torch_baseline.json, ratios.json, and the logs.
#   bench/gpu_bench.sh [path/to/torch_baseline.py]
# The baseline script defaults to bench/torch_baseline.py, else ../shared/bench/torch_baseline.py;
# SKIP_TORCH=1 skips it (only shoal's numbers then). About 5 minutes on an H100, most of it
# torch.compile and the baseline's full training runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-bench}
mkdir -p "$OUT"
BASELINE=${1:-}
if [ -z "$BASELINE" ]; then
  for candidate in bench/torch_baseline.py ../shared/bench/torch_baseline.py; do
    if [ -f "$candidate" ]; then BASELINE=$candidate; break; fi
  done
fi
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1
if ! cmake --preset default -B build-dev -DSHOAL_BUILD_BENCH=ON > "$OUT/build.log" 2>&1; then
  echo "configure failed:"; tail -30 "$OUT/build.log"; exit 1
fi
if ! ninja -C build-dev -j16 shoal_bench shoal_cli >> "$OUT/build.log" 2>&1; then
  echo "build failed:"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1
fi
echo "== built in $(elapsed) s"

export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$PWD/build-dev/kernel-cache}
if ! ./build-dev/shoal_bench --device "${DEVICE:-cuda}" 2>&1 | tee "$OUT/shoal_bench.log"; then
  echo "shoal_bench failed"; exit 1
fi
echo "== shoal_bench done at $(elapsed) s"

if [ "${SKIP_TORCH:-0}" != "0" ]; then
  echo "== SKIP_TORCH set: no PyTorch baseline"
elif [ -z "$BASELINE" ] || [ ! -f "$BASELINE" ]; then
  echo "== no torch_baseline.py (give its path as the first argument): no PyTorch baseline"
else
  if ! PYTHONUNBUFFERED=1 python3 "$BASELINE" gpu 2>&1 | tee "$OUT/torch_baseline.log"; then
    echo "torch baseline failed"
  fi
  echo "== torch baseline done at $(elapsed) s"
fi

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
shoal = json.load(open(os.path.join(out, 'shoal_bench.json')))
torch_path = os.path.join(out, 'torch_baseline.json')
torch = json.load(open(torch_path)) if os.path.exists(torch_path) else {}
s = shoal['summary']
rows, ratios = [], {}
def add(name, mine, ref_key, field):
    ref = torch.get(ref_key, {}).get(field)
    ratio = mine / ref if ref else None
    ratios[name] = dict(shoal_ms=mine, torch_ms=ref, ratio=ratio, torch_case=ref_key)
    rows.append((name, mine, ref, ratio))
for cfg in ('fused', 'unfused'):
    step = s.get(f'train_step_ms_{cfg}')
    if step is None: continue
    add(f'train step ({cfg}) vs eager fp32', step, 'cuda_eager_fp32', 'step_ms_median')
    add(f'train step ({cfg}) vs compile reduce-overhead', step, 'cuda_compile_reduce_overhead', 'step_ms_median')
for bs in (1, 64, 8192):
    for cfg in ('fused', 'unfused'):
        ms = s.get(f'infer_bs{bs}_ms_{cfg}')
        if ms is None: continue
        add(f'infer bs{bs} ({cfg}) vs eager', ms, f'cuda_infer_eager_bs{bs}', 'ms_median')
        add(f'infer bs{bs} ({cfg}) vs compile ro', ms, f'cuda_infer_compile_ro_bs{bs}', 'ms_median')
print(f"\nshoal / PyTorch on {shoal['device']} (ratio < 1: shoal faster)")
print(f"  {'case':52s} {'shoal ms':>10s} {'torch ms':>10s} {'ratio':>8s}")
for name, mine, ref, ratio in rows:
    print(f"  {name:52s} {mine:10.4f} {ref if ref is not None else float('nan'):10.4f} "
          f"{ratio if ratio is not None else float('nan'):8.3f}")
json.dump(dict(device=shoal['device'], ratios=ratios), open(os.path.join(out, 'ratios.json'), 'w'), indent=1)
PY
echo "== done in $(elapsed) s; results in $OUT"
