"""NumPy, TensorFlow, JAX and PyTorch compute the same numbers.

1. The backends, four ways at once: drawn score vectors (float32 and float64; values in
   [0, 1], exact ties, values near 0 and near 1) and drawn CAM masks give the same terms,
   streaming state and masked inputs within the dtype's tolerance. JAX holds float64 only with
   x64 enabled, so its float64 cases run inside ``jax.enable_x64`` (never flipped process-wide).
2. The adapters: one small CNN written once in Keras, once in plain JAX and once in PyTorch
   (NCHW) with the Keras weights copied gives the same Y_c and O_c (within 1e-5) and metrics
   (within 1e-4 points) through ``camavg_tf``, ``camavg_jax`` and ``camavg_torch``'s
   ``AveragesCam``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from camavg_core import MetricState, drop_terms, gain_terms, increase_terms, mask_inputs, resolve_backend  # noqa: E402
from reference import reference_terms  # noqa: E402

BACKENDS = {name: resolve_backend(name) for name in ("numpy", "tensorflow", "jax", "torch")}
FLOATS = ("float32", "float64")
# a few sizes only: JAX compiles each op once per shape
SIZES = st.sampled_from([1, 4, 17])


def _x64(name: str, dtype: str):
    """JAX keeps float64 only inside ``jax.enable_x64``; nothing else needs a context."""
    return jax.enable_x64(True) if name == "jax" and dtype == "float64" else contextlib.nullcontext()


def _term_tolerance(dtype: str) -> float:
    """Terms lie in [0, 1] and are a few roundings from exact: four ulps of the dtype."""
    return 4 * float(np.finfo(dtype).eps)


@st.composite
def score_pairs(draw):
    """(dtype, Y, O): values anywhere in [0, 1], within 2**-20 (about 1e-6) of 0 or of 1, and
    exact ties. Powers of two, so the bounds are exact in float32 too."""
    dtype = draw(st.sampled_from(FLOATS))
    width = 32 if dtype == "float32" else 64
    info = np.finfo(dtype)
    below_one = float(np.nextafter(np.dtype(dtype).type(1), np.dtype(dtype).type(0)))
    elements = st.one_of(
        st.floats(0, 1, width=width, allow_subnormal=False),
        st.floats(0, 2**-20, width=width, allow_subnormal=False),
        st.floats(1 - 2**-20, 1, width=width, allow_subnormal=False),
        st.sampled_from([0.0, 1.0, 0.5, 1e-7, float(info.eps), below_one]),
    )
    n = draw(SIZES)
    y = draw(hnp.arrays(dtype, n, elements=elements))
    o = draw(hnp.arrays(dtype, n, elements=elements))
    tied = draw(hnp.arrays(np.bool_, n))
    o[tied] = y[tied]
    return dtype, y, o


def _on_every_backend(function, dtype: str, *arrays: np.ndarray) -> dict[str, np.ndarray]:
    """``function(*arrays, backend)`` on each backend, from that backend's own arrays."""
    results = {}
    for name, backend in BACKENDS.items():
        with _x64(name, dtype):
            converted = [backend.asarray(a) for a in arrays]
            assert backend.dtype_name(converted[0]) == dtype
            results[name] = function(*converted, backend)
    return results


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(score_pairs())
def test_terms_agree_across_backends(drawn):
    dtype, y, o = drawn
    tolerance = _term_tolerance(dtype)
    for function in (drop_terms, gain_terms):
        results = _on_every_backend(
            lambda y_c, o_c, bk: bk.to_numpy(function(y_c, o_c, backend=bk)).astype(np.float64), dtype, y, o
        )
        np.testing.assert_allclose(results["tensorflow"], results["jax"], atol=tolerance, rtol=0)
        np.testing.assert_allclose(results["tensorflow"], results["numpy"], atol=tolerance, rtol=0)
        np.testing.assert_allclose(results["jax"], results["numpy"], atol=tolerance, rtol=0)
        np.testing.assert_allclose(results["torch"], results["numpy"], atol=tolerance, rtol=0)
    increases = _on_every_backend(
        lambda y_c, o_c, bk: bk.to_numpy(increase_terms(y_c, o_c, backend=bk)), dtype, y, o
    )
    # a comparison of the same values is exact in every dtype; ties never increase
    expected = reference_terms(y, o)["average_increase"]
    for values in increases.values():
        np.testing.assert_array_equal(values, expected)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(score_pairs(), st.data())
