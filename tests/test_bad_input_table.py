"""One test per row of the table "What camavg does with bad input" (docs/bad-input.md).

Each test gives camavg one kind of bad (or merely unusual) input and checks what the table
says: the right number, worked out here by hand or by calling the model directly, or an error
of the stated type whose message names the argument and the fix. The last test reads the
table and checks that every row names a test that exists, so the table cannot drift from
the suite.
"""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

from camavg_core import MetricState, avg_drop, avg_gain, avg_increase, summarize

EPS = 1e-7
TABLE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"
AVERAGES = [avg_drop, avg_increase, avg_gain, summarize]


def message_of(call) -> str:
    """The message of the ValueError or TypeError that ``call`` raises."""
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    return str(caught.value)


# =========================================================================== score vectors
def test_scores_of_different_lengths():
    for function in AVERAGES:
        message = message_of(lambda: function([0.5, 0.4, 0.3], [0.2, 0.1]))
        assert "Y_c has 3 scores but O_c has 2" in message


def test_empty_scores():
    for function in AVERAGES:
        assert "empty" in message_of(lambda: function([], []))


@pytest.mark.parametrize("shape", [(), (2, 3), (2, 1, 1)])
def test_scores_that_are_not_one_per_sample(shape):
    for function in AVERAGES:
        message = message_of(lambda: function(np.full(shape, 0.5), np.full(shape, 0.25)))
        assert "Y_c must be a vector of one score per sample" in message
        assert str(shape) in message


def test_a_column_of_scores_is_accepted():
    # (N, 1) is what a Keras model with one output unit returns: read as (N,)
    value = avg_drop(np.array([[0.8], [0.5]]), np.array([[0.2], [0.5]]))
    assert value == pytest.approx(100 * (0.6 / (0.8 + EPS) + 0.0) / 2)


@pytest.mark.parametrize(
    "junk", ["0.5", None, [object()], np.array([0.5 + 1j]), {"a": 0.5}], ids=lambda j: type(j).__name__
)
def test_scores_that_are_not_numbers(junk):
    for function in AVERAGES:
        with pytest.raises(TypeError) as caught:
            function(junk, [0.25])
        assert "Y_c must" in str(caught.value)


def test_integer_and_bool_scores_are_numbers():
    # True/False and 0/1 are read as 1.0 and 0.0: sample 0 drops 1 -> 0, sample 1 rises
    for y, o in [([True, False], [False, True]), (np.array([1, 0], np.uint8), np.array([0, 1], np.uint8))]:
        assert avg_drop(y, o) == pytest.approx(100 * (1 / (1 + EPS)) / 2)
        assert avg_increase(y, o) == 50.0


def test_nonfinite_score_is_named_under_raise():
    message = message_of(lambda: avg_drop([0.5, 0.4, np.nan, np.inf], [0.25, 0.2, 0.1, 0.1]))
    assert "Y_c[2] is nan" in message and "nan_policy='omit'" in message
    message = message_of(lambda: summarize([0.5, 0.4], [0.25, -np.inf]))
    assert "O_c[1] is -inf" in message


def test_nonfinite_score_is_skipped_and_counted_under_omit():
    # samples 1 and 2 are skipped; sample 0 drops from 0.5 to 0.25 and sample 3 rises
    result = summarize([0.5, np.nan, 0.4, 0.2], [0.25, 0.1, np.inf, 0.6], nan_policy="omit")
    assert (result.n, result.skipped) == (2, 2)
    assert result.average_drop == pytest.approx(100 * (0.25 / (0.5 + EPS) + 0) / 2)
    assert result.average_increase == pytest.approx(50.0)
    assert result.average_gain == pytest.approx(100 * (0 + 0.4 / (1 - 0.2 + EPS)) / 2)
    assert "2 skipped" in str(result)
    assert result.to_dict()["skipped"] == 2
    # the vectors keep every sample, so the skipped ones can be found
    assert np.isnan(result.y_c[1]) and np.isinf(result.o_c[2])
    assert avg_drop([0.5, np.nan], [0.25, 0.1], nan_policy="omit") == pytest.approx(
        100 * 0.25 / (0.5 + EPS)
    )


