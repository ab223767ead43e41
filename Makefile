# `make test` and `make demo` set everything up on a fresh machine: a virtual environment in
# .venv with camavg and what its tests need, then the tests or the demo.
#
# pip's output goes to $(VENV)/pip.log and is shown only when the install fails: a machine's own
# pip configuration can make pip print warnings that say nothing about camavg.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_LOG := $(VENV)/pip.log
# the derandomised Hypothesis profile CI uses: the same examples on every run
export HYPOTHESIS_PROFILE ?= ci

.PHONY: test demo bench compare clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV)
	@echo "installing camavg and its test tools into $(VENV) (log: $(PIP_LOG))"
	@{ $(PY) -m pip install --upgrade pip && $(PY) -m pip install torch==2.13.0 && $(PY) -m pip install -e ".[all]"; } > $(PIP_LOG) 2>&1 \
		|| { cat $(PIP_LOG); echo "make: pip install failed; the log above is in $(PIP_LOG)"; exit 1; }
	@touch $@

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