def test_streaming_state_agrees_across_backends(drawn, data):
    dtype, y, o = drawn
    holes = data.draw(hnp.arrays(np.bool_, len(y)), label="nan holes")
    y = np.where(holes, np.nan, y).astype(dtype)
    states = _on_every_backend(
        lambda y_c, o_c, bk: MetricState.empty().update(y_c, o_c, nan_policy="omit", backend=bk).to_numpy(),
        dtype,
        y,
        o,
    )
    # a sum of n terms in [0, 1]: n term tolerances plus the summation's own rounding
    n = len(y)
    sum_tolerance = n * _term_tolerance(dtype) + n * n * float(np.finfo(dtype).eps)
    reference = states["numpy"]
    assert reference.n == int((~holes).sum()) and reference.skipped == int(holes.sum())
    for name in ("tensorflow", "jax", "torch"):
        state = states[name]
        assert (state.n, state.skipped, state.increase_count) == (
            reference.n,
            reference.skipped,
            reference.increase_count,
        ), name
        for field in ("drop_sum", "gain_sum", "drop_sq_sum", "gain_sq_sum"):
            assert getattr(state, field) == pytest.approx(getattr(reference, field), abs=2 * sum_tolerance, rel=0), (name, field)


@st.composite
def masking_cases(draw):
    """Images and CAMs in [0, 1] (exact 0 and 1 included), CAMs at the image size or not."""
    dtype = draw(st.sampled_from(FLOATS))
    width = 32 if dtype == "float32" else 64
    elements = st.one_of(st.floats(0, 1, width=width, allow_subnormal=False), st.sampled_from([0.0, 1.0]))
    height, width_px = draw(st.sampled_from([(4, 4), (5, 3)]))
    cam_shape = draw(st.sampled_from([(height, width_px), (2, 2), (height + 2, width_px + 1)]))
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    image_shape = (2, height, width_px, 2) if data_format == "channels_last" else (2, 2, height, width_px)
    images = draw(hnp.arrays(dtype, image_shape, elements=elements))
    cams = draw(hnp.arrays(dtype, (2, *cam_shape), elements=elements))
    normalize = draw(st.booleans())
    return dtype, images, cams, data_format, normalize


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(masking_cases())
def test_masked_inputs_agree_across_backends(case):
    dtype, images, cams, data_format, normalize = case
    results = _on_every_backend(
        lambda x, c, bk: bk.to_numpy(mask_inputs(x, c, data_format=data_format, normalize=normalize, backend=bk)),
        dtype,
        images,
        cams,
    )
    tolerance = _term_tolerance(dtype)
    np.testing.assert_allclose(results["jax"], results["numpy"], atol=tolerance, rtol=0)
    np.testing.assert_allclose(results["torch"], results["numpy"], atol=tolerance, rtol=0)
    spatial = images.shape[1:3] if data_format == "channels_last" else images.shape[2:]
    # tf.image.resize returns float32 whatever it is given, so a float64 CAM that needs resizing
    # keeps only float32 precision on TensorFlow
    resized = tuple(cams.shape[1:]) != tuple(spatial)
    tf_tolerance = _term_tolerance("float32") if resized else tolerance
    np.testing.assert_allclose(results["tensorflow"], results["numpy"], atol=tf_tolerance, rtol=0)
    np.testing.assert_allclose(results["tensorflow"], results["jax"], atol=tf_tolerance, rtol=0)


# --------------------------------------------------------------------------- the two adapters
N, SIZE, CLASSES = 12, 12, 4


def _keras_cnn():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES)(x)  # logits: both adapters get activation="softmax"
    model = keras.Model(inputs, outputs)
    # seeded weights large enough that the softmax is far from uniform
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(scale=0.6, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _jax_cnn(weights):
    """The Keras CNN in plain jax: conv, ReLU, 2x2 max pool, conv, ReLU, mean, dense."""
    kernel1, bias1, kernel2, bias2, dense, dense_bias = (jnp.asarray(w) for w in weights)
    numbers = ("NHWC", "HWIO", "NHWC")

    def apply_fn(x):
        h = jax.lax.conv_general_dilated(x, kernel1, (1, 1), "SAME", dimension_numbers=numbers) + bias1
        h = jax.nn.relu(h)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, kernel2, (1, 1), "SAME", dimension_numbers=numbers) + bias2)
        return jnp.mean(h, axis=(1, 2)) @ dense + dense_bias

    return apply_fn


