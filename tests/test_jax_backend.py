"""The JAX backend against NumPy, and every jittable public function jitted against not jitted."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from camavg_core import (  # noqa: E402
    MetricState,
    drop_terms,
    gain_terms,
    get_backend,
    increase_terms,
    mask_inputs,
    resolve_backend,
)
from camavg_core.backends import NumpyBackend, resize_bilinear_numpy  # noqa: E402
from camavg_jax.backend import JaxBackend  # noqa: E402
from reference import EPS, reference_terms  # noqa: E402

BK = resolve_backend("jax")
NP = NumpyBackend()


# --------------------------------------------------------------------------- registration
def test_jax_arrays_resolve_to_the_jax_backend():
    assert isinstance(BK, JaxBackend)
    assert get_backend(jnp.ones(3)) is BK
    assert resolve_backend(None, jnp.ones(3)).name == "jax"
    assert get_backend(np.ones(3)).name == "numpy"


def test_tracers_resolve_to_jax_and_are_not_concrete():
    seen = {}

    def traced(x):
        seen["backend"] = get_backend(x).name
        seen["concrete"] = BK.is_concrete(x)
        return x

    jax.jit(traced)(jnp.ones(2))
    assert seen == {"backend": "jax", "concrete": False}
    assert BK.is_concrete(jnp.ones(2))


@pytest.mark.slow
def test_core_never_imports_jax_and_loads_the_backend_lazily():
    code = (
        "import sys, numpy as np, camavg_core\n"
        "camavg_core.avg_drop(np.array([0.5]), np.array([0.25]))\n"
        "assert 'jax' not in sys.modules, 'camavg_core imported jax'\n"
        "import jax.numpy as jnp\n"
        "from camavg_core import get_backend\n"
        "print(get_backend(jnp.ones(2)).name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "jax"


# --------------------------------------------------------------------------- operations
def test_elementwise_and_reductions_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4, 5)).astype(np.float32)
    b = rng.normal(size=(3, 4, 5)).astype(np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    np.testing.assert_array_equal(BK.to_numpy(BK.maximum(ja, 0.0)), np.maximum(a, 0.0))
    np.testing.assert_array_equal(BK.to_numpy(BK.minimum(ja, jb)), np.minimum(a, b))
    np.testing.assert_array_equal(BK.to_numpy(BK.where(ja > jb, ja, jb)), np.where(a > b, a, b))
    np.testing.assert_allclose(BK.to_numpy(BK.sum(ja, axis=1)), a.sum(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(BK.to_numpy(BK.min(ja, axis=(1, 2), keepdims=True)), a.min(axis=(1, 2), keepdims=True))
    np.testing.assert_array_equal(BK.to_numpy(BK.max(ja, axis=0)), a.max(axis=0))
    assert BK.all_equal(ja, jnp.asarray(a.copy())) and not BK.all_equal(ja, jnp.asarray(a + 1))
    np.testing.assert_array_equal(BK.to_numpy(BK.reshape(ja, (12, 5))), a.reshape(12, 5))
    np.testing.assert_array_equal(BK.to_numpy(BK.stack([ja[0], jb[0]])), np.stack([a[0], b[0]]))
    with_nan = jnp.asarray([1.0, np.nan, np.inf, -np.inf])
    assert BK.to_numpy(BK.isfinite(with_nan)).tolist() == [True, False, False, False]
    assert BK.shape(ja) == (3, 4, 5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_materialise_gives_back_every_value_bit_for_bit(dtype):
    # on the CPU the value passes through a conditional whose other branch is NaN: the
    # predicate must hold whatever the first value's bits (0, -0, NaN, inf, a subnormal)
    tiny = float(jnp.finfo(dtype).smallest_subnormal)
    for first in (0.0, -0.0, np.nan, np.inf, -np.inf, tiny, 1.5):
        x = jnp.asarray([[first, -2.0, 0.0], [np.nan, 3.25, -0.0]], dtype)
        for out in (BK.materialise(x), jax.jit(BK.materialise)(x)):
            assert out.dtype == x.dtype and out.shape == x.shape
            np.testing.assert_array_equal(np.asarray(out).view(np.uint16 if x.dtype.itemsize == 2 else np.uint32),
                                          np.asarray(x).view(np.uint16 if x.dtype.itemsize == 2 else np.uint32))
    assert BK.materialise(jnp.zeros((0, 3), dtype)).shape == (0, 3)
    np.testing.assert_array_equal(np.asarray(BK.materialise(jnp.arange(3))), [0, 1, 2])


def test_dtypes_bfloat16_computes_in_float32():
    x = jnp.ones(3, dtype=jnp.bfloat16)
    assert BK.dtype_name(x) == "bfloat16"
    assert BK.compute_dtype(x) == "float32"
    assert BK.dtype_name(BK.astype(x, "float32")) == "float32"
    assert BK.compute_dtype(jnp.ones(3, dtype=jnp.float16)) == "float32"
    assert BK.dtype_name(BK.astype(jnp.ones(2), "bfloat16")) == "bfloat16"


@pytest.mark.slow
@pytest.mark.parametrize(
    "in_size, out_size",
    [((2, 2), (4, 4)), ((3, 5), (7, 11)), ((7, 7), (224 // 32, 224 // 32)), ((8, 6), (3, 4)), ((1, 1), (5, 5)), ((5, 3), (5, 8))],
)
def test_resize_bilinear_matches_numpy_half_pixel_centres(in_size, out_size):
    rng = np.random.default_rng(sum(in_size) + sum(out_size))
    images = rng.random((2, *in_size, 3))
    expected = resize_bilinear_numpy(images, out_size)
    got = BK.to_numpy(BK.resize_bilinear(jnp.asarray(images, jnp.float32), out_size))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    jitted = jax.jit(lambda im: BK.resize_bilinear(im, out_size))(jnp.asarray(images, jnp.float32))
    np.testing.assert_allclose(BK.to_numpy(jitted), expected, atol=1e-6)


def test_resize_bilinear_by_hand():
    # 1x2 -> 1x4 with half-pixel centres: output centres sit at -0.25, 0.25, 0.75, 1.25 of the
    # input grid, clamped to [0, 1]: values 0, 0.25 * 4, 0.75 * 4, 4
    images = jnp.asarray([[[[0.0], [4.0]]]])
    got = BK.to_numpy(BK.resize_bilinear(images, (1, 4)))[0, 0, :, 0]
    np.testing.assert_allclose(got, [0.0, 1.0, 3.0, 4.0], atol=1e-6)


def test_select_class_matches_numpy_for_2d_and_3d_outputs():
    rng = np.random.default_rng(1)
    indices = np.array([2, 0, 1, 2])
    flat = rng.random((4, 3)).astype(np.float32)
    dense = rng.random((4, 5, 6, 3)).astype(np.float32)
    for outputs in (flat, dense):
        expected = NP.select_class(outputs, indices)
        got = BK.to_numpy(BK.select_class(jnp.asarray(outputs), indices))
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        jitted = jax.jit(lambda out: BK.select_class(out, indices))(jnp.asarray(outputs))
        np.testing.assert_allclose(BK.to_numpy(jitted), expected, rtol=1e-6)
    # by hand: rows pick flat[i, indices[i]]
    np.testing.assert_allclose(
        BK.to_numpy(BK.select_class(jnp.asarray(flat), indices)), [flat[i, k] for i, k in enumerate(indices)]
    )


# --------------------------------------------------------------------------- jitted == not jitted
# a few sizes only, so the module-level jitted functions compile a few shapes, not one per draw
# no subnormals: XLA on CPU flushes them to zero, so 0 < 1e-45 is no rise under JAX (as in the
# other backend tests)
score_vectors = st.sampled_from([1, 5, 12]).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float32, n, elements=st.floats(0, 1, width=32, allow_subnormal=False)),
        hnp.arrays(np.float32, n, elements=st.floats(0, 1, width=32, allow_subnormal=False)),
    )
)


JITTED_TERMS = {function: jax.jit(function) for function in (drop_terms, gain_terms, increase_terms)}


def _update_omit(y_c, o_c):
    return MetricState.empty().update(y_c, o_c, nan_policy="omit")


_update_omit_jitted = jax.jit(_update_omit)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(score_vectors)
def test_terms_jitted_equal_not_jitted_and_numpy(pair):
    y, o = pair
    y[: len(y) // 3] = o[: len(y) // 3]  # exact ties
    for function, jitted_function in JITTED_TERMS.items():
        eager = function(jnp.asarray(y), jnp.asarray(o))
        jitted = jitted_function(jnp.asarray(y), jnp.asarray(o))
        reference = function(y.astype(np.float64), o.astype(np.float64))
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(eager), reference, rtol=2e-6, atol=2e-6)


def test_terms_by_hand_under_jit():
    y = jnp.asarray([0.8, 0.5, 0.5])
    o = jnp.asarray([0.2, 0.6, 0.5])
    np.testing.assert_allclose(jax.jit(drop_terms)(y, o), [0.6 / (0.8 + EPS), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(gain_terms)(y, o), [0.0, 0.1 / (0.5 + EPS), 0.0], rtol=1e-5)
    np.testing.assert_array_equal(jax.jit(increase_terms)(y, o), [0.0, 1.0, 0.0])


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(score_vectors, st.data())
def test_state_update_omit_jitted_equals_not_jitted_and_numpy(pair, data):
    y, o = pair
    holes = data.draw(hnp.arrays(np.bool_, len(y)))
    y = np.where(holes, np.nan, y).astype(np.float32)

    jitted = _update_omit_jitted(jnp.asarray(y), jnp.asarray(o)).to_numpy()
    eager = _update_omit(jnp.asarray(y), jnp.asarray(o)).to_numpy()
    reference = _update_omit(y.astype(np.float64), o.astype(np.float64)).to_numpy()
    keep = ~holes
    # the sums of the shared NumPy reference terms, independently of MetricState
    terms = reference_terms(y[keep], o[keep])
    drop, gain = terms["average_drop"], terms["average_gain"]
    assert jitted.n == eager.n == reference.n == int(keep.sum())
    assert jitted.skipped == eager.skipped == int(holes.sum())
    assert jitted.increase_count == eager.increase_count == int(terms["average_increase"].sum())
    for state in (jitted, eager, reference):
        np.testing.assert_allclose(state.drop_sum, drop.sum(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.gain_sum, gain.sum(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(state.drop_sq_sum, (drop**2).sum(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.gain_sq_sum, (gain**2).sum(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(jitted.flat(), np.float64), np.asarray(eager.flat(), np.float64),
                               rtol=1e-6, atol=1e-6)


def test_state_update_raise_refuses_tracers_with_a_clear_message():
    def update(y_c, o_c):
        return MetricState.empty().update(y_c, o_c)

    with pytest.raises(ValueError, match="traced"):
        jax.jit(update)(jnp.asarray([0.5]), jnp.asarray([0.4]))


def test_states_merge_under_jit_like_one_update():
    y = jnp.asarray([0.9, 0.2, 0.6, 0.4])
    o = jnp.asarray([0.3, 0.5, 0.6, 0.1])

    @jax.jit
    def split_and_merge(y_c, o_c):
        first = MetricState.empty().update(y_c[:1], o_c[:1], nan_policy="omit")
        second = MetricState.empty().update(y_c[1:], o_c[1:], nan_policy="omit")
        return first.merge(second)

    merged = split_and_merge(y, o).to_numpy()
    whole = MetricState.empty().update(np.asarray(y, np.float64), np.asarray(o, np.float64)).to_numpy()
    assert merged.n == whole.n == 4 and merged.increase_count == whole.increase_count == 1
    np.testing.assert_allclose(merged.drop_sum, whole.drop_sum, rtol=1e-6)
    np.testing.assert_allclose(merged.gain_sum, whole.gain_sum, rtol=1e-6)


# the options are static at the jit boundary, as optax declares its static arguments
_mask_inputs_jitted = jax.jit(mask_inputs, static_argnames=("data_format", "normalize"))


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(["channels_last", "channels_first"]),
    st.booleans(),
    st.sampled_from([(6, 6), (3, 3), (2, 5), (6, 6, 1)]),
    st.integers(0, 2**16),
)
def test_mask_inputs_jitted_equals_not_jitted_and_numpy(data_format, normalize, cam_shape, seed):
    rng = np.random.default_rng(seed)
    images = rng.random((3, 6, 6, 2) if data_format == "channels_last" else (3, 2, 6, 6)).astype(np.float32)
    cams = rng.random((3, *cam_shape)).astype(np.float32)
    if data_format == "channels_first" and len(cam_shape) == 3:
        cams = cams.reshape(3, 1, *cam_shape[:2])

    options = dict(data_format=data_format, normalize=normalize)
    eager = mask_inputs(jnp.asarray(images), jnp.asarray(cams), **options)
    jitted = _mask_inputs_jitted(jnp.asarray(images), jnp.asarray(cams), **options)
    reference = mask_inputs(images.astype(np.float64), cams.astype(np.float64), **options)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(eager), reference, rtol=1e-5, atol=1e-6)


def test_mask_inputs_by_hand_keeps_bfloat16():
    images = jnp.full((1, 2, 2, 3), 2.0, dtype=jnp.bfloat16)
    cams = jnp.asarray([[[0.0, 0.5], [1.0, 0.25]]])
    masked = jax.jit(lambda x, c: mask_inputs(x, c))(images, cams)
    assert masked.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(masked, np.float32)[0, :, :, 1], [[0.0, 1.0], [2.0, 0.5]])