def test_every_score_skipped_is_an_error():
    for function in AVERAGES:
        message = message_of(lambda: function([np.nan, 0.5], [0.1, np.nan], nan_policy="omit"))
        assert "skipped" in message and "nothing to average" in message


def test_unknown_nan_policy():
    for function in AVERAGES:
        message = message_of(lambda: function([0.5], [0.25], nan_policy="ignore"))
        assert "nan_policy must be one of ('raise', 'omit'), got 'ignore'" in message


def test_negative_scores_are_logits_for_drop():
    for function in (avg_drop, avg_gain, summarize):
        message = message_of(lambda: function([2.3, -1.2], [0.5, 0.1]))
        assert "Y_c holds -1.2" in message
        assert "logits" in message and "activation='softmax'" in message
    # Average Increase compares scores, and is defined for logits
    assert avg_increase([2.3, -1.2], [2.5, -1.5]) == 50.0


def test_scores_above_one_are_logits_for_gain():
    for function in (avg_gain, summarize):
        message = message_of(lambda: function([2.3, 0.5], [0.5, 0.1]))
        assert "Y_c holds 2.3" in message
        assert "logits" in message and "activation='softmax'" in message


def test_zero_score_is_valid():
    # a saturated softmax gives Y = 0 exactly: eps keeps the drop term 0 / (0 + eps) = 0
    assert avg_drop([0.0, 0.5], [0.0, 0.25]) == pytest.approx(100 * (0 + 0.25 / (0.5 + EPS)) / 2)
    # Y = 0 rising to 0.2: no drop, a gain of 0.2 / (1 - 0 + eps)
    result = summarize([0.0], [0.2])
    assert (result.average_drop, result.average_increase) == (0.0, 100.0)
    assert result.average_gain == pytest.approx(100 * 0.2 / (1 + EPS))


def test_score_of_one_is_valid_for_gain():
    # Y = 1 cannot rise: gain 0 / (0 + eps) = 0; falling to 0.5 is a drop of 0.5 / (1 + eps)
    result = summarize([1.0, 1.0], [1.0, 0.5])
    assert result.average_gain == 0.0
    assert result.average_drop == pytest.approx(100 * (0 + 0.5 / (1 + EPS)) / 2)


def test_scores_are_not_modified():
    y = np.array([0.8, np.nan, 0.5], dtype=np.float32)
    o = np.array([0.2, 0.1, 0.6], dtype=np.float32)
    y_before, o_before = y.copy(), o.copy()
    for function in AVERAGES:
        function(y, o, nan_policy="omit")
    MetricState.empty().update(y, o, nan_policy="omit")
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(o, o_before)
    assert y.dtype == np.float32


# =========================================================================== AveragesCam (TF)
@pytest.fixture(scope="module")
def tfk():
    """TensorFlow, Keras and camavg_tf.AveragesCam, or skip when TensorFlow is missing."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from camavg_tf import AveragesCam

    return tf, keras, AveragesCam


@pytest.fixture(scope="module")
def models(tfk):
    """A tiny CNN returning logits, and the same weights with a softmax on top."""
    _, keras, _ = tfk
    keras.utils.set_random_seed(1)
    images = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(images)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    logit_model = keras.Model(images, logits)
    classifier = keras.Model(images, keras.layers.Softmax()(logits))
    return logit_model, classifier


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    images = rng.random((5, 8, 8, 3)).astype(np.float32)
    cams = rng.random((5, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    return images, cams, labels


def label_score(tf, labels):
    indices = tf.constant(labels, dtype=tf.int32)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


def seed_scores(model, images, maps, labels):
    """The seed's way: the model on the inputs and on ``inputs * maps[..., None]``."""
    rows = np.arange(len(images))
    plain = np.asarray(model(images, training=False), dtype=np.float64)[rows, labels]
    masked = np.asarray(model(images * maps[..., None], training=False), dtype=np.float64)[rows, labels]
    return plain, masked


def test_wrong_number_of_cams(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams[:3], label_score(tf, labels)))
    assert "cams holds 3 maps but inputs holds 5 samples" in message


