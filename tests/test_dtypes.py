"""Dtypes: images and CAMs of any numeric dtype give the float32 answer; sums never in float16.

- uint8 and other integer images are cast to the model's input dtype *before* masking: masking
  a uint8 image by 0.4 in uint8 would truncate every pixel, so ``O_c`` must equal the model on
  ``float32(image) * cam``, computed here directly.
- float16, float64, bool and bfloat16 images, and CAMs of float16, float64, bool and uint8, give
  the same ``O_c`` as their float32 values.
- The streaming state accumulates float16 and bfloat16 scores in float64 (NumPy) or float32
  (TensorFlow), never in their own dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core import MetricState, avg_drop, summarize
from reference import EPS


# =========================================================================== the state's dtypes
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "uint8", "bool"])
def test_numpy_state_sums_are_float64(dtype):
    y = np.array([1, 0, 1], dtype=dtype)
    o = np.array([0, 1, 1], dtype=dtype)
    state = MetricState.empty().update(y, o)
    for name in ("drop_sum", "drop_sq_sum", "gain_sum", "gain_sq_sum"):
        assert np.asarray(getattr(state, name)).dtype == np.float64, name


def test_float16_sums_are_not_rounded_to_float16():
    # 2048 drops of 1/3: a float16 running sum stalls at 512 (spacing 0.5 there), float64 does not
    y = np.full(2048, 0.75, dtype=np.float16)
    o = np.full(2048, 0.5, dtype=np.float16)
    state = MetricState.empty().update(y, o)
    expected_sum = 2048 * (0.25 / (0.75 + EPS))
    assert float(state.drop_sum) == pytest.approx(expected_sum, rel=1e-9)
    assert summarize(y, o).average_drop == pytest.approx(100 * 0.25 / (0.75 + EPS), rel=1e-9)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64", "int32", "bool"])
def test_tensorflow_state_sums_are_float32_or_float64(dtype_name):
    tf = pytest.importorskip("tensorflow")
    dtype = tf.as_dtype(dtype_name)
    y = tf.cast(tf.constant([1.0, 0.0, 1.0]), dtype)
    o = tf.cast(tf.constant([0.0, 1.0, 1.0]), dtype)
    state = MetricState.empty().update(y, o)
    for name in ("drop_sum", "drop_sq_sum", "gain_sum", "gain_sq_sum"):
        assert getattr(state, name).dtype in (tf.float32, tf.float64), name
    # sample 0 drops 1 -> 0, sample 1 rises 0 -> 1, sample 2 ties
    result = state.result()
    assert result.average_drop == pytest.approx(100 * (1 / (1 + EPS)) / 3, abs=1e-4)
    assert result.average_increase == pytest.approx(100 / 3)
    assert result.average_gain == pytest.approx(100 * (1 / (1 + EPS)) / 3, abs=1e-4)


@pytest.mark.parametrize("framework", ["numpy", "tensorflow"])
def test_bfloat16_scores_work_in_the_averages(framework):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    y, o = np.array([0.75, 0.5]), np.array([0.5, 0.75])  # exact in bfloat16
    if framework == "numpy":
        y16, o16 = y.astype(ml_dtypes.bfloat16), o.astype(ml_dtypes.bfloat16)
    else:
        tf = pytest.importorskip("tensorflow")
        y16, o16 = tf.constant(y, tf.bfloat16), tf.constant(o, tf.bfloat16)
    assert avg_drop(y16, o16) == pytest.approx(100 * (0.25 / (0.75 + EPS)) / 2, abs=1e-4)
    assert summarize(y16, o16).average_increase == 50.0


# =========================================================================== AveragesCam (TF)
@pytest.fixture(scope="module")
def tfk():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    return tf, keras, AveragesCam


@pytest.fixture(scope="module")
def pixel_model(tfk):
    """Takes 0..255 pixels (a Rescaling layer first, as image models often do): float32 input."""
    _, keras, _ = tfk
    keras.utils.set_random_seed(2)
    images = keras.Input((6, 6, 3))
    scaled = keras.layers.Rescaling(1 / 255)(images)
    features = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(scaled)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(images, keras.layers.Dense(3, activation="softmax")(pooled))


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, size=(4, 6, 6, 3))
    # fractions, so masking in an integer dtype would visibly truncate
    cams = rng.choice([0.1, 0.4, 0.75, 1.0], size=(4, 6, 6)).astype(np.float32)
    return images, cams, np.array([0, 1, 2, 1])


def float32_oracle(model, images, cams, labels):
    """The model on the float32 image and on float32(image) * float32(cam), scores by label."""
    x = np.asarray(images).astype(np.float32)
    maps = np.asarray(cams).astype(np.float32)
    rows = np.arange(len(x))
    y_c = np.asarray(model(x, training=False), dtype=np.float64)[rows, labels]
    o_c = np.asarray(model(x * maps[..., None], training=False), dtype=np.float64)[rows, labels]
    return y_c, o_c


def label_score(tf, labels):
    indices = tf.constant(labels, dtype=tf.int32)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64", "float16", "float64"])
def test_images_are_cast_to_the_model_input_dtype_before_masking(tfk, pixel_model, pixels, dtype):
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    typed = images.astype(dtype)  # 0..255 are exact in every one of these dtypes
    y_c, o_c = float32_oracle(pixel_model, images, cams, labels)
    # what masking in uint8 would give instead: every pixel truncated, a different O_c
    truncated = (images.astype(np.uint8) * cams[..., None]).astype(np.uint8)
    _, o_truncated = float32_oracle(pixel_model, truncated, np.ones_like(cams), labels)
    assert np.abs(o_truncated - o_c).max() > 1e-4

    result = AveragesCam(pixel_model, typed).evaluate(cams, label_score(tf, labels))
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)
    tensor_result = AveragesCam(pixel_model, tf.constant(typed)).evaluate(cams, label_score(tf, labels))
    np.testing.assert_allclose(tensor_result.o_c, o_c, atol=1e-6)


def test_bool_images_are_zero_and_one(tfk, pixel_model, pixels):
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    masks = images > 127
    y_c, o_c = float32_oracle(pixel_model, masks.astype(np.float32), cams, labels)
    result = AveragesCam(pixel_model, masks).evaluate(cams, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)


def test_bfloat16_images_give_their_float32_values(tfk, pixel_model, pixels):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    rounded = images.astype(ml_dtypes.bfloat16)  # bfloat16 keeps 8 bits: 0..255 are exact
    _, o_c = float32_oracle(pixel_model, rounded.astype(np.float32), cams, labels)
    result = AveragesCam(pixel_model, rounded).evaluate(cams, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float64", "bool", "uint8", "int32"])
def test_cams_of_any_numeric_dtype_give_their_float32_values(tfk, pixel_model, pixels, dtype):
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    typed = (cams > 0.5).astype(dtype) if dtype in ("bool", "uint8", "int32") else cams.astype(dtype)
    _, o_c = float32_oracle(pixel_model, images, typed.astype(np.float32), labels)
    result = AveragesCam(pixel_model, images.astype(np.uint8)).evaluate(typed, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)


def test_bfloat16_cams_give_their_float32_values(tfk, pixel_model, pixels):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    typed = cams.astype(ml_dtypes.bfloat16)
    _, o_c = float32_oracle(pixel_model, images, typed.astype(np.float32), labels)
    result = AveragesCam(pixel_model, images).evaluate(typed, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)


def test_result_vectors_are_float64_whatever_the_dtypes(tfk, pixel_model, pixels):
    tf, _, AveragesCam = tfk
    images, cams, labels = pixels
    metrics = AveragesCam(pixel_model, images.astype(np.uint8))
    result = metrics.evaluate(cams.astype(np.float16), label_score(tf, labels))
    assert result.y_c.dtype == np.float64 and result.o_c.dtype == np.float64
    for name in ("average_drop", "average_increase", "average_gain"):
        assert isinstance(getattr(result, name), float), name
