"""camavg_jax.AveragesCam against a NumPy reference of the same model and masking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from camavg_core.backends import resize_bilinear_numpy  # noqa: E402
from camavg_jax import AveragesCam  # noqa: E402
from reference import reference_metrics  # noqa: E402

N, SIZE, CHANNELS, CLASSES = 10, 8, 3, 4
ROOT = Path(__file__).resolve().parents[1]


class CategoricalScore:
    """Stands in for tf-keras-vis' CategoricalScore, recognised by its type name."""

    def __init__(self, indices):
        self.indices = list(np.atleast_1d(indices))

    def __call__(self, outputs):  # camavg reads .indices; being called would be a bug
        raise AssertionError("camavg must not call a CategoricalScore")


class BinaryScore:
    def __init__(self, target_values):
        self.target_values = list(np.atleast_1d(target_values))

    def __call__(self, outputs):
        raise AssertionError("camavg must not call a BinaryScore")


def _weights(seed=0, classes=CLASSES, channels=CHANNELS):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(scale=0.5, size=(3, 3, channels, 5)).astype(np.float32)
    dense = rng.normal(scale=1.0, size=(5, classes)).astype(np.float32)
    return kernel, dense


def _jax_model(kernel, dense, counter=None):
    """3x3 SAME conv, ReLU, global mean pool, dense: logits. ``counter`` counts traces."""

    def apply_fn(x):
        if counter is not None:
            counter.append(x.shape)  # runs only while jax traces the function
        features = jax.lax.conv_general_dilated(
            x.astype(jnp.float32), kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.mean(jax.nn.relu(features), axis=(1, 2)) @ dense

    return apply_fn


def _numpy_model(x, kernel, dense):
    """The same model in float64 NumPy: the conv as a sum of shifted products."""
    x = np.asarray(x, np.float64)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = x.shape[1:3]
    features = np.zeros((*x.shape[:3], kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy : dy + height, dx : dx + width, :]
            features += window @ kernel[dy, dx].astype(np.float64)
    return np.maximum(features, 0).mean(axis=(1, 2)) @ dense.astype(np.float64)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _numpy_mask(images, cams):
    cams = np.asarray(cams, np.float64)
    if cams.shape[1:3] != images.shape[1:3]:
        cams = resize_bilinear_numpy(cams[..., None], images.shape[1:3])[..., 0]
    return np.asarray(images, np.float64) * cams[..., None]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    images = rng.random((N, SIZE, SIZE, CHANNELS)).astype(np.float32)
    cams = rng.random((N, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, N)
    return images, cams, labels


@pytest.fixture(scope="module")
def weights():
    return _weights()


def _expected_vectors(images, cams, labels, kernel, dense):
    y_c = _softmax(_numpy_model(images, kernel, dense))[np.arange(len(labels)), labels]
    o_c = _softmax(_numpy_model(_numpy_mask(images, cams), kernel, dense))[np.arange(len(labels)), labels]
    return y_c, o_c


# --------------------------------------------------------------------------- numbers
@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 3, 4, 10, 64])
def test_scores_and_metrics_match_a_numpy_reference(data, weights, batch_size):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=batch_size, activation="softmax")
    result = metrics.evaluate(cams, CategoricalScore(labels))
    y_c, o_c = _expected_vectors(images, cams, labels, *weights)
    np.testing.assert_allclose(result.y_c, y_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, rtol=1e-5, atol=1e-6)
    expected = reference_metrics(y_c, o_c)
    assert result.average_drop == pytest.approx(expected["average_drop"], abs=1e-3)
    assert result.average_increase == pytest.approx(expected["average_increase"], abs=1e-9)
    assert result.average_gain == pytest.approx(expected["average_gain"], abs=1e-3)
    assert result.n == N and result.skipped == 0