def test_list_of_cams_for_a_single_input_model(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    message = message_of(lambda: AveragesCam(models[1], images).evaluate([cams], label_score(tf, labels)))
    assert "cams is a list but the model has a single input" in message


def test_array_of_cams_for_a_multi_input_model(tfk, data):
    tf, keras, AveragesCam = tfk
    images, cams, labels = data
    first, second = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(first), keras.layers.GlobalAveragePooling2D()(second)]
    )
    two_inputs = keras.Model([first, second], keras.layers.Dense(3, activation="softmax")(pooled))
    metrics = AveragesCam(two_inputs, [images, images])
    message = message_of(lambda: metrics.evaluate(cams, label_score(tf, labels)))
    assert "cams must be a list with one CAM array per input" in message
    message = message_of(lambda: AveragesCam(two_inputs, images))
    assert "The model takes 2 input(s) but inputs holds 1" in message


def test_smaller_cams_are_resized(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    small = np.random.default_rng(3).random((5, 4, 4)).astype(np.float32)
    full = tf.image.resize(small[..., None], (8, 8), method="bilinear").numpy()[..., 0]
    y_c, o_c = seed_scores(models[1], images, full, labels)
    result = AveragesCam(models[1], images).evaluate(small, label_score(tf, labels))
    np.testing.assert_allclose(result.y_c, y_c, atol=1e-6)
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


@pytest.mark.parametrize(
    "shape, words",
    [
        ((5, 0, 8), "cannot be resized"),
        ((5, 8), "is a single map"),
        ((5, 8, 8, 3), "have 3 channels"),
    ],
)
def test_cams_that_cannot_be_resized(tfk, models, data, shape, words):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    message = message_of(
        lambda: AveragesCam(models[1], images).evaluate(np.full(shape, 0.5, np.float32), label_score(tf, labels))
    )
    assert words in message


def test_cams_outside_zero_one_suggest_normalize(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams * 255, label_score(tf, labels)))
    assert "cams must lie in [0, 1]" in message and "normalize=True" in message


