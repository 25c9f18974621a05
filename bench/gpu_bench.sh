#!/usr/bin/env bash
# The GPU benchmark: builds shoal_bench, times the MNIST CNN (training step at batch 64,
# inference at batch 1, 64, 8192, fusion on and off), runs the PyTorch baseline on the same
# card, and prints shoal/PyTorch ratios; then the wall time of `shoal run examples/mnist_cnn.mmd
# --device cuda`, cold (empty kernel cache) and warm, with its --verbose breakdown, beside a
# process that only makes a CUDA context (bench/cuda_floor.cpp), and the
# CPU benchmark (bench/cpu_train.sh: shoal vs PyTorch at 2 and 16 threads on this host).
# Results land in $OUT (default /tmp/shoal-bench): shoal_bench.json, torch_baseline.json,
# torch_infer.json (bench/torch_infer.py: like-for-like inference), ratios.json, startup.json,
# cpu/ (cpu_ratios.json), and the logs; copy them to
# bench/results/<date>-<card>/.
#   bench/gpu_bench.sh [path/to/torch_baseline.py]
# SKIP_STARTUP=1 and SKIP_CPU=1 leave out the start-up and CPU parts; SKIP_TORCH=1 the GPU
# PyTorch baseline, SKIP_TORCH_CPU=1 the CPU one.
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
if ! ninja -C build-dev -j16 shoal_bench shoal_cli shoal_cuda_floor >> "$OUT/build.log" 2>&1; then
  echo "build failed:"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1
fi
echo "== built in $(elapsed) s"

export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$PWD/build-dev/kernel-cache}
if ! ./build-dev/shoal_bench --device "${DEVICE:-cuda}" 2>&1 | tee "$OUT/shoal_bench.log"; then
  echo "shoal_bench failed"; exit 1
fi
echo "== shoal_bench done at $(elapsed) s"

# Start-up: the whole command's wall time, cold (an empty kernel cache) and warm (3 runs).
if [ "${SKIP_STARTUP:-0}" = "0" ]; then
  wall() {  # wall seconds of the command, its stderr (the --verbose breakdown) in $1
    local log=$1; shift
    local t0 t1
    t0=$(date +%s.%N); "$@" > "$log.out" 2> "$log"; local rc=$?; t1=$(date +%s.%N)
    [ $rc = 0 ] || { echo "failed: $*"; tail -5 "$log"; return 1; }
    python3 -c "print(round($t1 - $t0, 3))"
  }
  cold_dir=$(mktemp -d)
  cold=$(SHOAL_CACHE_DIR=$cold_dir wall "$OUT/startup_cold.log" ./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose)
  warm=()
  for i in 1 2 3; do
    warm+=("$(SHOAL_CACHE_DIR=$cold_dir wall "$OUT/startup_warm$i.log" ./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose)")
  done
  serial=$(SHOAL_SERIAL_STARTUP=1 SHOAL_CACHE_DIR=$cold_dir wall "$OUT/startup_warm_serial.log" ./build-dev/shoal run examples/mnist_cnn.mmd --device cuda --verbose)
  rm -rf "$cold_dir"
  # The machine's own floor: a process that only makes a CUDA context (bench/cuda_floor.cpp).
  floor=()
  for i in 1 2 3; do
    if t=$(wall "$OUT/cuda_floor.log" ./build-dev/shoal_cuda_floor); then floor+=("$t"); fi
  done
  echo "== start-up: cold ${cold} s (goal <= 0.5), warm ${warm[*]} s (goal <= 0.3); warm without the overlaps (SHOAL_SERIAL_STARTUP=1) ${serial} s; a process that only makes a CUDA context ${floor[*]:-n/a} s"
  echo "-- breakdown of the cold run:"; sed -n '/where the time went/,$p' "$OUT/startup_cold.log"
  echo "-- breakdown of the last warm run:"; sed -n '/where the time went/,$p' "$OUT/startup_warm3.log"
  echo "-- breakdown of the warm run without the overlaps:"; sed -n '/where the time went/,$p' "$OUT/startup_warm_serial.log"
  python3 -c "import json,sys,statistics as st; w=[float(v) for v in sys.argv[4:]]; f=[float(v) for v in sys.argv[3].split()]; json.dump(dict(cold_s=float(sys.argv[1]), warm_serial_s=float(sys.argv[2]), warm_s=w, warm_median_s=st.median(w), cuda_floor_s=f, cuda_floor_median_s=st.median(f) if f else None, goal_cold_s=0.5, goal_warm_s=0.3), open('$OUT/startup.json','w'), indent=1)" "$cold" "$serial" "${floor[*]:-}" "${warm[@]}"
  echo "== start-up done at $(elapsed) s"
fi