def test_seed_api_methods_and_return_vector(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    score = CategoricalScore(labels)
    drop, y_c, o_c = metrics.average_drop(cams, score, return_vector=True)
    y_ref, o_ref = _expected_vectors(images, cams, labels, *weights)
    np.testing.assert_allclose(y_c, y_ref, rtol=1e-5)
    np.testing.assert_allclose(o_c, o_ref, rtol=1e-5)
    expected = reference_metrics(y_c, o_c)
    assert drop == pytest.approx(expected["average_drop"], rel=1e-9)
    assert metrics.average_increase(cams, score) == pytest.approx(expected["average_increase"], rel=1e-9)
    assert metrics.average_gain(cams, score) == pytest.approx(expected["average_gain"], rel=1e-9)
    assert metrics.model is metrics.apply_fn and metrics.inputs is images


def test_one_masked_pass_for_several_metrics(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    calls = []
    run = metrics.adapter.run
    metrics.adapter.run = lambda inputs, cams, *rest: calls.append(cams is not None) or run(inputs, cams, *rest)
    score = CategoricalScore(labels)
    metrics.average_drop(cams, score)
    metrics.average_increase(cams, score)
    metrics.evaluate(cams, score)
    assert calls == [True]  # one masked pass for the three metrics
    metrics.evaluate(cams * 0.5, score)
    assert calls == [True, True]


# --------------------------------------------------------------------------- compilation
@pytest.mark.slow
def test_compiled_once_per_batch_shape_with_a_ragged_last_batch(data, weights):
    images, cams, labels = data
    traces = []
    metrics = AveragesCam(_jax_model(*weights, counter=traces), images, batch_size=4, activation="softmax")
    assert traces == [(4, SIZE, SIZE, CHANNELS)]  # plain pass: 10 = 4 + 4 + 2 padded to 4
    rng = np.random.default_rng(3)
    for _ in range(3):
        metrics.evaluate(rng.random((N, SIZE, SIZE)).astype(np.float32), CategoricalScore(labels))
    assert metrics.trace_count == 2  # and one trace of the masked pass
    # apply_fn itself was traced once, at construction: the masked pass evaluates that trace
    assert traces == [(4, SIZE, SIZE, CHANNELS)]
    # float64 NumPy CAMs are the same compiled shape: they are cast before the pass
    metrics.evaluate(cams.astype(np.float64), CategoricalScore(labels))
    assert metrics.trace_count == 2
    # CAMs of another spatial size are another input shape: exactly one more trace
    metrics.evaluate(rng.random((N, 3, 3)), CategoricalScore(labels))
    metrics.evaluate(rng.random((N, 3, 3)), CategoricalScore(labels))
    assert metrics.trace_count == 3 and len(traces) == 1


def test_outputs_reach_the_score_function_on_the_device(data, weights):
    images, cams, labels = data
    seen = []

    def score(outputs):
        seen.append(type(outputs))
        return outputs[jnp.arange(N), jnp.asarray(labels)]

    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    result = metrics.evaluate(cams, score)
    assert all(issubclass(kind, jax.Array) for kind in seen) and len(seen) == 2
    y_ref, o_ref = _expected_vectors(images, cams, labels, *weights)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5)
    assert result.y_c.dtype == np.float64 and result.y_c.shape == (N,)


# --------------------------------------------------------------------------- input kinds
def test_device_cams_and_inputs_equal_numpy_ones(data, weights):
    images, cams, labels = data
    from_numpy = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    from_device = AveragesCam(_jax_model(*weights), jnp.asarray(images), batch_size=4, activation="softmax")
    a = from_numpy.evaluate(cams, CategoricalScore(labels))
    b = from_device.evaluate(jnp.asarray(cams), CategoricalScore(labels))
    np.testing.assert_allclose(a.y_c, b.y_c, rtol=1e-6)
    np.testing.assert_allclose(a.o_c, b.o_c, rtol=1e-6)


def test_small_cams_are_resized_bilinearly(data, weights):
    images, _, labels = data
    small = np.random.default_rng(5).random((N, 3, 3)).astype(np.float32)
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    result = metrics.evaluate(small, CategoricalScore(labels))
    _, o_ref = _expected_vectors(images, small, labels, *weights)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5, atol=1e-6)