def test_cams_outside_zero_one_with_normalize(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    raw = cams * 255 - 7  # any range: normalize=True rescales each map by its own min and max
    low = raw.min(axis=(1, 2), keepdims=True)
    rescaled = (raw - low) / (raw.max(axis=(1, 2), keepdims=True) - low)
    _, o_c = seed_scores(models[1], images, rescaled, labels)
    result = AveragesCam(models[1], images, normalize=True).evaluate(raw, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


def test_nonfinite_cam_is_named_under_raise(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    broken = cams.copy()
    broken[3, 2, 2] = np.nan
    broken[4, 0, 0] = np.inf
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(broken, label_score(tf, labels)))
    assert "cams[3] holds NaN or infinity" in message and "nan_policy='omit'" in message


def test_nonfinite_cam_is_skipped_under_omit(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    broken = cams.copy()
    broken[1, 2, 2] = np.nan
    broken[3, 0, 0] = -np.inf
    y_c, o_c = seed_scores(models[1], images, cams, labels)
    keep = np.array([True, False, True, False, True])
    result = AveragesCam(models[1], images, nan_policy="omit").evaluate(broken, label_score(tf, labels))
    assert (result.n, result.skipped) == (3, 2)
    assert "2 skipped" in str(result)
    y, o = y_c[keep], o_c[keep]
    assert result.average_drop == pytest.approx(100 * np.mean(np.maximum(y - o, 0) / (y + EPS)), abs=1e-4)
    assert result.average_increase == pytest.approx(100 * np.mean(y < o))
    assert np.isnan(result.o_c[~keep]).all()


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_constant_cams_are_valid(tfk, models, data, fill, normalize):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    constant = np.full((5, 8, 8), fill, np.float32)
    # a constant map has no minimum-to-maximum span: normalize=True makes it all zeros
    mask = np.zeros_like(constant) if normalize else constant
    y_c, o_c = seed_scores(models[1], images, mask, labels)
    result = AveragesCam(models[1], images, normalize=normalize).evaluate(constant, label_score(tf, labels))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)
    for value in (result.average_drop, result.average_increase, result.average_gain):
        assert math.isfinite(value)
    assert result.skipped == 0


def test_nonfinite_input_is_named_under_raise(tfk, models, data):
    _, _, AveragesCam = tfk
    images = data[0].copy()
    images[2, 1, 1, 0] = np.nan
    message = message_of(lambda: AveragesCam(models[1], images))
    assert "inputs[2] holds NaN or infinity" in message and "nan_policy='omit'" in message


def test_nonfinite_input_is_skipped_under_omit(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    broken = images.copy()
    broken[2, 1, 1, 0] = np.nan
    result = AveragesCam(models[1], broken, nan_policy="omit").evaluate(cams, label_score(tf, labels))
    assert (result.n, result.skipped) == (4, 1)


def test_nonfinite_input_is_skipped_even_when_the_model_hides_it(tfk, data):
    """Max pooling drops a NaN pixel, so the model's score looks fine; the sample must still
    be skipped, because its input was not a number."""
    tf, keras, AveragesCam = tfk
    images, cams, labels = data
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.Flatten()(keras.layers.MaxPooling2D(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    broken = images.copy()
    broken[2, 1, 1, 0] = np.nan
    result = AveragesCam(model, broken, nan_policy="omit").evaluate(cams, label_score(tf, labels))
    assert (result.n, result.skipped) == (4, 1)


def test_empty_inputs(tfk, models):
    _, _, AveragesCam = tfk
    message = message_of(lambda: AveragesCam(models[1], np.zeros((0, 8, 8, 3), np.float32)))
    assert "inputs is empty" in message


@pytest.mark.parametrize("inputs", [None, "images.npy", np.zeros(5, np.float32)], ids=["None", "str", "1-d"])
def test_inputs_that_are_not_images(tfk, models, inputs):
    _, _, AveragesCam = tfk
    assert "inputs must" in message_of(lambda: AveragesCam(models[1], inputs))


def test_images_of_the_wrong_size_for_the_model(tfk, models):
    _, _, AveragesCam = tfk
    message = message_of(lambda: AveragesCam(models[1], np.zeros((2, 6, 6, 3), np.float32)))
    assert "expected shape=(None, 8, 8, 3), found shape=(None, 6, 6, 3)" in message


def test_object_arrays_are_refused_by_name(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, _, labels = data
    objects = np.empty((5, 8, 8), dtype=object)
    objects[:] = 0.5
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(objects, label_score(tf, labels)))
    assert "cams" in message
    message = message_of(lambda: AveragesCam(models[1], np.array([object()] * 5)))
    assert "inputs" in message


def test_logit_model_is_detected_and_softmax_fixes_it(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    metrics = AveragesCam(models[0], images)
    y_c, _ = seed_scores(models[0], images, cams, labels)
    assert y_c.min() < 0 or y_c.max() > 1  # tanh features and random weights: real logits
    message = message_of(lambda: metrics.evaluate(cams, label_score(tf, labels)))
    assert "logits" in message and "activation='softmax'" in message
    # the same weights with the softmax given by camavg equal the softmax model
    fixed = AveragesCam(models[0], images, activation="softmax").evaluate(cams, label_score(tf, labels))
    reference = AveragesCam(models[1], images).evaluate(cams, label_score(tf, labels))
    np.testing.assert_allclose(fixed.y_c, reference.y_c, atol=1e-6)
    assert fixed.average_drop == pytest.approx(reference.average_drop, abs=1e-4)
    # increase is defined for logits: asking for it alone works
    assert 0.0 <= metrics.average_increase(cams, label_score(tf, labels)) <= 100.0


@pytest.mark.parametrize("score", [3, None, "CategoricalScore"], ids=repr)
def test_score_function_not_callable(tfk, models, data, score):
    _, _, AveragesCam = tfk
    images, cams, _ = data
    with pytest.raises(TypeError) as caught:
        AveragesCam(models[1], images).evaluate(cams, score)
    assert "score_function must be callable" in str(caught.value)


@pytest.mark.parametrize("pick", [lambda out: out, lambda out: out[0, 0], lambda out: out[:2, 0]])
def test_score_function_of_the_wrong_shape(tfk, models, data, pick):
    _, _, AveragesCam = tfk
    images, cams, _ = data
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams, pick))
    assert "score_function must return one score per sample, shape (5,)" in message


def test_categorical_score_out_of_range(tfk, models, data):
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.utils.scores import CategoricalScore

    _, _, AveragesCam = tfk
    images, cams, _ = data
    metrics = AveragesCam(models[1], images)
    assert "index 7 (sample 0) is out of range for outputs with 3 classes" in message_of(
        lambda: metrics.evaluate(cams, CategoricalScore(7))
    )
    assert "holds 2 class indices for 5 samples" in message_of(
        lambda: metrics.evaluate(cams, CategoricalScore([0, 1]))
    )


def test_score_function_list_for_a_single_output(tfk, models, data):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    score = label_score(tf, labels)
    message = message_of(lambda: AveragesCam(models[1], images).evaluate(cams, [score, score]))
    assert "list of 2 functions but the model has 1 outputs" in message


@pytest.mark.parametrize(
    "option, value",
    [
        ("nan_policy", "ignore"),
        ("activation", "relu"),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("data_format", "NHWC"),
        ("level", 95),
    ],
)
def test_bad_options(tfk, models, data, option, value):
    _, _, AveragesCam = tfk
    message = message_of(lambda: AveragesCam(models[1], data[0], **{option: value}))
    assert option in message and repr(value) in message


@pytest.mark.parametrize("value", ["yes", None, 1.0])
def test_normalize_must_be_a_bool(tfk, models, data, value):
    _, _, AveragesCam = tfk
    message = message_of(lambda: AveragesCam(models[1], data[0], normalize=value))
    assert "normalize" in message


@pytest.mark.parametrize("as_tensor", [False, True])
def test_nothing_is_modified(tfk, models, data, as_tensor):
    tf, _, AveragesCam = tfk
    images, cams, labels = data
    weights = [w.copy() for w in models[1].get_weights()]
    images_in, cams_in = images.copy(), cams.copy()
    if as_tensor:
        images_in, cams_in = tf.constant(images_in), tf.constant(cams_in)
    metrics = AveragesCam(models[1], images_in, normalize=True, batch_size=2)
    score = label_score(tf, labels)
    metrics.evaluate(cams_in, score)
    metrics.average_drop(cams_in, score, return_vector=True)
    metrics.average_gain(cams_in, score)
    metrics.evaluate_many([cams_in, cams_in], score)
    np.testing.assert_array_equal(np.asarray(images_in), images)
    np.testing.assert_array_equal(np.asarray(cams_in), cams)
    assert metrics.inputs is images_in  # kept as given, not a converted copy
    for before, after in zip(weights, models[1].get_weights()):
        np.testing.assert_array_equal(before, after)


# =========================================================================== the table itself
def _decorators_of(source: str, test_name: str) -> str:
    """The decorator lines right above ``def test_name(``."""
    lines = source[: source.index(f"def {test_name}(")].splitlines()
    decorators = []
    for line in reversed(lines):
        if not line.strip() or line.startswith("def ") or line.startswith("class "):
            break
        decorators.append(line)
    return "\n".join(decorators)


def test_every_table_row_names_an_existing_test():
    """Each row of the bad-input table (docs/bad-input.md) ends with `file.py::test_name`; that test must exist, and
    a row says *(pending #k)* exactly when its test is marked xfail, waiting for the fix #k."""
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 30
    tests_dir = pathlib.Path(__file__).resolve().parent
    for row in rows:
        references = re.findall(r"`(test_\w+\.py)::(test_\w+)`", row)
        assert references, row
        for file_name, test_name in references:
            source = (tests_dir / file_name).read_text()
            assert f"def {test_name}(" in source, f"{file_name}::{test_name} (row: {row[:60]})"
            decorators = _decorators_of(source, test_name)
            pending = re.search(r"\(pending #(\d+)\)", row)
            if pending:
                assert f"hardening-requests #{pending.group(1)}" in decorators, (
                    f"{test_name} is no longer xfail: drop '(pending #{pending.group(1)})' from its row"
                )
            else:
                assert "xfail" not in decorators, f"{test_name} is xfail: mark its row (pending #k)"