if [ "${SKIP_CPU:-0}" = "0" ]; then
  # PyTorch on the CPU runs there unless SKIP_TORCH_CPU=1 (SKIP_TORCH skips the GPU baseline only).
  OUT="$OUT/cpu" SHOAL=./build-dev/shoal SKIP_TORCH=${SKIP_TORCH_CPU:-0} bench/cpu_train.sh 2>&1 | tee "$OUT/cpu_train.log" | sed -n '/training step, seed CNN/,/^== per-op/p'
  echo "== CPU benchmark done at $(elapsed) s"
fi

if [ "${SKIP_TORCH:-0}" != "0" ]; then
  echo "== SKIP_TORCH set: no PyTorch baseline"
elif [ -z "$BASELINE" ] || [ ! -f "$BASELINE" ]; then
  echo "== no torch_baseline.py (give its path as the first argument): no PyTorch baseline"
else
  if ! PYTHONUNBUFFERED=1 python3 "$BASELINE" gpu 2>&1 | tee "$OUT/torch_baseline.log"; then
    echo "torch baseline failed"
  fi
  echo "== torch baseline done at $(elapsed) s"
  # Like-for-like inference: PyTorch timed as shoal_bench times run(), input resident on the
  # GPU and input in pinned host memory, the logits back on the host both ways.
  if ! PYTHONUNBUFFERED=1 python3 bench/torch_infer.py 2>&1 | tee "$OUT/torch_infer.log"; then
    echo "torch inference benchmark failed"
  fi
  echo "== torch inference done at $(elapsed) s"
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
infer_path = os.path.join(out, 'torch_infer.json')
infer = json.load(open(infer_path)) if os.path.exists(infer_path) else {}
# Like-for-like inference (issue 13's goals): the same input placement on both sides.
for bs, ref, goal in ((1, 'eager', 0.1), (64, 'compile_ro', 0.15), (8192, 'compile_ro', 0.25)):
    # Pinned beside pinned (shoal reads a view of a cudaMallocHost buffer, PyTorch a
    # pin_memory() tensor); shoal from ordinary host memory too (its staging copy included).
    for place, mine_key, ref_field in (('input on GPU', f'infer_bs{bs}_ms_fused_input_on_gpu', 'resident_ms'),
                                        ('input in pinned host memory', f'infer_bs{bs}_ms_fused_pinned', 'pinned_ms'),
                                        ('input in pageable host memory', f'infer_bs{bs}_ms_fused', 'pinned_ms')):
        mine = s.get(mine_key)
        r = infer.get(f'{ref}_bs{bs}', {}).get(ref_field)
        if mine is None or r is None: continue
        name = f'infer bs{bs} {place} vs {ref} (goal <= {goal})'
        ratios[name] = dict(shoal_ms=mine, torch_ms=r, ratio=mine / r, torch_case=f'torch_infer {ref}_bs{bs} {ref_field}', goal=goal)
        rows.append((name, mine, r, mine / r))
print(f"\nshoal / PyTorch on {shoal['device']} (ratio < 1: shoal faster)")
print(f"  {'case':52s} {'shoal ms':>10s} {'torch ms':>10s} {'ratio':>8s}")
for name, mine, ref, ratio in rows:
    print(f"  {name:52s} {mine:10.4f} {ref if ref is not None else float('nan'):10.4f} "
          f"{ratio if ratio is not None else float('nan'):8.3f}")
startup_path, cpu_path = os.path.join(out, 'startup.json'), os.path.join(out, 'cpu', 'cpu_ratios.json')
extra = {}
if os.path.exists(startup_path):
    su = json.load(open(startup_path)); extra['startup'] = su
    print(f"  {'shoal run mnist_cnn --device cuda, cold (goal <= 0.5 s)':52s} {su['cold_s']:10.3f} s")
    print(f"  {'shoal run mnist_cnn --device cuda, warm (goal <= 0.3 s)':52s} {su['warm_median_s']:10.3f} s")
    if su.get('cuda_floor_median_s') is not None:
        print(f"  {'a process that only makes a CUDA context (floor)':52s} {su['cuda_floor_median_s']:10.3f} s")
if os.path.exists(cpu_path):
    cpu = json.load(open(cpu_path)); extra['cpu'] = cpu
    for t, r in cpu.items():
        ratio = r.get('ratio')
        print(f"  {'cpu train step, ' + t + ' threads (goal <= ' + str(r.get('target')) + ')':52s} {r['shoal_step_ms']:10.4f} "
              f"{r['torch_step_ms'] if r.get('torch_step_ms') else float('nan'):10.4f} {ratio if ratio else float('nan'):8.3f}")
json.dump(dict(device=shoal['device'], ratios=ratios, **extra), open(os.path.join(out, 'ratios.json'), 'w'), indent=1)
PY
echo "== done in $(elapsed) s; results in $OUT"