def test_channels_first(data, weights):
    images, cams, labels = data
    kernel, dense = weights
    nhwc_model = _jax_model(kernel, dense)
    metrics = AveragesCam(
        lambda x: nhwc_model(jnp.transpose(x, (0, 2, 3, 1))),
        images.transpose(0, 3, 1, 2),
        batch_size=4,
        activation="softmax",
        data_format="channels_first",
    )
    result = metrics.evaluate(cams[:, None], CategoricalScore(labels))  # (N, 1, H, W) CAMs
    y_ref, o_ref = _expected_vectors(images, cams, labels, kernel, dense)
    np.testing.assert_allclose(result.y_c, y_ref, rtol=1e-5)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5)


def test_normalize_rescales_each_cam(data, weights):
    images, cams, labels = data
    stretched = cams * 7.0 - 2.0  # outside [0, 1]: normalize=True maps it back to cams' min-max
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax", normalize=True)
    result = metrics.evaluate(stretched, CategoricalScore(labels))
    flat = cams.reshape(N, -1).astype(np.float64)
    normalised = (flat - flat.min(1, keepdims=True)) / (flat.max(1, keepdims=True) - flat.min(1, keepdims=True))
    _, o_ref = _expected_vectors(images, normalised.reshape(cams.shape), labels, *weights)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5, atol=1e-6)


def test_uint8_images_reach_apply_fn_as_float32(weights):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (4, SIZE, SIZE, CHANNELS), dtype=np.uint8)
    dtypes = []
    kernel, dense = weights
    model = _jax_model(kernel, dense)

    def apply_fn(x):
        dtypes.append(x.dtype)
        return model(x / 255.0)

    metrics = AveragesCam(apply_fn, images, activation="softmax")
    cams = rng.random((4, SIZE, SIZE))
    result = metrics.evaluate(cams, CategoricalScore(1))
    assert {np.dtype(d) for d in dtypes} == {np.dtype(jnp.float32)}
    y_ref, o_ref = _expected_vectors(images / 255.0, cams, np.ones(4, int), kernel, dense)
    np.testing.assert_allclose(result.y_c, y_ref, rtol=1e-5)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5)


def test_bfloat16_inputs_score_in_float32(data, weights):
    images, cams, labels = data
    kernel, dense = weights
    model = _jax_model(kernel, dense)
    dtypes = []

    def apply_fn(x):
        dtypes.append(x.dtype)
        return model(x).astype(jnp.bfloat16)  # a bfloat16 model returns bfloat16 logits

    metrics = AveragesCam(apply_fn, jnp.asarray(images, jnp.bfloat16), batch_size=4, activation="softmax")
    result = metrics.evaluate(cams, CategoricalScore(labels))
    assert {np.dtype(d) for d in dtypes} == {np.dtype(jnp.bfloat16)}
    y_ref, o_ref = _expected_vectors(images, cams, labels, kernel, dense)
    # bfloat16 keeps 8 bits of mantissa: inputs and logits round by up to ~0.4% each
    np.testing.assert_allclose(result.y_c, y_ref, atol=2e-2)
    np.testing.assert_allclose(result.o_c, o_ref, atol=2e-2)
    assert result.y_c.dtype == np.float64 and np.isfinite(result.average_drop)


