#!/usr/bin/env bash
# Fails if regenerating the code from proto/ would change anything committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/buf generate --output "$tmp"
status=0
# Compare every generated file, and catch generated files whose proto is gone.
for dir in clients/python/runstatus/v1 clients/go/runstatus/v1 clients/ts/src/gen; do
  mkdir -p "$tmp/$dir"
  if ! diff -r -q -x '__init__.py' -x '__pycache__' "$tmp/$dir" "$dir"; then
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "generated code is stale: run 'make generate' and commit the result" >&2
fi
exit "$status"
