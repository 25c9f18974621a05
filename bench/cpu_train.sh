#!/usr/bin/env bash
# The CPU benchmark: the seed's MNIST CNN (examples/mnist_cnn.mmd: conv 3x3x32 + ReLU, maxpool 2,
# dense 64 + ReLU, dense 10; Adam, batch 64) on the CPU interpreter at each thread count
# (--threads) against PyTorch at the same counts (torch.set_num_threads), in one call on one
# host, and the ratios shoal / PyTorch of the training step (below 1: shoal faster).
#   bench/cpu_train.sh                  threads "2 16", 3 epochs, 3 runs each (run from anywhere)
#   THREADS="1 2" RUNS=2 EPOCHS=2 SKIP_TORCH=1 bench/cpu_train.sh
# Builds shoal from this tree (cmake + ninja, Release, in build-bench/) unless SHOAL=path/to/shoal
# is given. Results in $OUT (default /tmp/shoal-cpu-bench): shoal_t<N>_r<k>.json (run reports),
# torch_t<N>.json, cpu_ratios.json, the logs and the per-op profile of one run per count.
# Step time = an epoch's wall time over its steps, the median over the epochs (shoal's
# step_ms_median; the PyTorch script times its epochs the same way), then the median of the runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/shoal-cpu-bench}
mkdir -p "$OUT"
THREADS=${THREADS:-"2 16"}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-3}
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

echo "== host: $(nproc) CPUs available, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if [ -z "${SHOAL:-}" ]; then
  if ! cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHOAL_BUILD_TESTS=OFF > "$OUT/build.log" 2>&1; then
    echo "configure failed:"; tail -30 "$OUT/build.log"; exit 1
  fi
  if ! ninja -C build-bench -j"$(nproc)" shoal_cli >> "$OUT/build.log" 2>&1; then
    echo "build failed:"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1
  fi
  SHOAL=build-bench/shoal
  echo "== built in $(elapsed) s"
fi
"$SHOAL" --version

# Also the largest count with the pool's threads sleeping at once between kernels
# (SHOAL_POOL_SPIN_US=0; the default spins 50 µs first), to see what the spin buys.
MAX_T=$(echo $THREADS | tr ' ' '\n' | sort -n | tail -1)
for t in $THREADS "${MAX_T}nospin"; do
  spin_env=""
  case $t in *nospin) spin_env="SHOAL_POOL_SPIN_US=0" ;; esac
  for r in $(seq 1 "$RUNS"); do
    profile=""
    [ "$r" = 1 ] && profile="--profile"
    if ! env $spin_env "$SHOAL" run examples/mnist_cnn.mmd --device cpu --seed 0 --epochs "$EPOCHS" --threads "${t%nospin}" \
        --report "$OUT/shoal_t${t}_r${r}.json" $profile > "$OUT/shoal_t${t}_r${r}.log" 2>&1; then
      echo "shoal --threads $t failed:"; tail -20 "$OUT/shoal_t${t}_r${r}.log"; exit 1
    fi
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f'shoal threads {sys.argv[2]:>2} run {sys.argv[3]}: step_ms_median {r[\"step_ms_median\"]:.3f}  train_seconds {r[\"train_seconds\"]:.2f}  test_accuracy {r[\"test_accuracy\"]:.4f}')" \
      "$OUT/shoal_t${t}_r${r}.json" "$t" "$r"
  done
done
echo "== shoal done at $(elapsed) s"

if [ "${SKIP_TORCH:-0}" != "0" ]; then
  echo "== SKIP_TORCH set: no PyTorch runs"
elif ! python3 -c "import torch" 2>/dev/null; then
  echo "== no PyTorch (python3 -c 'import torch' fails): shoal only"
else
  for t in $THREADS; do
    if python3 bench/torch_cpu_train.py "$t" "$EPOCHS" > "$OUT/torch_t${t}.json" 2> "$OUT/torch_t${t}.log"; then
      echo "torch threads $t: $(cat "$OUT/torch_t${t}.json")"
    else
      echo "torch threads $t failed:"; tail -5 "$OUT/torch_t${t}.log"; rm -f "$OUT/torch_t${t}.json"
    fi
  done
  echo "== torch done at $(elapsed) s"
fi

python3 - "$OUT" "$THREADS ${MAX_T}nospin" "$RUNS" <<'PY'
import json, os, statistics as st, sys
out, threads, runs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
targets = {'2': 0.8, '16': 1.0}  # the issue's goals for the ratio shoal / PyTorch
rows, result = [], {}
for t in threads:
    shoal = [json.load(open(os.path.join(out, f'shoal_t{t}_r{r}.json')))['step_ms_median'] for r in range(1, runs + 1)]
    mine = st.median(shoal)
    tp = os.path.join(out, f'torch_t{t.replace("nospin", "")}.json')
    torch = json.load(open(tp)) if os.path.exists(tp) else None
    ref = torch['step_ms_median'] if torch else None
    ratio = mine / ref if ref else None
    result[t] = dict(shoal_step_ms=mine, shoal_runs=shoal, torch_step_ms=ref,
                     torch_single_step_ms=torch['single_step_ms_median'] if torch else None, ratio=ratio,
                     target=targets.get(t))
    rows.append((t.replace('nospin', ' (no spin)'), mine, ref, ratio, targets.get(t)))
base = result[threads[0]]['shoal_step_ms']
print(f"\ntraining step, seed CNN, batch 64 (ratio = shoal / PyTorch; below 1: shoal faster)")
print(f"  {'threads':>13} {'shoal ms':>9} {'torch ms':>9} {'ratio':>7} {'goal':>6} {'shoal speed-up vs ' + threads[0] + ' thr':>22}")
for t, mine, ref, ratio, goal in rows:
    f = lambda v, p=3: f'{v:.{p}f}' if v is not None else '-'
    print(f"  {t:>13} {f(mine):>9} {f(ref):>9} {f(ratio):>7} {('<= ' + str(goal)) if goal else '-':>6} {base / mine:22.2f}")
json.dump(result, open(os.path.join(out, 'cpu_ratios.json'), 'w'), indent=1)
PY
echo "== per-op time (first run of each thread count):"
for t in $THREADS; do
  echo "-- threads $t"; sed -n '/time per op/,$p' "$OUT/shoal_t${t}_r1.log" | sed -n '2,9p'
done
echo "== done in $(elapsed) s; results in $OUT"
