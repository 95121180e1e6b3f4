# The README's commands. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPMSTAMP := node_modules/.installed

.PHONY: demo test test-slow lint typecheck unit bench clean

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

$(NPMSTAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## demo: the main job on the embedded local stack.
demo: $(STAMP)
	$(BIN)/certrotate demo

## test: lint, types (rotation/, tests/, bench/) and the whole main test suite under branch
## coverage, failing below [tool.coverage.report] fail_under (starts and stops Azurite itself).
test: $(STAMP) $(NPMSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -m "not slow" -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

## test-slow: the suites marked slow (large replays, soak).
test-slow: $(STAMP) $(NPMSTAMP)
	$(BIN)/pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the benchmarks in bench/, each printing a ratio against a same-run baseline.
bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