def test_binary_score_with_sigmoid(data, weights):
    images, cams, _ = data
    kernel, dense = _weights(seed=1, classes=1)
    targets = [True, False] * (N // 2)
    metrics = AveragesCam(_jax_model(kernel, dense), images, activation="sigmoid", batch_size=4)
    result = metrics.evaluate(cams, BinaryScore(targets))
    p = 1 / (1 + np.exp(-_numpy_model(images, kernel, dense)[:, 0]))
    p_masked = 1 / (1 + np.exp(-_numpy_model(_numpy_mask(images, cams), kernel, dense)[:, 0]))
    positive = np.array(targets)
    np.testing.assert_allclose(result.y_c, np.where(positive, p, 1 - p), rtol=1e-5)
    np.testing.assert_allclose(result.o_c, np.where(positive, p_masked, 1 - p_masked), rtol=1e-5)


def test_multi_input_and_multi_output(data, weights):
    images, cams, labels = data
    kernel, dense = weights
    second_images = images[::-1].copy()
    second_cams = cams[:, ::-1].copy()
    model = _jax_model(kernel, dense)

    def apply_fn(batch):
        first, second = batch  # a list with one array per input
        # halved, so that the summed score of the two outputs stays a probability
        return 0.5 * jax.nn.softmax(model(first)), 0.5 * jax.nn.softmax(model(second) * 0.5)

    metrics = AveragesCam(apply_fn, [images, second_images], batch_size=4)
    score = [CategoricalScore(labels), lambda out: out[:, 0]]
    result = metrics.evaluate([cams, second_cams], score)
    rows = np.arange(N)

    def expected(first, second):
        first_probabilities = _softmax(_numpy_model(first, kernel, dense))
        second_probabilities = _softmax(0.5 * _numpy_model(second, kernel, dense))
        return 0.5 * first_probabilities[rows, labels] + 0.5 * second_probabilities[:, 0]

    y_ref = expected(images, second_images)
    o_ref = expected(_numpy_mask(images, cams), _numpy_mask(second_images, second_cams))
    np.testing.assert_allclose(result.y_c, y_ref, rtol=1e-5)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5)


# --------------------------------------------------------------------------- nan_policy
def test_omit_skips_samples_whose_cam_has_nan(data, weights):
    images, cams, labels = data
    holed = cams.copy()
    holed[3, 2, 2] = np.nan
    holed[7] = np.nan
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax", nan_policy="omit")
    result = metrics.evaluate(holed, CategoricalScore(labels))
    assert result.skipped == 2 and result.n == N - 2
    assert np.isnan(result.o_c[[3, 7]]).all() and np.isfinite(np.delete(result.o_c, [3, 7])).all()
    y_ref, o_ref = _expected_vectors(images, cams, labels, *weights)
    keep = np.setdiff1d(np.arange(N), [3, 7])
    expected = reference_metrics(y_ref[keep], o_ref[keep])
    assert result.average_drop == pytest.approx(expected["average_drop"], abs=1e-3)
    assert result.average_increase == pytest.approx(expected["average_increase"])
    assert result.average_gain == pytest.approx(expected["average_gain"], abs=1e-3)
    assert np.isnan(holed[7]).all()  # the caller's CAMs are not modified


def test_raise_names_nan_cams_and_nan_inputs(data, weights):
    images, cams, labels = data
    holed = cams.copy()
    holed[4, 0, 0] = np.nan
    metrics = AveragesCam(_jax_model(*weights), images, activation="softmax")
    with pytest.raises(ValueError, match=r"cams\[4\].*nan_policy='omit'"):
        metrics.evaluate(holed, CategoricalScore(labels))
    bad_images = images.copy()
    bad_images[6, 1, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"inputs\[6\] holds NaN or infinity"):
        AveragesCam(_jax_model(*weights), bad_images)


# --------------------------------------------------------------------------- errors
def test_bad_arguments_get_clear_errors(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, activation="softmax")
    score = CategoricalScore(labels)
    with pytest.raises(ValueError, match="cams holds 9 maps but inputs holds 10"):
        metrics.evaluate(cams[:9], score)
    with pytest.raises(ValueError, match="cams must lie in"):
        metrics.evaluate(cams * 3, score)
    with pytest.raises(ValueError, match="cams is a list but the model has a single input"):
        metrics.evaluate([cams, cams], score)
    with pytest.raises(ValueError, match="one score function per output"):
        metrics.evaluate(cams, [score, score])
    with pytest.raises(TypeError, match="apply_fn must be a function"):
        AveragesCam("model", images)
    with pytest.raises(ValueError, match="batch_size"):
        AveragesCam(_jax_model(*weights), images, batch_size=0)
    with pytest.raises(ValueError, match="inputs is empty"):
        AveragesCam(_jax_model(*weights), images[:0])
    with pytest.raises(ValueError, match="one row per sample"):
        AveragesCam(lambda x: jnp.sum(x), images)
    multi = AveragesCam(lambda b: _jax_model(*weights)(b[0]), [images, images], activation="softmax")
    with pytest.raises(ValueError, match="cams must be a list with one CAM array per input"):
        multi.evaluate(cams, score)
    with pytest.raises(ValueError, match="different numbers of samples"):
        AveragesCam(lambda b: b[0], [images, images[:5]])


def test_cam_values_are_checked_for_every_sample_not_just_the_first(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, activation="softmax")
    score = CategoricalScore(labels)
    late_range = cams.copy()
    late_range[8, 1, 1] = 1.5
    with pytest.raises(ValueError, match=r"cams must lie in \[0, 1\].*1\.5"):
        metrics.evaluate(late_range, score)
    with pytest.raises(ValueError, match=r"cams must lie in \[0, 1\]"):
        metrics.evaluate(jnp.asarray(late_range), score)  # device CAMs: checked on the device
    first_nan = cams.copy()
    first_nan[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"cams\[0\] holds NaN or infinity"):
        metrics.evaluate(first_nan, score)
    late_inf = cams.copy()
    late_inf[9, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"cams\[9\] holds NaN or infinity"):
        metrics.evaluate(jnp.asarray(late_inf), score)
    with pytest.raises(ValueError, match=r"cams of shape \(10, 2, 2, 2\) have 2 channels"):
        metrics.evaluate(np.ones((N, 2, 2, 2)), score)
    with pytest.raises(ValueError, match="cannot be resized"):
        metrics.evaluate(np.ones((N, 0, 3)), score)
    with pytest.raises(ValueError, match="got rank 0"):
        metrics.evaluate(np.float32(0.5), score)
    with pytest.raises(TypeError, match="cams must hold numbers"):
        metrics.evaluate(np.array([["a"]] * N), score)


def test_bfloat16_cams_on_the_device(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images, batch_size=4, activation="softmax")
    result = metrics.evaluate(jnp.asarray(cams, jnp.bfloat16), CategoricalScore(labels))
    rounded = np.asarray(jnp.asarray(cams, jnp.bfloat16), np.float32)  # what the CAMs hold
    _, o_ref = _expected_vectors(images, rounded, labels, *weights)
    np.testing.assert_allclose(result.o_c, o_ref, rtol=1e-5, atol=1e-6)


def test_omit_with_every_value_of_a_cam_nan_and_normalize(data, weights):
    images, cams, labels = data
    holed = cams.copy()
    holed[0] = np.nan
    metrics = AveragesCam(
        _jax_model(*weights), images, activation="softmax", nan_policy="omit", normalize=True, batch_size=4
    )
    result = metrics.evaluate(holed, CategoricalScore(labels))
    assert result.skipped == 1 and np.isnan(result.o_c[0]) and np.isfinite(result.o_c[1:]).all()


def test_logits_without_activation_are_named(data, weights):
    images, cams, labels = data
    metrics = AveragesCam(_jax_model(*weights), images)  # logits: negative scores
    with pytest.raises(ValueError, match="activation='softmax'"):
        metrics.evaluate(cams, CategoricalScore(labels))


def test_inputs_and_cams_are_not_modified(data, weights):
    images, cams, labels = data
    images_before, cams_before = images.copy(), cams.copy()
    AveragesCam(_jax_model(*weights), images, activation="softmax", batch_size=3).evaluate(cams, CategoricalScore(labels))
    np.testing.assert_array_equal(images, images_before)
    np.testing.assert_array_equal(cams, cams_before)


# --------------------------------------------------------------------------- the model as it is now
def _apply(params, x):
    """A Flax-style apply: parameters first, then the batch."""
    kernel, dense = params
    return _jax_model(kernel, dense)(x)


