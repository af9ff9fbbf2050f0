# The two commands: `make serve` starts runstatus, `make test` runs every test.
# Both set up what they need (a virtualenv in .venv with pinned tools) first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
GRPCURL_VERSION := v1.9.3

.PHONY: setup serve test check generate contract fresh clean bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# grpcurl, for the reflection test: a real third-party client.
$(TOOLS)/grpcurl:
	GOBIN=$(abspath $(TOOLS)) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

serve: setup
	$(BIN)/runstatus serve $(ARGS)

generate: setup
	$(BIN)/buf generate

contract: setup
	scripts/check-contract.sh

fresh: setup
	scripts/check-generated.sh

test: setup $(TOOLS)/grpcurl contract fresh
	PATH="$(abspath $(TOOLS)):$$PATH" $(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .tools
