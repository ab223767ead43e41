"""The per-sample terms compiled by XLA (``jax.jit``, TensorFlow's ``jit_compile``) against the
float64 NumPy reference of tests/reference.py, on float32 scores where a reassociated expression
would show: Y within a few hundred float32 ulps of 1, where XLA once folded the gain's
``(1 - Y) + eps`` into ``(1 + eps) - Y`` (1 + eps rounds to 1 + 1.19e-7: up to 11% off).

Each term is a few float32 roundings of exact operations (1 - Y and O - Y are exact near 1 by
Sterbenz' lemma), so it lies within 4 float32 ulps of the float64 value, relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core.metrics import drop_terms, gain_terms, increase_terms
from reference import reference_terms

TERMS = {"average_drop": drop_terms, "average_increase": increase_terms, "average_gain": gain_terms}
RELATIVE = 4 * 2.0**-23


def scores() -> tuple[np.ndarray, np.ndarray]:
    """float32 (Y, O): Y from 1 down by one ulp (2**-24) at a time, and random probabilities;
    O at or above Y (so gain is positive) for half the samples, below for the others."""
    rng = np.random.default_rng(5)
    near_one = np.float32(1) - np.arange(300, dtype=np.float32) * np.float32(2.0**-24)
    y = np.concatenate([near_one, rng.uniform(1e-6, 1, 300).astype(np.float32), np.float32([0, 1e-7, 1e-6])])
    above = y + (1 - y) * rng.uniform(0, 1, y.size)
    below = y * rng.uniform(0, 1, y.size)
    o = np.where(np.arange(y.size) % 2 == 0, above, below).astype(np.float32)
    return y.astype(np.float32), o


def assert_near_reference(got: dict) -> None:
    y, o = scores()
    expected = reference_terms(y, o)
    for name, values in got.items():
        values = np.asarray(values, dtype=np.float64)
        np.testing.assert_allclose(values, expected[name], rtol=RELATIVE, atol=1e-30, err_msg=name)


@pytest.mark.slow
def test_terms_under_jax_jit_match_float64_numpy():
    jax = pytest.importorskip("jax")
    from camavg_core.backends import resolve_backend

    backend = resolve_backend("jax")
    y, o = scores()
    assert y.dtype == np.float32 and not jax.config.jax_enable_x64
    assert_near_reference({name: jax.jit(lambda a, b, f=terms: f(a, b, backend=backend))(y, o)
                           for name, terms in TERMS.items()})


@pytest.mark.slow
def test_terms_under_tf_jit_compile_match_float64_numpy():
    tf = pytest.importorskip("tensorflow")
    from camavg_core.backends import resolve_backend

    backend = resolve_backend("tensorflow")
    y, o = scores()
    compiled = {name: tf.function(lambda a, b, f=terms: f(a, b, backend=backend), jit_compile=True)
                for name, terms in TERMS.items()}
    assert_near_reference({name: f(tf.constant(y), tf.constant(o)).numpy() for name, f in compiled.items()})
