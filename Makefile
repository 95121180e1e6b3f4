# The README's commands. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPMSTAMP := node_modules/.installed
# checkov has a large, pin-heavy dependency tree: it lives in its own venv, never in .venv.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    ?= .venv-checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: pins demo test test-slow lint typecheck unit bench checkov clean nginx

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[cli]' --group dev
	touch $@

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

$(NPMSTAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## pins: rewrite requirements.txt as the runtime closure of pyproject's dependencies, pinned.
pins:
	$(BIN)/pip install --quiet -e '.[cli]' --group dev
	$(BIN)/python scripts/pins.py

## demo: the main job on the embedded local stack.
demo: $(STAMP)
	$(BIN)/certrotate demo

## nginx: the Debian nginx that the canary tests start on loopback (installed when missing; CI is root).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx)

## test: lint, types (rotation/, tests/, bench/), checkov over infra/ and the whole main test suite
## under branch coverage, failing below [tool.coverage.report] fail_under (starts and stops
## Azurite and nginx itself).
test: $(STAMP) $(NPMSTAMP) checkov nginx
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -m "not slow" -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

## checkov: static analysis of the Bicep in infra/, offline; any failed check fails the build.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --directory infra --framework bicep --skip-download --compact --quiet

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
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
