"""The backend registry, each backend's operations against NumPy, and the equations on every
backend against float64 NumPy arithmetic on the same values."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camavg_core import (
    Backend,
    MetricState,
    NumpyBackend,
    avg_drop,
    avg_gain,
    avg_increase,
    drop_terms,
    gain_terms,
    get_backend,
    increase_terms,
    resolve_backend,
)
from camavg_core.backends import resize_bilinear_numpy
from reference import EPS, reference_terms


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", ["numpy", "NumPy"])
def test_resolve_numpy_by_name(name):
    assert isinstance(resolve_backend(name), NumpyBackend)


@pytest.mark.parametrize("name", ["tensorflow", "tf", "TensorFlow"])
def test_resolve_tensorflow_by_name(name):
    pytest.importorskip("tensorflow")
    assert resolve_backend(name).name == "tensorflow"


def test_resolve_returns_a_backend_object_as_given():
    class Custom(NumpyBackend):
        name = "custom"

    custom = Custom()
    assert resolve_backend(custom) is custom
    # the object wins over the arrays' own type
    assert resolve_backend(custom, np.zeros(2)) is custom


def test_resolve_unknown_name_names_it():
    with pytest.raises(ValueError, match=r"backend='mxnet' is not known.*numpy.*tensorflow.*jax.*torch"):
        resolve_backend("mxnet")


@pytest.mark.parametrize("bad", [3, 2.5, ["numpy"], np.zeros(1)])
def test_resolve_rejects_a_backend_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match=f"backend must be a name.*got {type(bad).__name__}"):
        resolve_backend(bad)


def test_resolve_without_arrays_is_numpy():
    assert resolve_backend(None).name == "numpy"
    assert resolve_backend(None, [0.5], 0.5).name == "numpy"


@pytest.mark.parametrize("value", [np.zeros(3), np.float32(1.0), [0.1, 0.2], (0.1,), 0.5, 3, True])
def test_get_backend_of_numpy_and_python_values(value):
    assert get_backend(value).name == "numpy"


class StrangeArray:
    shape = (3,)


@pytest.mark.parametrize("value", [StrangeArray(), object(), {"a": 1}])
def test_get_backend_of_an_unknown_type_names_the_type(value):
    with pytest.raises(TypeError, match=f"no backend for arrays of type .*{type(value).__name__}"):
        get_backend(value)


def test_get_backend_of_tensorflow_values():
    tf = pytest.importorskip("tensorflow")
    assert get_backend(tf.constant([0.5])).name == "tensorflow"
    assert get_backend(tf.Variable([0.5])).name == "tensorflow"
    # Python lists are nobody's: the first framework array decides
    assert resolve_backend(None, [0.5], tf.constant([0.5])).name == "tensorflow"


def test_backend_repr_names_it():
    assert "numpy" in repr(resolve_backend("numpy"))
    assert issubclass(NumpyBackend, Backend)


# --------------------------------------------------------------------------- operations
def test_roundtrip_and_dtypes(backend):
    values = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    converted = backend.asarray(values)
    assert backend.is_appropriate_type(converted)
    assert backend.is_concrete(converted)
    np.testing.assert_array_equal(backend.to_numpy(converted), values)
    assert backend.dtype_name(converted) == "float32"
    assert backend.shape(converted) == (2, 2)
    assert backend.dtype_name(backend.astype(converted, "float16")) == "float16"


def test_compute_dtype_is_never_half_precision(backend):
    for dtype in ("float16", "float32", "int32", "uint8", "bool"):
        assert backend.compute_dtype(backend.asarray(np.zeros(2, dtype=dtype))) in ("float32", "float64")
    # float64 stays float64 wherever the backend holds float64 at all (JAX needs x64)
    as_float64 = backend.asarray(np.zeros(2, dtype=np.float64))
    if backend.dtype_name(as_float64) == "float64":
        assert backend.compute_dtype(as_float64) == "float64"


def test_elementwise_and_reductions_match_numpy(backend):
    x = np.array([[0.2, -1.0, 3.0], [np.nan, 0.5, np.inf]], dtype=np.float32)
    bx = backend.asarray(x)
    np.testing.assert_array_equal(backend.to_numpy(backend.isfinite(bx)), np.isfinite(x))
    finite = np.array([[0.2, -1.0, 3.0], [4.0, 0.5, -2.0]], dtype=np.float32)
    bf = backend.asarray(finite)
    np.testing.assert_array_equal(backend.to_numpy(backend.maximum(bf, 0.0)), np.maximum(finite, 0.0))
    np.testing.assert_array_equal(backend.to_numpy(backend.minimum(bf, 1.0)), np.minimum(finite, 1.0))
    np.testing.assert_array_equal(
        backend.to_numpy(backend.where(backend.asarray(finite > 0), bf, backend.asarray(0 * finite))),
        np.where(finite > 0, finite, 0.0),
    )
    np.testing.assert_allclose(backend.to_numpy(backend.sum(bf)), finite.sum(), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(backend.sum(bf, axis=1)), finite.sum(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(
        backend.to_numpy(backend.min(bf, axis=(1,), keepdims=True)), finite.min(axis=1, keepdims=True)
    )
    np.testing.assert_array_equal(backend.to_numpy(backend.max(bf, axis=0)), finite.max(axis=0))

@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_where_spreads_a_one_channel_mask_over_the_channels_as_numpy_does(backend, dtype, channels_last):
    """Deletion's and Insertion's step: a (B, H, W, 1) mask (or (B, 1, H, W)) choosing between
    images and a baseline (TensorFlow runs this select by XLA: its own CPU kernel ran 3x
    slower), NaN and infinity carried where chosen; a scalar and a per-image baseline."""
    rng = np.random.default_rng(0)
    x = (rng.random((3, 5, 4, 3)) * 200).astype(dtype)
    if dtype != "uint8":
        x[0, 1, 2, 0], x[1, 3, 0, 2], x[2, 0, 0, 1] = np.nan, np.inf, -np.inf
    mask = rng.random((3, 5, 4, 1)) > 0.4
    baseline = (rng.random((3, 5, 4, 3)) * 9).astype(dtype)
    if not channels_last:
        x, mask, baseline = (np.ascontiguousarray(v.transpose(0, 3, 1, 2)) for v in (x, mask, baseline))
    for other in (np.zeros((), dtype), baseline):
        got = backend.to_numpy(backend.where(backend.asarray(mask), backend.asarray(x), backend.asarray(other)))
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, np.where(mask, x, other))
    if backend.name == "tensorflow":  # inside a traced pass, the batch axis unknown
        import tensorflow as tf

        spec = [tf.TensorSpec((None, *v.shape[1:]), tf.as_dtype(v.dtype)) for v in (mask, x, baseline)]
        traced = tf.function(lambda m, v, b: backend.where(m, v, b), input_signature=spec, autograph=False)
        np.testing.assert_array_equal(traced(mask, x, baseline).numpy(), np.where(mask, x, baseline))



def test_shape_operations_match_numpy(backend):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    bx = backend.asarray(x)
    np.testing.assert_array_equal(backend.to_numpy(backend.reshape(bx, (6, 4))), x.reshape(6, 4))
    assert backend.all_equal(bx, backend.asarray(x.copy())) and not backend.all_equal(bx, backend.asarray(x + 1))
    assert not backend.all_equal(bx, backend.asarray(x.reshape(x.shape[0], -1)))  # another shape
    np.testing.assert_array_equal(backend.to_numpy(backend.stack([x[0], x[1]])), x)


def _installed(framework: str) -> Backend:
    """The backend of ``framework`` (PyTorch too, which the ``backend`` fixture leaves out),
    skipping where it is not installed."""
    if framework != "numpy":
        pytest.importorskip(framework)
    return resolve_backend(framework)


@pytest.mark.parametrize("framework", ["numpy", "tensorflow", "jax", "torch"])
def test_transpose_matches_numpy_and_lays_the_result_out_in_its_new_order(framework):
    backend = _installed(framework)
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    out = backend.transpose(backend.asarray(x), (0, 3, 1, 2))
    np.testing.assert_array_equal(backend.to_numpy(out), np.transpose(x, (0, 3, 1, 2)))
    if backend.name in ("numpy", "torch"):  # the two whose transposes are views by default
        assert (out.flags["C_CONTIGUOUS"] if backend.name == "numpy" else out.is_contiguous())
    # the base class's default (einsum) on the same backend gives the same values
    default = Backend.transpose(backend, backend.asarray(x), (0, 2, 3, 1))
    np.testing.assert_array_equal(backend.to_numpy(default), np.transpose(x, (0, 2, 3, 1)))


@pytest.mark.parametrize("framework", ["numpy", "tensorflow", "jax", "torch"])
def test_spd_inverse_is_the_inverse_and_exactly_symmetric(framework):
    """ROAD's exact coarse solve: CG needs a symmetric preconditioner, so the inverse must be
    symmetric bit for bit, not to rounding; against NumPy's float64 inverse. The protocol's
    default (``inv`` symmetrised) on the same backend too."""
    backend = _installed(framework)
    rng = np.random.default_rng(3)
    factor = rng.random((3, 12, 12))
    a = (factor @ np.swapaxes(factor, 1, 2) + 12 * np.eye(12)).astype(np.float32)  # well conditioned
    expected = np.linalg.inv(a.astype(np.float64))
    for method in (type(backend).spd_inverse, Backend.spd_inverse):
        out = np.asarray(backend.to_numpy(method(backend, backend.asarray(a))), np.float64)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
        np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))


def test_pad_adds_zeros_where_the_widths_say(backend):
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 2, 3)
    expected = np.zeros((1, 3, 5), np.float32)  # one row before, two columns after
    expected[:, 1:, :3] = x
    out = backend.pad(backend.asarray(x), [(0, 0), (1, 0), (0, 2)])
    np.testing.assert_array_equal(backend.to_numpy(out), expected)


def test_while_loop_runs_until_the_condition_fails(backend):
    # 0 + 1 + 2 + 3 + 4 = 10 after 5 steps
    start = (backend.astype(backend.asarray(0), "int32"), backend.asarray(np.float32(0.0)))
    i, total = backend.while_loop(lambda i, t: i < 5, lambda i, t: (i + 1, t + backend.astype(i, "float32")), start)
    assert int(backend.to_numpy(i)) == 5 and float(backend.to_numpy(total)) == 10.0


def test_impute_fast_answers_only_where_a_backend_has_its_own_solver(backend):
    from camavg_core.imputation import impute

    rng = np.random.default_rng(1)
    x = rng.random((2, 8, 8, 3)).astype(np.float32)
    noise = (0.01 * rng.standard_normal(x.shape)).astype(np.float32)
    removed = np.zeros((2, 8, 8, 1), np.float32)
    removed[:, 2:6, 3:7] = 1.0
    kwargs = dict(tol=1e-6, max_iter=200)
    expected = impute(NumpyBackend(), x.astype(np.float64), removed.astype(np.float64), tol=1e-10)
    # the noise lands on the removed pixels only, in either layout
    noisy = expected + removed * noise
    first = lambda v: np.ascontiguousarray(np.moveaxis(v, -1, 1))  # noqa: E731  channels first
    for preconditioner in ("multigrid", "jacobi"):
        for layout, want, add in ((first, expected, None), (lambda v: v, noisy, noise), (first, noisy, noise)):
            last = layout is not first
            fast = backend.impute_fast(backend.asarray(layout(x)), (backend.asarray(layout(removed)),),
                                       preconditioner=preconditioner, channels_last=last,
                                       noise=None if add is None else backend.asarray(layout(add)), **kwargs)
            if backend.name != "tensorflow":
                assert fast is None  # the core's generic solver, as Backend.compiled makes it
                continue
            # TensorFlow's XLA solver against the core's on NumPy, float64, in the layout it was given
            (out,), _ = fast
            out = backend.to_numpy(out)
            np.testing.assert_allclose(out if last else np.moveaxis(out, 1, -1), want, atol=1e-4)
        # through impute, whichever solver answers
        out = impute(backend, backend.asarray(x), backend.asarray(removed), preconditioner=preconditioner, **kwargs)
        np.testing.assert_allclose(backend.to_numpy(out), expected, atol=1e-4)


def test_compiled_is_one_jit_program_for_jax_and_the_function_itself_elsewhere(backend):
    """``Backend.compiled``: JAX wraps the function in ``jax.jit`` (its arguments past the
    static ones traced: the body sees tracers, once per shape), every other backend returns
    the function as it is; the result is the function's either way."""
    seen = []

    def function(scale, v):
        seen.append(backend.is_concrete(v))
        return v * scale

    run = backend.compiled(function, static_argnums=(0,))
    v = backend.asarray(np.arange(4.0, dtype=np.float32))
    for _ in range(2):
        np.testing.assert_allclose(backend.to_numpy(run(3.0, v)), [0.0, 3.0, 6.0, 9.0])
    if backend.name == "jax":
        assert seen == [False]  # traced once, then the cached program
    else:
        assert run is function and seen == [True, True]


