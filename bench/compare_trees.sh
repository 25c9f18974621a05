#!/usr/bin/env bash
# Times two source trees of shoal side by side on one GPU, in one call: builds shoal_bench in
# each, then runs them alternately (A, B, A, B) so drift in the card's state hits both, and
# prints each summary figure's median and the ratio B/A. For "the change did not slow the
# GPU path": A = the tree before (e.g. `git archive <rev>` unpacked), B = this tree.
#   bench/compare_trees.sh TREE_A [TREE_B=.] [ROUNDS=2]      (logs and JSON in $OUT)
set -uo pipefail
A=$(cd "$1" && pwd); B=$(cd "${2:-.}" && pwd); ROUNDS=${3:-2}
OUT=${OUT:-/tmp/shoal-compare}
mkdir -p "$OUT"
for t in A B; do
  dir=${!t}
  (cmake -S "$dir" -B "$dir/build-cmp" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHOAL_BUILD_BENCH=ON -DSHOAL_BUILD_TESTS=OFF &&
   ninja -C "$dir/build-cmp" -j"$(nproc)" shoal_bench shoal_cli) >"$OUT/build_$t.log" 2>&1 ||
    { echo "build of $t ($dir) failed"; tail -20 "$OUT/build_$t.log"; exit 1; }
done
export SHOAL_CACHE_DIR=${SHOAL_CACHE_DIR:-$OUT/kernel-cache}
for r in $(seq 1 "$ROUNDS"); do
  for t in A B; do
    dir=${!t}
    (cd "$dir" && ./build-cmp/shoal_bench --device cuda --json "$OUT/${t}_$r.json" >"$OUT/${t}_$r.log" 2>&1) ||
      { echo "shoal_bench $t round $r failed"; tail -20 "$OUT/${t}_$r.log"; exit 1; }
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {t: [json.load(open(os.path.join(out, f"{t}_{r}.json")))["summary"] for r in range(1, rounds + 1)] for t in "AB"}
keys = [k for k in runs["A"][0] if isinstance(runs["A"][0][k], (int, float)) and k in runs["B"][0]]
rows = {}
print(f"{'figure':44} {'A':>10} {'B':>10} {'B/A':>7}   (medians of {rounds} rounds; spread A, B)")
for k in keys:
    a = [r[k] for r in runs["A"]]; b = [r[k] for r in runs["B"]]
    ma, mb = statistics.median(a), statistics.median(b)
    rows[k] = dict(A=a, B=b, ratio=mb / ma if ma else None)
    spread = lambda v: (max(v) - min(v)) / statistics.median(v) if statistics.median(v) else 0
    print(f"{k:44} {ma:10.4f} {mb:10.4f} {mb / ma if ma else float('nan'):7.3f}   ({spread(a):.1%}, {spread(b):.1%})")
json.dump(rows, open(os.path.join(out, "compare.json"), "w"), indent=1)
PY
