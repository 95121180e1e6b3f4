# The README's commands. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPMSTAMP := node_modules/.installed

.PHONY: demo test test-slow lint typecheck unit bench clean nginx

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

## nginx: the Debian nginx that the canary tests start on loopback (installed when missing; CI is root).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx)

## test: lint, types and the whole main test suite (starts and stops Azurite and nginx itself).
test: $(STAMP) $(NPMSTAMP) nginx
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" -q

## test-slow: the suites marked slow (large replays, soak).
test-slow: $(STAMP) $(NPMSTAMP)
	$(BIN)/pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the benchmarks in bench/, each printing a ratio against a same-run baseline.
bench: $(STAMP) nginx
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache
