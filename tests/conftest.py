"""Shared test setup: Hypothesis profiles, the ``backend`` fixture and the xplique oracle.

Hypothesis profiles (pick one with the environment variable ``HYPOTHESIS_PROFILE``):

- ``dev`` (default): Hypothesis' own defaults, random examples, the example database on.
- ``ci``: derandomised (the same examples on every run, so CI cannot flake on a lucky draw),
  a modest number of examples, no deadline (TensorFlow's first eager call of an op is slow).

The ``backend`` fixture follows SciPy's ``xp`` fixture: it is parametrised over every backend
camavg knows and skips the ones whose framework (or camavg adapter) is not installed, so the
suite passes with NumPy alone.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest
from hypothesis import settings

# TensorFlow's C++ start-up chatter is noise in test logs; set before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

settings.register_profile("dev")
settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

BACKEND_NAMES = ("numpy", "tensorflow", "jax")

# what each backend needs importable: (framework module, camavg backend module)
_BACKEND_REQUIREMENTS = {
    "numpy": ("numpy", "camavg_core.backends"),
    "tensorflow": ("tensorflow", "camavg_tf.backend"),
    "jax": ("jax", "camavg_jax.backend"),
}


def _skip_unless_importable(module_name: str) -> None:
    """Skip when ``module_name`` itself is missing; any other import error is a real failure."""
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            pytest.skip(f"{module_name} is not importable (not installed, or not written yet)")
        raise


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def backend(request):
    """A camavg ``Backend`` for each installed framework (session-scoped: backends are
    stateless, and Hypothesis rejects function-scoped fixtures in ``@given`` tests)."""
    from camavg_core import resolve_backend

    for module_name in _BACKEND_REQUIREMENTS[request.param]:
        _skip_unless_importable(module_name)
    return resolve_backend(request.param)


def _points_tolerance(compute_dtype: str) -> float:
    """Absolute tolerance, in percentage points, for a metric computed in ``compute_dtype``.

    A per-sample term is a few roundings (a subtraction, an addition of eps, a division) away
    from the exact value, each within half an ulp, and lies in [0, 1] when Y_c is a
    probability; the mean keeps that bound. Four ulps of the compute dtype, times 100 for
    percent: about 5e-5 points in float32, 1e-13 in float64 (allowed 1e-9 for summation order).
    """
    if compute_dtype == "float64":
        return 1e-9
    return 100 * 4 * float(np.finfo(np.float32).eps)


@pytest.fixture(scope="session")
def points_tolerance():
    """The function ``compute_dtype -> tolerance in points`` (see ``_points_tolerance``)."""
    return _points_tolerance


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """The demo's CNN, trained once per test session into a private cache and shared by every
    test that needs a trained model: ``(model, was_trained, cache_dir)``."""
    pytest.importorskip("tensorflow")
    from camavg_tf.app import demo

    cache_dir = tmp_path_factory.mktemp("camavg-cache")
    model, was_trained = demo.load_or_train(cache_dir)
    return model, was_trained, cache_dir


@pytest.fixture(scope="session")
def linear_softmax_problem():
    """The function ``(seed, shape, classes, cam_decimals=None) -> (images, cams, weights, bias,
    labels)``: float32 images of ``shape`` (N, H, W, C) and (N, H, W) CAMs in [0, 1) (rounded to
    ``cam_decimals``, which makes many ties), the weights (H * W * C, classes) and bias of a
    softmax layer on the flattened image, and integer labels; drawn in that order from
    ``default_rng(seed)``, so each test module keeps the numbers it had."""
    def make(seed: int, shape: tuple, classes: int, cam_decimals: int | None = None) -> tuple:
        rng = np.random.default_rng(seed)
        n, height, width, channels = shape
        images = rng.random(shape).astype(np.float32)
        cams = rng.random((n, height, width))
        cams = (cams if cam_decimals is None else np.round(cams, cam_decimals)).astype(np.float32)
        weights = rng.normal(size=(height * width * channels, classes)).astype(np.float32)
        bias = rng.normal(size=classes).astype(np.float32)
        labels = rng.integers(0, classes, n)
        return images, cams, weights, bias, labels

    return make


@pytest.fixture(scope="session")
def run_threads():
    """The function ``(worker, count)``: runs ``worker(index)`` in ``count`` threads that start
    together (a barrier), waits for all, and fails on the first worker's exception, which
    pytest alone would only warn about."""
    import threading

    def run(worker, count: int) -> None:
        errors, barrier = [None] * count, threading.Barrier(count)

        def guarded(index: int) -> None:
            try:
                barrier.wait()
                worker(index)
            except BaseException as exc:  # re-raised in the test's own thread below
                errors[index] = exc

        threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for index, error in enumerate(errors):
            if error is not None:
                raise AssertionError(f"worker {index} raised {error!r}") from error

    return run


@pytest.fixture
def xplique_metrics():
    """xplique 2.0.2's ``xplique.metrics``, an oracle: from the directory ``CAMAVG_XPLIQUE_DIR``
    names (installed beside the project, see docs/faithfulness-curves.md), appended after
    site-packages so that its own requirements never replace the project's TensorFlow or SciPy;
    the test is skipped, saying so, without it."""
    directory = os.environ.get("CAMAVG_XPLIQUE_DIR")
    if not directory:
        pytest.skip("set CAMAVG_XPLIQUE_DIR to a directory holding xplique 2.0.2 to run this oracle "
                    "(docs/faithfulness-curves.md)")
    if directory not in sys.path:
        sys.path.append(directory)
    return pytest.importorskip("xplique.metrics")
