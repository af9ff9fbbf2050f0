#!/usr/bin/env bash
# `make lock`: re-resolves every lock of the repository's own build and tests from its
# dependency lists. Keeps each pinned version that still fits; UPGRADE=1 moves everything to
# the newest versions the lists allow. Review the diff and commit it on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
upgrade=()
[ "${UPGRADE:-}" = 1 ] && upgrade=(--upgrade)

# Python: for CPython 3.11 on any platform, every file's hash. uv itself first (make setup
# installs it by hash before anything else), then the test environment, then what extends it.
compile() {
  .venv/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "make lock" "${upgrade[@]}" \
    --no-emit-package runstatus-client --no-emit-package runstatus-server "$1" -o "${1%.in}.txt"
}
compile requirements/uv.in
compile requirements/dev.in
compile requirements/bench.in
compile requirements/client.in

# Go: the code generators and grpcurl (tools/), ghz (tools/ghz: kept at the versions it
# asks for, it does not build against a newer gRPC), the Go client.
if [ "${UPGRADE:-}" = 1 ]; then (cd tools && go get -u tool); fi
(cd tools && go mod tidy)
(cd tools/ghz && go mod tidy)
(cd clients/go && go mod tidy)
# The test collector (tools/otelcol): ocb's output, at the release its manifest names. An
# upgrade of ocb (above) needs the manifest's versions raised to its release by hand, then
# `make otelcol-generate` (tests/test_collector.py checks that the two agree).
(cd tools/otelcol && go mod tidy)

# npm: package.json pins each direct dependency exactly; the lock pins the rest.
(cd clients/ts && if [ "${UPGRADE:-}" = 1 ]; then npm update --package-lock-only --no-audit --no-fund; \
  else npm install --package-lock-only --no-audit --no-fund; fi)

# Maven: pom.xml names every plugin and dependency at a fixed version; nothing to resolve.
git status --short -- requirements tools tools/otelcol clients/go/go.mod clients/go/go.sum clients/ts/package-lock.json
