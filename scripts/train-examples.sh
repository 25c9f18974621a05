#!/usr/bin/env bash
# Trains the example networks on the CPU (--seed 0) and fails unless each reaches its test
# accuracy target: resnet_mnist 98%, mobilenet_mnist 96%, transformer_mnist 95%. Builds the CLI
# first (the default preset's build/, as configured) unless SHOAL names a binary. Extra
# arguments go to every `shoal run` (e.g. --device gpu).
#   scripts/train-examples.sh [--device cpu|gpu ...]
set -euo pipefail
cd "$(dirname "$0")/.."
shoal=${SHOAL:-}
if [[ -z $shoal ]]; then
  cmake --preset default >/dev/null
  cmake --build --preset default --target shoal_cli >/dev/null
  shoal=./build/shoal
fi
device=(--device cpu)
[[ " $* " == *" --device "* ]] && device=()

targets=("resnet_mnist 0.98" "mobilenet_mnist 0.96" "transformer_mnist 0.95")
failed=0
summary=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  read -r name target <<<"$t"
  start=$(date +%s.%N)
  if ! "$shoal" run "examples/$name.mmd" "${device[@]}" --seed 0 "$@" >"$log" 2>&1; then
    cat "$log" >&2
    summary+=("$(printf '%-18s %8s %8s %8s  FAILED (shoal run exited with an error)' "$name" - "$target" -)")
    failed=1
    continue
  fi
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  acc=$(sed -n 's/^test accuracy \([0-9.]*\).*/\1/p' "$log" | tail -1)
  verdict=ok
  if [[ -z $acc ]] || awk -v a="$acc" -v t="$target" 'BEGIN { exit !(a < t) }'; then
    verdict="FAILED (below the target)"
    failed=1
  fi
  summary+=("$(printf '%-18s %8s %8s %8.1f  %s' "$name" "${acc:-?}" "$target" "$secs" "$verdict")")
  echo "$name: test accuracy ${acc:-?} (target $target) in $secs s" >&2
done
printf '%-18s %8s %8s %8s\n' example accuracy target seconds
printf '%s\n' "${summary[@]}"
exit $failed
