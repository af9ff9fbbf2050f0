#!/usr/bin/env bash
# The contract checks: buf lint, buf format and buf breaking. Breaking is
# checked against the working tree's HEAD and against every recent commit
# that touched proto/, so no shipped field or enum value is ever renumbered or
# removed, whichever commit shipped it.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=.venv/bin/buf
$buf lint
$buf format --diff --exit-code
echo "buf lint, buf format: ok"
if ! git rev-parse -q --verify HEAD >/dev/null 2>&1; then
  echo "buf breaking: no commit yet, nothing to compare with"
  exit 0
fi
checked=0
for commit in $(git log --format=%H -n "${BREAKING_DEPTH:-25}" HEAD -- proto buf.yaml); do
  git cat-file -e "$commit:buf.yaml" 2>/dev/null || continue
  $buf breaking --against ".git#ref=$commit"
  checked=$((checked + 1))
done
echo "buf breaking: ok against $checked commit(s) of proto/"