def test_select_class_matches_numpy_indexing(backend):
    outputs = np.arange(12, dtype=np.float32).reshape(4, 3) / 12
    indices = np.array([0, 2, 1, 2])
    picked = backend.to_numpy(backend.select_class(backend.asarray(outputs), indices))
    np.testing.assert_array_equal(picked, [outputs[0, 0], outputs[1, 2], outputs[2, 1], outputs[3, 2]])
    # outputs with a middle axis (e.g. per-position scores): the picked class averaged over it
    sequence = np.arange(24, dtype=np.float32).reshape(2, 4, 3) / 24
    picked = backend.to_numpy(backend.select_class(backend.asarray(sequence), np.array([1, 2])))
    np.testing.assert_allclose(picked, [sequence[0, :, 1].mean(), sequence[1, :, 2].mean()], rtol=1e-6)


def test_activations_match_hand_arithmetic(backend):
    import math

    logits = np.array([[0.0, math.log(3.0)], [2.0, 2.0]], dtype=np.float32)
    # softmax over the last axis: e^0 : e^ln3 = 1 : 3; equal logits share evenly
    np.testing.assert_allclose(backend.to_numpy(backend.softmax(backend.asarray(logits))), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(backend.sigmoid(backend.asarray(logits))),
                               [[0.5, 0.75], [1 / (1 + math.exp(-2))] * 2], rtol=1e-6)


