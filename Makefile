# Omnitill: `make demo` runs the whole store on one machine, `make test` passes the tests.
# Both create .venv when missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= server,till,sim,postgres,dev
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?=
DEMO_DIR ?= demo-store

export QT_QPA_PLATFORM ?= offscreen

.PHONY: help demo test test-slow lint format typecheck pytest bench bench-full clean install screenshots

help:
	@echo "make demo    run the demo store on this machine"
	@echo "make test    lint, type-check and run the test suite (as CI does)"
	@echo "make lint    ruff lint and format check"
	@echo "make bench   run the benchmarks; writes bench/results.json and docs/benchmarks.md"
	@echo "make screenshots  render the till and kiosk screens to docs/img/*.png (offscreen)"

$(STAMP): pyproject.toml scripts/bootstrap.sh
	@scripts/bootstrap.sh $(PYTHON) $(VENV)
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/omnitill demo --dir $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

bench-full: $(STAMP)
	$(BIN)/python -m bench --full

screenshots: $(STAMP)
	$(BIN)/python -m edge_agent.ui.screenshots --out docs/img

test-slow: $(STAMP)
	$(BIN)/python -m pytest --run-slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