def test_a_new_averagescam_with_new_parameters_gives_the_new_numbers(data):
    """Parameters closed over by apply_fn are constants of its trace: a new AveragesCam with
    a new apply_fn (here a jitted partial, as a training loop would hand over) runs them."""
    import functools

    images, cams, labels = data
    score = CategoricalScore(labels)
    for seed in (0, 1):
        params = _weights(seed)
        apply_fn = jax.jit(functools.partial(_apply, params))
        result = AveragesCam(apply_fn, images, activation="softmax").evaluate(cams, score)
        y_c, o_c = _expected_vectors(images, cams, labels, *params)
        np.testing.assert_allclose(result.y_c, y_c, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.o_c, o_c, rtol=1e-4, atol=1e-6)
    assert not np.allclose(_expected_vectors(images, cams, labels, *_weights(0))[0], y_c)


def test_parameters_rebound_after_construction_reach_no_pass_of_that_averagescam(data):
    """Flax's ``lambda x: model.apply(variables, x)``, with ``variables`` rebound after the
    ``AveragesCam`` was built. Each pass is traced at its first call, so the masked pass (first
    ``evaluate``) and Deletion's (first ``deletion``) once read the new parameters beside Y_c of
    the old: one result of two models. apply_fn's one trace now serves every pass: every number
    is the old model's (the NumPy reference with the old weights), as the docs say."""
    images, cams, labels = data
    old, new = _weights(0), _weights(1)
    variables = old
    metrics = AveragesCam(lambda x: _apply(variables, x), images, activation="softmax")
    variables = new  # more training, rebound
    score = CategoricalScore(labels)
    result = metrics.evaluate(cams, score)
    y_c, o_c = _expected_vectors(images, cams, labels, *old)
    np.testing.assert_allclose(result.y_c, y_c, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, rtol=1e-4, atol=1e-6)
    assert not np.allclose(_expected_vectors(images, cams, labels, *new)[1], o_c, atol=1e-3)
    # Deletion's last point (every pixel at the baseline 0) is the old model's on black images
    _, _, curves = metrics.deletion(cams, score, steps=4, return_vector=True)
    black = _softmax(_numpy_model(np.zeros_like(images), *old))[np.arange(N), labels]
    np.testing.assert_allclose(curves[:, 0], y_c, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(curves[:, -1], black, rtol=1e-4, atol=1e-6)
    # a new AveragesCam traces apply_fn afresh: the new parameters
    fresh = AveragesCam(lambda x: _apply(variables, x), images, activation="softmax").evaluate(cams, score)
    np.testing.assert_allclose(fresh.y_c, _expected_vectors(images, cams, labels, *new)[0], rtol=1e-4, atol=1e-6)


def test_an_apply_fn_returning_a_dict_gets_a_type_error_naming_its_keys(data, weights):
    images, _, _ = data
    model = _jax_model(*weights)
    with pytest.raises(TypeError, match=r"apply_fn returned a dict \(keys \['logits'\]\).*\['logits'\]"):
        AveragesCam(lambda x: {"logits": model(x)}, images)


def test_layouts_that_a_resize_would_misread_are_refused(weights):
    """NCHW inputs under the default data_format, and transposed maps: the checks of the
    core, at the JAX door too."""
    rng = np.random.default_rng(9)
    nchw = rng.random((N, CHANNELS, 8, 16)).astype(np.float32)
    cams = rng.random((N, 8, 16)).astype(np.float32)
    pooled = lambda x: jnp.mean(x, axis=(2, 3)) @ jnp.asarray(weights[1][:CHANNELS])  # noqa: E731
    with pytest.raises(ValueError, match='data_format="channels_first"'):
        AveragesCam(pooled, nchw, activation="softmax").evaluate(cams, CategoricalScore(0))
    nhwc = np.moveaxis(nchw, 1, -1)
    model = lambda x: jnp.mean(x, axis=(1, 2)) @ jnp.asarray(weights[1][:CHANNELS])  # noqa: E731
    with pytest.raises(ValueError, match="transposed"):
        AveragesCam(model, nhwc, activation="softmax").evaluate(np.swapaxes(cams, 1, 2), CategoricalScore(0))
