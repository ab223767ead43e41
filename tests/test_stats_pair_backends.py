"""PairState on TensorFlow and JAX arrays, eagerly and compiled, against compare(test="t") on NumPy
(a state has sums only: Hall's t, as compare gives by that name).

A stream carries several CAM sets per batch; the per-pair state must update inside
``tf.function`` and ``jax.jit`` (``nan_policy='omit'``, no Python branch on values).
"""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import PairState, compare

pytest.importorskip("scipy.stats")
METRICS = ("average_drop", "average_increase", "average_gain")


def three_vectors():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.05, 1.0, 64)
    o_a = rng.uniform(0.0, 1.0, 64)
    o_b = o_a.copy()
    o_b[:40] = rng.uniform(0.0, 1.0, 40)
    o_b[3] = np.nan  # skipped under 'omit'
    return y, o_a, o_b


def assert_same_comparison(state, rel):
    y, o_a, o_b = three_vectors()
    expected = compare(y, o_a, o_b, nan_policy="omit", test="t")
    got = state.result()
    assert (got.n, got.skipped) == (expected.n, expected.skipped) == (63, 1)
    for name in METRICS:
        assert got.difference[name] == pytest.approx(expected.difference[name], rel=rel, abs=rel)
        assert got.ci[name] == pytest.approx(expected.ci[name], rel=rel, abs=rel)
        assert got.p_value[name] == pytest.approx(expected.p_value[name], rel=rel, abs=rel)
    # ties (scores within 32 float32 ulps) are decided on the device as in NumPy
    assert got.notes[0].startswith("sums only")


def test_tensorflow_eager_and_traced():
    tf = pytest.importorskip("tensorflow")
    vectors = [tf.constant(v) for v in three_vectors()]  # float64
    assert_same_comparison(PairState.empty().update(*vectors, nan_policy="omit"), 1e-9)
    traced = tf.function(lambda y, a, b: PairState.empty().update(y, a, b, nan_policy="omit"))
    assert_same_comparison(traced(*vectors), 1e-9)


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    vectors = [jnp.asarray(v) for v in three_vectors()]  # float32 unless x64 is on
    compiled = jax.jit(lambda y, a, b: PairState.empty().update(y, a, b, nan_policy="omit"))
    assert_same_comparison(compiled(*vectors), 1e-4)
