#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (preset `fuzz`: clang-16, ASan + UBSan) and runs
# each for SECONDS (default 60), two at a time. Seeds come from tests/fuzz/corpus/<harness> and
# tests/fuzz/regressions/<harness>;
# what a run discovers is kept in <build>/corpus/<harness> (build-fuzz/ by default) for the next run. A crash, leak,
# timeout, sanitizer report or broken property stops that harness with the input saved as
# <build>/artifacts/<harness>-*: copy it into tests/fuzz/regressions/<harness>/ (the unit
# tests replay that folder) and fix the bug. Exit status 1 when any harness failed.
# FUZZ_SEED=N fixes libFuzzer's seed: CI uses one, so a run explores the same inputs as the
# same command did before the change landed (a longer local run with that seed covers CI's);
# without it every run explores new ground.
# FUZZ_BUILD=DIR runs the harnesses an existing clang build made (the asan preset builds them
# too: CI's sanitizer build serves both) instead of building the preset `fuzz`; the corpora and
# artifacts then live under DIR.
# Usage: [FUZZ_SEED=N] [FUZZ_BUILD=DIR] scripts/fuzz.sh [SECONDS] [HARNESS...]   (harnesses: mermaid ir safetensors idx kernel_cache onnx)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(mermaid ir safetensors idx kernel_cache onnx)

out=${FUZZ_BUILD:-build-fuzz}
if [ -z "${FUZZ_BUILD:-}" ]; then
  command -v clang++-16 >/dev/null || scripts/install-deps.sh --fuzz
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz
fi
for name in "${harnesses[@]}"; do
  [ -x "$out/tests/fuzz/fuzz_$name" ] || { echo "fuzz: $out/tests/fuzz/fuzz_$name missing (a clang build with SHOAL_BUILD_FUZZERS=ON)"; exit 1; }
done
mkdir -p "$out/artifacts"

# Each harness runs pinned to one core (two at a time, on cores 0 and 1): shoal's CPU backend
# then runs one thread, so coverage, and with FUZZ_SEED the whole sequence of inputs, does not
# depend on thread scheduling.
cores=$(nproc)
pin() {
  if command -v taskset >/dev/null; then taskset -c "$(( $1 % cores ))" "${@:2}"; else "${@:2}"; fi
}

fuzz() {
  local name=$1 slot=$2 log=$out/fuzz-$1.log
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$out/artifacts/$name-")
  [ -f "tests/fuzz/dict/$name.dict" ] && args+=(-dict="tests/fuzz/dict/$name.dict")
  [ -n "${FUZZ_SEED:-}" ] && args+=(-seed="$FUZZ_SEED")
  mkdir -p "$out/corpus/$name"
  # libFuzzer exits on a corpus folder that does not exist; git keeps no empty folders.
  local dirs=("$out/corpus/$name")
  for d in "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     pin "$slot" "$out/tests/fuzz/fuzz_$name" "${args[@]}" "${dirs[@]}" >"$log" 2>&1; then
    echo "fuzz $name: $(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | head -1)s, $(grep -o 'new_units_added: *[0-9]*' "$log" | tr -s ' ') (corpus $out/corpus/$name)"
  else
    echo "fuzz $name: FAILED; log $log, input $out/artifacts/$name-*"
    grep -E 'ERROR|SUMMARY|property broken|runtime error|Test unit written|exiting' "$log" | head -20
    return 1
  fi
}

status=0
pids=()
slot=0
for name in "${harnesses[@]}"; do
  fuzz "$name" "$slot" &
  slot=$(( (slot + 1) % 2 ))
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