def _torch_cnn(weights):
    """The Keras CNN in PyTorch, channels first: HWIO kernels become OIHW, the dense kernel
    (in, out) becomes the Linear's (out, in) weight."""
    from torch import nn

    kernel1, bias1, kernel2, bias2, dense, dense_bias = (torch.from_numpy(np.asarray(w)) for w in weights)
    conv1, conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1)
    linear = nn.Linear(8, CLASSES)
    with torch.no_grad():
        conv1.weight.copy_(kernel1.permute(3, 2, 0, 1))
        conv1.bias.copy_(bias1)
        conv2.weight.copy_(kernel2.permute(3, 2, 0, 1))
        conv2.bias.copy_(bias2)
        linear.weight.copy_(dense.T)
        linear.bias.copy_(dense_bias)
    return nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)


@pytest.fixture(scope="module")
def twin_models():
    camavg_tf = pytest.importorskip("camavg_tf")
    scores = pytest.importorskip("tf_keras_vis.utils.scores")
    model = _keras_cnn()
    rng = np.random.default_rng(12)
    images = rng.random((N, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, N)
    tf_metrics = camavg_tf.AveragesCam(model, images, batch_size=5, activation="softmax")
    from camavg_jax import AveragesCam

    jax_metrics = AveragesCam(_jax_cnn(model.get_weights()), images, batch_size=4, activation="softmax")
    import camavg_torch

    torch_metrics = camavg_torch.AveragesCam(
        _torch_cnn(model.get_weights()), np.moveaxis(images, -1, 1), batch_size=3, activation="softmax"
    )
    return tf_metrics, jax_metrics, scores.CategoricalScore(labels.tolist()), rng, torch_metrics


@pytest.mark.parametrize("cam_size", [SIZE, 3, 5])
def test_tf_jax_and_torch_adapters_agree_on_the_same_cnn(twin_models, cam_size):
    tf_metrics, jax_metrics, score, rng, torch_metrics = twin_models
    cams = rng.random((N, cam_size, cam_size)).astype(np.float32)
    tf_result = tf_metrics.evaluate(cams, score)
    jax_result = jax_metrics.evaluate(cams, score)
    torch_result = torch_metrics.evaluate(cams, score)
    # the model is not trivial: scores spread out and the masks move them
    assert np.ptp(tf_result.y_c) > 0.1 and np.abs(tf_result.y_c - tf_result.o_c).max() > 0.01
    for result in (jax_result, torch_result):
        np.testing.assert_allclose(result.y_c, tf_result.y_c, atol=1e-5, rtol=0)
        np.testing.assert_allclose(result.o_c, tf_result.o_c, atol=1e-5, rtol=0)
        for name in ("average_drop", "average_increase", "average_gain"):
            assert getattr(result, name) == pytest.approx(getattr(tf_result, name), abs=1e-4), name
        assert result.n == tf_result.n == N


def test_tf_jax_and_torch_adapters_agree_on_omitted_samples(twin_models):
    import camavg_tf
    import camavg_torch
    from camavg_jax import AveragesCam

    tf_metrics, jax_metrics, score, rng, torch_metrics = twin_models
    cams = rng.random((N, SIZE, SIZE)).astype(np.float32)
    cams[2, 0, 0] = np.nan
    tf_omit = camavg_tf.AveragesCam(tf_metrics.model, tf_metrics.inputs, activation="softmax", nan_policy="omit")
    jax_omit = AveragesCam(jax_metrics.apply_fn, jax_metrics.inputs, activation="softmax", nan_policy="omit")
    torch_omit = camavg_torch.AveragesCam(torch_metrics.model, torch_metrics.inputs, activation="softmax", nan_policy="omit")
    tf_result, jax_result = tf_omit.evaluate(cams, score), jax_omit.evaluate(cams, score)
    torch_result = torch_omit.evaluate(cams, score)
    assert tf_result.skipped == jax_result.skipped == torch_result.skipped == 1
    for result in (jax_result, torch_result):
        np.testing.assert_allclose(result.o_c, tf_result.o_c, atol=1e-5, rtol=0)  # NaN at 2 in all
        for name in ("average_drop", "average_increase", "average_gain"):
            assert getattr(result, name) == pytest.approx(getattr(tf_result, name), abs=1e-4), name
