# The two commands: `make serve` starts runstatus, `make test` runs every test.
# Both set up what they need first, every piece from a committed lock, so a clone installs
# the same tools and libraries today and next year:
#   Python   requirements/*.txt (pinned, with hashes; installed by uv, itself pinned by hash)
#   Go       tools/go.mod + go.sum (code generators, grpcurl, ocb), tools/otelcol/ (the test
#            collector: ocb's output and its go.mod + go.sum), tools/ghz/ (the benchmark's
#            load generator), clients/go/go.sum
#   npm      clients/ts/package-lock.json (npm ci)
#   Maven    clients/java/pom.xml (every plugin and dependency at a fixed version)
# `make lock` re-resolves them after a change to a dependency list; `make lock UPGRADE=1`
# moves everything to the newest versions the lists allow. Either is a commit of its own.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
TOOLS := $(abspath .tools/bin)
# uv reads the machine's certificate store (a proxy's CA, as pip does with its cert setting).
export UV_SYSTEM_CERTS := 1
export GOFLAGS := -buildvcs=false

.PHONY: setup tools otelcol otelcol-generate postgres serve serve-postgres test lint unit generate contract fresh cross-language bench bench-soak clean lock docs \
	pytest-sqlite pytest-postgres cross-language-sqlite cross-language-postgres

setup: $(VENV)/.installed

# The virtualenv holds exactly requirements/dev.txt (uv pip sync), then the two distributions
# of this checkout, editable and without resolving anything: the client (clients/python:
# `runstatus`) and the server (this folder: `runstatus-server`, which depends on the client).
$(VENV)/.installed: requirements/dev.txt requirements/uv.txt pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes requirements/dev.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e ./clients/python -e .
	touch $@

# Go tools at the versions tools/go.mod (and its go.sum) lock, built into .tools/bin.
GO_TOOLS := $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/grpcurl $(TOOLS)/builder
$(GO_TOOLS) &: tools/go.mod tools/go.sum
	cd tools && GOBIN=$(TOOLS) go install tool

