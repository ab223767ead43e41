"""The streaming state's sums at N = 10^6 (issue 20, item 6): float64 on the host and in
TensorFlow (eager and tf.function), compensated float32 in JAX without x64 (eager goes to the
host; jitted keeps a [sum, compensation] pair).

Oracle: NumPy's float64 sums of the reference terms (tests/reference.py) of the same float32
scores. A plain float32 running sum over the same batches is shown to be off by more than ten
times each tolerance, so the tests can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import MetricState
from reference import reference_terms

N = 10**6
RNG = np.random.default_rng(2026)
# few distinct terms (drop 1/6, 1/3 or 0; gain 0.5, 0.6 or 0), so a float32 running sum rounds
# the same way batch after batch and drifts far from the exact sum
Y_C = RNG.choice(np.float32([0.6, 0.75]), N)
O_C = RNG.choice(np.float32([0.5, 0.8, 0.9]), N)
TERMS = reference_terms(Y_C, O_C)
EXACT = {
    "drop_sum": TERMS["average_drop"].sum(),
    "drop_sq_sum": (TERMS["average_drop"] ** 2).sum(),
    "drop_cube_sum": (TERMS["average_drop"] ** 3).sum(),
    "gain_sum": TERMS["average_gain"].sum(),
    "gain_sq_sum": (TERMS["average_gain"] ** 2).sum(),
    "gain_cube_sum": (TERMS["average_gain"] ** 3).sum(),
}
FLOAT64_RTOL = 1e-12
#: jitted JAX computes the terms in float32, each within an ulp or so of the float64 term (XLA's
#: fusion rounds a little differently from NumPy); the compensated running sum adds no error that
#: grows with the number of batches. Measured here: at most 1.3e-7 (gain_sq_sum), 10^5 batches.
COMPENSATED_RTOL = 2.5e-7


def plain_float32_error(batch: int) -> float:
    """The relative error of drop_sum as a float32 running sum of float32 batch sums."""
    total = np.float32(0)
    drop = TERMS["average_drop"].astype(np.float32)
    for start in range(0, N, batch):
        total = np.float32(total + drop[start:start + batch].sum(dtype=np.float32))
    return abs(float(total) - EXACT["drop_sum"]) / EXACT["drop_sum"]


def assert_sums(state: MetricState, rtol: float) -> None:
    state = state.to_numpy()
    assert state.n == N and state.skipped == 0
    for name, exact in EXACT.items():
        assert getattr(state, name) == pytest.approx(exact, rel=rtol), name
    assert state.increase_count == int((Y_C < O_C).sum())


def test_a_float32_running_sum_is_visibly_off():
    assert plain_float32_error(1000) > 1e4 * FLOAT64_RTOL
    assert plain_float32_error(10) > 10 * COMPENSATED_RTOL


def updated(y_batches, o_batches):
    state = MetricState.empty()
    for y, o in zip(y_batches, o_batches):
        state = state.update(y, o)
    return state


def test_numpy_float32_scores_sum_in_float64():
    assert_sums(updated(Y_C.reshape(-1, 1000), O_C.reshape(-1, 1000)), FLOAT64_RTOL)


def test_tensorflow_eager_and_traced_sum_in_float64():
    tf = pytest.importorskip("tensorflow")
    y_batches, o_batches = tf.reshape(tf.constant(Y_C), (-1, 1000)), tf.reshape(tf.constant(O_C), (-1, 1000))
    assert_sums(updated(y_batches, o_batches), FLOAT64_RTOL)

    @tf.function
    def run(y_batches, o_batches):
        state = MetricState.empty().update(y_batches[0], o_batches[0], nan_policy="omit")
        for index in tf.range(1, tf.shape(y_batches)[0]):
            state = state.update(y_batches[index], o_batches[index], nan_policy="omit")
        return state

    traced = run(y_batches, o_batches)
    assert traced.drop_sum.dtype == tf.float64
    assert_sums(traced, FLOAT64_RTOL)


@pytest.fixture(scope="module")
def jnp():
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("this checks JAX without 64-bit floats, its default")
    return jax.numpy


@pytest.mark.slow
def test_jax_eager_without_x64_sums_on_the_host(jnp):
    assert_sums(updated(jnp.asarray(Y_C).reshape(-1, 1000), jnp.asarray(O_C).reshape(-1, 1000)), FLOAT64_RTOL)


@pytest.mark.slow
def test_jax_jitted_without_x64_sums_compensated(jnp):
    import jax

    @jax.jit
    def run(y_batches, o_batches):
        def step(state, batch):
            return state.update(*batch, nan_policy="omit"), None

        first = MetricState.empty().update(y_batches[0], o_batches[0], nan_policy="omit")
        return jax.lax.scan(step, first, (y_batches[1:], o_batches[1:]))[0]

    state = run(jnp.asarray(Y_C).reshape(-1, 10), jnp.asarray(O_C).reshape(-1, 10))
    assert state.drop_sum.dtype == jnp.float32  # no float64 here: the pair carries the error
    assert_sums(state, COMPENSATED_RTOL)
    # a compensated state merges with a host one, and the whole stays exact
    half = N // 2
    host = MetricState.empty().update(Y_C[:half], O_C[:half])
    jitted = run(jnp.asarray(Y_C[half:]).reshape(-1, 10), jnp.asarray(O_C[half:]).reshape(-1, 10))
    assert_sums(host.merge(jitted), COMPENSATED_RTOL)
    assert_sums(jitted.merge(host), COMPENSATED_RTOL)
