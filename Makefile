# Centrex: `make run` serves, `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit native bench bench-kamailio clean FORCE

# The hot modules compiled with mypyc (centrex/native.py: the SIP message
# core, the transaction layer, the registrar, the proxy's core...): built
# again whenever a source of the package changes (a compiled module checks
# the types of what it imports at run time); where that fails (no C
# compiler), Centrex runs them as Python and says so, and `make native` tries
# again (an attempt is not repeated by every `make run` / `make test`). Which
# build runs is decided at import, from centrex/_compiled/native.json.
NATIVE := build/native.attempt
NATIVE_SOURCES := $(shell find centrex -name '*.py' -not -path '*/_compiled/*' -not -name '.*')
# The list of those sources, rewritten only when it changes: a source deleted
# or renamed rebuilds too (the build is bound to the whole list).
NATIVE_LIST := build/native.sources
# The tests of the compiled modules and of the server around them, run
# again as pure Python by `make test` (what runs where no C compiler is).
PURE_TESTS := tests/sip tests/transaction tests/registrar tests/proxy tests/transport \
	tests/server tests/presence tests/auth tests/logs tests/test_directory.py \
	tests/test_native.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NATIVE_LIST): FORCE
	@mkdir -p build
	@echo '$(sort $(NATIVE_SOURCES))' | cmp -s - $@ || echo '$(sort $(NATIVE_SOURCES))' > $@

$(NATIVE): $(STAMP) $(NATIVE_SOURCES) $(NATIVE_LIST)
	@mkdir -p build
	@if $(PY) -m centrex.native_build build >build/native.log 2>&1; then \
		echo "compiled modules built (mypyc)"; \
	else \
		echo "compiled modules not built, running them as Python: see build/native.log"; \
	fi
	@touch $(NATIVE)

native:
	@rm -f $(NATIVE)
	@$(MAKE) --no-print-directory $(NATIVE)

run: $(STAMP) $(NATIVE)
	$(VENV)/bin/centrex serve $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(PY) -m ruff check centrex tests bench
	$(PY) -m mypy

unit: $(STAMP) $(NATIVE)
	$(PY) -m pytest -q
	CENTREX_PURE_PYTHON=1 $(PY) -m pytest -q -p no:cacheprovider $(PURE_TESTS)

test: lint unit

bench: $(STAMP) $(NATIVE)
	$(PY) bench/parse.py

# Centrex side by side with Kamailio (issue 7); installs kamailio and sip-tester
# with apt-get when missing. BENCH_ARGS=--window 5 for a quick run; --help says more.
bench-kamailio: $(STAMP) $(NATIVE)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache centrex/_compiled \
		centrex/sip/_compiled
	rm -f centrex/*/*.so centrex/sip/native.json