def test_apply_activation_scores_in_float32_or_float64(backend):
    from camavg_core.engine import apply_activation

    for dtype, expected in (("float16", "float32"), ("float32", "float32"), ("float64", "float64"), ("int32", "float32")):
        if dtype == "float64" and backend.name == "jax":
            continue  # JAX keeps float64 only under x64
        outputs = [backend.asarray(np.array([[1, 1]], dtype=dtype))]
        for activation in (None, "softmax", "sigmoid"):
            (scored,) = apply_activation(outputs, activation, backend)
            assert backend.dtype_name(scored) == expected, (dtype, activation)
        np.testing.assert_allclose(backend.to_numpy(apply_activation(outputs, "softmax", backend)[0]), [[0.5, 0.5]])


def test_resize_bilinear_matches_numpy_reference(backend):
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 5, 1)).astype(np.float32)
    for size in [(6, 10), (7, 4), (3, 5), (1, 1)]:
        resized = backend.to_numpy(backend.resize_bilinear(backend.asarray(images), size))
        assert resized.shape == (2, *size, 1)
        np.testing.assert_allclose(resized, resize_bilinear_numpy(images, size), atol=1e-6)


# --------------------------------------------------------------------------- equations on every backend
FLOAT_DTYPES = ["float16", "float32", "float64"]
# a few sizes only: JAX compiles each op once per shape
SIZES = st.sampled_from([1, 2, 7, 16, 33])


