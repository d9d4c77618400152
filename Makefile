# Centrex: `make run` serves, `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench bench-kamailio clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/centrex serve $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(PY) -m ruff check centrex tests bench
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint unit

bench: $(STAMP)
	$(PY) bench/parse.py

# Centrex side by side with Kamailio (issue 7); installs kamailio and sip-tester
# with apt-get when missing. BENCH_ARGS=--window 5 for a quick run; --help says more.
bench-kamailio: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
