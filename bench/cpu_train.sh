#!/usr/bin/env bash
# The reference workload on the CPU interpreter: the seed's MNIST CNN, 5 epochs, batch 64,
# Adam, on the bundled data. Runs it N times (default 3), prints each run's training time,
# test accuracy and median step, then the per-op breakdown of the last run.
#   bench/cpu_train.sh [N] [shoal binary]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
shoal=${2:-build/shoal}
out=$(mktemp -d)
for i in $(seq 1 "$n"); do
  "$shoal" run examples/mnist_cnn.mmd --device cpu --seed 0 --report "$out/r$i.json" --profile >"$out/log$i" 2>&1
  python3 - "$out/r$i.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"run: train_seconds {r['train_seconds']:.2f}  step_ms_median {r['step_ms_median']:.2f}  test_accuracy {r['test_accuracy']:.4f}  device {r['device']}")
PY
done
echo "per-op time of the last run:"
sed -n '/time per op/,$p' "$out/log$n" | tail -n +2
rm -rf "$out"
