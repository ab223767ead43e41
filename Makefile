# `make test` and `make demo` set everything up on a fresh machine: a virtual environment in
# .venv with camavg and what its tests need, then the tests or the demo.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test demo bench compare clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/camavg demo

bench: $(VENV)/.installed
	$(VENV)/bin/asv run --python=same --quick --show-stderr

compare: $(VENV)/.installed
	$(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis camavg-report
