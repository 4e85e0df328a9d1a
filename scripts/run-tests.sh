#!/usr/bin/env bash
# Runs the Node test runner over every *.test.ts under the given folders (Node 20's --test has no glob support).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find "$@" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files under: $*" >&2
  exit 1
fi
exec node --import tsx --test --test-reporter=spec "${files[@]}"
