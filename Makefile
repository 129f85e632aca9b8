# Two commands set everything up: `make run` (demo API on 127.0.0.1:$(PORT)) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/clubfeed db upgrade
	$(BIN)/clubfeed demo --port $(PORT)
	$(BIN)/clubfeed serve --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# tests/test_feed_skew.py runs one API process an hour behind under libfaketime;
# tests/test_browser.py drives Debian's Chromium (never a downloaded browser).
unit: $(STAMP)
	@command -v faketime >/dev/null || { apt-get update -qq && apt-get install -y -qq faketime; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(BIN)/pytest

test: lint unit

# `make bench BENCH_ARGS="--rows 100000 --backends sqlite"` for a quick run.
bench: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) clubfeed.db clubfeed.db-wal clubfeed.db-shm
