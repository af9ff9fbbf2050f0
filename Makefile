# The two commands: `make serve` starts runstatus, `make test` runs every test.
# Both set up what they need first: a virtualenv in .venv with pinned Python tools, and
# for code generation and the cross-language contract suite, pinned Go tools in
# .tools/bin, the TypeScript client's npm packages, and the Java client's Maven build.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := $(abspath .tools/bin)
GRPCURL_VERSION := v1.9.3
GHZ_VERSION := v0.93.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: setup tools postgres serve serve-postgres test lint unit generate contract fresh cross-language bench clean \
	pytest-sqlite pytest-postgres cross-language-sqlite cross-language-postgres

setup: $(VENV)/.installed

# Two distributions, from this checkout: the client (clients/python: `runstatus`) and the
# server (this folder: `runstatus-server`, which depends on the client).
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	touch $@

# grpcurl, for the reflection test: a real third-party client.
$(TOOLS)/grpcurl:
	GOBIN=$(TOOLS) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

clients/ts/node_modules/.installed: clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# PostgreSQL's programs, for the tests on PostgreSQL: Debian's package, installed when initdb
# is missing (as root; scripts/postgres.py). The tests start a throwaway cluster of their own.
postgres: setup
	$(BIN)/python scripts/postgres.py --install

# Everything `buf generate` runs (buf.gen.yaml) and the tests call.
tools: setup $(TOOLS)/grpcurl $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc clients/ts/node_modules/.installed

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

# The contract suite in Go, TypeScript and Java, against one server (Python's runs in pytest too),
# on SQLite; cross-language-postgres: against a server on PostgreSQL.
cross-language: cross-language-sqlite

cross-language-sqlite cross-language-postgres: cross-language-%: tools
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=$* $(BIN)/python tests/contract/run_all.py

# Types and formatting in every language.
lint: tools
	$(BIN)/mypy clients/python/runstatus
	cd clients/go && test -z "$$(gofmt -l .)" && go vet ./...
	cd clients/ts && npm run --silent typecheck

# Each client's own unit tests (no server needed).
unit: tools
	cd clients/go && go test ./...
	cd clients/ts && npm test --silent
	cd clients/java && mvn -q -B test

# The pytest suite against servers on SQLite and on PostgreSQL at once (two jobs: most of a
# test is waiting on servers; RUNSTATUS_TEST_DB, tests/harness.py), then the contract suite
# against each in turn (its Java runner builds in clients/java: one build at a time). Tests
# about SQLite itself run in the SQLite run only (sqlite_only), those about PostgreSQL itself
# in the PostgreSQL one (postgres).
test: tools postgres contract fresh lint unit
	$(MAKE) --no-print-directory -j2 --output-sync=target pytest-sqlite pytest-postgres
	$(MAKE) --no-print-directory cross-language-sqlite cross-language-postgres

pytest-sqlite: tools
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=sqlite $(BIN)/pytest -m "not postgres" $(PYTEST_ARGS)

pytest-postgres: tools postgres
	PATH="$(TOOLS):$$PATH" RUNSTATUS_TEST_DB=postgres $(BIN)/pytest $(PYTEST_ARGS)

# The benchmark (not a test): runstatus beside a bare grpcio server, load from ghz.
$(TOOLS)/ghz:
	GOBIN=$(TOOLS) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: tools $(TOOLS)/ghz $(VENV)/.bench-installed
	PATH="$(TOOLS):$$PATH" $(BIN)/python scripts/bench.py $(ARGS)

clean:
	rm -rf $(VENV) .tools clients/ts/node_modules
