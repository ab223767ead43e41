"""``camavg_tf.evaluate_dataset``: a stream of batches gives the numbers of the whole data.

Oracles: the model's own ``predict`` on the concatenated inputs and on ``inputs * cams`` with
the tests' shared NumPy reference of the equations (reference.py), ``AveragesCam`` on the
concatenated data, and sums worked out by hand for a model whose output is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from camavg_tf import AveragesCam  # noqa: E402
from camavg_tf.streaming import evaluate_dataset  # noqa: E402
from reference import reference_metrics  # noqa: E402

N, SIZE, CLASSES, BATCH = 45, 8, 3, 16  # 45 = 16 + 16 + 13: the last batch is ragged
METRICS = ("average_drop", "average_increase", "average_gain")


@pytest.fixture(scope="module")
def small_cnn():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (N, SIZE, SIZE, 3)).astype(np.float32)
    cams = rng.uniform(0, 1, (N, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, N)
    return images, cams, labels


def batched(images, cams, labels, batch=BATCH):
    return tf.data.Dataset.from_tensor_slices((images, cams, labels)).batch(batch)


def test_numbers_of_the_concatenated_data(small_cnn, data):
    images, cams, labels = data
    plain = small_cnn.predict(images, verbose=0).astype(np.float64)
    masked = small_cnn.predict(images * cams[..., None], verbose=0).astype(np.float64)
    y_c, o_c = plain[np.arange(N), labels], masked[np.arange(N), labels]
    expected = reference_metrics(y_c, o_c)

    result = evaluate_dataset(small_cnn, batched(images, cams, labels), keep_vectors=True)
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)
    assert result.average_drop == pytest.approx(expected["average_drop"], abs=1e-4)
    assert result.average_increase == pytest.approx(expected["average_increase"], abs=1e-9)
    assert result.average_gain == pytest.approx(expected["average_gain"], abs=1e-4)
    assert (result.n, result.skipped) == (N, 0)


def test_same_numbers_as_averages_cam_with_small_cams(small_cnn, data):
    """Grad-CAM-sized maps (2x2 for 8x8 inputs) are resized the way AveragesCam resizes them."""
    from tf_keras_vis.utils.scores import CategoricalScore

    images, _, labels = data
    coarse = np.random.default_rng(5).uniform(0, 1, (N, 2, 2)).astype(np.float32)
    expected = AveragesCam(small_cnn, images, batch_size=BATCH).evaluate(coarse, CategoricalScore(list(labels)))
    streamed = evaluate_dataset(small_cnn, batched(images, coarse, labels), keep_vectors=True)
    np.testing.assert_allclose(streamed.y_c, expected.y_c, atol=1e-6)
    np.testing.assert_allclose(streamed.o_c, expected.o_c, atol=1e-6)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert getattr(streamed, name) == pytest.approx(getattr(expected, name), abs=1e-4)


def test_vectors_only_when_asked(small_cnn, data):
    result = evaluate_dataset(small_cnn, batched(*data))
    assert result.y_c is None and result.o_c is None
    assert result.n == N


def test_a_generator_gives_the_numbers_of_a_dataset(small_cnn, data):
    images, cams, labels = data

    def batches():
        for start in range(0, N, 10):
            yield images[start : start + 10], cams[start : start + 10], list(labels[start : start + 10])

    from_generator = evaluate_dataset(small_cnn, batches(), keep_vectors=True)
    from_dataset = evaluate_dataset(small_cnn, batched(images, cams, labels, 10), keep_vectors=True)
    np.testing.assert_allclose(from_generator.o_c, from_dataset.o_c, atol=1e-6)
    assert from_generator.average_drop == pytest.approx(from_dataset.average_drop, abs=1e-6)


def test_binary_targets_read_as_p_or_one_minus_p():
    """A model whose sigmoid output is the mean pixel: p = mean(x), worked out by hand."""
    inputs = keras.Input((2, 2, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: tf.reduce_mean(x, axis=[1, 2]))(inputs))
    images = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.8, 0.6, 0.3, 0.9)])
    cams = np.stack([np.full((2, 2), v, np.float32) for v in (0.5, 1.0, 0.0, 0.5)])
    targets = np.array([True, False, False, True])
    # p on the inputs: 0.8, 0.6, 0.3, 0.9; on the masked inputs: 0.4, 0.6, 0.0, 0.45
    y_c = np.array([0.8, 1 - 0.6, 1 - 0.3, 0.9])
    o_c = np.array([0.4, 1 - 0.6, 1 - 0.0, 0.45])
    result = evaluate_dataset(
        model, tf.data.Dataset.from_tensor_slices((images, cams, targets)).batch(3), score="binary", keep_vectors=True
    )
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-6)
    # drop: 0.4/0.8, 0, 0, 0.45/0.9 -> mean 0.25; increase: the third only; gain: 0.3/0.3 for the third
    assert result.average_drop == pytest.approx(25.0, abs=1e-4)
    assert result.average_increase == pytest.approx(25.0)
    assert result.average_gain == pytest.approx(25.0, abs=1e-4)


def test_a_callable_score_and_a_multi_input_model():
    left, right = keras.Input((2, 2, 1)), keras.Input((2, 2, 1))
    mean = keras.layers.Lambda(lambda pair: tf.reduce_mean(pair[0] * pair[1], axis=[1, 2]))([left, right])
    model = keras.Model([left, right], mean)
    ones = np.ones((4, 2, 2, 1), np.float32)
    cams = np.stack([np.full((2, 2), v, np.float32) for v in (1.0, 0.5, 0.5, 0.25)])
    element = ((ones, ones), (cams, np.ones((4, 2, 2), np.float32)), np.zeros(4, np.int64))
    result = evaluate_dataset(
        model, tf.data.Dataset.from_tensor_slices(element).batch(3), score=lambda outputs, targets: outputs[:, 0], keep_vectors=True
    )
    np.testing.assert_allclose(result.o_c, [1.0, 0.5, 0.5, 0.25], atol=1e-6)
    assert result.average_drop == pytest.approx(100 * (0 + 0.5 + 0.5 + 0.75) / 4, abs=1e-4)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, N), start=st.integers(0, 20))
def test_any_batching_of_any_slice_gives_the_numbers_of_the_whole(small_cnn, data, batch, start):
    images, cams, labels = data
    part = slice(start, N)
    expected = reference_metrics(
        small_cnn.predict(images[part], verbose=0)[np.arange(N - start), labels[part]].astype(np.float64),
        small_cnn.predict(images[part] * cams[part][..., None], verbose=0)[np.arange(N - start), labels[part]].astype(np.float64),
    )
    result = evaluate_dataset(small_cnn, batched(images[part], cams[part], labels[part], batch))
    got = [getattr(result, name) for name in METRICS]
    np.testing.assert_allclose(got, [expected[name] for name in METRICS], atol=1e-4)
    assert result.n == N - start


# --------------------------------------------------------------------------- checks
def test_nonfinite_sample_named_in_stream_order_or_skipped(small_cnn, data):
    images, cams, labels = data
    cams = cams.copy()
    cams[20, 3, 3] = np.nan  # sample 20 sits in the second batch
    with pytest.raises(ValueError, match=r"cams\[4\] holds NaN.*nan_policy='omit'") as caught:
        evaluate_dataset(small_cnn, batched(images, cams, labels))  # row 4 of batch 1
    assert "stopped in batch 1" in caught.value.__notes__[-1]
    result = evaluate_dataset(small_cnn, batched(images, cams, labels), nan_policy="omit", keep_vectors=True)
    assert (result.n, result.skipped) == (N - 1, 1)
    assert np.isnan(result.o_c[20]) and np.isfinite(np.delete(result.o_c, 20)).all()
    keep = np.arange(N) != 20
    assert result.average_drop == pytest.approx(reference_metrics(result.y_c[keep], result.o_c[keep])["average_drop"], abs=1e-9)


@pytest.mark.slow
def test_logits_ask_for_an_activation(data):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    logits = keras.layers.Dense(CLASSES)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, logits)
    images, cams, labels = data
    with pytest.raises(ValueError, match="activation='softmax'"):
        evaluate_dataset(model, batched(images * 20 - 10, cams, labels))
    result = evaluate_dataset(model, batched(images * 20 - 10, cams, labels), activation="softmax")
    assert 0 <= result.average_drop <= 100


def test_cams_outside_the_unit_range(small_cnn, data):
    images, cams, labels = data
    with pytest.raises(ValueError, match=r"cams must lie in \[0, 1\].*normalize=True"):
        evaluate_dataset(small_cnn, batched(images, cams * 3, labels))
    normalised = evaluate_dataset(small_cnn, batched(images, cams * 3, labels), normalize=True)
    assert normalised.n == N


def test_target_out_of_range(small_cnn, data):
    images, cams, labels = data
    labels = labels.copy()
    labels[33] = CLASSES
    with pytest.raises(ValueError, match=r"index 3 \(sample 1\) is out of range") as caught:
        evaluate_dataset(small_cnn, batched(images, cams, labels))  # row 1 of batch 2
    assert "stopped in batch 2" in caught.value.__notes__[-1]


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(score="softmax"), ValueError, "score must be one of"),
        (dict(nan_policy="ignore"), ValueError, "nan_policy"),
        (dict(level=95), ValueError, "level"),
        (dict(data_format="NHWC"), ValueError, "data_format"),
        (dict(activation="relu"), ValueError, "activation"),
        (dict(strategy=object()), TypeError, "strategy"),
    ],
)
def test_bad_options(small_cnn, data, bad, error, match):
    with pytest.raises(error, match=match):
        evaluate_dataset(small_cnn, batched(*data), **bad)


def test_bad_streams(small_cnn, data):
    images, cams, labels = data
    with pytest.raises(TypeError, match=r"\(inputs, cams, targets\)"):
        evaluate_dataset(small_cnn, tf.data.Dataset.from_tensor_slices((images, cams)).batch(4))
    with pytest.raises(ValueError, match="batch the dataset"):
        evaluate_dataset(small_cnn, tf.data.Dataset.from_tensor_slices((images[0], cams[0], labels[:8])))
    with pytest.raises(ValueError, match="cams holds 3 maps but inputs holds 4"):
        evaluate_dataset(small_cnn, [(images[:4], cams[:3], labels[:4])])
    with pytest.raises(ValueError, match="4 input samples but 3 targets"):
        evaluate_dataset(small_cnn, [(images[:4], cams[:4], labels[:3])])
    with pytest.raises(ValueError, match="empty"):
        evaluate_dataset(small_cnn, [])
    with pytest.raises(TypeError, match="iterable"):
        evaluate_dataset(small_cnn, 42)
    with pytest.raises(ValueError, match="empty"):
        evaluate_dataset(small_cnn, batched(*data).take(0))


def test_progress_bar(small_cnn, data, capsys):
    evaluate_dataset(small_cnn, batched(*data), progress=True)
    captured = capsys.readouterr()
    assert "3/3" in captured.err + captured.out  # three batches, counted