def edge_values(dtype: str) -> list[float]:
    """Values exactly representable in ``dtype`` where eps, ties and rounding matter."""
    info = np.finfo(dtype)
    one = np.dtype(dtype).type(1)
    below_one = np.nextafter(one, np.dtype(dtype).type(0))
    return [0.0, 1.0, 0.5, float(info.tiny), float(info.eps), float(below_one)]


@st.composite
def score_arrays(draw, dtype: str):
    """(Y, O) of ``dtype`` in [0, 1], no subnormals, with exact ties mixed in."""
    n = draw(SIZES)
    elements = st.one_of(
        hnp.from_dtype(np.dtype(dtype), min_value=0.0, max_value=1.0, allow_nan=False, allow_subnormal=False),
        st.sampled_from(edge_values(dtype)),
    )
    y = draw(hnp.arrays(dtype, n, elements=elements))
    o = draw(hnp.arrays(dtype, n, elements=elements))
    tied = draw(hnp.arrays(np.bool_, n))
    o[tied] = y[tied]
    return y, o


def held_dtypes(backend) -> list[str]:
    """The float dtypes the backend keeps as given (JAX holds float64 only with x64 enabled)."""
    return [d for d in FLOAT_DTYPES if backend.dtype_name(backend.asarray(np.zeros(1, dtype=d))) == d]


def draw_scores(data, backend) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    dtype = data.draw(st.sampled_from(held_dtypes(backend)), label="dtype")
    return dtype, data.draw(score_arrays(dtype), label="scores")


