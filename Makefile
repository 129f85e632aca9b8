# Two commands set everything up: `make run` (demo API on 127.0.0.1:$(PORT)) and `make test`.
# `make run` installs only what the service needs; the test tooling comes with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Test processes; every test run has its own databases, ports and Redis keys.
TEST_WORKERS ?= 2
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
RUNTIME := $(VENV)/.installed-runtime
TOOLING := $(VENV)/.installed-test

.PHONY: run test lint unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[server]'
	touch $@

$(TOOLING): $(RUNTIME)
	$(PIP) -e '.[test]'
	touch $@

run: $(RUNTIME)
	$(BIN)/clubfeed db upgrade
	$(BIN)/clubfeed demo --port $(PORT)
	$(BIN)/clubfeed serve --port $(PORT)

lint: $(TOOLING)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# tests/test_feed_skew.py runs one API process an hour behind under libfaketime;
# tests/test_browser.py drives Debian's Chromium (never a downloaded browser);
# tests/test_deploy_nginx.py runs Debian's nginx with the site in deploy/ (a package that
# starts its default site on port 80 where no policy-rc.d forbids it is stopped again).
unit: $(TOOLING)
	@command -v faketime >/dev/null || { apt-get update -qq && apt-get install -y -qq faketime; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx && { /usr/sbin/nginx -s quit 2>/dev/null || true; }; }
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

test: lint unit

# `make bench BENCH_ARGS="--rows 100000 --backends sqlite"` for a quick run.
# The small-request load comes from wrk, Debian's package.
bench: $(TOOLING)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PIP) -e '.[test,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) clubfeed.db clubfeed.db-wal clubfeed.db-shm
