#!/usr/bin/env bash
# Runs a GoogleTest binary as N processes (GoogleTest's own sharding: GTEST_TOTAL_SHARDS /
# GTEST_SHARD_INDEX), JOBS at a time (default: the cores available), a shard starting when one
# ends; each shard's output goes to LOGDIR/shard-<i>.log. The environment is the one ctest gives
# each test, read from test-environment beside the binary (tests/CMakeLists.txt writes it: the
# kernel cache under the build, the IR verified after every pass), the repository root the
# working directory.
#
# Why not ctest: ctest starts one process per test. Under ASan that start (the 215 MB test
# binary, the sanitizer's set-up, the leak check at exit) is ~0.45 s, 1,300 times: about 600 of
# CI's ~1,260 test-seconds under ASan were process starts. A shard runs its tests in one process,
# as `shoal_tests` run by hand does; a test that crashes takes its shard down, and the log's last
# "[ RUN      ]" line names it. More shards than cores even out the load: a shard holds every
# N-th test, and a few tests take a minute under ASan while most take milliseconds.
#
# Usage: [JOBS=J] [SHARD_TIMEOUT=S] scripts/gtest-shards.sh BINARY N LOGDIR [gtest flags...]
# Exit status 0 when every shard passed; otherwise each failing shard's failed tests (or, for a
# shard that ended early, its last test and the log's tail; for one that failed after all its
# tests passed, the sanitizer's report) are printed and the status is 1. SHARD_TIMEOUT (seconds,
# default 1800) bounds each shard.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then echo "usage: $0 BINARY N LOGDIR [gtest flags...]" >&2; exit 2; fi
binary=$1 shards=$2 logdir=$3
shift 3
jobs=${JOBS:-$(nproc)}
[ -x "$binary" ] || { echo "gtest-shards: $binary is not an executable" >&2; exit 2; }
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "gtest-shards: N must be a positive integer, got '$shards'" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "gtest-shards: JOBS must be a positive integer, got '$jobs'" >&2; exit 2; }
mkdir -p "$logdir"
rm -f "$logdir"/shard-*.log "$logdir"/shard-*.rc
environment=$(dirname "$binary")/test-environment
[ -f "$environment" ] || { echo "gtest-shards: $environment is missing (tests/CMakeLists.txt writes it when it configures the tests)" >&2; exit 2; }
while IFS= read -r assignment; do
  [[ "$assignment" =~ ^[A-Z_][A-Z0-9_]*= ]] || { echo "gtest-shards: $environment: not VAR=value: '$assignment'" >&2; exit 2; }
  export "$assignment"
done <"$environment"
start=$(date +%s)

run_shard() {
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$1 timeout "${SHARD_TIMEOUT:-1800}" \
    "$binary" "${@:2}" >"$logdir/shard-$1.log" 2>&1
  echo $? >"$logdir/shard-$1.rc"
}
running=0
for ((i = 0; i < shards; ++i)); do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  run_shard "$i" "$@" &
  running=$((running + 1))
done
wait

status=0
for ((i = 0; i < shards; ++i)); do
  log=$logdir/shard-$i.log
  rc=$(cat "$logdir/shard-$i.rc" 2>/dev/null || echo "?")
  passed=$(grep -c '^\[       OK \]' "$log")
  skipped=$(grep -c '^\[  SKIPPED \].* ms)$' "$log")
  if [ "$rc" = 0 ] && grep -q '^\[  PASSED  \]' "$log"; then
    echo "shard $i/$shards: $passed passed, $skipped skipped"
    continue
  fi
  status=1
  echo "shard $i/$shards: FAILED (exit $rc), log $log"
  grep '^\[  FAILED  \]' "$log" | grep -v -e ' ms)$' -e 'listed below' | sort -u | head -20
  if ! grep -q '^\[  PASSED  \]' "$log"; then
    echo "  the shard ended early; its last test: $(grep '^\[ RUN      \]' "$log" | tail -1 | sed 's/^\[ RUN      \] //')"
    tail -30 "$log" | sed 's/^/  | /'
  elif ! grep -q '^\[  FAILED  \]' "$log"; then
    # Every test passed and the process still failed: a sanitizer's report at exit (leaks).
    grep -E 'ERROR: |SUMMARY: |runtime error' "$log" | head -20 | sed 's/^/  | /'
  fi
done
echo "gtest-shards: $shards shards, $jobs at a time, in $(( $(date +%s) - start )) s"
exit $status