def numpy_terms(y: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared reference's three per-sample terms (float64) as a tuple: drop, increase, gain."""
    terms = reference_terms(y, o)
    return terms["average_drop"], terms["average_increase"], terms["average_gain"]


@pytest.mark.slow
@settings(deadline=None)
@given(st.data())
def test_averages_agree_with_numpy_float64(backend, points_tolerance, data):
    dtype, (y, o) = draw_scores(data, backend)
    y_b, o_b = backend.asarray(y), backend.asarray(o)
    tolerance = points_tolerance(backend.compute_dtype(y_b))
    drop, increase, gain = numpy_terms(y, o)
    assert avg_drop(y_b, o_b) == pytest.approx(100 * drop.mean(), abs=tolerance, rel=0)
    assert avg_gain(y_b, o_b) == pytest.approx(100 * gain.mean(), abs=tolerance, rel=0)
    # a comparison of the same values is exact in any float dtype
    assert avg_increase(y_b, o_b) == pytest.approx(100 * increase.mean(), rel=1e-12, abs=0)


@pytest.mark.slow
@settings(deadline=None)
@given(st.data())
def test_terms_agree_with_numpy_float64(backend, points_tolerance, data):
    dtype, (y, o) = draw_scores(data, backend)
    y_b, o_b = backend.asarray(y), backend.asarray(o)
    compute = backend.compute_dtype(y_b)
    term_tolerance = points_tolerance(compute) / 100
    drop, increase, gain = numpy_terms(y, o)
    drop_b = drop_terms(y_b, o_b, backend=backend)
    # the terms come back in the compute dtype: never float16
    assert backend.dtype_name(drop_b) == compute
    np.testing.assert_allclose(backend.to_numpy(drop_b), drop, atol=term_tolerance, rtol=0)
    gain_b = gain_terms(y_b, o_b, backend=backend)
    np.testing.assert_allclose(backend.to_numpy(gain_b), gain, atol=term_tolerance, rtol=0)
    np.testing.assert_array_equal(backend.to_numpy(increase_terms(y_b, o_b, backend=backend)), increase)


@pytest.mark.slow
@settings(deadline=None)
@given(st.data())
def test_state_agrees_with_numpy_float64(backend, points_tolerance, data):
    dtype, (y, o) = draw_scores(data, backend)
    y_b, o_b = backend.asarray(y), backend.asarray(o)
    compute = backend.compute_dtype(y_b)
    drop, increase, gain = numpy_terms(y, o)
    state = MetricState.empty().update(y_b, o_b, backend=backend).to_numpy()
    assert state.n == len(y)
    assert state.increase_count == int(increase.sum())
    assert state.skipped == 0
    # N terms in [0, 1], each a few roundings off, and their sum in the compute dtype
    sum_tolerance = len(y) * (points_tolerance(compute) / 100 + len(y) * float(np.finfo(compute).eps))
    assert state.drop_sum == pytest.approx(drop.sum(), abs=sum_tolerance, rel=0)
    assert state.gain_sum == pytest.approx(gain.sum(), abs=sum_tolerance, rel=0)
    assert state.drop_sq_sum == pytest.approx((drop**2).sum(), abs=2 * sum_tolerance, rel=0)


@settings(deadline=None)
@given(st.data())
def test_backend_argument_overrides_the_arrays_type(backend, points_tolerance, data):
    dtype, (y, o) = draw_scores(data, backend)
    # NumPy arrays in, computed by the named backend
    tolerance = points_tolerance(backend.compute_dtype(backend.asarray(y)))
    drop, _, _ = numpy_terms(y, o)
    assert avg_drop(y, o, backend=backend.name) == pytest.approx(100 * drop.mean(), abs=tolerance, rel=0)


def test_nan_policy_omit_on_each_backend(backend):
    y = backend.asarray(np.array([0.8, np.nan, 0.5], dtype=np.float32))
    o = backend.asarray(np.array([0.2, 0.3, 0.5], dtype=np.float32))
    y32, o32 = float(np.float32(0.8)), float(np.float32(0.2))
    # sample 1 is left out: the mean is over samples 0 and 2 (a tie, no drop)
    expected = 100 * ((y32 - o32) / (y32 + EPS) + 0.0) / 2
    assert avg_drop(y, o, nan_policy="omit") == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match=r"Y_c\[1\]"):
        avg_drop(y, o)


def test_a_broken_adapter_does_not_break_other_arrays(monkeypatch):
    # a framework the user imported whose camavg adapter cannot load (say, a too-old version)
    import types

    import camavg_core.backends as registry

    monkeypatch.setitem(sys.modules, "brokenframework", types.ModuleType("brokenframework"))
    monkeypatch.setitem(registry._LAZY_BACKENDS, "brokenframework", ("camavg_no_such_adapter", "Backend"))
    assert get_backend([0.5, 0.2]).name == "numpy"
    assert avg_drop([0.8], [0.2]) == pytest.approx(100 * 0.6 / (0.8 + EPS), rel=1e-12)
    with pytest.raises(TypeError, match="no backend for arrays of type"):
        get_backend(object())
