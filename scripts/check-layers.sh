#!/usr/bin/env bash
# Checks the layer rules of cmake/layers.txt over the sources: each folder includes only the
# folders its line names (and itself); nothing includes through "../"; the public headers
# (include/shoal) include only each other and the standard library. Exit status 1 on a
# violation, naming the file, line and include. The build enforces the same rules (each layer
# compiles against only its allowed folders); this script says so without building.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed
layers=()
while IFS= read -r line; do
  [[ "$line" =~ ^([a-z]+):(.*)$ ]] || continue
  layer=${BASH_REMATCH[1]}
  layers+=("$layer")
  allowed[$layer]=" $layer ${BASH_REMATCH[2]} "
done < cmake/layers.txt

status=0
report() { echo "$1"; status=1; }

for layer in "${layers[@]}"; do
  [ -d "$layer" ] || continue
  while IFS= read -r hit; do
    file=${hit%%:*}; rest=${hit#*:}; lineno=${rest%%:*}; text=${rest#*:}
    [[ "$text" =~ \#include[[:space:]]*\"([^\"]+)\" ]] || continue
    path=${BASH_REMATCH[1]}
    if [[ "$path" == ../* || "$path" == */../* ]]; then
      report "$file:$lineno: includes \"$path\" through '..' (write the path from the source root)"
      continue
    fi
    top=${path%%/*}
    [[ "$path" == */* ]] || { report "$file:$lineno: includes \"$path\" without its folder"; continue; }
    if [[ "${allowed[$layer]}" != *" $top "* ]]; then
      report "$file:$lineno: $layer/ may not include \"$path\" (cmake/layers.txt: $layer may use:${allowed[$layer]% })"
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$layer" --include='*.h' --include='*.cpp' --include='*.def' --include='*.inc' || true)
done

# Public headers: only siblings and the standard library.
while IFS= read -r hit; do
  file=${hit%%:*}; rest=${hit#*:}; lineno=${rest%%:*}; text=${rest#*:}
  if [[ "$text" =~ \#include[[:space:]]*\"([^\"]+)\" ]]; then
    path=${BASH_REMATCH[1]}
    [[ "$path" == */* || ! -f "include/shoal/$path" ]] && report "$file:$lineno: public header includes \"$path\" (only other include/shoal headers)"
  elif [[ "$text" =~ \#include[[:space:]]*\<([^\>]+)\> ]]; then
    path=${BASH_REMATCH[1]}
    [[ "$path" == */* && "$path" != shoal/* ]] && report "$file:$lineno: public header includes <$path> (only the standard library and <shoal/...>)"
  fi
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include' include/shoal || true)

if [ $status -eq 0 ]; then echo "check-layers: ok (${#layers[@]} layers)"; fi
exit $status
