# `make test` and `make demo` set everything up on a fresh machine: a virtual environment in
# .venv with camavg and what its tests need, then the tests or the demo.
#
#   make test        the whole suite (slow tests included), on two workers
#   make test-fast   the loop between edits: pytest -m "not slow"
#   make test-numpy  the suite in a second environment with NumPy alone (no TensorFlow, no JAX)
#   make lint        ruff
#
# pip's output goes to the environment's pip.log and is shown only when the install fails: a
# machine's own pip configuration can make pip print warnings that say nothing about camavg.
PYTHON ?= python3
VENV ?= .venv
VENV_NUMPY ?= .venv-numpy
PY := $(VENV)/bin/python
# the derandomised Hypothesis profile CI uses: the same examples on every run
export HYPOTHESIS_PROFILE ?= ci

.PHONY: test test-fast test-numpy lint demo bench compare clean python-version

# pyproject.toml's requires-python, said before pip says it less clearly
python-version:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make: camavg needs Python 3.11 or later; $(PYTHON) is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.11 ..."; exit 1; }

# Every extra the tests use (the `all` extra: TensorFlow, JAX, the command line's tools, pytest,
# ruff); not the benchmarks' asv, which `make bench` adds.
$(VENV)/.installed: pyproject.toml | python-version
	@$(PYTHON) -m venv $(VENV)
	@echo "installing camavg and its test tools into $(VENV) (log: $(VENV)/pip.log)"
	@{ $(PY) -m pip install --upgrade pip \
		&& $(PY) -m pip install torch==2.13.0 \
		&& $(PY) -m pip install -e ".[all]"; } > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log; echo "make: pip install failed; the log above is in $(VENV)/pip.log"; exit 1; }
	@touch $@

# NumPy and SciPy only: proves camavg_core stands alone (the adapters' tests and doctests are
# not collected without their framework, see conftest.py)
$(VENV_NUMPY)/.installed: pyproject.toml | python-version
	@$(PYTHON) -m venv $(VENV_NUMPY)
	@echo "installing camavg with NumPy alone into $(VENV_NUMPY) (log: $(VENV_NUMPY)/pip.log)"
	@{ $(VENV_NUMPY)/bin/python -m pip install --upgrade pip \
		&& $(VENV_NUMPY)/bin/python -m pip install -e ".[test]"; } > $(VENV_NUMPY)/pip.log 2>&1 \
		|| { cat $(VENV_NUMPY)/pip.log; echo "make: pip install failed; the log above is in $(VENV_NUMPY)/pip.log"; exit 1; }
	@touch $@

$(VENV)/.bench: $(VENV)/.installed
	@$(PY) -m pip install -e ".[all,bench]" > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log; echo "make: pip install failed; the log above is in $(VENV)/pip.log"; exit 1; }
	@touch $@

# two workers (pytest-xdist), as test-fast: on this 2-core machine the whole suite takes about
# 7.5 min on two (2026-12-06; 12-13 min in one process when it took 8 on two), and CI's
# .ci/run, installs and all three jobs, about 10 min (it should stay under 15)
test: $(VENV)/.installed
	$(PY) -m pytest -n 2

# two workers (pytest-xdist): the two cores of the machine this loop was sized on
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" -n 2

test-numpy: $(VENV_NUMPY)/.installed
	@$(VENV_NUMPY)/bin/python -c 'import importlib.util, sys; found = [m for m in ("tensorflow", "jax", "torch") if importlib.util.find_spec(m)]; sys.exit(f"make: the NumPy-only environment has {found}" if found else 0)'
	$(VENV_NUMPY)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

demo: $(VENV)/.installed
	$(VENV)/bin/camavg demo

bench: $(VENV)/.bench
	$(VENV)/bin/asv run --python=same --quick --show-stderr

compare: $(VENV)/.installed
	$(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) $(VENV_NUMPY) .pytest_cache .hypothesis camavg-report
