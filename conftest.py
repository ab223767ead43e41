"""Collection rules for the whole checkout; tests/conftest.py holds the tests' fixtures.

pyproject.toml collects the doctests of every package (``--doctest-modules``). An adapter's
modules import its framework, so an adapter whose framework is not installed is not collected:
with NumPy alone (``pip install -e ".[test]"``) pytest runs camavg_core's tests and doctests, and
the test files of an adapter skip themselves (``pytest.importorskip``).
"""

from __future__ import annotations

import importlib.util

# each adapter package and the framework its modules import
_ADAPTERS = {"camavg_tf": "tensorflow", "camavg_jax": "jax", "camavg_torch": "torch"}

# globs, not directory names: testpaths names the packages, and pytest does not ignore a path it
# was given, only what it finds inside
collect_ignore_glob = [f"{package}/*" for package, framework in _ADAPTERS.items()
                       if importlib.util.find_spec(framework) is None]
