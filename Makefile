# Everything a fresh machine needs goes through these targets (.ci/run calls `make test`).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: help install demo serve test test-unit lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed node_modules/.installed ## Create .venv and install the project with its test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Azurite, the Azure Blob server of the tests (Node.js package; 3.35 is the last for Node 20).
node_modules/.installed: package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.installed ## Export the bundled SQLite demo into ./demo-out in every format
	$(BIN)/exports demo --out demo-out

serve: $(VENV)/.installed ## Prefect server, work pool, prefect deploy --all and a worker (docs/schedules.md)
	BIN=$(BIN) bash deployments/triggers/serve.sh

test: install ## Run the whole test suite: the unit tier, then the rest (it starts its servers itself)
	$(BIN)/pytest -m unit
	$(BIN)/pytest -m "not unit and not solo" -n 2 --dist loadfile --durations=30
	$(BIN)/pytest -m solo --durations=10

test-unit: install ## Only the unit tier: pure tests, no server, about 30 s
	$(BIN)/pytest -m unit

lint: install ## ruff lint and format check, mypy --strict, the layer contracts (lint-imports)
	$(BIN)/ruff check flows blocks deployments demo tests bench
	$(BIN)/ruff format --check flows blocks deployments demo tests bench README.md
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: install ## Export 2M PostgreSQL rows in every format against COPY (see docs/benchmarks.md)
	$(BIN)/python -m bench.export_bench

clean: ## Remove the venv and generated output
	rm -rf $(VENV) demo-out out bench/results