# A real OpenTelemetry Collector for the tracing test (issue 32; tests/test_collector.py): OTLP in,
# a JSON file out. Made by the collector's own builder, ocb (`builder` above, from tools/go.mod),
# from tools/otelcol/builder-config.yaml; what ocb generates (main.go, components.go, go.mod,
# go.sum: the collector's lock) is committed, so this is a plain `go build` of those modules.
# `make otelcol-generate` reruns ocb after a change to the manifest: commit what it writes.
OTELCOL := $(TOOLS)/otelcol-runstatus
$(OTELCOL): tools/otelcol/builder-config.yaml tools/otelcol/go.mod tools/otelcol/go.sum $(wildcard tools/otelcol/*.go)
	cd tools/otelcol && go build -trimpath -o $@ .

otelcol: $(OTELCOL)

otelcol-generate: $(GO_TOOLS)
	cd tools/otelcol && $(TOOLS)/builder --config builder-config.yaml --skip-compilation

# The client distribution's locked dependencies as wheels (requirements/client.txt, by hash):
# tests/test_client_package.py installs the client from them offline, as a user's pip would.
WHEELS := .tools/wheels
$(WHEELS)/.downloaded: requirements/client.txt $(VENV)/.installed
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
		--dest $(WHEELS) -r requirements/client.txt
	touch $@

clients/ts/node_modules/.installed: clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Go client's modules in the module cache, its whole module graph's go.mod files with them
# (`go mod graph` reads each): the tests build programs that require the client with the network
# off, and such a program reads go.mod files that the client's own build never needs (those of
# dependencies older than Go 1.17's graph pruning, e.g. go-logr/stdr's logr v1.2.2).
GO_MODULES := .tools/go-modules.downloaded
$(GO_MODULES): clients/go/go.mod clients/go/go.sum
	cd clients/go && go mod download && go mod graph > /dev/null
	mkdir -p $(dir $@) && touch $@

# PostgreSQL's programs, for the tests on PostgreSQL: Debian's package, installed when initdb
# is missing (as root; scripts/postgres.py). The tests start a throwaway cluster of their own.
postgres: setup
	$(BIN)/python scripts/postgres.py --install

# Everything `buf generate` runs (buf.gen.yaml) and the tests call (grpcurl: a real
# third-party client, for the reflection test and the README's commands; otelcol-runstatus: a
# real OpenTelemetry Collector, for the tracing test; the Go modules the offline builds read).
tools: setup $(GO_TOOLS) $(OTELCOL) $(GO_MODULES) clients/ts/node_modules/.installed $(WHEELS)/.downloaded

# The history page on WEB_PORT (http://127.0.0.1:8080/); WEB_PORT=0 turns it off.
WEB_PORT ?= 8080
serve: setup
	$(BIN)/runstatus serve --web-port $(WEB_PORT) $(ARGS)

# The same on a throwaway PostgreSQL (installed if missing, removed when runstatus stops): for
# trying the PostgreSQL backend; `make serve` stays on SQLite.
serve-postgres: setup postgres
	$(BIN)/python scripts/postgres.py --serve $(BIN)/runstatus serve --web-port $(WEB_PORT) $(ARGS)

generate: tools
	PATH="$(TOOLS):$$PATH" $(BIN)/buf generate

contract: setup
	scripts/check-contract.sh

fresh: tools
	PATH="$(TOOLS):$$PATH" scripts/check-generated.sh

# Re-resolves every lock from the dependency lists (pyproject.toml files, requirements/*.in,
# tools/, clients/*): keeps what still fits unless UPGRADE=1. Review the diff, then commit it
# on its own; if a code generator moved, `make generate` and commit that too.
lock: setup
	UPGRADE=$(UPGRADE) scripts/lock.sh

# The contract suite in Go, TypeScript and Java, against one server (Python's runs in pytest too),
# on SQLite; cross-language-postgres: against a server on PostgreSQL.
cross-language: cross-language-sqlite

cross-language-sqlite cross-language-postgres: cross-language-%: tools
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=$* $(BIN)/python tests/contract/run_all.py

# Types and formatting in every language.
lint: tools
	$(BIN)/mypy clients/python/runstatus
	$(BIN)/mypy server/runstatus_server
	cd clients/go && test -z "$$(gofmt -l .)" && go vet ./...
	cd clients/ts && npm run --silent typecheck

# Each client's own unit tests (no server needed).
unit: tools
	cd clients/go && go test ./...
	cd clients/ts && npm test --silent
	cd clients/java && mvn -q -B test

# Every stage in turn, timed (scripts/stages.py prints each stage's wall time at the end, pass
# or fail): the pytest suite against servers on SQLite and on PostgreSQL at once (most of a
# test is waiting on servers; RUNSTATUS_TEST_DB, tests/harness.py), then the contract suite
# against each in turn (its Java runner builds in clients/java: one build at a time). Tests
# about SQLite itself run in the SQLite run only (sqlite_only), those about PostgreSQL itself
# in the PostgreSQL one (postgres).
test:
	$(PYTHON) scripts/stages.py setup tools postgres contract fresh lint unit \
		pytest-sqlite+pytest-postgres cross-language-sqlite cross-language-postgres

pytest-sqlite: tools
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=sqlite $(BIN)/pytest -m "not postgres" $(PYTEST_ARGS)

pytest-postgres: tools postgres
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=postgres $(BIN)/pytest $(PYTEST_ARGS)

# The benchmark (not a test): runstatus beside a bare grpcio server, load from ghz (its own
# lock in tools/ghz: it builds only against the older gRPC it asks for).
$(TOOLS)/ghz: tools/ghz/go.mod tools/ghz/go.sum
	cd tools/ghz && GOBIN=$(TOOLS) go install tool

$(VENV)/.bench-installed: $(VENV)/.installed requirements/bench.txt
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements/bench.txt
	touch $@

bench: tools $(TOOLS)/ghz $(VENV)/.bench-installed
	PATH="$(TOOLS):$$PATH" $(BIN)/python scripts/bench.py $(ARGS)

# The retention soak (issue 29; a benchmark, not a test): 15 minutes of steady writes against a
# server keeping ended work orders 2 minutes, pruning off for the first 3; the database's size,
# the writes and their p99 over time, plotted to docs/soak-BACKEND.png (scripts/soak.py).
#   make bench-soak                               # SQLite
#   make bench-soak ARGS="--backend postgres"     # a throwaway PostgreSQL
bench-soak: $(VENV)/.bench-installed postgres
	$(BIN)/python scripts/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .tools clients/ts/node_modules docs-api

# The clients' API references, as HTML: Python (pdoc) into docs-api/python, TypeScript (typedoc)
# into clients/ts/docs-api; Go's is its doc comments (`go doc`, pkg.go.dev), Java's the javadoc
# jar `mvn package` builds in clients/java/client/target.
docs: tools
	$(BIN)/pdoc runstatus runstatus.client runstatus.worker runstatus.errors runstatus.models runstatus.plan runstatus.status_table --docformat google -o docs-api/python
	cd clients/ts && npm run --silent docs

# Each client's example, run from its own folder (where its go.mod, package.json or pom.xml
# is) against the server at ADDRESS: start one first with `make serve`. The commands are the
# ones tests/test_examples.py runs (tests/test_readme.py checks that they stay so).
ADDRESS ?= 127.0.0.1:50051

.PHONY: example-go example-ts example-java

example-go:
	cd clients/go && go run ./cmd/example $(ADDRESS)

example-ts: clients/ts/node_modules/.installed
	cd clients/ts && npx --no-install tsx examples/example.ts $(ADDRESS)

example-java:
	cd clients/java && mvn -q -B compile exec:java -Dexec.mainClass=dev.runstatus.example.Example -Dexec.args=$(ADDRESS)
